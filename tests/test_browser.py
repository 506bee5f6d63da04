"""The web pages in a real browser: Debian's chromium driven by Playwright against the real app on loopback.

Screenshots go to test-artifacts/screenshots/ for people to look at.
"""

from __future__ import annotations

import re

import pytest

from tests.browser import CHROMIUM, CHROMIUM_ARGS, axe_violations, copy_knowledge, require_browser, screenshot, serving
from tests.conftest import KNOWLEDGE, make_settings

PASSWORD = "a long enough password"
NEW_FAQ = "**Can I wear makeup after a HydraFacial?**\nWait until the next day, then use a sea-kelp mineral makeup.\n"


@pytest.fixture(scope="module")
def browser():
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def site(tmp_path, data_dir, models):
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
        yield url


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    yield opened
    context.close()


def ask(page, message: str) -> None:
    box = page.locator("#message textarea")
    box.fill(message)
    box.press("Enter")


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
    assert card.locator("a[href='tel:911']").count() >= 1
    assert "filler" not in card.inner_text().lower().split("call")[0]  # nothing about treatments before the call
    screenshot(page, "widget-emergency-phone")


def test_editor_edits_clinician_approves_and_the_widget_answers_from_the_new_text(browser, site):
    editor = browser.new_context().new_page()
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

    clinician = browser.new_context().new_page()
    sign_in(clinician, site, "dr.lee@clinic.test")
    open_explainer(clinician, "hydrafacial")
    screenshot(clinician, "console-clinician-review")
    clinician.wait_for_function("document.querySelector('#diff textarea').value.includes('+Wait until the next day')")
    clinician.click("#approve")
    clinician.locator("#status", has_text="version 2").wait_for()

    patient = browser.new_context().new_page()
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
    ask(page, "how long does botox last?")
    page.locator(".cb-answer").last.wait_for()
    widget = axe_violations(page)
    page.goto(f"{site}/staff/login")
    login = axe_violations(page)
    sign_in(page, site, "dr.lee@clinic.test")
    open_explainer(page, "prp")
    console = axe_violations(page)
    assert widget == [], widget
    assert login == [], login
    assert console == [], console


def test_the_widget_works_by_keyboard(page, site):
    page.goto(site)
    page.locator("#message textarea").wait_for()
    page.locator("#clinic-header").click()  # start from the top of the page, not from the autofocused box
    for _ in range(25):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('#message') !== null"):
            break
    assert page.evaluate("document.activeElement.closest('#message') !== null"), "Tab never reached the message box"
    page.keyboard.type("what is microneedling?")
    page.keyboard.press("Enter")
    page.locator(".cb-answer").last.wait_for()


def test_unanswered_questions_reach_staff_redacted_and_become_a_draft(browser, site):
    patient = browser.new_context().new_page()
    patient.goto(site)
    ask(patient, "Hi I'm Maria Lopez, do you do hair transplants?")
    patient.locator(".cb-unknown").last.wait_for()

    staff = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
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
