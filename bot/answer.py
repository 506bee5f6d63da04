"""Grounded answers: an extractive composer over retrieved explainer sentences, and optional LLM backends.

Every answer is made only from approved explainer text; an LLM's sentence that the text does not support
sends the reply back to the extractive answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from bot.index import Row
from bot.readability import grade_of_sentences
from bot.retrieve import Retrieval, section_intents, tokens
from bot.schemas import Source

MAX_GRADE = 8.0
NEAR_DUPLICATE = 0.82  # cosine above which a second sentence only repeats the first
_DURATION = r"\b\d+(?:\s*(?:to|-|or)\s*\d+)?\s*(?:minutes?|hours?|days?|weeks?|months?|years?)\b"
# What kind of sentence answers what kind of question: (question pattern, answering-sentence pattern).
ANSWER_CUES: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = tuple(
    (re.compile(q, re.IGNORECASE), re.compile(a, re.IGNORECASE))
    for q, a in (
        (r"\blast(?:s|ing)?\b|\bwear(?:s)? off\b|\bpermanent\b|\bforever\b", r"\blast|\bpermanent|\bfade|\bwear"),
        (
            r"\bhow long (?:until|before|till|to see|does it take)\b|\bkick in\b|\bwhen will i see\b|\bstart working\b",
            _DURATION,
        ),
        (
            r"\bhow (?:many|often)\b|\bsessions?\b|\btreatments? (?:do|will)\b",
            r"\b\d+(?:\s*(?:to|-|or)\s*\d+)?\s*(?:sessions?|treatments?|visits?)\b|\bevery\b|\bapart\b",
        ),
        (
            r"\bhurts?\b|\bpainful\b|\bpain\b|\bsting\b|\bnumb",
            r"\bpain|\bhurt|\bpinch|\bsting|\bnumb|\bdiscomfort|\bsore|\bcream",
        ),
        (
            r"\bcost|\bprice|\bhow much (?:is|does|are|for)\b|\bexpensive|\bcheap|\bafford",
            r"\bcost|\bprice|\bpay|\bdepends|\bfee",
        ),
        (
            r"\bdowntime\b|\brecover|\bback to work\b|\bheal",
            r"\bdowntime|\brecover|\bheal|\bback to|\bwork|" + _DURATION,
        ),
        (
            r"\brisks?\b|\bside effects?\b|\bsafe\b|\bdanger|\bcomplication",
            r"\brisk|\bside effect|\brare|\bcommon|\bserious",
        ),
    )
)


@dataclass
class Composed:
    text: str
    sources: list[Source]


class AnswerBackend(Protocol):
    """One method: turn a question and its retrieval into a grounded answer, or None to fall back."""

    def compose(self, question: str, retrieval: Retrieval) -> Composed | None: ...


class ExtractiveAnswerer:
    """Picks the explainer sentences that best answer the question, in the explainer's own words."""

    def __init__(self, max_words: int = 120, max_sentences: int = 4):
        self.max_words = max_words
        self.max_sentences = max_sentences

    def compose(self, question: str, retrieval: Retrieval) -> Composed | None:
        snap = retrieval.snapshot
        if snap is None or not retrieval.hits or retrieval.sentence_similarity is None:
            return None
        primary = retrieval.hits[0].row.explainer_id
        allowed = {primary}
        if retrieval.comparing:
            allowed |= set(retrieval.mentioned)
        intents = section_intents(question)
        sims = _entity_neutral(retrieval, snap)
        chunk_rank: dict[str, int] = {}
        for rank, hit in enumerate(retrieval.hits[:4]):
            if hit.row.explainer_id in allowed:
                chunk_rank.setdefault(hit.row.id, rank)
        for row in snap.sections:  # the section the question asks about, even if it ranked lower
            if row.explainer_id in allowed and row.section in intents:
                chunk_rank.setdefault(row.id, 1)
        cues = [answer for question_cue, answer in ANSWER_CUES if question_cue.search(question)]
        candidates = [
            (i, rank)
            for chunk_id, rank in chunk_rank.items()
            for i in snap.sentences_of.get(chunk_id, [])
            if not snap.sentences[i].text.rstrip().endswith("?") and "Sample content" not in snap.sentences[i].text
        ]
        overlap = _distinctive_overlap(question, [snap.sentences[i].text for i, _ in candidates])
        scored: list[tuple[float, int]] = []
        for (i, rank), shared in zip(candidates, overlap, strict=True):
            score = float(sims[i]) - 0.06 * rank + 0.2 * shared
            if snap.sentences[i].section in intents:
                score += 0.08
            if cues and any(cue.search(snap.sentences[i].text) for cue in cues):
                score += 0.12
            scored.append((score, i))
        scored.sort(reverse=True)
        chosen: list[int] = []
        words = 0
        for score, i in scored:
            if len(chosen) >= self.max_sentences:
                break
            n = len(snap.sentences[i].text.split())
            if chosen and (words + n > self.max_words or score < scored[0][0] - 0.18):
                continue
            if any(float(snap.sentence_vectors[i] @ snap.sentence_vectors[j]) > NEAR_DUPLICATE for j in chosen):
                continue
            chosen.append(i)
            words += n
        if retrieval.comparing:
            chosen = _cover_each(chosen, scored, snap.sentences, allowed)
        rows = _plain_enough([snap.sentences[i] for i in chosen])
        if not rows:
            return None
        ordered = _reading_order(rows, [h.row.id for h in retrieval.hits])
        return Composed(" ".join(r.text for r in ordered), _sources(ordered))


def _entity_neutral(retrieval: Retrieval, snap: object) -> np.ndarray:
    """Sentence similarity with the named treatment taken out of the query, so that sentences are
    ranked by what they say about it, not by how often they repeat its name."""
    if retrieval.entity_vector is None or not retrieval.query_vector:
        return retrieval.sentence_similarity
    query = np.asarray(retrieval.query_vector, dtype=np.float32) - 0.8 * retrieval.entity_vector
    query /= max(float(np.linalg.norm(query)), 1e-6)
    return snap.sentence_vectors @ query  # type: ignore[attr-defined,no-any-return]


def _distinctive_overlap(question: str, sentences: list[str]) -> list[float]:
    """Share of the question's distinctive words (not in most candidate sentences) that each sentence has."""
    query = set(tokens(question))
    bags = [set(tokens(s)) for s in sentences]
    if not query or not bags:
        return [0.0] * len(sentences)
    common = {t for t in query if sum(t in b for b in bags) > len(bags) / 2}
    distinctive = query - common
    if not distinctive:
        return [0.0] * len(sentences)
    return [len(distinctive & b) / len(distinctive) for b in bags]


def _cover_each(chosen: list[int], scored: list[tuple[float, int]], rows: list[Row], allowed: set[str]) -> list[int]:
    """A comparison needs at least one plain sentence from each treatment compared."""
    have = {rows[i].explainer_id for i in chosen}
    for _, i in scored:
        plain = grade_of_sentences([rows[i].text]) <= MAX_GRADE
        if rows[i].explainer_id not in have and rows[i].explainer_id in allowed and plain:
            chosen.append(i)
            have.add(rows[i].explainer_id)
    return chosen


def _plain_enough(rows: list[Row]) -> list[Row]:
    """Drop the hardest sentence until the answer reads at grade MAX_GRADE or below, but never the only
    sentence about one of the treatments being compared."""
    while len(rows) > 1 and grade_of_sentences([r.text for r in rows]) > MAX_GRADE:
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.explainer_id] = counts.get(r.explainer_id, 0) + 1
        droppable = [r for r in rows if counts[r.explainer_id] > 1]
        if not droppable:
            break
        rows.remove(max(droppable, key=lambda r: grade_of_sentences([r.text])))
    return rows


def _reading_order(rows: list[Row], chunk_order: list[str]) -> list[Row]:
    rank = {cid: n for n, cid in enumerate(chunk_order)}

    def key(row: Row) -> tuple[int, int]:
        return rank.get(row.chunk_id, 99), int(row.id.rsplit("~", 1)[-1])

    return sorted(rows, key=key)


def _sources(rows: list[Row]) -> list[Source]:
    seen: dict[tuple[str, str], Source] = {}
    for row in rows:
        seen.setdefault(
            (row.explainer_id, row.section),
            Source(row.explainer_id, row.title, row.section, row.version, row.reviewed_on),
        )
    return list(seen.values())


# ---- the grounding check for generated text ----------------------------------------------------

_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_QUANTITY = re.compile(
    r"(\d+(?:[.,]\d+)?)\s*(minute|hour|day|week|month|year|session|treatment|visit|unit|syringe|percent|%|in \d+)s?\b",
    re.IGNORECASE,
)


def _quantities(text: str) -> set[tuple[str, str]]:
    return {(n, unit.lower()) for n, unit in _QUANTITY.findall(text)}


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def supported(
    answer: str, source_text: str, sentence_vectors: np.ndarray, embed: object, threshold: float = 0.6
) -> bool:
    """Each sentence must be close in meaning to some source sentence, and every number must be in the source."""
    source_numbers = set(_NUMBER.findall(source_text))
    sentences = [s for s in _SENTENCE_END.split(answer.strip()) if s]
    if not sentences:
        return False
    source_quantities = _quantities(source_text)
    for sentence in sentences:
        if any(n not in source_numbers for n in _NUMBER.findall(sentence)):
            return False
        if not _quantities(sentence) <= source_quantities:  # "2 years" needs "2 years" in the text, not just a 2
            return False
    vectors = np.asarray(embed.encode(sentences), dtype=np.float32)  # type: ignore[attr-defined]
    best = (vectors @ sentence_vectors.T).max(axis=1)
    return bool((best >= threshold).all())
