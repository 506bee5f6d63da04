"""Redaction with the real Presidio + spaCy pipeline: identifiers go, treatment words stay.

Every case is written fresh (none is copied from evals/pii.jsonl). A case the redactor gets wrong stays in the
table, wrapped in pytest.param(..., marks=pytest.mark.xfail(reason=..., strict=True)), so it turns into a failure (XPASS) the day it is fixed.
"""

from __future__ import annotations

import re
import unicodedata

import pytest

from bot.redact import Redactor
from bot.schemas import Redaction


@pytest.fixture(scope="session")
def redactor() -> Redactor:
    return Redactor()


def ids(table: list) -> list[str]:
    """Test ids from each case's message, so a failure names the message."""
    return [str((case.values if hasattr(case, "marks") else case)[0])[:60] for case in table]


_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
# A placeholder glued to a letter or digit means a span was cut in the middle of a word.
_GLUED = re.compile(r"[^\W_]<[A-Z_]+>|<[A-Z_]+>[^\W_]")


def _readings(text: str) -> list[str]:
    """The output as written, and as a reader would see it (zero-width gone, full-width folded), lower-cased."""
    folded = unicodedata.normalize("NFKC", _ZERO_WIDTH.sub("", text))
    return [text.lower(), folded.lower()]


SPANISH_BRAND_AS_PERSON = (
    "spaCy tags a Spanish phrase ending in a brand ('info del Restylane', 'de Kybella', 'precio de Juvederm') as "
    "PERSON; the allow-list only spares a span whose every word is allowed, so the treatment word is redacted"
)

# (text, must_not_survive, must_survive)
CASES = [
    # ---- names: cues, word-names in context, lowercase after "my name is", relations, sign-offs
    (
        "hi im Hope, is it normal for my lips to be lumpy 4 days after filler?",
        ["Hope"],
        ["lumpy", "4 days after filler"],
    ),
    ("Hello I'm Joy and I'd like to book Xeomin for my frown lines", ["Joy"], ["Xeomin", "frown lines"]),
    ("I'm Faith, 34, thinking about Daxxify", ["Faith"], ["34", "Daxxify"]),
    ("I'm Will, had Kybella 3 months ago", ["Will"], ["Kybella", "3 months ago"]),
    ("this is Grace, do you have Saturday slots for Jeuveau?", ["Grace"], ["Saturday", "Jeuveau"]),
    (
        "my name is marisol gutierrez and i want a consult for sculptra",
        ["marisol", "gutierrez"],
        ["consult", "sculptra"],
    ),
    ("my name is kevin, how long does dysport take to work", ["kevin"], ["dysport"]),
    ("hi my name is sam lee and i had restylane", ["sam", "lee"], ["restylane"]),
    ("my daughter Lily wants lip filler for her birthday, is that allowed", ["Lily"], ["lip filler"]),
    ("my husband Jordan wants Jeuveau, is it ok for men", ["Jordan"], ["Jeuveau", "men"]),
    ("Dr. Okonkwo did my Radiesse last year and I loved it", ["Okonkwo"], ["Radiesse", "last year"]),
    ("Emily Rodriguez here - can I move my Sculptra appt to Friday?", ["Emily", "Rodriguez"], ["Sculptra", "Friday"]),
    ("can i get tox 2 weeks before my wedding? - Summer", ["Summer"], ["tox", "2 weeks"]),
    ("Do you have any openings in March for a HydraFacial? Thanks, Rose", ["Rose"], ["in March", "HydraFacial"]),
    ("Is Jeuveau cheaper than Botox? Cheers, Autumn", ["Autumn"], ["Jeuveau", "Botox"]),
    ("how soon can I work out after Dysport?\nxoxo, Ivy", ["Ivy"], ["Dysport"]),
    ("Will my Juvederm bruise? Thanks so much! Hope", ["Hope"], ["Juvederm", "bruise"]),
    # ---- phones: US, UK, ES, MX, E.164; spaces, dots, dashes, brackets, extensions; full-width digits
    ("please text me on 312.555.0187 about my kybella appt", ["312.555.0187", "0187"], ["kybella"]),
    ("call me at (646) 555-0123 ext. 42 re: coolsculpting", ["(646)", "555-0123", "ext. 42"], ["coolsculpting"]),
    ("text 415-555-0199 anytime about my Botox touch up", ["415-555-0199", "0199"], ["Botox", "touch up"]),
    ("reach me at +1 415 555 0142 about Daxxify", ["415 555 0142", "0142"], ["Daxxify"]),
    ("call +1 (305) 555-0147 ext 3 about Radiesse", ["(305)", "555-0147", "ext 3"], ["Radiesse"]),
    ("UK mobile +44 7700 900456, re: tattoo removal", ["7700", "900456"], ["tattoo removal"]),
    ("please ring 020 7946 0958 about laser resurfacing", ["020 7946", "0958"], ["laser resurfacing"]),
    (
        "UK here, my mobile is 07911 123456, can you call about laser hair removal",
        ["07911", "123456"],
        ["UK here", "laser hair removal"],
    ),
    ("llámame al +34 612 345 678 por favor", ["612 345 678", "345 678"], ["por favor"]),
    ("mi móvil es 612 34 56 78, quiero info del Restylane", ["612 34 56 78"], ["Restylane"]),
    ("mi cel es 55 4321 8765, Juvederm en labios cuánto cuesta", ["4321 8765", "8765"], ["Juvederm", "labios"]),
    ("mi número es 81 2345 6789, quiero saber de Kybella", ["2345 6789"], ["Kybella"]),
    ("you can whatsapp me on +52 1 55 1234 5678", ["1234 5678", "5678"], ["whatsapp"]),
    (
        "my number is ４１５-５５５-０１９８ for the CoolSculpting consult",
        ["415-555-0198", "０１９８"],
        ["CoolSculpting"],
    ),
    # ---- emails: plain, spelled out, zero-width characters inside
    ("my email is dana.k.wells@gmail.com, send me the Radiesse aftercare", ["dana.k.wells", "gmail.com"], ["Radiesse"]),
    ("email ana.sofia@correo.mx the Dysport price list pls", ["ana.sofia", "correo.mx"], ["Dysport", "price list"]),
    ("my email is jsmithbeauty at gmail dot com for the Botox reminders", ["jsmithbeauty", "gmail dot com"], ["Botox"]),
    ("email me at lucy dot perez at yahoo dot com", ["lucy", "perez"], []),
    ("email: tom [at] hotmail [dot] com please", ["tom", "hotmail"], ["please"]),
    ("email is k\u200bim.l\u200bee@outlook.com about Xeomin", ["kim.lee", "outlook.com"], ["Xeomin"]),
    # ---- addresses: US, UK, Spanish, Mexican, with flat numbers
    ("send it to 88 Maple Street Apt 5 please", ["88 Maple", "Apt 5"], ["please"]),
    (
        "my address is 742 Evergreen Terrace, Apt 3B, Springfield, IL 62704",
        ["742 Evergreen", "Apt 3B", "Springfield", "62704"],
        [],
    ),
    ("I live at 12 Baker Street, Flat 4, London NW1 6XE", ["12 Baker", "Flat 4", "NW1 6XE"], []),
    ("vivo en Calle de Alcalá 45, 3º B, 28014 Madrid", ["Alcalá 45", "3º", "28014"], []),
    ("mi dirección es Av. Insurgentes Sur 1234, Col. del Valle, CDMX", ["Insurgentes Sur 1234", "del Valle"], []),
    # ---- dates of birth in many formats
    ("DOB 04/22/1979, interested in Morpheus8", ["04/22/1979"], ["Morpheus8"]),
    ("date of birth: 1985-11-03, Botox for crows feet", ["1985-11-03"], ["Botox", "crows feet"]),
    ("I was born on March 14th, 1990 and want to try Sculptra", ["March 14th", "1990"], ["Sculptra"]),
    ("born 7.9.1968, had Juvederm in 2020", ["7.9.1968"], ["Juvederm", "in 2020"]),
    ("bday 11/30/95 if you need it for the Kybella form", ["11/30/95"], ["Kybella"]),
    ("dob: 3 Feb 1972, looking at CoolSculpting for my flanks", ["3 Feb 1972", "1972"], ["CoolSculpting", "flanks"]),
    ("fecha de nacimiento 12 de mayo de 1987, quiero Dysport", ["12 de mayo", "1987"], ["Dysport"]),
    # ---- member, policy, record numbers
    ("my member ID is XKP448120931 for the insurance form", ["XKP448120931"], ["insurance form"]),
    ("policy number: AB-77310-22, does it cover sclerotherapy", ["AB-77310-22", "77310"], ["sclerotherapy"]),
    ("MRN 00482913, I had a Kybella reaction before", ["00482913"], ["Kybella"]),
    ("Insurance ID W123456789, can you bill for sclerotherapy", ["W123456789"], ["sclerotherapy"]),
    # ---- handles and URLs with names
    ("follow me @glowwith_jess to see my Botox results", ["glowwith_jess"], ["Botox"]),
    ("insta: bella.brows.nyc, do you do lip flips", ["bella.brows.nyc"], ["lip flips"]),
    ("my tiktok is @lipsbylaura_ if you want to see my Juvederm", ["lipsbylaura"], ["Juvederm"]),
    (
        "here's my profile https://www.instagram.com/sarah.jenkins.beauty/ for before pics",
        ["sarah.jenkins"],
        ["before pics"],
    ),
    ("facebook.com/maria.lopez.52 has my before photos", ["maria.lopez"], ["before photos"]),
    # ---- cards (Luhn-valid test numbers) and national ids
    ("my card is 4111 1111 1111 1111 for the deposit", ["4111", "1111"], ["deposit"]),
    ("visa 5555-5555-5555-4444 for the deposit on Morpheus8", ["5555-5555", "4444"], ["Morpheus8"]),
    ("amex 3782 822463 10005, please charge the Dysport", ["822463", "10005"], ["Dysport"]),
    ("SSN 123-45-6789 for the financing application", ["123-45-6789", "6789"], ["financing"]),
    ("my social is 078-05-1120 if you need it", ["078-05-1120", "1120"], ["if you need it"]),
    ("my NHS number is 943 476 5919", ["943 476 5919", "5919"], []),
    ("mi DNI es 12345678Z, quiero cita para Botox", ["12345678Z", "12345678"], ["Botox"]),
    ("NIE X1234567L, interesada en Restylane", ["X1234567L", "1234567"], ["Restylane"]),
    ("CURP GODE561231HDFRRN09 para la factura", ["GODE561231HDFRRN09", "561231"], ["factura"]),
]


@pytest.mark.parametrize(("text", "must_not_survive", "must_survive"), CASES, ids=ids(CASES))
def test_identifiers_go_and_treatment_words_stay(
    redactor: Redactor, text: str, must_not_survive: list[str], must_survive: list[str]
) -> None:
    result = redactor.redact(text)
    for fragment in must_not_survive:
        for reading in _readings(result.text):
            assert fragment.lower() not in reading, f"{fragment!r} survived: {result.text!r}"
    for fragment in must_survive:
        assert fragment in result.text, f"{fragment!r} was removed: {result.text!r}"
    assert result.entities, f"nothing detected in {text!r}"
    assert not _GLUED.search(result.text), f"a placeholder cuts a word: {result.text!r}"


# Messages with nothing to redact: treatment brands, timing words, and words that are also names.
CLEAN = [
    "Botox, Dysport, Xeomin, Jeuveau, Daxxify: which lasts longest?",
    "Juvederm vs Restylane vs Sculptra vs Radiesse for cheeks",
    "Kybella or CoolSculpting for a double chin? Morpheus8 after?",
    "I had filler 3 months ago and the swelling lasted 2 weeks",
    "I hope the bruising is gone by my trip in March, will it bruise much?",
    "can I wear my rose gold earrings during laser?",
    "Rose gold jewelry ok during IPL?",
    "Will it bruise much after Juvederm?",
    "Hope you're open Sunday, I need a Botox touch up",
    "Summer is coming, is laser hair removal ok on a tan?",
    "does Daxxify really last 6 months? got it 2 weeks ago",
    "Restylane Kysse or Juvederm Volbella for thin lips?",
    "precio de Juvederm en labios por favor",
]


@pytest.mark.parametrize("text", CLEAN)
def test_messages_without_identifiers_are_unchanged(redactor: Redactor, text: str) -> None:
    result = redactor.redact(text)
    assert result.text == text
    assert result.entities == ()


# (text, the placeholder type that must appear)
TYPED = [
    ("please text me on 312.555.0187", "PHONE"),
    ("my email is dana.k.wells@gmail.com", "EMAIL"),
    ("my card is 4111 1111 1111 1111", "CARD"),
    ("SSN 123-45-6789", "NATIONAL_ID"),
    ("my NHS number is 943 476 5919", "NATIONAL_ID"),
    ("mi DNI es 12345678Z", "NATIONAL_ID"),
    ("NIE X1234567L", "NATIONAL_ID"),
    ("CURP GODE561231HDFRRN09", "NATIONAL_ID"),
    ("DOB 04/22/1979", "DOB"),
    ("follow me @glowwith_jess", "HANDLE"),
    ("see https://www.instagram.com/sarah.jenkins.beauty/", "URL"),
    ("my member ID is XKP448120931", "ID"),
    ("send it to 88 Maple Street Apt 5", "ADDRESS"),
    ("my name is kevin", "PERSON"),
]


@pytest.mark.parametrize(("text", "kind"), TYPED, ids=ids(TYPED))
def test_placeholders_are_typed(redactor: Redactor, text: str, kind: str) -> None:
    result = redactor.redact(text)
    assert f"<{kind}>" in result.text, result.text
    assert [e.type for e in result.entities] == [kind], result.entities


# (text, the original spans the entities must point at, in order)
OFFSETS = [
    ("Hi, I'm Grace. Call 415-555-0199 or mail grace.h@example.org", ["Grace", "415-555-0199", "grace.h@example.org"]),
    ("my number is ４１５-５５５-０１９８ ok", ["４１５-５５５-０１９８"]),
    ("email is k\u200bim.l\u200bee@outlook.com about Xeomin", ["k\u200bim.l\u200bee@outlook.com"]),
    ("DOB 04/22/1979 and SSN 123-45-6789", ["04/22/1979", "123-45-6789"]),
]


def _rebuild(text: str, result: Redaction) -> str:
    pieces, cursor = [], 0
    for entity in result.entities:
        pieces += [text[cursor : entity.start], f"<{entity.type}>"]
        cursor = entity.end
    return "".join(pieces) + text[cursor:]


@pytest.mark.parametrize(("text", "spans"), OFFSETS, ids=ids(OFFSETS))
def test_entity_offsets_point_at_the_original_text(redactor: Redactor, text: str, spans: list[str]) -> None:
    result = redactor.redact(text)
    assert [text[e.start : e.end] for e in result.entities] == spans
    starts = [e.start for e in result.entities]
    assert starts == sorted(starts)
    for before, after in zip(result.entities, result.entities[1:], strict=False):
        assert before.end <= after.start
    for entity in result.entities:
        assert entity.public()["start"] == entity.start and entity.public()["end"] == entity.end
        assert 0.5 <= entity.score <= 1.0
    assert _rebuild(text, result) == result.text


def test_empty_message(redactor: Redactor) -> None:
    result = redactor.redact("")
    assert result.text == ""
    assert result.entities == ()


def test_long_message_is_redacted_throughout(redactor: Redactor) -> None:
    sentence = "I had Botox in my forehead 3 months ago and wonder if the lines will come back soon. "
    filler = sentence * (20_000 // len(sentence) + 1)
    text = ("Hi, my email is jo.bloggs@example.com. " + filler)[:10_000]
    text += " call me on 415-555-0163 "
    text = (text + filler)[: 20_000 - len(" Thanks, Rose")] + " Thanks, Rose"
    assert len(text) == 20_000
    result = redactor.redact(text)
    assert "jo.bloggs" not in result.text
    assert "415-555-0163" not in result.text
    assert not result.text.endswith("Rose")
    assert [e.type for e in result.entities] == ["EMAIL", "PHONE", "PERSON"]
    assert result.text.count("Botox") == text.count("Botox")
    assert _rebuild(text, result) == result.text
