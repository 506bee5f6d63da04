"""The shipped explainers in knowledge/explainers/ follow the rules of knowledge/README.md.

Every per-file check is parametrized by file name, so a failure names the explainer to fix.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import pytest

from bot.config import Settings
from bot.errors import KnowledgeError
from bot.knowledge import NOTICE, alias_conflicts, load_explainers, parse_explainer
from bot.leaflet import (
    PLACEHOLDER,
    PLACEHOLDER_NAMES,
    RED_FLAG_TIERS,
    TREATMENT_SECTIONS,
    fill_contacts,
    leaflet_problems,
    triage_table,
)
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

TABLE = triage_table(KNOWLEDGE)
SHOWN = Settings(urgent_phone="+1 555 0199")  # placeholders filled as a patient would read them

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
def test_shipped_text_is_sample_until_a_named_clinician_approves_it(path: Path) -> None:
    meta = _parse(path).meta
    assert meta.status == "sample", f"{path.name}: shipped explainers are sample content, not {meta.status}"


def test_approved_needs_a_named_reviewer() -> None:
    text = (EXPLAINERS / "prp.md").read_text(encoding="utf-8").replace("status: sample", "status: approved", 1)
    with pytest.raises(KnowledgeError, match="names the clinician"):
        parse_explainer(text, "prp.md")
    named = re.sub(r"(?m)^reviewed_by: .*$", "reviewed_by: dr.lee@clinic.example", text, count=1)
    assert parse_explainer(named, "prp.md").meta.status == "approved"


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
def test_treatment_explainers_have_every_section_in_order(path: Path) -> None:
    explainer = _parse(path)
    if explainer.meta.category != "treatment":
        pytest.skip(f"{path.name} is a {explainer.meta.category}, not a treatment")
    assert [s.heading for s in explainer.sections] == list(TREATMENT_SECTIONS)


@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
def test_each_explainer_is_a_leaflet_a_patient_can_act_on(path: Path) -> None:
    """Summary, red-flag box, checklist, options, reporting, and call advice only from the triage table."""
    assert leaflet_problems(_parse(path), TABLE) == []


def test_the_emergencies_explainer_carries_every_sign_that_means_call_now() -> None:
    body = _parse(EXPLAINERS / "emergencies.md").body
    missing = [s.id for s in TABLE.signs.values() if s.tier in RED_FLAG_TIERS and s.text not in body]
    assert missing == []


def test_no_explainer_gives_call_advice_outside_the_table(explainers: list[Explainer]) -> None:
    """Emergency wording in prose must not contradict the table: no emergency number or urgent line written out."""
    for explainer in explainers:
        assert not re.search(r"\b(?:911|112|999|988)\b", explainer.body), f"{explainer.id}: a number written out"
        assert set(PLACEHOLDER.findall(explainer.body)) <= set(PLACEHOLDER_NAMES)


@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
def test_review_due_is_after_reviewed_on(path: Path) -> None:
    meta = _parse(path).meta
    assert meta.review_due > meta.reviewed_on


@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
def test_reading_grade_is_at_most_8(path: Path) -> None:
    grade = reading_grade(fill_contacts(_parse(path).body, SHOWN))
    assert 0 < grade <= MAX_GRADE, f"{path.name} reads at grade {grade:.1f}"


def test_median_reading_grade_is_at_most_7(explainers: list[Explainer]) -> None:
    grades = {e.id: reading_grade(fill_contacts(e.body, SHOWN)) for e in explainers}
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


# What the clinical review (../shared/reference/content-review.md §2, §5) found missing or wrong, now present.
# One pattern per finding; knowledge/REVIEW.md maps each to the change and its source.
REVIEW_FACTS = {
    "prp": [r"blind", r"\bHIV\b", r"sealed|single-use"],
    "emergencies": [r"rinse", r"15 minutes", r"hyaluronidase", r"\{crisis_line\}"],
    "chemical-peels": [r"phenol", r"heart", r"rinse", r"frost"],
    "ipl-photofacial": [r"melanoma", r"melasma"],
    "laser-resurfacing": [r"ectropion", r"\bHalo\b", r"Fraxel re:pair"],
    "tattoo-removal": [r"dark", r"allerg", r"blister"],
    "botulinum-toxin": [r"milk", r"fake|counterfeit", r"Xeomin is also approved for forehead lines"],
    "biostimulatory-fillers": [r"keloid", r"maker", r"jawline", r"hyaluronidase"],
    "hyaluronic-acid-fillers": [r"hyaluronidase", r"jawline", r"temple", r"urgent line"],
    "cryolipolysis": [r"cryoglobulin", r"cold agglutinin", r"paroxysmal cold"],
    "sclerotherapy": [r"16 in 100"],
    "medications-and-pregnancy": [r"isotretinoin", r"aspirin for your heart"],
}
INJECTABLES = ("botulinum-toxin", "hyaluronic-acid-fillers", "biostimulatory-fillers", "deoxycholic-acid", "prp",
               "sclerotherapy", "thread-lift")  # fmt: skip


@pytest.mark.parametrize("explainer_id", sorted(REVIEW_FACTS))
def test_the_review_findings_are_in_the_text(explainer_id: str) -> None:
    body = _parse(EXPLAINERS / f"{explainer_id}.md").body
    missing = [p for p in REVIEW_FACTS[explainer_id] if not re.search(p, body, re.IGNORECASE)]
    assert missing == [], f"{explainer_id}.md lacks {missing}"


@pytest.mark.parametrize("explainer_id", INJECTABLES)
def test_each_injectable_has_a_diagram_with_alt_text(explainer_id: str) -> None:
    images = _parse(EXPLAINERS / f"{explainer_id}.md").meta.images
    assert images, f"{explainer_id}.md names no diagram"
    for picture in images:
        assert (KNOWLEDGE / "images" / picture.file).is_file(), f"{picture.file} is not in knowledge/images/"


def test_danger_sign_cards_go_with_fillers_and_toxin() -> None:
    def files(explainer_id: str) -> set[str]:
        return {p.file for p in _parse(EXPLAINERS / f"{explainer_id}.md").meta.images}

    assert "danger-signs-fillers.svg" in files("hyaluronic-acid-fillers") & files("emergencies")
    assert "danger-signs-toxin.svg" in files("botulinum-toxin") & files("emergencies")


@pytest.mark.parametrize("path", sorted((KNOWLEDGE / "images").glob("*.svg")), ids=lambda p: p.name)
def test_diagrams_are_self_contained_and_labelled(path: Path) -> None:
    import xml.etree.ElementTree as ElementTree

    root = ElementTree.parse(path).getroot()
    svg = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{svg}svg" and root.get("role") == "img" and root.get("aria-labelledby")
    assert root.find(f"{svg}title") is not None and root.find(f"{svg}desc") is not None
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"<script|foreignObject|href\s*=|url\(\s*['\"]?http", text, re.IGNORECASE)
