"""The patient widget without a browser: replies as HTML cards, the comment after a rating, the embed and its demo."""

from __future__ import annotations

import html
import json
import shutil
import subprocess
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_settings

VOID = {"br", "img", "hr", "input", "meta", "link"}


class Tree(HTMLParser):
    """Every element of an HTML fragment with its attributes and the (unescaped) text inside it, in order."""

    def __init__(self, fragment: str):
        super().__init__()
        self.elements: list[dict] = []
        self._open: list[dict] = []
        self.feed(fragment)

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elements.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_endtag(self, tag):
        while self._open and self._open.pop()["tag"] != tag:
            pass

    def handle_data(self, data):
        for element in self._open:
            element["text"] += data

    def find(self, tag: str, css_class: str = "") -> list[dict]:
        return [
            e
            for e in self.elements
            if e["tag"] == tag and (not css_class or css_class in e["attrs"].get("class", "").split())
        ]

    def links(self) -> list[tuple[str, str]]:
        return [(e["attrs"].get("href", ""), e["text"]) for e in self.find("a")]


def handler(app, name: str):
    """The Python function behind one of the widget's events, to call as Gradio would."""
    return next(fn.fn for fn in app.fns.values() if fn.name == name)


def opening(settings) -> list[dict]:
    """The chat as a patient first sees it: the greeting alone."""
    from bot.ui.patient import greeting

    return [{"role": "assistant", "content": greeting(settings)}]


def visitor(host: str = "203.0.113.7"):
    return SimpleNamespace(client=SimpleNamespace(host=host))


def feedback_rows(pipeline, reply_id: str) -> list[tuple[bool, str]]:
    from sqlalchemy import select

    from bot.store import Feedback

    with pipeline.store.session() as s:
        rows = s.scalars(select(Feedback).where(Feedback.reply_id == reply_id).order_by(Feedback.id))
        return [(row.helpful, row.comment_redacted) for row in rows]


# ---- replies as HTML ----------------------------------------------------------------------------
KINDS = [
    ("my lips went white and really hurt after filler", "emergency", "cb-emergency"),
    ("what dose of botox should I get for my forehead", "refer", "cb-refer"),
    ("can you write me a poem about cars", "out_of_scope", "cb-refusal"),
    ("what is a vampire breast lift", "unknown", "cb-unknown"),
    ("how long does botox last", "answer", "cb-answer"),
]

KINDS_ONLY = ("emergency", "refer", "unknown", "out_of_scope")


@pytest.mark.parametrize("question, kind, css_class", KINDS)
def test_each_kind_of_reply_has_its_own_card(pipeline, question, kind, css_class):
    from bot.ui.patient import render

    reply = pipeline.ask(question)
    assert reply.kind == kind
    shown = render(reply, pipeline)
    tree = Tree(shown)
    assert css_class in tree.elements[0]["attrs"]["class"].split()
    classes = {c for e in tree.elements for c in e["attrs"].get("class", "").split()}
    assert classes & {c for _, _, c in KINDS} == {css_class}
    assert "\n" not in shown  # a blank line would end the HTML block in the Chatbot's Markdown pass


def test_an_emergency_is_an_alert_with_the_emergency_number_first_then_the_clinic(pipeline):
    from bot.ui.patient import render, tel

    assert tel("+1 (555) 010-0199") == "tel:+15550100199"
    reply = pipeline.ask("my lips went white and really hurt after filler")
    tree = Tree(render(reply, pipeline))
    card = tree.find("div", "cb-emergency")[0]
    assert card["attrs"]["role"] == "alert"
    assert "filler" not in card["text"].lower().split("call")[0]  # nothing about treatments before the call
    links = tree.links()
    call = links.index(("tel:911", "Call 911 now"))
    assert ("tel:+15550100", "+1 555 0100") in links[call + 1 :]
    assert tree.find("a", "cb-call")[0]["attrs"]["href"] == "tel:911"


def test_the_cards_use_the_clinics_own_details_escaped(tmp_path):
    from bot.replies import reply_text
    from bot.schemas import Reply
    from bot.ui.patient import render

    s = make_settings(
        tmp_path,
        clinic_name="Harley & Co <Skin>",
        clinic_phone="+44 (20) 7946 0000",
        emergency_number="999",
        booking_url="https://book.example/visit?a=1&b=2",
        opening_hours="Mon–Sat, 9 to 5",
    )
    shown = {
        kind: render(Reply(kind=kind, text=reply_text(kind, s)), SimpleNamespace(settings=s)) for kind in KINDS_ONLY
    }
    emergency = Tree(shown["emergency"])
    assert ("tel:999", "Call 999 now") in emergency.links()
    assert ("tel:+442079460000", "+44 (20) 7946 0000") in emergency.links()
    assert "Harley &amp; Co &lt;Skin&gt;" in shown["emergency"] and "<Skin>" not in shown["emergency"]
    assert ("https://book.example/visit?a=1&b=2", "Book a visit") in Tree(shown["refer"]).links()
    unknown = Tree(shown["unknown"])
    assert ("tel:+442079460000", "+44 (20) 7946 0000") in unknown.links()
    assert "Mon–Sat, 9 to 5" in unknown.elements[0]["text"]


def test_answers_escape_their_text_and_list_sources_under_details(pipeline):
    from bot.schemas import Reply, Source
    from bot.ui.patient import render

    reply = Reply(
        kind="answer",
        text='Peels <script>alert("x")</script> & more.\n\nSecond paragraph.',
        sources=[
            Source("chemical-peels", "<b>Chemical peels</b>", "Aftercare & sun", 3, "2025-01-02"),
            Source("skincare-basics", "Skincare basics", "Sunscreen", 1, "2024-05-06"),
        ],
    )
    shown = render(reply, pipeline)
    assert "<script>" not in shown and "<b>" not in shown
    tree = Tree(shown)
    assert [p["text"] for p in tree.find("p")] == ['Peels <script>alert("x")</script> & more.', "Second paragraph."]
    details = tree.find("details", "cb-sources")
    assert len(details) == 1 and "open" not in details[0]["attrs"]
    assert tree.find("summary")[0]["text"] == "Sources (2)"
    items = [li["text"] for li in tree.find("li")]
    assert "<b>Chemical peels</b> — Aftercare & sun" in items[0]
    assert "version 3" in items[0] and "last reviewed 2025-01-02" in items[0]
    assert "last reviewed 2024-05-06" in items[1]


def test_a_real_answer_cites_each_source_with_its_review_date(pipeline):
    from bot.ui.patient import render

    reply = pipeline.ask("how long does botox last")
    tree = Tree(render(reply, pipeline))
    assert tree.find("summary")[0]["text"] == f"Sources ({len(reply.sources)})"
    for source, item in zip(reply.sources, tree.find("li"), strict=True):
        assert source.title in item["text"] and f"last reviewed {source.reviewed_on}" in item["text"]


def test_the_greeting_says_not_advice_not_for_emergencies_with_both_numbers_to_tap(settings):
    from bot.ui.patient import greeting

    tree = Tree(greeting(settings))
    text = tree.elements[0]["text"]
    assert "not medical advice" in text and "not for emergencies" in text
    assert ("tel:911", "911") in tree.links() and ("tel:+15550100", "+1 555 0100") in tree.links()


# ---- colours ------------------------------------------------------------------------------------
def test_card_text_meets_wcag_aa_contrast():
    from bot.ui.patient import CALL_BUTTON, CARDS, contrast

    assert contrast("#ffffff", "#000000") == pytest.approx(21)
    assert contrast("#777777", "#777777") == pytest.approx(1)
    for name, (text, background, _) in CARDS.items():
        assert contrast(text, background) >= 4.5, name
    assert contrast(*CALL_BUTTON) >= 4.5


@pytest.mark.parametrize("color", ["#1f5f8b", "#ffffff", "#000000", "#777777", "#f4c2c2", "#ffcc00", "#c0392b", "#abc"])
def test_any_brand_colour_gets_a_readable_text_colour(tmp_path, color):
    from bot.ui.patient import brand, contrast

    background, text = brand(make_settings(tmp_path, brand_color=color))
    assert contrast(background, text) >= 4.5


def test_a_brand_colour_that_is_not_a_colour_cannot_inject_css(tmp_path):
    from bot.ui.patient import DEFAULT_BRAND, css

    sheet = css(make_settings(tmp_path, brand_color="red; } body { display: none"))
    assert "display: none" not in sheet and DEFAULT_BRAND in sheet
    assert "#aa3366" in css(make_settings(tmp_path, brand_color="#AA3366"))


# ---- the widget's behaviour ---------------------------------------------------------------------
def test_rate_limit_and_too_long_messages_show_as_notices(pipeline):
    from bot.ratelimit import RateLimiter
    from bot.ui.patient import create_app

    respond = handler(create_app(pipeline, RateLimiter(2)), "respond")
    too_long = "x" * (pipeline.settings.max_message_chars + 1)
    _, history, _, replies = respond(too_long, opening(pipeline.settings), None, {}, visitor())
    notice = Tree(history[-1]["content"]).find("div", "cb-notice")[0]
    assert notice["attrs"]["role"] == "status" and "characters" in notice["text"]
    _, history, session, replies = respond("what is ipl", history, None, replies, visitor())
    assert "cb-answer" in history[4]["content"] and list(replies) == [4]
    _, history, _, replies = respond("and microneedling?", history, session, replies, visitor())
    assert "wait a minute" in Tree(history[-1]["content"]).find("div", "cb-notice")[0]["text"]
    assert list(replies) == [4]  # notices are not rated


def test_a_rating_opens_the_comment_box_and_the_comment_is_stored_redacted(pipeline, captured_logs):
    import gradio as gr

    from bot.ratelimit import RateLimiter
    from bot.ui.patient import create_app

    app = create_app(pipeline, RateLimiter(20))
    respond = handler(app, "respond")
    _, history, _, replies = respond("does microneedling hurt", opening(pipeline.settings), None, {}, visitor())
    reply_id = replies[2]
    like = gr.LikeData(None, {"index": 2, "value": history[2]["content"], "liked": False})
    rated, form, status = handler(app, "rate")(replies, like)
    assert form["visible"] is True and "Thanks" in status
    assert feedback_rows(pipeline, reply_id) == [(False, "")]

    comment = "My name is Jane Doe and this did not answer my question"
    box, form, status = handler(app, "send_feedback")(comment, rated)
    assert box == "" and form["visible"] is False and "Thank you" in status
    stored = feedback_rows(pipeline, reply_id)
    assert len(stored) == 1 and stored[0][0] is False  # the comment completes the rating, not a second vote
    assert "did not answer my question" in stored[0][1] and "Jane Doe" not in stored[0][1]
    assert "Jane" not in captured_logs.text and "did not answer" not in captured_logs.text


def test_taking_a_rating_back_or_rating_the_greeting_stores_nothing(pipeline):
    import gradio as gr

    from bot.ratelimit import RateLimiter
    from bot.ui.patient import create_app

    app = create_app(pipeline, RateLimiter(20))
    respond = handler(app, "respond")
    _, history, _, replies = respond("what is a hydrafacial", opening(pipeline.settings), None, {}, visitor())
    rate = handler(app, "rate")
    rated, form, _ = rate(replies, gr.LikeData(None, {"index": 2, "value": "", "liked": ""}))
    assert rated is None and form["visible"] is False
    rate(replies, gr.LikeData(None, {"index": 0, "value": "", "liked": True}))
    assert feedback_rows(pipeline, replies[2]) == []


def test_an_empty_or_unrated_comment_is_not_sent(pipeline):
    from bot.ratelimit import RateLimiter
    from bot.ui.patient import create_app

    send = handler(create_app(pipeline, RateLimiter(20)), "send_feedback")
    reply = pipeline.ask("what is ipl")
    _, _, status = send("   ", {"reply_id": reply.reply_id, "helpful": True})
    assert "Type a comment" in status
    assert feedback_rows(pipeline, reply.reply_id) == []


# ---- served: the widget's config, the embed script, the demo page ---------------------------------
@pytest.fixture
def client(pipeline):
    from bot.web import create_app

    pipeline.settings.clinic_name = "Harley & Co"
    pipeline.settings.brand_color = "#aa3366"
    pipeline.settings.site_origins = ["https://harley.example"]
    with TestClient(create_app(pipeline)) as client:
        yield client


def test_the_widget_config_carries_the_clinic_and_its_css(client):
    config = client.get("/config").json()
    assert config["title"].startswith("Harley & Co")
    assert "#aa3366" in config["css"] and "clinicbot:close" in config["head"]
    assert any("<h1>Harley &amp; Co</h1>" in str(c["props"].get("value")) for c in config["components"])
    by_id = {c["props"].get("elem_id"): c["props"] for c in config["components"]}
    assert "cb-welcome" in json.dumps(by_id["chat"]["value"])
    assert by_id["feedback-form"]["visible"] is False
    assert {"message", "send", "feedback-comment", "feedback-send", "feedback-status"} <= set(by_id)


def test_the_widget_may_be_framed_by_its_own_origin_and_the_clinic_site(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-security-policy"].endswith("; frame-ancestors 'self' https://harley.example")
    assert "x-frame-options" not in response.headers


def test_embed_js_is_javascript_that_finds_the_widget_from_its_own_src(client):
    response = client.get("/embed.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    script = response.text
    assert "document.currentScript" in script and "new URL(script.src).origin" in script
    assert json.dumps("Harley & Co") in script and "#aa3366" in script


def test_the_demo_page_carries_the_one_line_snippet(client):
    response = client.get("/demo")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert '<script src="/embed.js" async></script>' in response.text
    assert html.escape('<script src="http://testserver/embed.js" async></script>') in response.text
    assert "<strong>Harley &amp; Co</strong>" in response.text


NODE_HARNESS = r"""
const fs = require("fs");
const [scriptPath, src] = process.argv.slice(1);
const listeners = {};
function element(tag) {
  return {tagName: tag, style: {}, attrs: {}, handlers: {}, textContent: "", contentWindow: tag === "iframe" ? {} : undefined,
    setAttribute(k, v) { this.attrs[k] = String(v); }, getAttribute(k) { return k in this.attrs ? this.attrs[k] : null; },
    addEventListener(t, f) { this.handlers[t] = f; }, focus() { document.activeElement = this; },
    click() { this.handlers.click(); }};
}
const body = {children: [], appendChild(c) { this.children.push(c); }};
global.window = {addEventListener(t, f) { listeners["window:" + t] = f; }};
global.document = {currentScript: {src}, body, activeElement: null, createElement: element,
  addEventListener(t, f) { listeners["document:" + t] = f; }};
eval(fs.readFileSync(scriptPath, "utf8"));
const [button] = body.children;
const seen = {closed: [button.textContent, button.getAttribute("aria-expanded"), button.getAttribute("aria-label")]};
button.click();
const frame = body.children[1];
seen.open = [frame.src, frame.title, frame.style.width, frame.style.display, button.getAttribute("aria-expanded")];
listeners["document:keydown"]({key: "Escape"});
seen.escape = [frame.style.display, button.getAttribute("aria-expanded"), document.activeElement === button];
button.click();
listeners["window:message"]({origin: "https://evil.example", source: frame.contentWindow, data: "clinicbot:close"});
seen.foreign = frame.style.display;
listeners["window:message"]({origin: new URL(src).origin, source: frame.contentWindow, data: "clinicbot:close"});
seen.own = frame.style.display;
console.log(JSON.stringify(seen));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_embed_js_opens_the_widget_from_the_scripts_origin_and_closes_on_escape(tmp_path, settings):
    from bot.ui.embed import embed_script

    script = tmp_path / "embed.js"
    script.write_text(embed_script(settings), encoding="utf-8")
    src = "https://bot.clinic.example:8443/embed.js?v=2"
    run = subprocess.run(["node", "-e", NODE_HARNESS, str(script), src], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert seen["closed"] == ["Ask us", "false", "Ask Example Aesthetics Clinic about treatments"]
    url, title, width, display, expanded = seen["open"]
    assert url == "https://bot.clinic.example:8443/" and title == "Chat with Example Aesthetics Clinic"
    assert "100vw" in width and display == "block" and expanded == "true"
    assert seen["escape"] == ["none", "false", True]  # closed, announced, focus back on the button
    assert seen["foreign"] == "block" and seen["own"] == "none"  # only the widget's own frame can close it
