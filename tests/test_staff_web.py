"""The console's door over HTTP: sign-in, sessions, CSRF and origin checks, roles (real app, real SQLite)."""

from __future__ import annotations

import re
import shutil

import pytest
from fastapi.testclient import TestClient

from bot.auth import SESSION_COOKIE, Auth
from tests.conftest import KNOWLEDGE, make_settings

ORIGIN = {"origin": "http://testserver"}
PASSWORD = "a long enough password"


@pytest.fixture
def app(tmp_path, data_dir, models):
    from bot.chat import Pipeline
    from bot.web import create_app

    knowledge = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE, knowledge)
    pipeline = Pipeline.build(make_settings(data_dir, knowledge_dir=knowledge), models=models)
    auth = Auth(pipeline.store)
    auth.add_user("ed@clinic.test", PASSWORD, "editor", actor="test")
    auth.add_user("dr.lee@clinic.test", PASSWORD, "clinician", actor="test")
    return create_app(pipeline)


def csrf_of(client: TestClient) -> str:
    page = client.get("/staff/login")
    assert page.status_code == 200
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD, **extra):
    form = {"email": email, "password": password, "csrf": csrf_of(client)} | extra
    return client.post("/staff/login", data=form, headers=ORIGIN, follow_redirects=False)


def test_console_needs_a_sign_in(app):
    client = TestClient(app)
    assert client.get("/staff", follow_redirects=False).headers["location"] == "/staff/login"
    assert client.get("/staff/console/", follow_redirects=False).status_code == 303
    assert client.get("/staff/console/config").status_code == 401
    assert client.post("/staff/console/gradio_api/queue/join", json={}, headers=ORIGIN).status_code == 401


def test_sign_in_sets_a_strict_httponly_cookie_and_opens_the_console(app):
    client = TestClient(app)
    response = sign_in(client, "ED@clinic.test ")
    assert response.status_code == 303 and response.headers["location"] == "/staff/console/"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/staff" in cookie
    assert client.get("/staff/console/config").status_code == 200
    assert client.get("/staff/console/").headers["content-security-policy"].endswith("frame-ancestors 'none'")


@pytest.mark.parametrize(
    ("email", "password"),
    [("ed@clinic.test", "a wrong password!"), ("nobody@clinic.test", PASSWORD), ("ed@clinic.test", "")],
)
def test_wrong_credentials_are_refused_and_audited(app, email, password):
    client = TestClient(app)
    response = sign_in(client, email, password)
    assert response.status_code == 401 and "Wrong email or password." in response.text
    assert SESSION_COOKIE not in client.cookies
    assert client.get("/staff/console/config").status_code == 401
    audit = app.state.pipeline.store.audit_log()
    assert audit[0].action == "sign-in refused"
    assert all(password not in f"{a.actor} {a.target}" for a in audit if password)


def test_sign_in_without_the_form_token_or_from_another_site_is_refused(app):
    client = TestClient(app)
    csrf_of(client)
    no_token = client.post(
        "/staff/login", data={"email": "ed@clinic.test", "password": PASSWORD}, headers=ORIGIN, follow_redirects=False
    )
    assert no_token.status_code == 403
    forged = sign_in(client, "ed@clinic.test", csrf="made-up")
    assert forged.status_code == 403
    elsewhere = client.post(
        "/staff/login",
        data={"email": "ed@clinic.test", "password": PASSWORD, "csrf": csrf_of(client)},
        headers={"origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert elsewhere.status_code == 403


def test_a_signed_in_console_refuses_requests_from_another_origin(app):
    client = TestClient(app)
    sign_in(client, "dr.lee@clinic.test")
    cross = client.post("/staff/console/gradio_api/queue/join", json={}, headers={"origin": "https://evil.example"})
    assert cross.status_code == 403
    no_origin = client.post("/staff/console/gradio_api/queue/join", json={})
    assert no_origin.status_code == 403


def test_sign_out_ends_the_session_on_the_server(app):
    client = TestClient(app)
    sign_in(client, "ed@clinic.test")
    token = client.cookies[SESSION_COOKIE]
    assert client.post("/staff/logout", headers=ORIGIN, follow_redirects=False).status_code == 303
    replay = TestClient(app, cookies={SESSION_COOKIE: token})
    assert replay.get("/staff/console/config").status_code == 401


def test_expired_sessions_are_refused(app):
    store = app.state.pipeline.store
    token = Auth(store, session_hours=-1).sign_in("ed@clinic.test", PASSWORD)
    assert token
    assert TestClient(app, cookies={SESSION_COOKIE: token}).get("/staff/console/config").status_code == 401


def test_passwords_are_stored_as_argon2_hashes(app):
    user = app.state.pipeline.store.user("ed@clinic.test")
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash


def test_user_add_from_the_command_line(cli_env):
    from tests.conftest import run_cli

    added = run_cli(["user", "add", "nurse@clinic.test", "--role", "clinician", "--password-stdin"], cli_env, PASSWORD)
    assert added.returncode == 0, added.stderr
    listed = run_cli(["user", "list"], cli_env)
    assert "nurse@clinic.test\tclinician" in listed.stdout.decode()
    bad_role = run_cli(["user", "add", "x@clinic.test", "--role", "owner", "--password-stdin"], cli_env, PASSWORD)
    assert bad_role.returncode == 1 and "unknown role 'owner'" in bad_role.stderr.decode()
    short = run_cli(["user", "add", "x@clinic.test", "--password-stdin"], cli_env, "short")
    assert short.returncode == 1 and "at least 12 characters" in short.stderr.decode()


def test_sign_in_is_throttled_after_repeated_failures(app):
    client = TestClient(app)
    for _ in range(5):
        assert sign_in(client, "ed@clinic.test", "guess guess guess").status_code == 401
    throttled = sign_in(client, "ed@clinic.test")  # even the right password waits now
    assert throttled.status_code == 429 and "Wait 15 minutes" in throttled.text
    assert sign_in(TestClient(app), "dr.lee@clinic.test").status_code == 303  # other accounts are not locked out
