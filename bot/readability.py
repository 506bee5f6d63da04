"""Reading grade of patient-facing text: Markdown is flattened to plain sentences first.

Never used on patient messages; only on explainers and on the bot's own replies.
"""

from __future__ import annotations

import re
from functools import lru_cache

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


@lru_cache(maxsize=8192)
def sentence_counts(sentence: str) -> tuple[int, int]:
    """(words, syllables) of one plain sentence, cached: answers reuse the same explainer sentences."""
    return int(textstat.lexicon_count(sentence)), int(textstat.syllable_count(sentence))


def grade_of_sentences(sentences: list[str]) -> float:
    """Flesch-Kincaid grade of sentences taken together, from cached per-sentence counts."""
    words = syllables = 0
    for sentence in sentences:
        w, s = sentence_counts(sentence)
        words, syllables = words + w, syllables + s
    if not sentences or not words:
        return 0.0
    return 0.39 * (words / len(sentences)) + 11.8 * (syllables / words) - 15.59


def reading_grade(markdown: str) -> float:
    """Flesch-Kincaid grade level of the text (textstat 0.7.8, CMU dictionary syllables)."""
    prose = plain_text(markdown)
    if not prose:
        return 0.0
    return float(textstat.flesch_kincaid_grade(prose))
