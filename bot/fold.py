"""What the patient meant, whatever they typed: one folding of the message that redaction, triage and retrieval share.

Drops invisible characters (zero-width spaces and joiners, soft hyphens, direction marks), applies NFKC (full-width
and mathematical letters become plain ones), maps other-script letters that look like Latin ones to those, and
other-script digits to ASCII. A danger sign or an identifier disguised with any of these reads as plain text.
Letters with accents are kept: "visión" stays "visión".
"""

from __future__ import annotations

import unicodedata

# Invisible in a browser, so a word with one inside still reads as the word to a person.
INVISIBLE = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e"
    "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\u3164\ufeff\uffa0"
)
_DROP = dict.fromkeys(map(ord, INVISIBLE), None)
# Cyrillic, Greek and Latin-extension letters that look like a Latin letter in common fonts.
LOOKALIKES = {
    "А": "A", "В": "B", "С": "C", "Е": "E", "Н": "H", "І": "I", "Ј": "J", "К": "K", "М": "M", "О": "O", "Р": "P",
    "Ѕ": "S", "Т": "T", "Х": "X", "У": "Y", "а": "a", "с": "c", "е": "e", "һ": "h", "і": "i", "ј": "j", "к": "k",
    "о": "o", "р": "p", "ѕ": "s", "х": "x", "у": "y", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ɡ": "g", "ı": "i",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P",
    "Τ": "T", "Υ": "Y", "Χ": "X", "α": "a", "ο": "o", "ι": "i", "ρ": "p", "ν": "v", "υ": "u", "κ": "k", "ϲ": "c",
}  # fmt: skip
_LOOKALIKE = str.maketrans(LOOKALIKES)


def fold_with_origin(text: str) -> tuple[str, list[int]]:
    """The folded text and, for each of its characters, the index of the character of `text` it came from."""
    folded: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        piece = unicodedata.normalize("NFKC", char).translate(_DROP).translate(_LOOKALIKE)
        if len(piece) == 1 and piece.isdigit() and not piece.isascii():
            piece = str(unicodedata.digit(piece, 0))
        for out in piece:
            folded.append(out)
            origin.append(index)
    return "".join(folded), origin


def fold(text: str) -> str:
    """The folded text alone (see the module docstring)."""
    return fold_with_origin(text)[0]
