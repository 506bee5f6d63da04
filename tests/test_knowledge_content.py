"""The shipped explainers in knowledge/explainers/ follow the rules of knowledge/README.md.

Every per-file check is parametrized by file name, so a failure names the explainer to fix.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import pytest

from bot.knowledge import NOTICE, alias_conflicts, load_explainers, parse_explainer
from bot.readability import reading_grade
from bot.schemas import Explainer

KNOWLEDGE = Path(__file__).resolve().parent.parent / "knowledge"
EXPLAINERS = KNOWLEDGE / "explainers"
FILES = sorted(EXPLAINERS.glob("*.md"))
FILE_IDS = [path.name for path in FILES]

REQUIRED_IDS = (
    "botulinum-toxin",
    "hyaluronic-acid-fillers",
    "biostimulatory-fillers",
    "chemical-peels",
    "microneedling",
    "laser-hair-removal",
    "ipl-photofacial",
    "laser-resurfacing",
    "prp",
    "cryolipolysis",
    "deoxycholic-acid",
    "thread-lift",
    "sclerotherapy",
    "hydrafacial",
    "tattoo-removal",
    "consultation-and-costs",
    "medications-and-pregnancy",
    "emergencies",
    "skincare-basics",
)

# The section order of knowledge/README.md for category: treatment.
TREATMENT_SECTIONS = [
    "What it is",
    "Who it suits",
    "What to expect",
    "Results and how long they last",
    "Downtime",
    "Side effects and risks",
    "Who should not have it",
    "Before your visit",
    "Aftercare",
    "When to call us",
    "Cost factors",
    "Questions patients ask",
]

# Light- and energy-based or resurfacing treatments that carry extra risk of pigment change in darker skin.
SKIN_OF_COLOUR_IDS = (
    "laser-hair-removal",
    "ipl-photofacial",
    "laser-resurfacing",
    "chemical-peels",
    "microneedling",
    "tattoo-removal",
)
DARKER_SKIN = re.compile(r"darker skin|skin of colou?r|brown or black skin|darker skin tones?", re.IGNORECASE)

MAX_GRADE = 8.0
MAX_MEDIAN_GRADE = 7.0


def _parse(path: Path) -> Explainer:
    return parse_explainer(path.read_text(encoding="utf-8"), str(path))


@pytest.fixture(scope="module")
def explainers() -> list[Explainer]:
    return [_parse(path) for path in FILES]


def test_the_folder_has_explainers() -> None:
    assert FILES, f"no explainer files in {EXPLAINERS}"


def test_the_whole_folder_loads_without_problems() -> None:
    loaded = load_explainers(KNOWLEDGE)
    assert sorted(e.id for e in loaded) == sorted(path.stem for path in FILES)


@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
def test_front_matter_and_body_parse(path: Path) -> None:
    explainer = _parse(path)
    assert explainer.sections, f"{path.name}: no sections"


@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
def test_id_equals_file_name(path: Path) -> None:
    assert _parse(path).meta.id == path.stem


@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
def test_status_is_approved(path: Path) -> None:
    assert _parse(path).meta.status == "approved"


@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
def test_has_at_least_two_sources(path: Path) -> None:
    sources = [s for s in _parse(path).meta.sources if s.strip()]
    assert len(sources) >= 2, f"{path.name} lists {len(sources)} source(s)"


@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
def test_body_carries_the_sample_content_notice(path: Path) -> None:
    assert NOTICE in _parse(path).body


@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
@pytest.mark.parametrize("heading", ["When to call us", "Questions patients ask"])
def test_every_explainer_has_the_patient_sections(path: Path, heading: str) -> None:
    headings = [s.heading for s in _parse(path).sections]
    assert heading in headings, f"{path.name} has no '## {heading}' section"


@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
def test_treatment_explainers_have_the_twelve_sections_in_order(path: Path) -> None:
    explainer = _parse(path)
    if explainer.meta.category != "treatment":
        pytest.skip(f"{path.name} is a {explainer.meta.category}, not a treatment")
    assert [s.heading for s in explainer.sections] == TREATMENT_SECTIONS


@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
def test_review_due_is_after_reviewed_on(path: Path) -> None:
    meta = _parse(path).meta
    assert meta.review_due > meta.reviewed_on


@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
def test_reading_grade_is_at_most_8(path: Path) -> None:
    grade = reading_grade(_parse(path).body)
    assert 0 < grade <= MAX_GRADE, f"{path.name} reads at grade {grade:.1f}"


def test_median_reading_grade_is_at_most_7(explainers: list[Explainer]) -> None:
    grades = {e.id: reading_grade(e.body) for e in explainers}
    median = statistics.median(grades.values())
    assert median <= MAX_MEDIAN_GRADE, f"median grade {median:.2f}; grades {grades}"


def test_no_alias_is_claimed_by_two_explainers(explainers: list[Explainer]) -> None:
    assert alias_conflicts(explainers) == []


@pytest.mark.parametrize("explainer_id", REQUIRED_IDS)
def test_required_explainer_is_present(explainer_id: str) -> None:
    assert (EXPLAINERS / f"{explainer_id}.md").is_file(), f"missing knowledge/explainers/{explainer_id}.md"


@pytest.mark.parametrize("explainer_id", SKIN_OF_COLOUR_IDS)
def test_pigment_risk_treatments_mention_darker_skin(explainer_id: str) -> None:
    path = EXPLAINERS / f"{explainer_id}.md"
    assert path.is_file(), f"missing {path.name}"
    explainer = _parse(path)
    if explainer.meta.category != "treatment":
        pytest.skip(f"{path.name} is a {explainer.meta.category}, not a treatment")
    assert DARKER_SKIN.search(explainer.body), f"{path.name} never mentions darker skin"
