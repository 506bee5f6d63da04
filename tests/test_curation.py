"""The curation workflow on real files, a real SQLite store and, for publishing, the real index and models."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest

from bot.auth import StaffUser
from bot.curation import Curation, add_faq_question, set_front_matter
from bot.errors import AccessDenied, CurationError
from bot.knowledge import parse_explainer
from bot.store import Store
from tests.conftest import KNOWLEDGE, make_settings

EDITOR = StaffUser("ed@clinic.test", "editor")
CLINICIAN = StaffUser("dr.lee@clinic.test", "clinician")
ADMIN = StaffUser("admin@clinic.test", "admin")
TODAY = dt.date(2027, 3, 1)


@pytest.fixture
def knowledge(tmp_path):
    target = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE, target)
    return target


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")


@pytest.fixture
def published():
    return []


@pytest.fixture
def curation(knowledge, store, published):
    return Curation(knowledge, store, on_publish=lambda: published.append("reindex") or "", today=lambda: TODAY)


def edited(curation: Curation, explainer_id: str, old: str, new: str) -> str:
    text = curation.text_for_editing(explainer_id)
    assert old in text
    return text.replace(old, new, 1)


PEEL_OLD = "## What it is\n"
HARD = (
    "Notwithstanding considerable interindividual pharmacokinetic variability, comprehensive multidisciplinary "
    "consultation substantially optimises therapeutic outcomes and minimises iatrogenic complications."
)


def test_editor_saves_a_draft_and_the_published_file_is_untouched(curation, knowledge, store):
    before = (knowledge / "explainers" / "chemical-peels.md").read_text()
    text = edited(curation, "chemical-peels", PEEL_OLD, PEEL_OLD + "\nA new plain sentence.\n")
    check = curation.save_draft(EDITOR, "chemical-peels", text)
    assert check.ok, check.problems
    draft = parse_explainer((knowledge / "drafts" / "chemical-peels.md").read_text(), "chemical-peels.md")
    assert draft.meta.status == "draft"
    assert (knowledge / "explainers" / "chemical-peels.md").read_text() == before
    assert [a.action for a in store.audit_log()] == ["explainer save draft"]


def test_an_editor_cannot_approve_retire_or_roll_back(curation, knowledge):
    curation.save_draft(EDITOR, "prp", curation.text_for_editing("prp"))
    curation.submit(EDITOR, "prp")
    before = (knowledge / "explainers" / "prp.md").read_text()
    for attempt in (
        lambda: curation.approve(EDITOR, "prp"),
        lambda: curation.retire(EDITOR, "prp", "old"),
        lambda: curation.rollback(EDITOR, "prp", 1),
        lambda: curation.approve(ADMIN, "prp"),  # admins manage users; clinicians approve content
    ):
        with pytest.raises(AccessDenied):
            attempt()
    assert (knowledge / "explainers" / "prp.md").read_text() == before


def test_approval_publishes_the_next_version_records_who_and_keeps_history(curation, knowledge, store, published):
    assert [e.meta.version for e in curation.history("prp")] == [1]  # shipped before the console kept history
    text = edited(curation, "prp", PEEL_OLD, PEEL_OLD + "\nThis line is new in version two.\n")
    curation.save_draft(EDITOR, "prp", text)
    curation.submit(EDITOR, "prp")
    assert curation.diff("prp").count("+This line is new in version two.") == 1
    curation.approve(CLINICIAN, "prp", "looks right")

    live = parse_explainer((knowledge / "explainers" / "prp.md").read_text(), "prp.md")
    assert (live.meta.status, live.meta.version, live.meta.reviewed_by) == ("approved", 2, CLINICIAN.email)
    assert live.meta.reviewed_on == TODAY and live.meta.review_due == TODAY + dt.timedelta(days=365)
    assert "This line is new in version two." in live.body
    assert not (knowledge / "drafts" / "prp.md").exists()
    assert [e.meta.version for e in curation.history("prp")] == [2, 1]
    assert published == ["reindex"]
    assert [n.action for n in store.review_notes("prp")] == ["approved", "submitted"]


def test_returned_draft_goes_back_to_the_editor_with_the_comment(curation, store):
    curation.save_draft(EDITOR, "prp", curation.text_for_editing("prp"))
    curation.submit(EDITOR, "prp")
    with pytest.raises(CurationError, match="comment"):
        curation.return_to_editor(CLINICIAN, "prp", "  ")
    curation.return_to_editor(CLINICIAN, "prp", "Please add the downtime in days.")
    assert "status: draft" in curation.text_for_editing("prp")
    assert store.review_notes("prp")[0].comment == "Please add the downtime in days."
    with pytest.raises(CurationError, match="no draft waiting"):
        curation.approve(CLINICIAN, "prp")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda t: t.replace("## When to call us", "## Calling"), "add a '## When to call us' section"),
        (lambda t: t.replace("review_due:", "review_due_typo:"), "review_due"),
        (lambda t: t.replace("version: 1", "version: first"), "'version': Input should be"),
        (
            lambda t: t[: t.index("## What it is")] + f"## What it is\n\n{HARD}\n\n## When to call us\n\n{HARD}\n",
            "reading grade",
        ),
        (lambda t: t.replace("aliases:\n", "aliases:\n  - botox\n", 1), "alias 'botox' is also claimed"),
    ],
    ids=["missing-section", "unknown-key", "bad-version", "too-hard-to-read", "alias-clash"],
)
def test_a_draft_with_problems_is_saved_but_cannot_be_submitted(curation, knowledge, change, problem):
    text = change(set_front_matter(curation.text_for_editing("prp"), status="draft"))
    check = curation.save_draft(EDITOR, "prp", text)
    assert any(problem in p for p in check.problems), check.problems
    assert (knowledge / "drafts" / "prp.md").read_text().rstrip() == text.rstrip()  # nothing typed is lost
    with pytest.raises(CurationError, match="fix these"):
        curation.submit(EDITOR, "prp")


def test_retire_takes_an_explainer_out_of_service(curation, knowledge, published):
    curation.retire(CLINICIAN, "thread-lift", "we no longer offer it")
    assert parse_explainer((knowledge / "explainers" / "thread-lift.md").read_text(), "thread-lift.md").meta.status == (
        "retired"
    )
    assert published == ["reindex"]


def test_rollback_publishes_an_earlier_text_as_a_new_version(curation, knowledge):
    original = parse_explainer((knowledge / "explainers" / "prp.md").read_text(), "prp.md").body
    text = edited(curation, "prp", PEEL_OLD, PEEL_OLD + "\nA sentence that turned out wrong.\n")
    curation.save_draft(EDITOR, "prp", text)
    curation.submit(EDITOR, "prp")
    curation.approve(CLINICIAN, "prp")
    curation.rollback(CLINICIAN, "prp", 1)
    live = parse_explainer((knowledge / "explainers" / "prp.md").read_text(), "prp.md")
    assert live.meta.version == 3
    assert live.body == original
    with pytest.raises(CurationError, match="no version 9"):
        curation.rollback(CLINICIAN, "prp", 9)


def test_new_explainer_from_a_patient_question(curation, knowledge):
    text = curation.create(EDITOR, "lip-filler-dissolving", "Dissolving lip filler", "can filler be dissolved?")
    assert "**can filler be dissolved?**" in text
    assert (knowledge / "drafts" / "lip-filler-dissolving.md").exists()
    with pytest.raises(CurationError, match="already exists"):
        curation.create(EDITOR, "prp", "PRP")
    with pytest.raises(CurationError, match="lowercase words"):
        curation.create(EDITOR, "../escape", "x")
    listed = {row.id: row for row in curation.listing()}
    assert listed["lip-filler-dissolving"].draft == "draft" and listed["lip-filler-dissolving"].published == ""
    assert "**how long?**\nAnswer in plain words." in add_faq_question(text, "how long?")


def test_listing_flags_reviews_that_are_due(knowledge, store):
    later = Curation(knowledge, store, today=lambda: dt.date(2027, 11, 1))
    assert all(row.due for row in later.listing() if row.published == "approved")
    assert not any(row.due for row in Curation(knowledge, store, today=lambda: TODAY).listing())


def test_approval_reindexes_and_patients_get_the_new_text(tmp_path, knowledge, data_dir, models):
    from bot.chat import Pipeline

    pipeline = Pipeline.build(make_settings(data_dir, knowledge_dir=knowledge), models=models)
    curation = Curation(knowledge, pipeline.store, on_publish=pipeline.reindex)
    question = "how long does hydrafacial take and can I wear makeup after?"
    assert "sea-kelp" not in pipeline.ask(question).text.lower()
    text = curation.text_for_editing("hydrafacial")
    text = text.replace("aliases:\n", "aliases:\n  - aquapeel\n", 1)
    heading = "## Questions patients ask\n"
    assert heading in text
    faq = "**Can I wear makeup after a HydraFacial?**\nWait until the next day, then use a sea-kelp mineral makeup.\n"
    text = text.replace(heading, heading + "\n" + faq, 1)
    curation.save_draft(EDITOR, "hydrafacial", text)
    curation.submit(EDITOR, "hydrafacial")
    assert curation.approve(CLINICIAN, "hydrafacial") == ""
    reply = pipeline.ask(question)
    assert reply.kind == "answer"
    assert "sea-kelp" in reply.text.lower()
    assert reply.sources[0].version == 2
    assert pipeline.ask("what is an aquapeel?").sources[0].id == "hydrafacial"  # new alias, no restart
