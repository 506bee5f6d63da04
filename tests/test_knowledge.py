"""Explainer parsing: front-matter errors name the file and line, chunks, content hashes, approval filter."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import KnowledgeError
from bot.knowledge import FAQ_HEADING, NOT_INDEXED, NOTICE, approved, chunks, load_explainers, parse_explainer


def explainer_text(
    id: str = "sample",
    *,
    status: str | None = "approved",
    version: str = "1",
    reviewed_on: str = "2026-01-10",
    review_due: str = "2027-01-10",
    aliases: tuple[str, ...] = ("sample thing",),
    title: str = "Sample explainer",
    body: str | None = None,
) -> str:
    """A valid explainer; keyword arguments break one thing at a time.

    Line numbers of the result (with the defaults): 1 '---', 2 id, 3 title, 4 category, 5 aliases,
    6.. one line per alias, then status, version, reviewed_by, reviewed_on, review_due, sources (+2), '---'.
    """
    lines = ["---", f"id: {id}", f"title: {title}", "category: treatment", "aliases:"]
    lines += [f"  - {alias}" for alias in aliases]
    if status is not None:
        lines.append(f"status: {status}")
    lines += [
        f"version: {version}",
        "reviewed_by: Test Reviewer",
        f"reviewed_on: {reviewed_on}",
        f"review_due: {review_due}",
        "sources:",
        '  - "Source one."',
        '  - "Source two."',
        "---",
    ]
    if body is None:
        body = VALID_BODY
    return "\n".join(lines) + "\n" + body


VALID_BODY = f"""
> {NOTICE}

## What it is
A short treatment for tests.

## Aftercare
Keep the area clean.
Wear sunscreen.

## {FAQ_HEADING}
**Does it hurt?**
Most people feel a quick pinch.

**How long does it last?**
About three months.

**Can I wear makeup after?**
Wait one day.
"""


def line_of(text: str, needle: str) -> int:
    """1-based number of the first line of `text` that starts with `needle`."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith(needle):
            return number
    raise AssertionError(f"{needle!r} not in the test file")


def write(folder: Path, name: str, content: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def problems_of(knowledge_dir: Path) -> list[str]:
    with pytest.raises(KnowledgeError) as caught:
        load_explainers(knowledge_dir)
    assert caught.value.problems, "KnowledgeError carries no problems"
    return caught.value.problems


# ---- the broken-file table ---------------------------------------------------------------------
# Each case: files to write (name -> content), the file that must be blamed, the line (computed from the
# content, or a number), and a phrase the problem must contain so an editor knows what to fix.

_BAD_YAML = explainer_text(title="Sample: explainer: with colons")
_MISSING_STATUS = explainer_text(status=None)
_BAD_STATUS = explainer_text(status="published")
_VERSION_ZERO = explainer_text(version="0")
_WRONG_ID = explainer_text(id="another-name")
_DUE_BEFORE = explainer_text(reviewed_on="2026-05-01", review_due="2026-04-01")
_NO_SECTIONS = explainer_text(body="Just a paragraph of text and no headings at all.\nA second line.\n")
_EMPTY_SECTION = explainer_text(
    body=f"\n> {NOTICE}\n\n## What it is\nSome text.\n\n## Aftercare\n\n## Downtime\nNone.\n"
)
_ALIAS_FIRST = explainer_text(id="alpha", aliases=("alpha", "Glow Up"))
_ALIAS_SECOND = explainer_text(id="beta", aliases=("beta", "glow up"))
_NOT_UTF8 = explainer_text().encode("utf-8").replace(b"Keep the area clean.", b"Keep the \xe1rea clean.")
_NO_FRONT = "# Sample explainer\n\n## What it is\nText without front matter.\n"

BROKEN = [
    pytest.param(
        {"sample.md": _BAD_YAML}, "sample.md", line_of(_BAD_YAML, "title:"), "not valid YAML", id="invalid-yaml"
    ),
    pytest.param({"sample.md": _MISSING_STATUS}, "sample.md", 1, "'status'", id="missing-status"),
    pytest.param({"sample.md": _MISSING_STATUS}, "sample.md", 1, "required", id="missing-status-says-required"),
    pytest.param({"sample.md": _BAD_STATUS}, "sample.md", line_of(_BAD_STATUS, "status:"), "'status'", id="bad-status"),
    pytest.param(
        {"sample.md": _BAD_STATUS},
        "sample.md",
        line_of(_BAD_STATUS, "status:"),
        "approved",
        id="bad-status-lists-values",
    ),
    pytest.param(
        {"sample.md": _VERSION_ZERO},
        "sample.md",
        line_of(_VERSION_ZERO, "version:"),
        "greater than or equal to 1",
        id="version-0",
    ),
    pytest.param(
        {"sample.md": _WRONG_ID},
        "sample.md",
        line_of(_WRONG_ID, "id:"),
        "must equal the file name 'sample'",
        id="id-not-file-name",
    ),
    pytest.param(
        {"sample.md": _DUE_BEFORE},
        "sample.md",
        line_of(_DUE_BEFORE, "review_due:"),
        "review_due must be after reviewed_on",
        id="review-due-before-reviewed-on",
    ),
    pytest.param(
        {"sample.md": _NO_SECTIONS},
        "sample.md",
        line_of(_NO_SECTIONS, "Just a paragraph"),
        "no '## ' sections",
        id="no-sections",
    ),
    pytest.param({"sample.md": _NO_SECTIONS}, "sample.md", None, "no '## ' sections", id="no-sections-phrase"),
    pytest.param(
        {"sample.md": _EMPTY_SECTION},
        "sample.md",
        line_of(_EMPTY_SECTION, "## Aftercare"),
        "section 'Aftercare' is empty",
        id="empty-section",
    ),
    pytest.param(
        {"sample.md": _EMPTY_SECTION}, "sample.md", None, "section 'Aftercare' is empty", id="empty-section-phrase"
    ),
    pytest.param(
        {"alpha.md": _ALIAS_FIRST, "beta.md": _ALIAS_SECOND},
        "beta.md",
        line_of(_ALIAS_SECOND, "  - glow up"),
        "alias 'glow up' is also claimed by 'alpha'",
        id="duplicate-alias",
    ),
    pytest.param(
        {"alpha.md": _ALIAS_FIRST, "beta.md": _ALIAS_SECOND},
        "beta.md",
        None,
        "alias 'glow up' is also claimed by 'alpha'",
        id="duplicate-alias-phrase",
    ),
    pytest.param(
        {"sample.md": _NOT_UTF8},
        "sample.md",
        _NOT_UTF8.split(b"\xe1")[0].count(b"\n") + 1,
        "not valid UTF-8",
        id="non-utf8",
    ),
    pytest.param({"sample.md": _NO_FRONT}, "sample.md", 1, "no front matter", id="no-front-matter"),
]


@pytest.mark.parametrize(("files", "blamed", "line", "phrase"), BROKEN)
def test_broken_file_is_reported_with_path_line_and_phrase(
    tmp_path: Path, files: dict[str, str | bytes], blamed: str, line: int | None, phrase: str
) -> None:
    folder = tmp_path / "explainers"
    for name, content in files.items():
        write(folder, name, content)
    problems = problems_of(tmp_path)
    path = folder / blamed
    prefix = f"{path}:{line}:" if line is not None else f"{path}:"
    matching = [p for p in problems if p.startswith(prefix) and phrase in p]
    assert matching, f"no problem starting {prefix!r} containing {phrase!r}; got {problems}"


def test_problems_from_several_files_are_reported_together(tmp_path: Path) -> None:
    folder = tmp_path / "explainers"
    write(folder, "sample.md", _VERSION_ZERO)
    write(folder, "other.md", _NO_FRONT)
    write(folder, "fine.md", explainer_text(id="fine", aliases=("fine",)))
    problems = problems_of(tmp_path)
    assert any(p.startswith(f"{folder / 'sample.md'}:") for p in problems)
    assert any(p.startswith(f"{folder / 'other.md'}:") for p in problems)
    assert not any(p.startswith(f"{folder / 'fine.md'}:") for p in problems)


def test_missing_explainers_folder_is_a_knowledge_error(tmp_path: Path) -> None:
    problems = problems_of(tmp_path)
    assert any("no explainers folder" in p for p in problems)


def test_retired_explainer_may_reuse_an_alias(tmp_path: Path) -> None:
    folder = tmp_path / "explainers"
    write(folder, "alpha.md", _ALIAS_FIRST)
    write(folder, "beta.md", explainer_text(id="beta", status="retired", aliases=("glow up",)))
    assert sorted(e.id for e in load_explainers(tmp_path)) == ["alpha", "beta"]


# ---- a valid file ------------------------------------------------------------------------------


def test_valid_file_parses(tmp_path: Path) -> None:
    write(tmp_path / "explainers", "sample.md", explainer_text())
    (explainer,) = load_explainers(tmp_path)
    assert explainer.id == "sample"
    assert explainer.meta.title == "Sample explainer"
    assert explainer.meta.status == "approved"
    assert explainer.meta.version == 1
    assert explainer.meta.aliases == ["sample thing"]
    assert explainer.meta.sources == ["Source one.", "Source two."]
    assert [s.heading for s in explainer.sections] == ["What it is", "Aftercare", FAQ_HEADING]
    assert explainer.sections[1].text == "Keep the area clean.\nWear sunscreen."
    assert NOTICE in explainer.body


def test_aliases_are_trimmed_and_lowercased() -> None:
    explainer = parse_explainer(explainer_text(aliases=("  Baby Botox ", "LIP FLIP")), "sample.md")
    assert explainer.meta.aliases == ["baby botox", "lip flip"]


# ---- chunks --------------------------------------------------------------------------------------


def test_chunks_are_one_per_section_plus_one_per_faq_question() -> None:
    explainer = parse_explainer(explainer_text(), "sample.md")
    got = chunks(explainer)
    assert [c.id for c in got] == [
        "sample#what-it-is",
        "sample#aftercare",
        "sample#faq-1",
        "sample#faq-2",
        "sample#faq-3",
    ]
    assert len({c.id for c in got}) == len(got)
    faq = [c for c in got if c.section == FAQ_HEADING]
    assert [c.text for c in faq] == [
        "Does it hurt?\nMost people feel a quick pinch.",
        "How long does it last?\nAbout three months.",
        "Can I wear makeup after?\nWait one day.",
    ]
    by_id = {c.id: c for c in got}
    assert by_id["sample#aftercare"].text == "Keep the area clean.\nWear sunscreen."
    for chunk in got:
        assert chunk.explainer_id == "sample"
        assert chunk.title == "Sample explainer"
        assert chunk.version == 1
        assert chunk.reviewed_on == "2026-01-10"
        assert NOTICE not in chunk.text


def test_chunk_count_matches_sections_and_questions_of_a_real_explainer() -> None:
    path = Path(__file__).resolve().parent.parent / "knowledge" / "explainers" / "botulinum-toxin.md"
    explainer = parse_explainer(path.read_text(encoding="utf-8"), str(path))
    faq = next(s for s in explainer.sections if s.heading == FAQ_HEADING)
    questions = [line for line in faq.text.splitlines() if line.startswith("**") and line.rstrip().endswith("**")]
    assert questions
    indexed = [s for s in explainer.sections if s.heading not in NOT_INDEXED]  # the red-flag box repeats a section
    assert len(indexed) == len(explainer.sections) - 1
    assert len(chunks(explainer)) == len(indexed) - 1 + len(questions)


def _hashes(text: str) -> dict[str, str]:
    return {c.id: c.content_hash for c in chunks(parse_explainer(text, "sample.md"))}


def test_content_hash_is_stable_when_nothing_changes() -> None:
    assert _hashes(explainer_text()) == _hashes(explainer_text())


def test_content_hash_changes_only_for_the_edited_section() -> None:
    before = _hashes(explainer_text())
    after = _hashes(explainer_text(body=VALID_BODY.replace("Wear sunscreen.", "Wear sunscreen daily.")))
    assert after.keys() == before.keys()
    assert after["sample#aftercare"] != before["sample#aftercare"]
    unchanged = {k: v for k, v in after.items() if k != "sample#aftercare"}
    assert unchanged == {k: v for k, v in before.items() if k != "sample#aftercare"}


def test_content_hash_changes_when_a_faq_answer_changes() -> None:
    before = _hashes(explainer_text())
    after = _hashes(explainer_text(body=VALID_BODY.replace("About three months.", "About four months.")))
    assert after["sample#faq-2"] != before["sample#faq-2"]
    assert after["sample#faq-1"] == before["sample#faq-1"]


def test_content_hash_changes_with_a_new_version() -> None:
    before = _hashes(explainer_text())
    after = _hashes(explainer_text(version="2"))
    assert all(after[k] != before[k] for k in before)


# ---- approval filter ---------------------------------------------------------------------------


def test_approved_keeps_only_approved_explainers(tmp_path: Path) -> None:
    folder = tmp_path / "explainers"
    for status in ("draft", "in_review", "approved", "retired"):
        name = f"x-{status.replace('_', '-')}"
        write(folder, f"{name}.md", explainer_text(id=name, status=status, aliases=(name,)))
    loaded = load_explainers(tmp_path)
    assert len(loaded) == 4
    assert [e.id for e in approved(loaded)] == ["x-approved"]
    assert approved([e for e in loaded if e.meta.status == "draft"]) == []
