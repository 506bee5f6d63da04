"""Reading grade of patient-facing text: Markdown is flattened to plain sentences first.

Never used on patient messages; only on explainers and on the bot's own replies.
"""

from __future__ import annotations

import re

import textstat

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s.*$", re.MULTILINE)
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+", re.MULTILINE)
_QUOTE_MARK = re.compile(r"^\s*>\s?", re.MULTILINE)
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)")
_ENDS_SENTENCE = re.compile(r"[.!?:;]['\")]*$")


def plain_text(markdown: str) -> str:
    """Markdown to plain prose: headings dropped, list items and lines made into sentences."""
    text = _HEADING.sub("", markdown)
    text = _LINK.sub(r"\1", text)
    text = _QUOTE_MARK.sub("", text)
    text = _LIST_MARK.sub("", text)
    text = _EMPHASIS.sub("", text)
    sentences = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if not _ENDS_SENTENCE.search(line):
            line += "."
        sentences.append(line)
    return " ".join(sentences)


def reading_grade(markdown: str) -> float:
    """Flesch-Kincaid grade level of the text (textstat 0.7.8, CMU dictionary syllables)."""
    prose = plain_text(markdown)
    if not prose:
        return 0.0
    return float(textstat.flesch_kincaid_grade(prose))
