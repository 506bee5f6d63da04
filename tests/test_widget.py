"""The patient widget without a browser: the page and its config, its script and stylesheet, the embed and its demo.

What the script draws for each kind of reply is tested in a real browser (tests/test_browser.py).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import threading
import time
from html.parser import HTMLParser

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

    def by_id(self, element_id: str) -> dict:
        (found,) = [e for e in self.elements if e["attrs"].get("id") == element_id]
        return found

    def links(self) -> list[tuple[str, str]]:
        return [(e["attrs"].get("href", ""), e["text"]) for e in self.find("a")]


def policy(header: str) -> dict[str, list[str]]:
    """A Content-Security-Policy header as {directive: [sources]}."""
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: sources for name, *sources in directives}


HOSTILE = {  # clinic settings a careless (or hostile) edit could set: none may become markup or end a block
    "clinic_name": 'Harley & Co </script><script>alert("name")</script>',
    "clinic_phone": "+44 (20) 7946 0000",
    "emergency_number": "999",
    "booking_url": "https://book.example/visit?a=1&b=<2>",
    "opening_hours": "Mon–Sat, 9 to 5 <b>closed Sundays</b>",
    "logo_url": 'https://cdn.example/logo.png" onerror="alert(1)',
}


@pytest.fixture
def client(pipeline):
    from bot.web import create_app

    pipeline.settings.clinic_name = "Harley & Co"
    pipeline.settings.brand_color = "#aa3366"
    pipeline.settings.site_origins = ["https://harley.example"]
    with TestClient(create_app(pipeline)) as client:
        yield client


@pytest.fixture
def hostile_client(pipeline):
    from bot.web import create_app

    for key, value in HOSTILE.items():
        setattr(pipeline.settings, key, value)
    with TestClient(create_app(pipeline)) as client:
        yield client


# ---- the page --------------------------------------------------------------------------------------
def test_the_page_is_english_and_shows_the_clinics_details_as_text_only(hostile_client):
    response = hostile_client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    tree = Tree(response.text)
    assert tree.find("html")[0]["attrs"]["lang"] == "en"
    assert tree.by_id("clinic-header")["tag"] == "header" and tree.find("h1")[0]["text"] == HOSTILE["clinic_name"]
    assert tree.find("title")[0]["text"].startswith(HOSTILE["clinic_name"])
    (logo,) = tree.find("img")
    assert logo["attrs"]["src"] == HOSTILE["logo_url"] and "onerror" not in logo["attrs"]
    assert not tree.find("b"), "a clinic value became markup"
    scripts = tree.find("script")
    assert [s["attrs"].get("id") for s in scripts if "src" not in s["attrs"]] == ["clinicbot-config"]
    assert 'alert("name")' not in "".join(s["text"] for s in scripts if s["attrs"].get("id") != "clinicbot-config")


def test_the_config_block_gives_the_script_the_clinics_values_and_cannot_be_ended_early(hostile_client, pipeline):
    page = hostile_client.get("/").text
    block = re.search(r'<script type="application/json" id="clinicbot-config">(.*?)</script>', page, re.S)
    assert block is not None
    assert "<" not in block.group(1)  # so no value can close the block or open a comment in it
    config = json.loads(block.group(1))
    s = pipeline.settings
    assert config["clinicName"] == s.clinic_name and config["clinicPhone"] == s.clinic_phone
    assert config["emergencyNumber"] == s.emergency_number and config["bookingUrl"] == s.booking_url
    assert config["openingHours"] == s.opening_hours and config["maxMessageChars"] == s.max_message_chars
    assert config["crisisRule"] == "emergency.self_harm"


def test_the_page_has_no_inline_code_or_style_for_a_strict_policy_to_block(client):
    tree = Tree(client.get("/").text)
    for script in tree.find("script"):
        src = script["attrs"].get("src")
        if src is None:
            assert script["attrs"].get("type") == "application/json", script
        else:
            assert src.startswith("/") and not src.startswith("//"), src  # our own origin
            assert not script["text"].strip()
    assert not tree.find("style")
    for element in tree.elements:
        assert "style" not in element["attrs"], element
        assert not [name for name in element["attrs"] if name.startswith("on")], element
    stylesheets = [e["attrs"]["href"] for e in tree.find("link") if e["attrs"].get("rel") == "stylesheet"]
    assert stylesheets == ["/widget.css"]


def test_the_page_has_a_labelled_limited_message_box_a_live_log_and_the_greeting(client, pipeline):
    tree = Tree(client.get("/").text)
    box = tree.by_id("message")
    assert box["tag"] == "textarea" and box["attrs"]["maxlength"] == str(pipeline.settings.max_message_chars)
    assert [label["text"] for label in tree.find("label") if label["attrs"].get("for") == "message"]
    assert tree.by_id("send")["tag"] == "button"
    log = tree.by_id("chat")
    assert log["attrs"]["aria-live"] == "polite" and log["attrs"].get("aria-label")
    assert "not medical advice" in tree.find("div", "cb-welcome")[0]["text"]
    assert ("tel:+15550100", "+1 555 0100") in tree.links()  # "Call us" in the header
    assert "not medical advice" in tree.by_id("widget-notice")["text"]


def test_the_greeting_says_not_advice_not_for_emergencies_with_both_numbers_to_tap(settings):
    from bot.ui.patient import greeting

    tree = Tree(greeting(settings))
    text = tree.elements[0]["text"]
    assert "not medical advice" in text and "not for emergencies" in text
    assert ("tel:911", "911") in tree.links() and ("tel:+15550100", "+1 555 0100") in tree.links()


def test_tel_links_keep_digits_and_a_leading_plus_only():
    from bot.ui.patient import tel

    assert tel("+1 (555) 010-0199") == "tel:+15550100199"
    assert tel("0800 123 456 (free)") == "tel:0800123456"
    assert tel("+44+20 7946") == "tel:+44207946"


# ---- the script and the stylesheet --------------------------------------------------------------------
def test_the_script_and_stylesheet_are_served_as_javascript_and_css_with_a_short_cache(client):
    for path, kind in (("/widget.js", "text/javascript"), ("/widget.css", "text/css")):
        response = client.get(path)
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind), path
        cache = response.headers["cache-control"]
        age = re.search(r"max-age=(\d+)", cache)
        assert "no-cache" in cache or (age is not None and int(age.group(1)) <= 3600), cache
    assert client.get("/").headers["cache-control"] == "no-cache"  # the page carries the clinic's settings


def test_the_script_never_parses_text_as_html_or_code(client):
    script = client.get("/widget.js").text
    assert script.lstrip().startswith("/*") and '"use strict";' in script
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        'setAttribute("style"',
    ):
        assert sink not in script, sink
    for endpoint in ('"/api/chat"', '"/api/feedback"'):
        assert endpoint in script
    assert "history" not in script  # the server keeps the conversation
    assert "localStorage" not in script and "sessionStorage" not in script and "document.cookie" not in script


def test_the_stylesheet_puts_the_brand_colour_on_the_header_and_buttons(client, pipeline):
    from bot.ui.patient import brand

    sheet = client.get("/widget.css").text
    color, on_color = brand(pipeline.settings)
    assert color == "#aa3366"
    for selector in ("#clinic-header", "#send"):
        rule = re.search(re.escape(selector) + r"[^{]*\{([^}]*)\}", sheet)
        assert rule is not None, selector
        assert f"background: {color}" in rule.group(1) and f"color: {on_color}" in rule.group(1), selector


# ---- what is not there any more, and what must keep working ---------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/config",
        "/info",
        "/upload",
        "/gradio_api/info",
        "/gradio_api/config",
        "/gradio_api/upload",
        "/gradio_api/queue/join",
        "/gradio_api/call/respond",
        "/gradio_api/run/respond",
        "/file=/etc/passwd",
        "/gradio_api/file=/etc/passwd",
        "/theme.css",
    ],
)
def test_no_gradio_route_is_left_under_the_root(client, path):
    for method in ("GET", "POST"):
        response = client.request(method, path, json={"data": [], "fn_index": 0})
        assert response.status_code in (404, 405), (method, path, response.status_code)
        assert "root:" not in response.text


def test_the_page_is_served_under_a_policy_that_allows_only_our_own_scripts_and_styles(client):
    directives = policy(client.get("/").headers["content-security-policy"])
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]


def test_the_widget_may_be_framed_by_its_own_origin_and_the_clinic_site(client):
    response = client.get("/")
    assert response.status_code == 200
    assert set(policy(response.headers["content-security-policy"])["frame-ancestors"]) == {
        "'self'",
        "https://harley.example",
    }
    assert "x-frame-options" not in response.headers


def test_the_widget_loads_while_the_database_is_locked(client, pipeline):
    """The page, script and stylesheet touch nothing: a database that hangs must not stop them loading."""
    from sqlalchemy import text

    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with pipeline.store.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN EXCLUSIVE")
            else:
                conn.execute(text("LOCK TABLE exchanges IN ACCESS EXCLUSIVE MODE"))
            locked.set()
            release.wait(30)
            conn.rollback()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    try:
        assert locked.wait(10)
        start = time.monotonic()
        for path in ("/", "/widget.js", "/widget.css"):
            assert client.get(path).status_code == 200, path
        assert time.monotonic() - start < 5
    finally:
        release.set()
        holder.join(10)


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

    sheet = css(make_settings(tmp_path, brand_color="red; } body { visibility: hidden"))
    assert "visibility" not in sheet and DEFAULT_BRAND in sheet
    assert "#aa3366" in css(make_settings(tmp_path, brand_color="#AA3366"))


# ---- the embed script and the demo page -----------------------------------------------------------
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
