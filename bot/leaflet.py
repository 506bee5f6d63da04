"""What makes an explainer a leaflet a patient can act on, checked the same way in tests and in the console.

Every explainer opens with a three-point summary and a red-flag box, and its "When to call us" section
is written from the one triage table, `knowledge/triage-table.yaml`: each bullet there is a sign of the
table, word for word, under its own tier's heading. So no two explainers can give different advice for
the same sign, and changing the advice means changing the table first.

Contact numbers in explainer text are placeholders (`{emergency_number}`, `{urgent_phone}`, ...), filled
from the settings when text is shown, so one file serves every region the settings allow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from bot.config import Settings
from bot.schemas import Explainer

TABLE_FILE = "triage-table.yaml"
TIERS = ("emergency", "urgent", "soon", "expected")
RED_FLAG_TIERS = ("emergency", "urgent")  # what the box at the top shows: the signs that mean call now

SUMMARY = "In short"
RED_FLAGS = "Call now if"
CHECKLIST = "Checklist"
OPTIONS = "Other options"
WHEN_TO_CALL = "When to call us"
GOES_WRONG = "If something goes wrong"

# The sections every explainer has, and where a treatment explainer has the rest (knowledge/README.md).
TREATMENT_SECTIONS = (
    SUMMARY,
    RED_FLAGS,
    "What it is",
    "Who it suits",
    OPTIONS,
    "What to expect",
    "Results and how long they last",
    "Downtime",
    "Side effects and risks",
    "Who should not have it",
    "Before your visit",
    "Aftercare",
    CHECKLIST,
    WHEN_TO_CALL,
    GOES_WRONG,
    "Cost factors",
    "Questions patients ask",
)
TOPIC_SECTIONS = (SUMMARY, RED_FLAGS, WHEN_TO_CALL, "Questions patients ask")

PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
PLACEHOLDER_NAMES = ("emergency_number", "urgent_phone", "clinic_phone", "crisis_line", "report_side_effect")
_BULLET = re.compile(r"^\s*[-*]\s+(?:\[[ x]\]\s+)?(.+?)\s*$")
_CHECKBOX = re.compile(r"^\s*[-*]\s+\[ \]\s+\S")

# Where a patient reports a side effect, by the region setting (the national medicines regulator).
SIDE_EFFECT_REPORTING = {
    "US": "the FDA's MedWatch program (www.fda.gov/medwatch, or 1-800-FDA-1088)",
    "UK": "the MHRA Yellow Card scheme (yellowcard.mhra.gov.uk)",
    "ES": "the Spanish medicines agency, AEMPS (www.notificaram.es)",
    "MX": "COFEPRIS, Mexico's health regulator (www.gob.mx/cofepris)",
    "CO": "INVIMA, Colombia's medicines regulator (www.invima.gov.co)",
    "AR": "ANMAT, Argentina's medicines regulator (www.argentina.gob.ar/anmat)",
    "CL": "the ISP, Chile's public health institute (www.ispch.cl)",
    "PE": "DIGEMID, Peru's medicines authority (www.digemid.minsa.gob.pe)",
    "EU": "your country's medicines agency (the list is at www.ema.europa.eu)",
}


@dataclass(frozen=True)
class Sign:
    id: str
    tier: str
    text: str


@dataclass(frozen=True)
class TriageTable:
    headings: dict[str, str]  # tier → the bold line a list of its signs sits under
    notes: dict[str, str]  # tier → the line that may follow the heading
    signs: dict[str, Sign]  # id → sign

    def tier_of(self, text: str) -> str | None:
        for sign in self.signs.values():
            if sign.text == text:
                return sign.tier
        return None


@lru_cache(maxsize=4)
def _load(path: Path, mtime: float) -> TriageTable:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    tiers = data["tiers"]
    signs = {key: Sign(key, value["tier"], value["text"]) for key, value in data["signs"].items()}
    unknown = sorted({s.tier for s in signs.values()} - set(TIERS))
    if unknown or set(tiers) != set(TIERS):
        raise ValueError(f"{path}: tiers must be exactly {', '.join(TIERS)}")
    return TriageTable(
        headings={tier: tiers[tier]["heading"] for tier in TIERS},
        notes={tier: tiers[tier].get("note", "") for tier in TIERS},
        signs=signs,
    )


def triage_table(knowledge_dir: Path) -> TriageTable:
    path = Path(knowledge_dir) / TABLE_FILE
    return _load(path, path.stat().st_mtime)


def contacts(settings: Settings) -> dict[str, str]:
    """The values the placeholders in explainer text stand for."""
    return {
        "emergency_number": settings.emergency_number,
        "urgent_phone": settings.urgent_phone or settings.clinic_phone,
        "clinic_phone": settings.clinic_phone,
        "crisis_line": settings.crisis_line,
        "report_side_effect": SIDE_EFFECT_REPORTING.get(settings.region, SIDE_EFFECT_REPORTING["EU"]),
    }


def fill_contacts(text: str, settings: Settings) -> str:
    """Explainer text with its placeholders filled; an unknown placeholder is left as written."""
    values = contacts(settings)
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _section(explainer: Explainer, heading: str) -> str | None:
    for section in explainer.sections:
        if section.heading == heading:
            return section.text
    return None


def _tiered_bullets(text: str, table: TriageTable) -> tuple[list[tuple[str | None, str]], list[str]]:
    """(tier of the heading above, bullet text) for each bullet, and lines that are neither."""
    by_heading = {heading: tier for tier, heading in table.headings.items()}
    notes = set(table.notes.values())
    tier: str | None = None
    bullets, stray = [], []
    for line in text.splitlines():
        line = line.strip()
        if not line or line in notes:
            continue
        if line in by_heading:
            tier = by_heading[line]
        elif match := _BULLET.match(line):
            bullets.append((tier, match.group(1)))
        else:
            stray.append(line)
    return bullets, stray


def _check_tiered(name: str, text: str, table: TriageTable, allowed: tuple[str, ...]) -> list[str]:
    problems = []
    bullets, stray = _tiered_bullets(text, table)
    if not bullets:
        problems.append(f"'{name}' lists no signs")
    for line in stray:
        problems.append(f"'{name}': only tier headings and signs of the triage table belong here: '{line[:60]}'")
    for heading_tier, bullet in bullets:
        tier = table.tier_of(bullet)
        if tier is None:
            problems.append(f"'{name}': '{bullet[:60]}' is not a sign of the triage table, word for word")
        elif heading_tier != tier:
            problems.append(f"'{name}': '{bullet[:60]}' sits under the wrong tier (the table says {tier})")
        elif tier not in allowed:
            problems.append(f"'{name}': '{bullet[:60]}' is a {tier} sign, which does not belong here")
    return problems


def leaflet_problems(explainer: Explainer, table: TriageTable) -> list[str]:
    """Why the explainer is not yet a leaflet a patient can act on (empty when it is)."""
    problems = []
    expected = TREATMENT_SECTIONS if explainer.meta.category == "treatment" else TOPIC_SECTIONS
    present = [s.heading for s in explainer.sections]
    missing = [h for h in expected if h not in present]
    if missing:
        problems.append("missing sections: " + ", ".join(missing))
    order = [h for h in present if h in expected]
    if not missing and order != list(expected):
        problems.append("sections out of order: " + ", ".join(order))
    if present[:2] != [SUMMARY, RED_FLAGS] and not missing:
        problems.append(f"'{SUMMARY}' and '{RED_FLAGS}' must open the explainer")
    summary = _section(explainer, SUMMARY)
    if summary is not None:
        points = [line for line in summary.splitlines() if _BULLET.match(line)]
        if len(points) != 3:
            problems.append(f"'{SUMMARY}' has {len(points)} points, not 3")
    red_flags = _section(explainer, RED_FLAGS)
    if red_flags is not None:
        problems += _check_tiered(RED_FLAGS, red_flags, table, RED_FLAG_TIERS)
    when = _section(explainer, WHEN_TO_CALL)
    if when is not None:
        problems += _check_tiered(WHEN_TO_CALL, when, table, TIERS)
    checklist = _section(explainer, CHECKLIST)
    if checklist is not None and sum(bool(_CHECKBOX.match(line)) for line in checklist.splitlines()) < 4:
        problems.append(f"'{CHECKLIST}' needs at least 4 tick boxes ('- [ ] ...'), before and after")
    options = _section(explainer, OPTIONS)
    if options is not None and "no treatment" not in options.lower():
        problems.append(f"'{OPTIONS}' must say that no treatment is an option")
    wrong = _section(explainer, GOES_WRONG)
    if wrong is not None and "{report_side_effect}" not in wrong:
        problems.append(f"'{GOES_WRONG}' must say where to report a side effect ({{report_side_effect}})")
    for name in sorted(set(PLACEHOLDER.findall(explainer.body)) - set(PLACEHOLDER_NAMES)):
        problems.append(f"unknown placeholder {{{name}}}")
    return problems
