"""The readable rules: the high-precision floor of triage. The rules live in `bot/rules/triage.yaml`.

Reads the raw message (redaction can remove words that matter) but never stores or logs it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

_CLAUSE_BREAK = re.compile(r"[.!?;\n]|,\s*(?:but|and|so)\b|\bbut\b")


@dataclass(frozen=True)
class Ruling:
    kind: str  # emergency | refer | out_of_scope | pass
    rule: str  # the id of the rule that fired, or "none"


@dataclass(frozen=True)
class _Rule:
    id: str
    kind: str
    patterns: tuple[re.Pattern[str], ...]
    needs: tuple[re.Pattern[str], ...]
    general_ok: bool
    unless_aesthetic: bool


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


class Rules:
    def __init__(self, rules: dict[str, Any] | None = None):
        if rules is None:
            rules = yaml.safe_load(resources.files("bot.rules").joinpath("triage.yaml").read_text("utf-8"))
        assert rules is not None
        self._negation = _compile(rules["negations"])
        self._general = _compile(rules["general_question"])
        self._present = _compile(rules["present_signs"])
        self._past = _compile(rules["past_clause"])
        self._aesthetic = _compile(rules["aesthetic_vocabulary"])
        self.rules = tuple(
            _Rule(
                id=r["id"],
                kind=r["kind"],
                patterns=tuple(_compile(p) for p in r["patterns"]),
                needs=tuple(_compile(p) for p in r.get("needs", [])),
                general_ok=bool(r.get("general_ok", False)),
                unless_aesthetic=bool(r.get("unless_aesthetic", False)),
            )
            for r in rules["rules"]
        )

    def classify(self, message: str) -> Ruling:
        text = _plain(message)
        general = self._is_general_question(text)
        aesthetic = bool(self._aesthetic.search(text))
        for rule in self.rules:
            if rule.unless_aesthetic and aesthetic:
                continue
            if rule.needs and not any(n.search(text) for n in rule.needs):
                continue
            for pattern in rule.patterns:
                if any(self._counts(text, m, rule, general) for m in pattern.finditer(text)):
                    return Ruling(rule.kind, rule.id)
        return Ruling("pass", "none")

    def _counts(self, text: str, match: re.Match[str], rule: _Rule, general: bool) -> bool:
        if rule.kind in ("emergency", "refer") and self._negated(text, match.start()):
            return False
        if rule.kind == "emergency" and rule.id != "emergency.self_harm" and self._past.search(_clause(text, match)):
            return False
        # a general or hypothetical question about a danger sign is not a report of one
        return not (rule.general_ok and general)

    def _negated(self, text: str, start: int) -> bool:
        clause_start = 0
        for brk in _CLAUSE_BREAK.finditer(text, 0, start):
            clause_start = brk.end()
        return bool(self._negation.search(text[clause_start:start]))

    def _is_general_question(self, text: str) -> bool:
        """A question about danger signs in general, not a report of something happening now."""
        return bool(self._general.search(text)) and not self._present.search(text)


def _clause(text: str, match: re.Match[str]) -> str:
    """The clause around a match: from the last break before it to the next break after it."""
    start = 0
    for brk in _CLAUSE_BREAK.finditer(text, 0, match.start()):
        start = brk.end()
    after = _CLAUSE_BREAK.search(text, match.end())
    return text[start : after.start() if after else len(text)]


def _plain(message: str) -> str:
    return re.sub(r"[’‘`´]", "'", message).lower()
