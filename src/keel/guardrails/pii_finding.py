"""What PII detection reports: a `Finding` per value, with its type, place, and how sure it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PiiType = Literal["email", "phone", "card", "iban", "national_id", "ip", "secret", "name", "address"]

# Values with a recognisable shape (and, for most, a checksum): found by default.
STRUCTURED_TYPES: frozenset[PiiType] = frozenset(
    {"email", "phone", "card", "iban", "national_id", "ip", "secret"}
)
# Names and postal addresses, found by a light heuristic only when asked for (see pii_entities).
ENTITY_TYPES: frozenset[PiiType] = frozenset({"name", "address"})
ALL_TYPES: frozenset[PiiType] = STRUCTURED_TYPES | ENTITY_TYPES

# A raw detection, in the coordinates of the normalized text:
# (start, end, type, subtype, validator, confidence).
Hit = tuple[int, int, PiiType, str, str | None, float]


@dataclass(frozen=True, slots=True)
class Finding:
    """One value found in a text.

    `start`/`end` index the text given to `detect` (the original, not its normalized form), so
    `text[start:end] == finding.text` always holds, hidden zero-width characters included.

    `subtype` names the format (`visa`, `e164`, `us_ssn`, `openai_key`, `ipv4` …). `validator`
    names the check the value passed beyond its shape (`luhn`, `mod97`, `mod23`, `11-check`,
    `json-header` …), None when only the shape matched. `confidence` is a score in [0, 1]: 0.95 and
    more for checksum-validated values and key formats with a literal prefix, down to about 0.5 for
    heuristic matches (names, addresses, a word after `password:`).
    """

    type: PiiType
    start: int
    end: int
    text: str
    confidence: float
    validator: str | None
    subtype: str
