"""A context layer in the spirit of ConText (Harkema et al., 2009; medspaCy): what a message says about its own
mentions. A danger word may be negated ("no swelling"), hypothetical ("what would a blocked vessel look like"),
historical ("a bruise last year that went away") or about someone in a story rather than the writer or the person
they write for. Each flag is a trigger phrase whose scope runs to the end of its clause, as ConText's do.

The flags are features for the learned head (and readable on their own); they never decide alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CLAUSE = re.compile(r"[.!?;\n]+|,\s*(?:but|and|so)\b|\bbut\b|\bpero\b")

_TRIGGERS = {
    "negated": r"\b(?:no|not|never|without|none|nothing|denies|haven'?t|hasn'?t|didn'?t|don'?t|doesn'?t|isn'?t|aren'?t"
    r"|wasn'?t|weren'?t|sin|nada|ningun[oa]?|tampoco)\b",
    "hypothetical": r"\b(?:if|what if|in case|would|could|might|what (?:are|is) the (?:signs?|symptoms?|risks?)"
    r"|signs? of|symptoms? of|risk of|can (?:\w+ ){0,3}cause|how (?:would|do) (?:i|you) (?:know|tell)|look like"
    r"|just (?:curious|wondering|asking)|in general|si (?:me|se|llega)|qu[eé] pasa si|ser[ií]a|podr[ií]a)\b",
    "historical": r"\b(?:last (?:year|time)|years? ago|used to|went away|cleared up|resolved|got better|in the past"
    r"|back then|as a (?:kid|child|teen)|once had|hace (?:años|un año)|el año pasado|se me quit[oó])\b",
    "other_person": r"\b(?:my (?:friend|cousin|coworker|neighbou?r)|a friend|someone i know|i (?:read|heard|saw)"
    r"|on (?:tiktok|youtube|instagram|reddit|the news)|una amiga|un amigo|le[ií]|vi en)\b",
}
_COMPILED = {name: re.compile(pattern, re.IGNORECASE) for name, pattern in _TRIGGERS.items()}
FLAGS = tuple(_TRIGGERS)


@dataclass(frozen=True)
class Context:
    """For each flag, the share of the message's clauses it covers (0 to 1), and the number of clauses."""

    shares: dict[str, float]
    clauses: int

    def features(self) -> list[float]:
        return [self.shares[name] for name in FLAGS] + [min(self.clauses, 8) / 8]


def read_context(text: str) -> Context:
    clauses = [c for c in _CLAUSE.split(text.lower()) if c and c.strip()]
    count = max(len(clauses), 1)
    shares = {name: sum(bool(p.search(c)) for c in clauses) / count for name, p in _COMPILED.items()}
    return Context(shares, len(clauses))
