"""The curation workflow: draft → in review → approved (or returned), retire, history and rollback.

The files stay the source of truth: drafts live in `knowledge/drafts/<id>.md`, what patients are
served in `knowledge/explainers/<id>.md`, and every approved version in `knowledge/history/<id>/v<N>.md`.
Only a clinician publishes; every step is checked here, not only hidden in the console.
"""

from __future__ import annotations

import datetime as dt
import difflib
import fcntl
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.auth import StaffUser
from bot.errors import CurationError, KnowledgeError
from bot.knowledge import (
    FAQ_HEADING,
    FRONT_MATTER,
    NOTICE,
    alias_conflicts,
    explainer_dir,
    load_explainers,
    parse_explainer,
)
from bot.leaflet import TABLE_FILE, leaflet_problems, triage_table
from bot.readability import reading_grade
from bot.schemas import Explainer
from bot.store import Store

MAX_GRADE = 8.0
REQUIRED_HEADINGS = ("When to call us",)
REVIEW_PERIOD = dt.timedelta(days=365)
DUE_SOON = dt.timedelta(days=30)
_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9_.@+-]*$")
_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Check:
    """What the console shows under the editor: problems that block submission, and the reading grade."""

    problems: list[str]
    grade: float | None

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Listing:
    id: str
    title: str
    published: str  # approved | retired | "" (never published)
    draft: str  # draft | in_review | ""
    version: int
    review_due: str
    due: bool  # review due within DUE_SOON, or overdue


def set_front_matter(text: str, **values: object) -> str:
    """Replace single-line `key: value` entries in the front matter, keeping everything else as written."""
    match = FRONT_MATTER.match(text)
    if not match:
        raise CurationError("the file has no front matter block; it must start with '---'")
    lines = match.group(1).splitlines()
    for key, value in values.items():
        if isinstance(value, dt.date):
            rendered = value.isoformat()
        elif isinstance(value, str) and not _PLAIN.match(value):
            rendered = json.dumps(value)  # a JSON string is a valid YAML string, quotes and all
        else:
            rendered = str(value)
        entry = f"{key}: {rendered}"
        for number, line in enumerate(lines):
            if line.startswith(f"{key}:"):
                lines[number] = entry
                break
        else:
            lines.append(entry)
    return "---\n" + "\n".join(lines) + "\n---\n" + text[match.end() :]


def new_explainer_text(explainer_id: str, title: str, question: str = "", today: dt.date | None = None) -> str:
    """The skeleton of a new explainer, with the patient's (redacted) question as its first FAQ entry."""
    today = today or dt.date.today()
    faq = question.strip() or "A question patients ask?"
    return (
        "---\n"
        f"id: {explainer_id}\n"
        f"title: {json.dumps(title)}\n"
        "category: treatment\n"
        'summary: ""\n'
        "aliases: []\n"
        "status: draft\n"
        "version: 1\n"
        'reviewed_by: "not yet reviewed"\n'
        f"reviewed_on: {today.isoformat()}\n"
        f"review_due: {(today + REVIEW_PERIOD).isoformat()}\n"
        "sources:\n"
        '  - "Name each source: an FDA label, AAD, ASPS, ASDS or a peer-reviewed paper."\n'
        "---\n\n"
        f"## What it is\n\n{NOTICE}\n\nSay what the treatment is in two or three short sentences.\n\n"
        "## Side effects and risks\n\nList the common and the rare serious risks.\n\n"
        "## Who should not have it\n\nSay who should not have it.\n\n"
        "## When to call us\n\nSay which signs mean call the clinic, and which mean go to urgent care.\n\n"
        f"## {FAQ_HEADING}\n\n**{faq}**\nAnswer in plain words.\n"
    )


def add_faq_question(text: str, question: str) -> str:
    """Append a patient's question to the FAQ section (created if missing), for an editor to answer."""
    entry = f"**{question.strip()}**\nAnswer in plain words.\n"
    if f"## {FAQ_HEADING}" not in text:
        return text.rstrip() + f"\n\n## {FAQ_HEADING}\n\n{entry}"
    return text.rstrip() + "\n\n" + entry


class Curation:
    def __init__(
        self,
        knowledge_dir: Path,
        store: Store,
        on_publish: Callable[[], str] = lambda: "",
        today: Callable[[], dt.date] = dt.date.today,
    ):
        self.root = knowledge_dir
        self.store = store
        self.on_publish = on_publish  # re-indexes; returns a warning to show, or ""
        self.today = today

    # ---- where things live -------------------------------------------------------------------
    def published_path(self, explainer_id: str) -> Path:
        return explainer_dir(self.root) / f"{_checked_id(explainer_id)}.md"

    def draft_path(self, explainer_id: str) -> Path:
        return self.root / "drafts" / f"{_checked_id(explainer_id)}.md"

    def history_dir(self, explainer_id: str) -> Path:
        return self.root / "history" / _checked_id(explainer_id)

    # ---- reading -----------------------------------------------------------------------------
    def listing(self) -> list[Listing]:
        rows: dict[str, Listing] = {}
        soon = self.today() + DUE_SOON
        ids = {p.stem for p in explainer_dir(self.root).glob("*.md")}
        ids |= {p.stem for p in (self.root / "drafts").glob("*.md")}
        for explainer_id in sorted(ids):
            published = self._parse_quietly(self.published_path(explainer_id))
            draft = self._parse_quietly(self.draft_path(explainer_id))
            shown = published or draft
            rows[explainer_id] = Listing(
                id=explainer_id,
                title=shown.meta.title if shown else explainer_id,
                published=published.meta.status if published else "",
                draft=(draft.meta.status if draft else "draft (has errors)")
                if self.draft_path(explainer_id).exists()
                else "",
                version=published.meta.version if published else 0,
                review_due=published.meta.review_due.isoformat() if published else "",
                due=bool(published and published.meta.status == "approved" and published.meta.review_due <= soon),
            )
        return list(rows.values())

    def text_for_editing(self, explainer_id: str) -> str:
        """The draft if there is one, else a copy of the published file to start a new draft from."""
        for path in (self.draft_path(explainer_id), self.published_path(explainer_id)):
            if path.exists():
                return path.read_text(encoding="utf-8")
        raise CurationError(f"no explainer '{explainer_id}'; create it with a new id first")

    def published_text(self, explainer_id: str) -> str:
        path = self.published_path(explainer_id)
        return path.read_text(encoding="utf-8") if path.exists() else ""

    def check(self, explainer_id: str, text: str) -> Check:
        """Front-matter and section problems (as `line N: …`), alias clashes and the reading grade."""
        try:
            explainer = parse_explainer(text, f"{explainer_id}.md")
        except KnowledgeError as exc:
            return Check([p.replace(f"{explainer_id}.md:", "line ", 1) for p in exc.problems], None)
        problems = []
        headings = {s.heading for s in explainer.sections}
        problems += [f"add a '## {h}' section" for h in REQUIRED_HEADINGS if h not in headings]
        grade = reading_grade(explainer.body)
        if grade > MAX_GRADE:
            problems.append(
                f"reading grade {grade:.1f} is above {MAX_GRADE:.0f}: use shorter sentences and plainer words"
            )
        problems += self._alias_clashes(explainer)
        if (self.root / TABLE_FILE).exists():  # a knowledge base with a triage table holds every file to it
            problems += leaflet_problems(explainer, triage_table(self.root))
        return Check(problems, grade)

    def diff(self, explainer_id: str) -> str:
        """Unified diff of the draft against the approved version (empty when there is no draft)."""
        draft = self.draft_path(explainer_id)
        if not draft.exists():
            return ""
        before = self.published_text(explainer_id).splitlines(keepends=True)
        after = draft.read_text(encoding="utf-8").splitlines(keepends=True)
        return "".join(difflib.unified_diff(before, after, "approved", "draft"))

    def history(self, explainer_id: str) -> list[Explainer]:
        versions = []
        for path in self.history_dir(explainer_id).glob("v*.md"):
            parsed = self._parse_quietly(path, expect_id=explainer_id)
            if parsed:
                versions.append(parsed)
        current = self._parse_quietly(self.published_path(explainer_id))
        if current and current.meta.version not in {e.meta.version for e in versions}:
            versions.append(current)  # a version published before the console kept history
        return sorted(versions, key=lambda e: e.meta.version, reverse=True)

    # ---- the workflow ------------------------------------------------------------------------
    def save_draft(self, user: StaffUser, explainer_id: str, text: str) -> Check:
        """Save the editor's text as a draft even when it has problems: nothing typed is lost."""
        user.require("edit", "edit explainers")
        text = _normalise(text)
        if FRONT_MATTER.match(text):
            text = set_front_matter(text, status="draft")
        check = self.check(explainer_id, text)
        with self._lock():
            _write(self.draft_path(explainer_id), text)
        self.store.audit(actor=user.email, action="explainer save draft", count=1, target=explainer_id)
        return check

    def create(self, user: StaffUser, explainer_id: str, title: str, question: str = "") -> str:
        user.require("edit", "create explainers")
        if self.published_path(explainer_id).exists() or self.draft_path(explainer_id).exists():
            raise CurationError(f"'{explainer_id}' already exists; open it to extend it instead")
        text = new_explainer_text(explainer_id, title.strip() or explainer_id, question, self.today())
        with self._lock():
            _write(self.draft_path(explainer_id), text)
        self.store.audit(actor=user.email, action="explainer create", count=1, target=explainer_id)
        return text

    def submit(self, user: StaffUser, explainer_id: str) -> None:
        user.require("edit", "submit explainers for review")
        path = self.draft_path(explainer_id)
        if not path.exists():
            raise CurationError("save a draft first; there is nothing to submit")
        text = path.read_text(encoding="utf-8")
        check = self.check(explainer_id, text)
        if not check.ok:
            raise CurationError("fix these before submitting:", check.problems)
        with self._lock():
            _write(path, set_front_matter(text, status="in_review"))
        self.store.add_review_note(explainer_id, user.email, "submitted", self._version(explainer_id) + 1)

    def return_to_editor(self, user: StaffUser, explainer_id: str, comment: str) -> None:
        user.require("review", "return explainers")
        if not comment.strip():
            raise CurationError("say what needs changing: the comment is how the editor knows")
        path = self._draft_in_review(explainer_id)
        with self._lock():
            _write(path, set_front_matter(path.read_text(encoding="utf-8"), status="draft"))
        self.store.add_review_note(explainer_id, user.email, "returned", self._version(explainer_id) + 1, comment)

    def approve(self, user: StaffUser, explainer_id: str, comment: str = "") -> str:
        """Publish the draft in review as the next version; returns a warning if re-indexing failed."""
        user.require("review", "approve explainers")
        path = self._draft_in_review(explainer_id)
        text = path.read_text(encoding="utf-8")
        check = self.check(explainer_id, text)
        if not check.ok:
            raise CurationError("this draft cannot be approved yet:", check.problems)
        version = self._publish(user, explainer_id, text)
        path.unlink()
        self.store.add_review_note(explainer_id, user.email, "approved", version, comment)
        return self.on_publish()

    def retire(self, user: StaffUser, explainer_id: str, reason: str) -> str:
        user.require("review", "retire explainers")
        path = self.published_path(explainer_id)
        if not path.exists():
            raise CurationError(f"'{explainer_id}' has never been published; delete the draft instead")
        with self._lock():
            _write(path, set_front_matter(path.read_text(encoding="utf-8"), status="retired"))
        self.store.add_review_note(explainer_id, user.email, "retired", self._version(explainer_id), reason)
        return self.on_publish()

    def rollback(self, user: StaffUser, explainer_id: str, version: int) -> str:
        """Publish an earlier approved version's text again, as a new version approved by this clinician."""
        user.require("review", "roll back explainers")
        source = self.history_dir(explainer_id) / f"v{version}.md"
        if not source.exists() and version == self._version(explainer_id):
            source = self.published_path(explainer_id)
        if not source.exists():
            raise CurationError(f"there is no version {version} of '{explainer_id}' in its history")
        text = source.read_text(encoding="utf-8")
        check = self.check(explainer_id, text)
        if check.problems and any("alias" in p for p in check.problems):
            raise CurationError("that version cannot be published again:", check.problems)
        new_version = self._publish(user, explainer_id, text)
        self.store.add_review_note(explainer_id, user.email, "rolled back", new_version, f"to the text of v{version}")
        return self.on_publish()

    # ---- internals ---------------------------------------------------------------------------
    def _publish(self, user: StaffUser, explainer_id: str, text: str) -> int:
        today = self.today()
        with self._lock():
            version = self._version(explainer_id) + 1
            published = set_front_matter(
                text,
                status="approved",
                version=version,
                reviewed_by=user.email,
                reviewed_on=today,
                review_due=today + REVIEW_PERIOD,
            )
            parse_explainer(published, f"{explainer_id}.md")  # the bookkeeping above must leave it valid
            current = self.published_path(explainer_id)
            if current.exists() and not (self.history_dir(explainer_id) / f"v{version - 1}.md").exists():
                _write(self.history_dir(explainer_id) / f"v{version - 1}.md", current.read_text(encoding="utf-8"))
            _write(self.history_dir(explainer_id) / f"v{version}.md", published)
            _write(current, published)
        return version

    def _version(self, explainer_id: str) -> int:
        """The highest version ever published (history included), so a rollback never reuses a number."""
        versions = [e.meta.version for e in self.history(explainer_id)]
        published = self._parse_quietly(self.published_path(explainer_id))
        if published:
            versions.append(published.meta.version)
        return max(versions, default=0)

    def _draft_in_review(self, explainer_id: str) -> Path:
        path = self.draft_path(explainer_id)
        draft = self._parse_quietly(path)
        if draft is None or draft.meta.status != "in_review":
            raise CurationError(f"'{explainer_id}' has no draft waiting for review")
        return path

    def _alias_clashes(self, explainer: Explainer) -> list[str]:
        try:
            others = [e for e in load_explainers(self.root) if e.id != explainer.id]
        except KnowledgeError:
            return []  # a broken published file is reported by ingest; it must not block every edit
        clashes = alias_conflicts([*others, explainer])
        return [c.split(": ", 1)[-1] for c in clashes if c.startswith(f"{explainer.id}.md:")]

    def _parse_quietly(self, path: Path, expect_id: str | None = None) -> Explainer | None:
        if not path.exists():
            return None
        try:
            name = f"{expect_id}.md" if expect_id else str(path)
            return parse_explainer(path.read_text(encoding="utf-8"), name)
        except (KnowledgeError, UnicodeDecodeError):
            return None

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One writer at a time across processes on this machine."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".curation.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _checked_id(explainer_id: str) -> str:
    if not _ID.match(explainer_id or ""):
        raise CurationError("an explainer id is lowercase words joined by hyphens, like 'lip-filler'")
    return explainer_id


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip() + "\n"


def _write(path: Path, text: str) -> None:
    """Write beside, then rename: a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
