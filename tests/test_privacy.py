"""No name, phone or email sent by a patient reaches a file under the data dir or a log line."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
import urllib.request

from tests.conftest import ROOT, database_text, files_containing, make_settings, run_cli

NAME, SURNAME = "Quillon", "Vantresca"
PHONE, EMAIL = "415-555-0177", "quillon.v@example.net"
SENTINELS = [NAME, SURNAME, "555-0177", EMAIL]
MESSAGE = f"hi im {NAME} {SURNAME}, {PHONE}, {EMAIL} - does lip filler hurt?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        return json.loads(error.read())


def test_pipeline_logs_and_store_hold_no_identifier(pipeline, data_dir, captured_logs):
    reply = pipeline.ask(MESSAGE)
    pipeline.feedback(reply.reply_id, False, f"{NAME} here again, {EMAIL}")
    pipeline.ask(f"my lips went white after filler, this is {NAME} {SURNAME} {PHONE}")
    logged = "\n".join(r.getMessage() for r in captured_logs.records)
    assert not [s for s in SENTINELS if s.lower() in logged.lower()]
    assert files_containing(data_dir, SENTINELS) == []
    stored = database_text(pipeline.settings.database_url_resolved).lower()  # PostgreSQL's too, under --stores=servers
    assert "<person>" in stored and not [s for s in SENTINELS if s.lower() in stored]


def test_cli_and_web_write_no_identifier(cli_env, data_dir):
    batch = run_cli(["ask", "--jsonl"], cli_env, stdin=json.dumps({"id": "p", "question": MESSAGE}))
    assert batch.returncode == 0
    single = run_cli(["ask", MESSAGE], cli_env)
    assert single.returncode == 0
    leaked_cli = [s for s in SENTINELS if s.lower() in (batch.stderr + single.stderr).decode().lower()]

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--port", str(port)],
        env=cli_env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        reply = _post(f"{base}/api/chat", {"message": MESSAGE})
        assert reply["kind"] == "answer"
        _post(f"{base}/api/feedback", {"reply_id": reply["reply_id"], "helpful": False, "comment": f"call {PHONE}"})
        bad = _post(f"{base}/api/chat", {"message": MESSAGE + "\x00"})
        assert "error" in bad and NAME not in bad["error"]
    finally:
        server.terminate()
        server_log, _ = server.communicate(timeout=30)

    leaked_web = [s for s in SENTINELS if s.lower().encode() in server_log.lower()]
    assert leaked_cli == [] and leaked_web == []
    assert files_containing(data_dir, SENTINELS) == []
    stored = database_text(make_settings(data_dir).database_url_resolved).lower()
    assert "<person>" in stored and not [s for s in SENTINELS if s.lower() in stored]


def test_chroma_holds_explainer_content_only(pipeline, chroma_dir):
    pipeline.ask(MESSAGE)
    assert any(chroma_dir.rglob("*.sqlite3"))  # looking in the right place
    chroma_files = files_containing(chroma_dir, SENTINELS + ["does lip filler hurt"])
    assert chroma_files == []


def test_exception_text_is_kept_out_of_logs():
    from bot.logfilter import NoExceptionText

    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, None)
    try:
        raise ValueError(f"bad input {EMAIL}")
    except ValueError:
        record.exc_info = sys.exc_info()
    NoExceptionText().filter(record)
    formatted = logging.Formatter().format(record)
    assert EMAIL not in formatted and "ValueError" in formatted
