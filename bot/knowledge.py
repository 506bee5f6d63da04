"""Read and validate explainer files (front matter + sections) and cut them into chunks.

Never writes files; the console's curation workflow does that through `curation.py`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import ValidationError

from bot.errors import KnowledgeError
from bot.schemas import Chunk, Explainer, ExplainerMeta, Section

NOTICE = (
    "Sample content: the clinic's own clinicians must review and approve this explainer before patients rely on it."
)
FAQ_HEADING = "Questions patients ask"
# The red-flag box repeats the file's own "When to call us" signs for the eye; indexed once, they do not outweigh
# what each file says about itself.
NOT_INDEXED = frozenset({"Call now if"})
FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.DOTALL)
_FRONT = FRONT_MATTER
_HEADING = re.compile(r"^## +(.+?)\s*$")
_FAQ_Q = re.compile(r"^\*\*(.+?)\*\*\s*$")


def explainer_dir(knowledge_dir: Path) -> Path:
    return knowledge_dir / "explainers"


def _line_of_key(front: str, key: str) -> int:
    for number, line in enumerate(front.splitlines(), start=2):
        if line.startswith(f"{key}:"):
            return number
    return 1


def parse_explainer(text: str, path: str) -> Explainer:
    """Parse one explainer's text; raise KnowledgeError with `path:line: problem` lines."""
    if "\x00" in text:
        raise KnowledgeError([f"{path}:1: the file contains NUL bytes; save it as UTF-8 text"])
    match = _FRONT.match(text)
    if not match:
        raise KnowledgeError([f"{path}:1: no front matter; the file must start with a '---' YAML block"])
    front = match.group(1)
    try:
        raw = yaml.safe_load(front) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = (mark.line + 2) if mark is not None else 1
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise KnowledgeError([f"{path}:{line}: front matter is not valid YAML ({problem})"]) from None
    if not isinstance(raw, dict):
        raise KnowledgeError([f"{path}:2: front matter must be a mapping of 'key: value' lines"])
    try:
        meta = ExplainerMeta.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = str(err["loc"][0]) if err["loc"] else ""
            if not key and "review_due" in err["msg"]:
                key = "review_due"
            line = _line_of_key(front, key) if key else 1
            where = f"'{key}'" if key else "front matter"
            problems.append(f"{path}:{line}: {where}: {err['msg']}")
        raise KnowledgeError(problems) from None
    stem = Path(path).stem
    if meta.id != stem:
        line = _line_of_key(front, "id")
        raise KnowledgeError([f"{path}:{line}: id '{meta.id}' must equal the file name '{stem}'"])
    body_start_line = text[: match.end()].count("\n") + 1
    body = text[match.end() :]
    sections = _sections(body, body_start_line)
    if not sections:
        raise KnowledgeError([f"{path}:{body_start_line}: the body has no '## ' sections"])
    for section in sections:
        if not section.text.strip():
            raise KnowledgeError([f"{path}:{section.line}: section '{section.heading}' is empty"])
    return Explainer(meta=meta, body=body, sections=tuple(sections), path=path)


def _sections(body: str, first_line: int) -> list[Section]:
    sections: list[Section] = []
    heading: str | None = None
    start = first_line
    lines: list[str] = []
    for offset, line in enumerate(body.splitlines()):
        found = _HEADING.match(line)
        if found:
            if heading is not None:
                sections.append(Section(heading, "\n".join(lines).strip(), start))
            heading, start, lines = found.group(1), first_line + offset, []
        elif heading is not None:
            lines.append(line)
    if heading is not None:
        sections.append(Section(heading, "\n".join(lines).strip(), start))
    return sections


def load_explainers(knowledge_dir: Path) -> list[Explainer]:
    """Every explainer file, validated; all problems across all files in one KnowledgeError."""
    folder = explainer_dir(knowledge_dir)
    if not folder.is_dir():
        raise KnowledgeError([f"{folder}:0: no explainers folder; set CLINICBOT_KNOWLEDGE_DIR"])
    explainers: list[Explainer] = []
    problems: list[str] = []
    for path in sorted(folder.glob("*.md")):
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            line = path.read_bytes()[: exc.start].count(b"\n") + 1
            problems.append(f"{path}:{line}: not valid UTF-8; save the file as UTF-8")
            continue
        try:
            explainers.append(parse_explainer(text, str(path)))
        except KnowledgeError as exc:
            problems.extend(exc.problems)
    problems.extend(alias_conflicts(explainers))
    if problems:
        raise KnowledgeError(problems)
    return explainers


def alias_conflicts(explainers: Iterable[Explainer]) -> list[str]:
    owner: dict[str, str] = {}
    problems = []
    for explainer in explainers:
        if explainer.meta.status == "retired":
            continue
        for alias in explainer.meta.aliases:
            other = owner.setdefault(alias, explainer.id)
            if other != explainer.id:
                line = _line_of_alias(explainer.path, alias)
                problems.append(f"{explainer.path}:{line}: alias '{alias}' is also claimed by '{other}'")
    return problems


def _line_of_alias(path: str, alias: str) -> int:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return 1
    for number, line in enumerate(lines, start=1):
        if line.strip().lstrip("-").strip().strip("'\"").lower() == alias:
            return number
    return 1


def approved(explainers: Iterable[Explainer]) -> list[Explainer]:
    return [e for e in explainers if e.meta.status == "approved"]


def serving(explainers: Iterable[Explainer], production: bool) -> list[Explainer]:
    """What patients may be shown: approved text, and sample text too except in production mode."""
    statuses = ("approved",) if production else ("approved", "sample")
    return [e for e in explainers if e.meta.status in statuses]


def _section_text(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if NOTICE not in line).strip()


def faq_pairs(text: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    question: str | None = None
    answer: list[str] = []
    for line in text.splitlines():
        found = _FAQ_Q.match(line.strip())
        if found:
            if question:
                pairs.append((question, " ".join(answer).strip()))
            question, answer = found.group(1), []
        elif line.strip():
            answer.append(line.strip())
    if question:
        pairs.append((question, " ".join(answer).strip()))
    return [(q, a) for q, a in pairs if a]


def chunks(explainer: Explainer) -> list[Chunk]:
    """Sections become chunks; each FAQ question with its answer becomes its own chunk."""
    meta = explainer.meta
    out: list[Chunk] = []

    def add(key: str, section: str, text: str) -> None:
        digest = hashlib.sha256(f"{meta.version}|{meta.title}|{section}|{text}|{meta.reviewed_on}".encode()).hexdigest()
        out.append(
            Chunk(
                id=f"{meta.id}#{key}",
                explainer_id=meta.id,
                title=meta.title,
                section=section,
                text=text,
                version=meta.version,
                reviewed_on=meta.reviewed_on.isoformat(),
                content_hash=digest,
            )
        )

    for section in explainer.sections:
        text = _section_text(section.text)
        if not text or section.heading in NOT_INDEXED:
            continue
        slug = re.sub(r"[^a-z0-9]+", "-", section.heading.lower()).strip("-")
        if section.heading == FAQ_HEADING:
            for number, (question, answer) in enumerate(faq_pairs(text), start=1):
                add(f"faq-{number}", FAQ_HEADING, f"{question}\n{answer}")
        else:
            add(slug, section.heading, text)
    return out


_ABBREVIATIONS = re.compile(r"\b(e\.g|i\.e|etc|vs|Dr|Mr|Ms|Mrs|approx|No)\.$", re.IGNORECASE)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_MARKUP = re.compile(r"(\*\*|__|`)")
_CHECKBOX = re.compile(r"^\[[ x]\]\s+")


def split_sentences(text: str) -> list[str]:
    """Whole sentences from a section's Markdown: list items count as sentences.

    A line that introduces a list ("Call the clinic today if you have:") is no sentence on its own: it is read
    into each item under it, so every item stands alone with its action ("Call the clinic today if you have:
    a cold sore ..."). It applies until the next blank line."""
    sentences: list[str] = []
    lead = ""
    for raw_line in text.splitlines():
        item = bool(_LIST_ITEM.match(raw_line))
        line = _MARKUP.sub("", _CHECKBOX.sub("", _LIST_ITEM.sub("", raw_line))).strip()
        if not line:
            lead = ""
            continue
        if line.startswith("#"):
            continue
        if line.endswith(":"):
            lead = line
            continue
        if item and lead:
            first = line.split()[0]
            acronym = any(c.isupper() for c in first[1:])  # "IPL", "HydraFacial" keep their capitals
            line = f"{lead} {line if acronym else line[0].lower() + line[1:]}"
        if not re.search(r"[.!?:;)]$", line):
            line += "."
        buffer = ""
        for piece in re.split(r"(?<=[.!?])\s+(?=[\"'(A-Z0-9])", line):
            buffer = f"{buffer} {piece}".strip() if buffer else piece
            if not _ABBREVIATIONS.search(buffer):
                sentences.append(buffer)
                buffer = ""
        if buffer:
            sentences.append(buffer)
    return sentences
