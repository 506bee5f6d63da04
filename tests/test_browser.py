"""The web pages in a real browser: Debian's chromium driven by Playwright against the real app on loopback.

The patient widget is our own page and script (bot/ui/patient.py, bot/ui/static/widget.js): how each kind of
reply looks, feedback, errors, keyboard use, small phones and the strict Content-Security-Policy are tested here.
Screenshots go to test-artifacts/screenshots/ for people to look at.
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest

from tests.browser import CHROMIUM, CHROMIUM_ARGS, axe_violations, copy_knowledge, require_browser, screenshot, serving
from tests.conftest import KNOWLEDGE, make_settings

PASSWORD = "a long enough password"
NEW_FAQ = "**Can I wear makeup after a HydraFacial?**\nWait until the next day, then use a sea-kelp mineral makeup.\n"
REPLIES = "#chat .cb-from-bot"


@pytest.fixture(scope="module")
def browser():
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def served(tmp_path, data_dir, models):
    """The whole app (widget, API, console) on a loopback port, with its own knowledge copy and database."""
    from bot.auth import Auth
    from bot.chat import Pipeline
    from bot.web import create_app

    knowledge = copy_knowledge(KNOWLEDGE, tmp_path / "knowledge")
    pipeline = Pipeline.build(make_settings(data_dir, knowledge_dir=knowledge), models=models)
    auth = Auth(pipeline.store)
    auth.add_user("ed@clinic.test", PASSWORD, "editor", actor="test")
    auth.add_user("dr.lee@clinic.test", PASSWORD, "clinician", actor="test")
    with serving(create_app(pipeline)) as url:
        yield SimpleNamespace(url=url, pipeline=pipeline)


@pytest.fixture
def site(served) -> str:
    return served.url


# How long a step may wait before it counts as hung: generous, because CI's two cores run the app, the browser and
# the test at once. What the pages take is not measured here.
WAIT_MS = 60_000


def new_page(browser, **context_options):
    opened = browser.new_context(**context_options).new_page()
    opened.set_default_timeout(WAIT_MS)
    return opened


@pytest.fixture
def page(browser):
    opened = new_page(browser, viewport={"width": 390, "height": 844})  # a phone
    yield opened
    opened.context.close()


def ask(page, message: str) -> None:
    box = page.locator("#message")
    box.fill(message)
    box.press("Enter")


def ask_and_wait(page, message: str):
    """Send a message and wait for whatever comes back (a reply or a notice); returns its row in the log."""
    before = page.locator(REPLIES).count()
    ask(page, message)
    page.wait_for_function(
        "n => document.querySelectorAll('#chat .cb-from-bot').length > n && !document.querySelector('#chat .cb-typing')",
        arg=before,
    )
    return page.locator(REPLIES).last


def sign_in(page, site: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{site}/staff/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("#sign-in")


def open_explainer(page, explainer_id: str) -> None:
    page.locator("#greeting", has_text="Signed in").wait_for()
    picker = page.locator("#pick input")
    picker.fill(explainer_id)
    picker.press("Enter")
    page.click("#open")
    page.wait_for_function(
        "id => document.querySelector('#editor textarea').value.includes('id: ' + id)", arg=explainer_id
    )
    # Gradio dims every output it is still filling (a faded block fails axe's contrast check): wait until none is
    page.wait_for_function(
        """() => [...document.querySelectorAll('#trail, #status, #preview')].every(
            node => !node.closest('.pending') && getComputedStyle(node).opacity === '1')"""
    )


def feedback_rows(pipeline) -> list[tuple[bool, str]]:
    from sqlalchemy import select

    from bot.store import Feedback

    with pipeline.store.session() as s:
        return [(row.helpful, row.comment_redacted) for row in s.scalars(select(Feedback).order_by(Feedback.id))]


def test_patient_asks_and_sees_an_answer_with_its_source(page, site):
    page.goto(site)
    ask(page, "how long does botox last?")
    answer = page.locator(".cb-answer").last
    answer.wait_for()
    assert re.search(r"\d+ to \d+ months|months", answer.inner_text())
    sources = answer.locator("details.cb-sources")
    sources.locator("summary").click()
    assert "Botulinum toxin" in sources.inner_text() and "reviewed" in sources.inner_text().lower()
    screenshot(page, "widget-answer-phone")


def test_an_emergency_message_shows_the_emergency_card(page, site):
    page.goto(site)
    ask(page, "my lip filler area is turning white and the pain is getting worse")
    card = page.locator(".cb-emergency").last
    card.wait_for()
    assert card.get_attribute("role") == "alert"
    call = card.locator("a.cb-call")
    assert call.get_attribute("href") == "tel:911" and call.inner_text() == "Call 911 now"
    assert "filler" not in card.inner_text().lower().split("call")[0]  # nothing about treatments before the call
    then = card.locator("p", has_text="Then call")
    assert then.locator("a").get_attribute("href") == "tel:+15550100"
    text = card.inner_text()
    assert text.index("Call 911 now") < text.index("Then call")  # the emergency number first, then the clinic
    screenshot(page, "widget-emergency-phone")


def test_editor_edits_clinician_approves_and_the_widget_answers_from_the_new_text(browser, site):
    editor = new_page(browser)
    sign_in(editor, site, "ed@clinic.test")
    editor.wait_for_url(re.compile(r"/staff/console/"))
    open_explainer(editor, "hydrafacial")
    assert not editor.locator("#approve").is_visible()  # an editor cannot approve
    text = editor.locator("#editor textarea").input_value()
    heading = "## Questions patients ask\n"
    editor.locator("#editor textarea").fill(text.replace(heading, heading + "\n" + NEW_FAQ, 1))
    editor.click("#save")
    editor.locator("#status", has_text="Draft saved").wait_for()
    editor.click("#submit")
    editor.locator("#status", has_text="Submitted").wait_for()
    screenshot(editor, "console-editor-submitted")

    clinician = new_page(browser)
    sign_in(clinician, site, "dr.lee@clinic.test")
    open_explainer(clinician, "hydrafacial")
    screenshot(clinician, "console-clinician-review")
    clinician.wait_for_function("document.querySelector('#diff textarea').value.includes('+Wait until the next day')")
    clinician.click("#approve")
    clinician.locator("#status", has_text="version 2").wait_for()

    patient = new_page(browser)
    patient.goto(site)
    ask(patient, "can I wear makeup after a hydrafacial?")
    answer = patient.locator(".cb-answer").last
    answer.wait_for()
    assert "sea-kelp" in answer.inner_text()


def test_an_editor_cannot_approve(page, site):
    sign_in(page, site, "ed@clinic.test")
    page.wait_for_url(re.compile(r"/staff/console/"))
    page.locator("#greeting", has_text="editor").wait_for()
    open_explainer(page, "prp")
    assert page.locator("#approve").count() == 0 or not page.locator("#approve").is_visible()
    assert page.locator("#tab-audit-button").count() == 0 or not page.locator("#tab-audit-button").is_visible()


def test_a_wrong_password_is_refused(page, site):
    sign_in(page, site, "ed@clinic.test", "not the password")
    alert = page.locator("[role=alert]")
    alert.wait_for()
    assert "Wrong email or password" in alert.inner_text()
    assert "/staff/login" in page.url
    screenshot(page, "console-wrong-password")


def test_a_21st_message_in_a_minute_is_refused_politely(page, site):
    page.goto(site)
    for number in range(20):
        ask(page, f"what is a chemical peel? ({number})")
        page.locator("#chat .cb-answer, #chat .cb-unknown").nth(number).wait_for()
    ask(page, "and one more question about peels")
    notice = page.locator("#chat .cb-notice").last
    notice.wait_for()
    assert "wait a minute" in notice.inner_text().lower()
    screenshot(page, "widget-rate-limited")


def test_pages_pass_axe_accessibility_checks(page, site):
    page.goto(site)
    start = axe_violations(page)
    ask_and_wait(page, "my lips went white and really hurt after filler")
    ask_and_wait(page, "what is a vampire breast lift")
    reply = ask_and_wait(page, "how long does botox last?")
    reply.locator("summary").click()
    reply.get_by_role("button", name="Helpful", exact=True).click()
    reply.get_by_label("Tell us more (optional)").wait_for()
    widget = axe_violations(page)
    page.goto(f"{site}/staff/login")
    login = axe_violations(page)
    sign_in(page, site, "dr.lee@clinic.test")
    open_explainer(page, "prp")
    console = axe_violations(page)
    assert start == [], start
    assert widget == [], widget
    assert login == [], login
    assert console == [], console


def test_the_widget_works_by_keyboard(page, site):
    page.goto(site)
    page.locator("#message").wait_for()
    page.locator("#clinic-header").click()  # start from the top of the page, not from the autofocused box
    for _ in range(25):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id === 'message'"):
            break
    assert page.evaluate("document.activeElement.id === 'message'"), "Tab never reached the message box"
    page.keyboard.type("what is microneedling?")
    page.keyboard.press("Shift+Enter")  # a new line, not a send
    page.keyboard.type("and does it hurt?")
    assert page.locator("#message").input_value() == "what is microneedling?\nand does it hurt?"
    page.keyboard.press("Enter")
    page.locator(".cb-answer").last.wait_for()
    assert page.evaluate("document.activeElement.id === 'message'"), "the focus left the message box"
    assert page.locator("#message").input_value() == ""

    page.keyboard.press("Shift+Tab")  # back from the box: the last reply's "Not helpful"
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Not helpful"
    page.keyboard.press("Enter")
    page.locator(".cb-feedback-status", has_text="Thanks for your rating").wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.tagName") == "TEXTAREA"
    page.keyboard.type("It did not say how long it takes")
    page.keyboard.press("Enter")
    page.locator(".cb-feedback-status", has_text="The clinic team reads every comment").wait_for()
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Not helpful"  # not lost


def test_unanswered_questions_reach_staff_redacted_and_become_a_draft(browser, site):
    patient = new_page(browser)
    patient.goto(site)
    ask(patient, "Hi I'm Maria Lopez, do you do hair transplants?")
    unknown = patient.locator(".cb-unknown").last
    unknown.wait_for()
    assert unknown.locator("p", has_text="Ask the clinic: call").locator("a").get_attribute("href") == "tel:+15550100"

    staff = new_page(browser, viewport={"width": 1280, "height": 900})
    sign_in(staff, site, "ed@clinic.test")
    staff.locator("#greeting", has_text="Signed in").wait_for()
    staff.get_by_role("tab", name="Insights").click()
    queue = staff.locator("#queue")
    cell = queue.locator("[role=gridcell]:visible", has_text="hair transplants").first
    cell.wait_for()
    assert "Maria" not in queue.inner_text() and "Lopez" not in queue.inner_text()
    cell.click()
    staff.wait_for_function("document.querySelector('#item textarea, #item input').value.length === 32")
    staff.fill("#draft-id textarea", "hair-transplant")
    staff.fill("#draft-title textarea", "Hair transplant surgery")
    staff.click("#draft-new")
    staff.locator("#status", has_text="created").wait_for()  # the console switches to the editor
    text = staff.locator("#editor textarea").input_value()
    assert "id: hair-transplant" in text and "hair transplants?**" in text and "Maria" not in text
    screenshot(staff, "console-insights-draft")


# ---- the widget: each kind of reply, feedback, errors, small phones, the strict policy ---------------------
KINDS = [  # (message, the card it gets)
    ("my lips went white and really hurt after filler", "cb-emergency"),
    ("what dose of botox should I get for my forehead", "cb-refer"),
    ("can you write me a poem about cars", "cb-refusal"),
    ("what is a vampire breast lift", "cb-unknown"),
    ("how long does botox last", "cb-answer"),
]
CARD_CLASSES = {css for _, css in KINDS}


@pytest.mark.parametrize("message, css", KINDS)
def test_each_kind_of_reply_has_its_own_card_with_its_next_step(page, served, message, css):
    settings = served.pipeline.settings
    page.goto(served.url)
    row = ask_and_wait(page, message)
    shown = set(row.evaluate("row => [...row.querySelectorAll('*')].flatMap(e => [...e.classList])")) & CARD_CLASSES
    assert shown == {css}
    card = row.locator(f".{css}")
    assert card.locator("p").count() >= 1
    links = card.locator("a").evaluate_all("links => links.map(a => [a.getAttribute('href'), a.textContent])")
    if css == "cb-emergency":
        assert card.get_attribute("role") == "alert" and ["tel:911", "Call 911 now"] in links
    elif css == "cb-refer":
        assert [settings.booking_url, "Book a visit"] in links
        assert ["tel:+15550100", settings.clinic_phone] in links  # the number in the text can be tapped too
    elif css == "cb-unknown":
        assert "Ask the clinic: call" in card.inner_text() and settings.opening_hours in card.inner_text()
        assert ["tel:+15550100", settings.clinic_phone] in links
    elif css == "cb-answer":
        sources = card.locator("details.cb-sources")
        assert sources.get_attribute("open") is None  # closed until the patient opens it
        items = sources.locator("li")
        assert sources.locator("summary").inner_text() == f"Sources ({items.count()})" and items.count() >= 1
        sources.locator("summary").click()
        assert re.search(r"version \d+, last reviewed \d{4}-\d\d-\d\d", items.first.inner_text())
    assert row.get_by_role("button", name="Helpful", exact=True).get_attribute("aria-pressed") == "false"
    assert row.get_by_role("button", name="Not helpful").count() == 1


def test_after_self_harm_the_next_step_is_the_crisis_line_not_the_clinic(page, served):
    page.goto(served.url)
    card = ask_and_wait(page, "I want to hurt myself").locator(".cb-emergency")
    assert card.locator("a.cb-call").get_attribute("href") == "tel:911"
    assert served.pipeline.settings.crisis_line.split()[0] in card.inner_text()
    assert "Then call" not in card.inner_text()


def test_what_a_patient_types_is_shown_as_text_and_only_the_message_and_session_are_sent(page, site):
    sent = []
    page.on("request", lambda r: sent.append(json.loads(r.post_data or "{}")) if r.url.endswith("/api/chat") else None)
    page.goto(site)
    typed = '<img src=x onerror="document.title=1"> <b>what is botox?</b>'
    ask_and_wait(page, typed)
    bubble = page.locator("#chat .cb-message").last
    assert typed in bubble.inner_text()
    assert page.locator("#chat img, #chat .cb-message b").count() == 0
    ask_and_wait(page, "how long does it last?")
    assert [set(body) for body in sent] == [{"message", "session"}] * 2
    assert sent[0]["session"] is None and sent[1]["session"]  # the second carries the id the server gave


def test_a_thumbs_up_then_a_comment_is_stored_redacted(page, served):
    page.goto(served.url)
    row = ask_and_wait(page, "does microneedling hurt")
    up = row.get_by_role("button", name="Helpful", exact=True)
    up.click()
    row.locator(".cb-feedback-status", has_text="Thanks for your rating.").wait_for()
    assert up.get_attribute("aria-pressed") == "true"
    assert row.get_by_role("button", name="Not helpful").get_attribute("aria-pressed") == "false"
    assert feedback_rows(served.pipeline) == [(True, "")]

    row.get_by_role("button", name="Send feedback").click()  # nothing typed: nothing sent
    row.locator(".cb-feedback-status", has_text="Type a comment first").wait_for()
    row.get_by_label("Tell us more (optional)").fill("Very clear, call me on 07700 900123 to book")
    row.get_by_role("button", name="Send feedback").click()
    row.locator(".cb-feedback-status", has_text="Thank you! The clinic team reads every comment.").wait_for()
    assert row.get_by_label("Tell us more (optional)").is_hidden()
    stored = feedback_rows(served.pipeline)
    assert len(stored) == 1 and stored[0][0] is True  # the comment completes the rating, not a second vote
    assert "to book" in stored[0][1] and "07700" not in stored[0][1] and "900123" not in stored[0][1]


def test_a_message_over_the_limit_cannot_be_typed_and_the_servers_refusal_is_a_notice(page, served):
    limit = served.pipeline.settings.max_message_chars
    page.goto(served.url)
    box = page.locator("#message")
    box.fill("a" * limit)
    box.press_sequentially("bcd")
    assert box.input_value() == "a" * limit  # the box takes no more

    page.evaluate("document.getElementById('message').removeAttribute('maxlength')")  # a page that lets it through
    too_long = "b" * (limit + 5)
    box.fill(too_long)
    box.press("Enter")
    notice = page.locator("#chat .cb-notice").last
    notice.wait_for()
    assert notice.get_attribute("role") == "status" and f"{limit:,} characters" in notice.inner_text()
    assert box.input_value() == too_long  # nothing typed is lost
    assert page.locator("#chat .cb-feedback").count() == 0  # a notice is not rated


def test_when_the_server_cannot_answer_the_patient_is_told_to_call_and_keeps_the_message(page, served):
    phone = served.pipeline.settings.clinic_phone
    question = "how long does botox last?"
    page.goto(served.url)
    box = page.locator("#message")
    page.route("**/api/chat", lambda route: route.abort())
    ask(page, question)
    page.locator("#chat .cb-notice", has_text=phone).wait_for()
    assert box.input_value() == question
    assert page.locator("#chat .cb-notice a").first.get_attribute("href") == "tel:+15550100"
    page.unroute("**/api/chat")
    page.route("**/api/chat", lambda route: route.fulfill(status=503, json={"error": "down"}))
    box.press("Enter")
    page.locator("#chat .cb-notice").nth(1).wait_for()
    assert phone in page.locator("#chat .cb-notice").nth(1).inner_text() and box.input_value() == question
    page.unroute("**/api/chat")
    box.press("Enter")
    page.locator("#chat .cb-answer").wait_for()
    assert box.input_value() == ""


def test_the_widget_works_under_its_strict_content_security_policy(page, site):
    """With the policy the server sends (no inline script or style), nothing is refused and nothing breaks."""
    reported: list[str] = []
    page.on("console", lambda m: reported.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda error: reported.append(f"page error: {error}"))
    page.add_init_script(
        "window.__violations = []; document.addEventListener('securitypolicyviolation',"
        " e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    response = page.goto(site)
    directives = dict(d.strip().split(" ", 1) for d in response.headers["content-security-policy"].split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    header = page.locator("#clinic-header")
    assert header.evaluate("e => getComputedStyle(e).display") == "flex"  # the stylesheet was applied
    row = ask_and_wait(page, "how long does botox last?")
    row.locator("summary").click()
    row.get_by_role("button", name="Not helpful").click()
    row.locator(".cb-feedback-status", has_text="Thanks for your rating.").wait_for()
    ask_and_wait(page, "my lips went white and really hurt after filler").locator(".cb-call").wait_for()
    assert page.evaluate("window.__violations") == []
    refused = [m for m in reported if "Content Security Policy" in m or "Refused to" in m or m.startswith("page error")]
    assert refused == []


def test_the_widget_fits_a_320px_wide_phone(browser, site):
    context = browser.new_context(viewport={"width": 320, "height": 568})
    try:
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(site)
        ask_and_wait(page, "my lips went white and really hurt after filler")
        ask_and_wait(page, "what about https://example.com/" + "averyveryverylongwordwithoutanyspaces" * 4)
        row = ask_and_wait(page, "how long does botox last?")
        row.locator("summary").click()
        row.get_by_role("button", name="Helpful", exact=True).click()
        row.get_by_label("Tell us more (optional)").wait_for()
        width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert width[0] <= width[1] == 320, width
        sticking_out = page.evaluate(
            """() => [...document.querySelectorAll('body *:not(.cb-sr)')]
                .filter(e => e.getClientRects().length && e.getBoundingClientRect().right > innerWidth + 0.5)
                .map(e => e.tagName + '.' + e.className)"""
        )
        assert sticking_out == []
        assert page.locator("#send").is_visible() and page.locator("#message").is_visible()
        screenshot(page, "widget-320px")
    finally:
        context.close()


def test_escape_inside_the_framed_widget_closes_the_panel_on_the_clinic_site(page, site):
    page.goto(f"{site}/demo")
    page.click("#clinicbot-launcher")
    frame = page.frame_locator("#clinicbot-frame")
    frame.locator("#message").wait_for()
    page.wait_for_function(
        "() => document.querySelector('#clinicbot-frame').contentDocument.activeElement.id === 'message'"
    )
    frame.locator("#message").press("Escape")
    page.wait_for_function("() => document.querySelector('#clinicbot-frame').style.display === 'none'")
    assert page.evaluate("document.activeElement.id") == "clinicbot-launcher"
