"""The HTTP interface of DESIGN.md, through the real FastAPI app with the Gradio widget mounted."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def client(pipeline):
    from bot.web import create_app

    with TestClient(create_app(pipeline)) as client:
        yield client


def test_chat_returns_the_reply_object(client):
    response = client.post("/api/chat", json={"message": "what is a hydrafacial"})
    assert response.status_code == 200
    body = response.json()
    assert body["kind"] == "answer" and body["sources"][0]["id"] == "hydrafacial"
    assert body["session"] and body["reply_id"]
    again = client.post("/api/chat", json={"message": "how often can i get one", "session": body["session"]})
    assert again.json()["session"] == body["session"]


@pytest.mark.parametrize("payload", [{"message": ""}, {"message": "x" * 3000}, {"message": None}, {}])
def test_bad_messages_are_400_with_a_clear_error(client, payload):
    response = client.post("/api/chat", json=payload)
    assert response.status_code == 400
    assert response.json()["error"]


def test_feedback(client):
    reply = client.post("/api/chat", json={"message": "does microneedling hurt"}).json()
    assert client.post("/api/feedback", json={"reply_id": reply["reply_id"], "helpful": True}).json() == {"ok": True}
    missing = client.post("/api/feedback", json={"reply_id": "nope", "helpful": False})
    assert missing.status_code == 404 and "reply_id" in missing.json()["error"]


def test_rate_limit_is_429_with_a_friendly_message(pipeline):
    from bot.web import create_app

    pipeline.settings.rate_limit_per_minute = 3
    with TestClient(create_app(pipeline)) as client:
        codes = [client.post("/api/chat", json={"message": "what is ipl"}).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        assert "wait a minute" in client.post("/api/chat", json={"message": "hi"}).json()["error"]


def test_healthz_and_pages(client):
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["index"]["status"] == "ok" and health["database"]["status"] == "ok"
    assert client.get("/").status_code == 200
    staff = client.get("/staff/login")
    assert staff.status_code == 200 and "frame-ancestors 'none'" in staff.headers["content-security-policy"]
    assert "strict-transport-security" not in staff.headers  # only over TLS


def test_security_headers_over_tls(pipeline):
    from bot.web import create_app

    with TestClient(create_app(pipeline), base_url="https://chat.clinic.example") as client:
        page = client.get("/")
    assert page.headers["strict-transport-security"].startswith("max-age=31536000")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "object-src 'none'" in policy and "frame-ancestors 'self'" in policy


def test_serving_purges_conversations_past_retention(pipeline):
    import datetime as dt

    from sqlalchemy import update

    from bot.store import Exchange
    from bot.web import create_app

    old = pipeline.ask("what is a chemical peel")
    with pipeline.store.session() as s:
        s.execute(update(Exchange).where(Exchange.id == old.reply_id).values(created_at=dt.datetime(2000, 1, 1)))
    recent = pipeline.ask("what is ipl")
    create_app(pipeline)
    kept = [e["reply_id"] for e in pipeline.store.export(recent.session, actor="test")["exchanges"]]
    assert kept == [recent.reply_id]
    assert pipeline.store.export(old.session, actor="test")["exchanges"] == []
    assert any(
        a.action == "purge" and a.actor == "serve (scheduled)" and a.count == 1 for a in pipeline.store.audit_log()
    )
