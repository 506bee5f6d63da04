"""When a store fails, patients still get a reply, nothing of theirs leaks, and the app recovers on its own.

Run with --stores=servers. The servers these tests stop are their own, started for the one test, so the rest of the
suite keeps the session's servers.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.conftest import (
    TEMPLATE_PREFIX,
    chroma_client,
    database_text,
    files_containing,
    make_settings,
    point_at,
    run_cli,
)
from tests.servers import ChromaServer, PostgresServer, ServerUnavailable, unavailable

pytestmark = pytest.mark.servers_only

QUESTION = "how long does botox last?"
NAME, SURNAME, PHONE = "Zebulon", "Quimby", "0161 496 0000"
SENTINELS = [NAME, SURNAME, PHONE, "496 0000"]
PII_QUESTION = f"my name is {NAME} {SURNAME}, phone {PHONE}, how long does botox last"


def leaked(text: str) -> list[str]:
    return [s for s in SENTINELS if s.lower() in text.lower()]


def ask_until(pipeline, question: str, kind: str, within_s: float = 20.0):
    """Ask again every half second until the reply is of `kind`; the last reply either way."""
    deadline = time.monotonic() + within_s
    while True:
        reply = pipeline.ask(question)
        if reply.kind == kind or time.monotonic() > deadline:
            return reply
        time.sleep(0.5)


def health(pipeline) -> tuple[int, dict]:
    from bot.web import create_app

    with TestClient(create_app(pipeline)) as client:
        response = client.get("/healthz")
    return response.status_code, response.json()


def _or_unavailable(kind):
    try:
        return kind()
    except ServerUnavailable as exc:
        missing = str(exc)
    unavailable(missing)


@pytest.fixture
def own_chroma(servers, built_data) -> Iterator[ChromaServer]:
    """A Chroma server for this test alone, holding a copy of the session's index generation."""
    server = _or_unavailable(ChromaServer)
    try:
        server.start()
        source = chroma_client(servers.chroma.url).get_collection(servers.generation)
        rows = source.get(include=["embeddings", "documents", "metadatas"])
        generation = servers.generation.removeprefix(TEMPLATE_PREFIX)
        target = chroma_client(server.url).create_collection(
            generation, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
        )
        for start in range(0, len(rows["ids"]), 500):
            window = slice(start, start + 500)
            target.add(
                ids=rows["ids"][window],
                embeddings=rows["embeddings"][window],
                documents=rows["documents"][window],
                metadatas=rows["metadatas"][window],
            )
        point_at(server.url, "", generation)
        yield server
    finally:
        server.close()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster for this test alone, with an empty `clinicbot` database."""
    server = _or_unavailable(PostgresServer)
    try:
        server.start()
        server.create_database("clinicbot")
        yield server
    finally:
        server.close()


def test_the_suite_really_runs_on_the_servers(pipeline):
    """Guards the option itself: with --stores=servers nothing quietly falls back to the embedded stores."""
    status = pipeline.health()
    assert status["status"] == "ok"
    assert status["database"]["backend"] == "postgresql"
    assert pipeline.settings.chroma_url.startswith("http://127.0.0.1:") and pipeline.settings.chroma_prefix
    assert not (pipeline.settings.data_dir / "chroma").exists()


def test_chroma_down_gives_the_clinic_phone_and_answers_again_once_it_is_back(own_chroma, data_dir, models):
    from bot.chat import Pipeline

    settings = make_settings(data_dir, chroma_url=own_chroma.url, chroma_prefix="")
    pipeline = Pipeline.build(settings, models=models)
    assert pipeline.ask(QUESTION).kind == "answer"

    own_chroma.stop()
    reply = pipeline.ask(QUESTION)  # no exception: a reply the patient can act on
    assert (reply.kind, reply.rule) == ("unknown", "index.unavailable")
    assert settings.clinic_phone in reply.text
    code, status = health(pipeline)
    assert code == 200 and status["status"] == "degraded"
    assert status["index"]["status"] == "down" and status["database"]["status"] == "ok"

    own_chroma.start()  # same port, same files
    reply = ask_until(pipeline, QUESTION, "answer", within_s=20)
    assert reply.kind == "answer", f"still {reply.kind}/{reply.rule} 20 s after Chroma came back"
    assert reply.sources[0].id == "botulinum-toxin"
    assert health(pipeline)[1]["status"] == "ok"


def test_a_pipeline_started_while_chroma_is_down_picks_it_up(own_chroma, data_dir, models):
    from bot.chat import Pipeline

    settings = make_settings(data_dir, chroma_url=own_chroma.url, chroma_prefix="")
    own_chroma.stop()
    pipeline = Pipeline.build(settings, need_index=False, models=models)  # as `clinicbot serve` starts
    reply = pipeline.ask(QUESTION)
    assert (reply.kind, reply.rule) == ("unknown", "index.unavailable") and settings.clinic_phone in reply.text
    assert health(pipeline)[1]["index"]["status"] == "down"
    own_chroma.start()
    reply = ask_until(pipeline, QUESTION, "answer", within_s=20)
    assert reply.kind == "answer", f"still {reply.kind}/{reply.rule} 20 s after Chroma came back"


def test_database_down_spools_the_redacted_exchange_and_writes_it_once_back(
    own_postgres, data_dir, models, captured_logs
):
    from bot.chat import Pipeline

    url = own_postgres.url()
    pipeline = Pipeline.build(make_settings(data_dir, database_url=url), models=models)
    first = pipeline.ask("what is a hydrafacial")
    assert first.stored is True and first.spooled is False
    spool = data_dir / "spool"

    own_postgres.stop()
    reply = pipeline.ask(PII_QUESTION, session=first.session)
    assert reply.kind == "answer" and reply.sources[0].id == "botulinum-toxin"
    assert reply.stored is False and reply.spooled is True
    spooled = "".join(p.read_text() for p in spool.glob("*.jsonl"))
    assert reply.reply_id in spooled and "<PERSON>" in spooled
    assert leaked(spooled) == []
    assert files_containing(data_dir, SENTINELS) == []
    code, status = health(pipeline)
    assert code == 200 and status["status"] == "degraded"
    assert status["database"]["status"] == "down" and status["index"]["status"] == "ok"

    own_postgres.start()
    after = pipeline.ask("is there any downtime after a hydrafacial", session=first.session)
    assert after.stored is True
    pipeline.finish_writes()
    assert list(spool.glob("*.jsonl")) == [] and list(spool.glob("*.flushing")) == []
    exchanges = pipeline.store.export(first.session, actor="test")["exchanges"]
    written = {e["reply_id"]: e for e in exchanges}
    assert set(written) == {first.reply_id, reply.reply_id, after.reply_id}
    assert "<PERSON>" in written[reply.reply_id]["question_redacted"]
    assert written[reply.reply_id]["kind"] == "answer" and written[reply.reply_id]["sources"]
    assert leaked(database_text(url)) == []
    logged = "\n".join(r.getMessage() for r in captured_logs.records)
    assert leaked(logged) == []
    assert files_containing(data_dir, SENTINELS) == []
    # Staff read a conversation in the order it happened, and retention counts from when it was asked.
    assert [e["reply_id"] for e in exchanges] == [first.reply_id, reply.reply_id, after.reply_id], (
        "a spooled exchange is dated when it was flushed, not when it was asked"
    )


@contextlib.contextmanager
def frozen(server) -> Iterator[None]:
    server.freeze()
    try:
        yield
    finally:
        server.thaw()


# A hung store used to hold every request for a minute (no timeouts). These bounds tell a hang from an answer with
# room to spare on a busy machine; what the routes take is measured by `clinicbot bench`, not here.
HUNG_S = 4.0
PAGES = ("/healthz", "/embed.js", "/widget.js", "/staff/login")


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_a_frozen_database_holds_up_no_page_and_chats_are_answered_and_spooled(own_postgres, data_dir, models):
    from bot.chat import Pipeline
    from bot.web import create_app

    settings = make_settings(data_dir, database_url=own_postgres.url(), store_timeout_s=1.0)
    pipeline = Pipeline.build(settings, models=models)
    with TestClient(create_app(pipeline)) as client:
        assert client.post("/api/chat", json={"message": QUESTION}).json()["stored"] is True
        with frozen(own_postgres):
            for path in PAGES:
                response, took = timed(lambda path=path: client.get(path))
                assert took < HUNG_S and response.status_code < 500, f"{path} waited {took:.1f} s on a frozen database"
            response, took = timed(lambda: client.post("/api/chat", json={"message": QUESTION, "session": "frozen"}))
            reply = response.json()
            assert took < HUNG_S, f"a chat waited {took:.1f} s on a frozen database"
            assert reply["kind"] == "answer" and reply["stored"] is False and reply["spooled"] is True
    assert pipeline.ask("what is a chemical peel").stored  # the next exchange stored starts the spool's drain
    pipeline.finish_writes()
    assert pipeline.store.exchange(reply["reply_id"]) is not None, "the spooled exchange was written once thawed"


def test_a_frozen_chroma_gives_the_please_call_reply_without_a_hang(own_chroma, data_dir, models):
    from bot.chat import Pipeline
    from bot.web import create_app

    pipeline = Pipeline.build(
        make_settings(data_dir, chroma_url=own_chroma.url, chroma_prefix="", chroma_timeout_s=1.0), models=models
    )
    assert pipeline.ask(QUESTION).kind == "answer"
    with TestClient(create_app(pipeline)) as client, frozen(own_chroma):
        response, took = timed(lambda: client.post("/api/chat", json={"message": "what is a chemical peel"}))
        assert took < HUNG_S, f"a chat waited {took:.1f} s on a frozen Chroma"
        assert response.json()["rule"] == "index.unavailable"
        for path in PAGES:
            response, took = timed(lambda path=path: client.get(path))
            assert took < HUNG_S and response.status_code < 500, f"{path} waited {took:.1f} s on a frozen Chroma"
    assert ask_until(pipeline, QUESTION, "answer").kind == "answer"


@contextlib.contextmanager
def tiny_disk(folder: Path, size: str = "512k") -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def fill(folder: Path) -> None:
    with contextlib.suppress(OSError), open(folder / "filler", "wb", buffering=0) as handle:
        while True:  # until the disk is full
            handle.write(b"\0" * 65536)


def test_ingest_onto_a_full_disk_says_so_in_one_line(tmp_path, cli_env):
    """The data dir only holds the stores when they are embedded, so this ingest runs without the servers."""
    env = {k: v for k, v in cli_env.items() if k not in ("CLINICBOT_CHROMA_URL", "CLINICBOT_DATABASE_URL")}
    with tiny_disk(tmp_path / "full") as data:
        fill(data)
        env.update(CLINICBOT_DATA_DIR=str(data))
        result = run_cli(["ingest"], env, timeout=300)
    err = result.stderr.decode()
    assert result.returncode != 0, err[-600:]
    assert "Traceback" not in err, err[-1500:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("error:") and ("CLINICBOT_DATA_DIR" in last or str(data) in last), err[-600:]
