"""Normalization for PII matching, with a map back to the original offsets.

Detection runs on a normalized copy of the text, so a value cannot hide behind look-alike
characters: each non-ASCII character is replaced by its NFKC form (fullwidth `４１１１` becomes
`4111`, `＠` becomes `@`, no-break and thin spaces become spaces), Unicode decimal digits of any
script become ASCII digits, dashes and minus signs become `-`, and invisible characters (format
characters such as zero-width spaces and joiners, soft hyphens, bidirectional controls, variation
selectors, fillers) are dropped. Findings are then mapped back to the original text, so their offsets
cover what the reader sees, hidden characters included.

Text that normalization would not change (ASCII text, and most other text: a C-speed check) is used
as it is: no copy, no map.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass

# Format characters (category Cf, Unicode 14) and other invisible characters: dropped.
_INVISIBLE = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
    "\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180d\u3164\uffa0\ufe00-\ufe0f"
)
_DASH_CHARS = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
_DASHES = str.maketrans(dict.fromkeys(_DASH_CHARS, "-"))
_DROP = re.compile(f"[{_INVISIBLE}]")
# What NFKC leaves alone but matching needs changed: invisible characters, dashes, and digits of
# other scripts (`[^\D0-9]`: a decimal digit that is not an ASCII one).
_SPECIAL = re.compile(f"[{_INVISIBLE}{_DASH_CHARS}]")
_FOREIGN_DIGIT = re.compile(r"[^\D0-9]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_cache: dict[str, str] = {}


def _normal_char(char: str) -> str:
    """What one non-ASCII character becomes in the normalized text ('' when dropped)."""
    known = _cache.get(char)
    if known is not None:
        return known
    if _DROP.match(char) or unicodedata.category(char) == "Cf":
        out = ""
    else:
        digit = unicodedata.decimal(char, None)
        out = str(digit) if digit is not None else unicodedata.normalize("NFKC", char).translate(_DASHES)
    if len(_cache) < 8192:
        _cache[char] = out
    return out


@dataclass(frozen=True, slots=True)
class Normalized:
    """A normalized text and, when it differs from the original, where its characters came from.

    The map is a list of breakpoints, one wherever the offset between the two texts changes (a
    character dropped, or expanded into several): `points[k]` is the normalized index where
    segment k starts, `origins[k]` the original index it starts from, and `expanded[k]` whether
    the segment is the expansion of a single original character."""

    text: str
    points: tuple[int, ...] = ()
    origins: tuple[int, ...] = ()
    expanded: tuple[bool, ...] = ()

    def _original(self, index: int) -> tuple[int, int]:
        """The original character (start, end) that normalized character `index` came from."""
        k = bisect_right(self.points, index) - 1
        if k < 0:
            return index, index + 1
        if self.expanded[k]:
            return self.origins[k], self.origins[k] + 1
        start = self.origins[k] + index - self.points[k]
        return start, start + 1

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that normalized span [start, end) came from."""
        if not self.points or end <= start:
            return start, end
        return self._original(start)[0], self._original(end - 1)[1]


def normalize(text: str) -> Normalized:
    """`text` normalized for matching (see the module docstring), with its offset map."""
    if text.isascii() or (
        _SPECIAL.search(text) is None
        and _FOREIGN_DIGIT.search(text) is None
        and unicodedata.is_normalized("NFKC", text)
    ):
        return Normalized(text)
    pieces: list[str] = []
    points: list[int] = []
    origins: list[int] = []
    expanded: list[bool] = []
    size = 0  # length of the normalized text so far
    position = 0
    for run in _NON_ASCII.finditer(text):
        first, last = run.span()
        pieces.append(text[position:first])
        size += first - position
        for index in range(first, last):
            out = _normal_char(text[index])
            count = len(out)
            if count != 1:
                if count > 1:
                    points.append(size)
                    origins.append(index)
                    expanded.append(True)
                points.append(size + count)
                origins.append(index + 1)
                expanded.append(False)
            pieces.append(out)
            size += count
        position = last
    pieces.append(text[position:])
    normalized = "".join(pieces)
    if not points and normalized == text:
        return Normalized(text)
    return Normalized(normalized, tuple(points), tuple(origins), tuple(expanded))
