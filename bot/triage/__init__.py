"""Triage: emergency, refer or out of scope, decided before retrieval. Never delegated to an LLM.

Two parts, each small: the readable rules (`rules.py`, a high-precision floor) and a learned head over the query
embedding (`head.py`, with the context layer of `context.py`). A danger sign wins over everything else in a
message; where the head is unsure, the patient is referred with the danger-sign line, never answered. A decision
records which rule or model fired and the model's score, never the message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.triage.head import Head
from bot.triage.rules import Rules

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
LONG_WORDS = 25  # longer messages are also read sentence by sentence, so a buried danger sign is not averaged away


@dataclass(frozen=True)
class Decision:
    kind: str  # emergency | refer | out_of_scope | pass
    rule: str  # the rule that fired ("emergency.vision"), a model decision ("model.emergency"), or "none"
    score: float = 0.0  # the head's probability for `kind` when the model decided or confirmed; else 0


class Triage:
    def __init__(self, rules: dict[str, Any] | None = None, head: Head | None | bool = True):
        self.rules = Rules(rules)
        self.head: Head | None = Head.bundled() if head is True else (head or None)

    def classify(
        self,
        message: str,
        vector: list[float] | None = None,
        embed: Callable[[list[str]], Any] | None = None,
        named: bool = False,
    ) -> Decision:
        """`vector` is the message's query embedding, `embed` encodes more texts (a long message's sentences),
        `named` says whether the message names one of the clinic's treatments."""
        ruled = self.rules.classify(message)
        if ruled.kind == "emergency" or self.head is None or vector is None:
            return Decision(ruled.kind, ruled.rule)
        t = self.head.thresholds
        p = self.head.probabilities(vector, message, named)
        emergency = max(p["emergency"], self._buried_emergency(message, embed, named))
        if emergency >= t.emergency:
            return Decision("emergency", "model.emergency", round(emergency, 3))
        if emergency >= t.unsure_emergency:  # maybe a danger sign: never refused, never answered
            return Decision("refer", "model.unsure", round(emergency, 3))
        if ruled.kind != "pass":
            return Decision(ruled.kind, ruled.rule)
        best = max(("refer", "out_of_scope", "answer"), key=lambda label: p[label])
        if p[best] < t.unsure:  # no class stands out: a clinician, with the danger-sign line
            return Decision("refer", "model.unsure", round(p[best], 3))
        if best == "answer":
            return Decision("pass", "none", round(p["answer"], 3))
        return Decision(best, f"model.{best}", round(p[best], 3))

    def _buried_emergency(self, message: str, embed: Callable[[list[str]], Any] | None, named: bool) -> float:
        """The highest emergency score of any one sentence of a long message (0 for short ones)."""
        if embed is None or self.head is None or len(message.split()) <= LONG_WORDS:
            return 0.0
        sentences = [s for s in _SENTENCE.split(message) if len(s.split()) >= 3]
        if len(sentences) < 2:
            return 0.0
        vectors = embed(sentences)
        scores = (self.head.probabilities(v, s, named)["emergency"] for v, s in zip(vectors, sentences, strict=True))
        return max(scores)


__all__ = ["Decision", "Triage"]
