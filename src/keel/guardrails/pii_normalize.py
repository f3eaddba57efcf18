"""Normalization for PII matching, with a map back to the original offsets.

Detection runs on a normalized copy of the text, so a value cannot hide behind look-alike
characters: each non-ASCII character is replaced by its NFKC form (fullwidth `４１１１` becomes
`4111`, `＠` becomes `@`, no-break and thin spaces become spaces), Unicode decimal digits of any
script become ASCII digits, dashes and minus signs become `-`, and invisible characters (format
characters such as zero-width spaces and joiners, soft hyphens, bidirectional controls, variation
selectors, fillers) are dropped. Findings are then mapped back to the original text, so their offsets
cover what the reader sees, hidden characters included.

ASCII text (the common case) is used as it is: no copy, no map.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Invisible characters that are not of category Cf (format), which is dropped as a whole.
_INVISIBLE_EXTRA = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u3164\uffa0"
    "\ufe00\ufe01\ufe02\ufe03\ufe04\ufe05\ufe06\ufe07\ufe08\ufe09\ufe0a\ufe0b\ufe0c\ufe0d\ufe0e\ufe0f"
)
_DASHES = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-"))
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_cache: dict[str, str] = {}


def _normal_char(char: str) -> str:
    """What one non-ASCII character becomes in the normalized text ('' when dropped)."""
    known = _cache.get(char)
    if known is not None:
        return known
    if char in _INVISIBLE_EXTRA or unicodedata.category(char) == "Cf":
        out = ""
    else:
        digit = unicodedata.decimal(char, None)
        out = str(digit) if digit is not None else unicodedata.normalize("NFKC", char).translate(_DASHES)
    if len(_cache) < 8192:
        _cache[char] = out
    return out


@dataclass(frozen=True, slots=True)
class Normalized:
    """A normalized text and, when it differs from the original, where each character came from."""

    text: str
    # starts[i]: index in the original of the character that produced normalized character i;
    # ends[i]: the end of that character in the original. None when the text is the original.
    starts: list[int] | None = None
    ends: list[int] | None = None

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that normalized span [start, end) came from."""
        if self.starts is None or self.ends is None or end <= start:
            return start, end
        return self.starts[start], self.ends[end - 1]


def normalize(text: str) -> Normalized:
    """`text` normalized for matching (see the module docstring), with its offset map."""
    if text.isascii():
        return Normalized(text)
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    position = 0
    changed = False
    for run in _NON_ASCII.finditer(text):
        first, last = run.span()
        if first > position:
            pieces.append(text[position:first])
            starts.extend(range(position, first))
            ends.extend(range(position + 1, first + 1))
        for index in range(first, last):
            char = text[index]
            out = _normal_char(char)
            if out != char:
                changed = True
            pieces.append(out)
            count = len(out)
            if count == 1:
                starts.append(index)
                ends.append(index + 1)
            elif count:
                starts.extend([index] * count)
                ends.extend([index + 1] * count)
        position = last
    if not changed:
        return Normalized(text)
    if position < len(text):
        pieces.append(text[position:])
        starts.extend(range(position, len(text)))
        ends.extend(range(position + 1, len(text) + 1))
    return Normalized("".join(pieces), starts, ends)
