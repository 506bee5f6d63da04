"""Sample text is served labelled, never in production; contact placeholders are filled; diagrams are served
from an allow-list, so nothing else under knowledge/ is reachable."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from bot.config import Settings
from bot.knowledge import load_explainers, serving
from bot.leaflet import PLACEHOLDER, fill_contacts
from tests.conftest import KNOWLEDGE


@pytest.fixture
def client(pipeline):
    from bot.web import create_app

    with TestClient(create_app(pipeline)) as client:
        yield client


def test_an_answer_from_sample_text_says_so_and_links_its_diagram(client):
    reply = client.post("/api/chat", json={"message": "how long does botox last?"}).json()
    assert reply["kind"] == "answer" and reply["sources"]
    source = reply["sources"][0]
    assert source["id"] == "botulinum-toxin" and source["status"] == "sample"
    assert "/images/botulinum-toxin.svg" in {image["url"] for image in source["images"]}
    assert all(i["alt"] for i in source["images"])


def test_answers_fill_the_contact_placeholders(pipeline):
    reply = pipeline.ask("when should I call the clinic after filler?")
    assert not PLACEHOLDER.search(reply.text), reply.text


def test_production_serves_no_sample_text():
    explainers = load_explainers(KNOWLEDGE)
    assert serving(explainers, production=False) and serving(explainers, production=True) == []


def test_placeholders_follow_the_settings():
    text = "Call {emergency_number}, or {urgent_phone}. Report to {report_side_effect}. {unknown} stays."
    uk = fill_contacts(
        text, Settings(_env_file=None, emergency_number="999", clinic_phone="020 7946 0000", region="UK")
    )  # type: ignore[call-arg]
    assert (
        uk
        == "Call 999, or 020 7946 0000. Report to the MHRA Yellow Card scheme (yellowcard.mhra.gov.uk). {unknown} stays."
    )


def test_a_listed_diagram_is_served_as_an_inert_image(client):
    response = client.get("/images/botulinum-toxin.svg")
    assert response.status_code == 200 and response.headers["content-type"] == "image/svg+xml"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert b"<svg" in response.content


@pytest.mark.parametrize(
    "path",
    [
        "/images/README.md",
        "/images/..%2Fexplainers%2Fprp.md",
        "/images/../triage-table.yaml",
        "/images/%2e%2e/%2e%2e/pyproject.toml",
        "/images/not-listed.svg",
        "/knowledge/explainers/prp.md",
    ],
)
def test_nothing_else_under_knowledge_is_reachable(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert b"Sample content" not in response.content and b"tiers:" not in response.content


def test_the_console_preview_shows_the_diagrams():
    from bot.ui.staff import preview_of

    text = (KNOWLEDGE / "explainers" / "prp.md").read_text(encoding="utf-8")
    assert "](/images/prp.svg)" in preview_of(text)
