"""Attacks from the security review, each as a test that would have caught it (issue 18)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from bot.fold import fold

JSON = {"content-type": "application/json"}


@pytest.fixture
def client(pipeline):
    from bot.web import create_app

    with TestClient(create_app(pipeline)) as client:
        yield client


def secrets_on_disk(pipeline, tmp_path):
    env = tmp_path / ".env"
    env.write_text("CLINICBOT_ENCRYPTION_KEY=sentinel-secret-value\n")
    database = pipeline.settings.database_url_resolved.removeprefix("sqlite:///")
    return [str(env), database, "/etc/passwd", str(pipeline.settings.knowledge_dir / "README.md")]


def test_no_route_hands_out_a_file_from_disk(client, pipeline, tmp_path):
    targets = secrets_on_disk(pipeline, tmp_path)
    for target in targets:
        for route in ("/gradio_api/file=", "/file=", "/staff/console/gradio_api/file=", "/staff/console/file="):
            response = client.get(f"{route}{target}")
            assert response.status_code in (401, 404), (route, target)
            assert b"sentinel-secret-value" not in response.content and b"root:" not in response.content
    # the old attack: a chat history naming a file. The widget takes no history at all now.
    history = [{"role": "assistant", "content": {"path": targets[0]}}]
    response = client.post("/api/chat", json={"message": "what is ipl", "history": history})
    assert response.status_code == 200 and "sentinel-secret-value" not in response.text
    for route in ("/gradio_api/upload", "/staff/console/gradio_api/upload", "/openapi.json", "/docs", "/config"):
        assert client.post(route, files={"files": ("x.txt", b"x")}).status_code in (401, 404, 405), route


def test_bodies_over_the_cap_are_refused_before_parsing(client):
    big = b'{"message": "' + b"a" * (70 * 1024) + b'"}'
    for route in ("/api/chat", "/api/feedback"):
        response = client.post(route, content=big, headers={"content-type": "application/json"})
        assert response.status_code == 413 and len(response.content) < 200
        assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "payload",
    [
        {"message": "hi", "session": "\ud800"},
        {"message": "hi", "session": "x" * 65},
        {"message": "hi", "session": "a\x00b"},
        {"message": "hi", "session": ["list"]},
    ],
)
def test_bad_session_ids_are_400_with_headers_and_nothing_stored(client, payload):
    response = client.post("/api/chat", content=json.dumps(payload), headers=JSON)  # a lone surrogate as \ud800
    assert response.status_code == 400 and "session" in response.json()["error"]
    assert "content-security-policy" in response.headers


def test_odd_reply_ids_are_404_not_500(client):
    for reply_id in ("\ud800", "x" * 500, "a\x00b", 12):
        body = json.dumps({"reply_id": reply_id, "helpful": True})
        response = client.post("/api/feedback", content=body, headers=JSON)
        assert response.status_code == 404, reply_id


def test_validation_errors_do_not_echo_the_input(client):
    response = client.post("/api/feedback", json={"reply_id": "x", "helpful": "secret words here " * 10})
    assert response.status_code == 400 and "secret words" not in response.text


def test_feedback_is_rate_limited(pipeline):
    from bot.web import create_app

    pipeline.settings.feedback_limit_per_minute = 3
    with TestClient(create_app(pipeline)) as client:
        codes = [
            client.post("/api/feedback", json={"reply_id": "0" * 32, "helpful": True}).status_code for _ in range(4)
        ]
    assert codes == [404, 404, 404, 429]


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(pipeline):
    from bot.web import create_app

    pipeline.settings.rate_limit_per_minute = 2
    with TestClient(create_app(pipeline)) as client:  # the test client's peer is not a trusted proxy
        codes = [
            client.post("/api/chat", json={"message": "what is ipl"}, headers={"x-forwarded-for": f"198.51.100.{i}"})
            for i in range(3)
        ]
    assert [c.status_code for c in codes] == [200, 200, 429]


def test_trusted_proxies_walk_forwarded_for_from_the_nearest_hop():
    from bot.httpguard import TrustedProxies

    proxies = TrustedProxies.parse(["10.0.0.0/8"])
    assert proxies.client("10.0.0.5", "6.6.6.6, 203.0.113.9") == "203.0.113.9"  # the spoofed first hop is ignored
    assert proxies.client("10.0.0.5", "203.0.113.9, 10.0.0.7") == "203.0.113.9"
    assert proxies.client("203.0.113.50", "6.6.6.6") == "203.0.113.50"  # not a proxy: its header means nothing


def test_the_rate_limit_is_shared_by_every_app_over_one_database(pipeline):
    """Two apps over one database stand for two workers: the limit counts once, not once per process."""
    from bot.web import create_app

    pipeline.settings.rate_limit_per_minute = 3
    with TestClient(create_app(pipeline)) as one, TestClient(create_app(pipeline)) as two:
        codes = [c.post("/api/chat", json={"message": "what is ipl"}).status_code for c in (one, two, one, two)]
    assert codes == [200, 200, 200, 429]


def test_sign_in_is_throttled_per_address_across_accounts(pipeline):
    from bot.web import create_app

    with TestClient(create_app(pipeline)) as client:
        page = client.get("/staff/login")
        csrf = page.cookies.get("clinicbot_csrf")
        codes = []
        for i in range(22):
            form = {"email": f"guess{i}@clinic.test", "password": "wrong password!", "csrf": csrf}
            codes.append(client.post("/staff/login", data=form, headers={"origin": "http://testserver"}).status_code)
    assert codes[:20] == [401] * 20 and codes[20:] == [429, 429]


@pytest.mark.parametrize(
    "disguised",
    [
        "i want to k\u200bill myself",
        "i want to kill my\u00adself",
        "i want to kіll myself",  # Cyrillic і
        "ｉ ｗａｎｔ ｔｏ ｋｉｌｌ ｍｙｓｅｌｆ",
        "my vision is b\u200dlurry after filler",
        "my lip went whіte after filler",  # Cyrillic і
        "i can't brеathe after my injection",  # Cyrillic е
    ],
)
def test_triage_sees_through_invisible_and_look_alike_letters(pipeline, disguised):
    assert pipeline.ask(disguised).kind == "emergency"


def test_folding_keeps_accents_and_plain_text():
    assert fold("visión borrosa, señora") == "visión borrosa, señora"
    assert fold("Ｂｏｔｏｘ") == "Botox"


@pytest.mark.embedded_only
def test_a_second_process_opening_the_database_mid_run_loses_nothing(pipeline):
    database = pipeline.settings.database_url_resolved.removeprefix("sqlite:///")
    first = [pipeline.ask("what is ipl", session="s1") for _ in range(3)]
    reader = (
        "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('select count(*) from exchanges'); c.close()"
    )
    subprocess.run([sys.executable, "-c", reader, database], check=True)
    later = [pipeline.ask("what is a chemical peel", session="s1") for _ in range(5)]
    assert all(r.stored for r in first + later)
    pipeline.store.engine.dispose()
    with sqlite3.connect(database) as connection:
        ids = {row[0] for row in connection.execute("select id from exchanges where session_id = 's1'")}
    assert ids == {r.reply_id for r in first + later}


def test_a_record_the_database_refuses_is_kept_apart_and_the_rest_drain(pipeline):
    from bot.spool import QUARANTINE

    good = pipeline.ask("what is ipl")
    spool = pipeline.spool
    record = {"session_id": "s2", "kind": "answer", "rule": "r", "question_redacted": "q", "reply_text": "a",
              "sources": [], "topic": "", "confidence": 0.0, "latency_ms": 1.0, "reply_id": "b" * 32}  # fmt: skip
    spool.append({**record, "reply_id": "c" * 32, "created_at": "not a date"})  # refused: not a date
    spool.append(record)
    assert pipeline.health()["exchanges"]["pending"] == 2
    written = spool.drain(lambda r: pipeline.store.record_exchange(**r))
    assert written == 1 and pipeline.store.exchange("b" * 32) is not None
    assert (spool.folder / QUARANTINE).exists() and pipeline.health()["exchanges"]["rejected"] == 1
    assert pipeline.health()["status"] == "degraded" and good.stored


def test_production_refuses_a_short_secret(tmp_path):
    from tests.conftest import make_settings

    assert make_settings(tmp_path, secret_key="short").secret_problem()
    assert make_settings(tmp_path, secret_key="change-me").secret_problem()
    assert make_settings(tmp_path, secret_key="x" * 32).secret_problem() == ""
