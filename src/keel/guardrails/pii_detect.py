"""`detect`: runs the detectors of the requested types on the normalized text, settles overlaps
(the more confident, then the longer, detection wins) and maps findings back to the original."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Collection

from keel.guardrails.pii_contact import emails, ips, phones
from keel.guardrails.pii_entities import addresses, names
from keel.guardrails.pii_finding import ALL_TYPES, ENTITY_TYPES, STRUCTURED_TYPES, Finding, Hit, PiiType
from keel.guardrails.pii_normalize import normalize
from keel.guardrails.pii_numbers import cards, ibans, national_ids
from keel.guardrails.pii_secrets import secrets

_Detector = Callable[[str, list[Hit]], None]
# In this order; overlaps are settled afterwards by confidence, so the order only breaks ties.
_DETECTORS: tuple[tuple[PiiType, _Detector], ...] = (
    ("secret", secrets),
    ("email", emails),
    ("iban", ibans),
    ("card", cards),
    ("national_id", national_ids),
    ("ip", ips),
    ("phone", phones),
    ("name", names),
    ("address", addresses),
)
_DIGITS = "0123456789"
_DIGIT = re.compile(r"[0-9]")
# The digits a value of each type has at least (an IPv6 address may have one: `::1`).
_MIN_DIGITS: dict[PiiType, int] = {"card": 14, "phone": 8, "national_id": 6, "iban": 6, "ip": 1}
# A value `redact(style="hash")` left (`[PHONE:0613130791]`): its ten hex digits are sometimes all
# decimal, and would be found again as a phone number or an id by a second pass.
_HASH_TAG = re.compile(r"\[(?:" + "|".join(t.upper() for t in sorted(ALL_TYPES)) + r"):[0-9a-f]{10}\]")
_MARGIN = 64  # characters kept around the digits: a context word ("SSN", "IBAN"), a `+`, letters


def _wanted(types: Collection[PiiType] | None, entities: bool) -> frozenset[PiiType]:
    if types is None:
        return ALL_TYPES if entities else STRUCTURED_TYPES
    wanted = frozenset(types)
    unknown = wanted - ALL_TYPES
    if unknown:
        raise ValueError(f"unknown PII types: {', '.join(sorted(unknown))}")
    return wanted | ENTITY_TYPES if entities else wanted


def _outside_hash_tags(work: str, hits: list[Hit]) -> list[Hit]:
    """`hits` without those inside a tag that hash redaction left."""
    tags = [m.span() for m in _HASH_TAG.finditer(work)]
    if not tags:
        return hits
    return [h for h in hits if not any(low <= h[0] and h[1] <= high for low, high in tags)]


def _resolve(hits: list[Hit]) -> list[Hit]:
    """The hits to keep: no two overlap; the more confident, then the longer, one wins."""
    if len(hits) < 2:
        return hits
    ordered = sorted(hits, key=lambda h: (-h[5], h[0] - h[1], h[0]))
    starts: list[int] = []
    kept: list[Hit] = []  # sorted by start, parallel to `starts`
    for hit in ordered:
        index = bisect_left(starts, hit[0])
        if index > 0 and kept[index - 1][1] > hit[0]:
            continue
        if index < len(kept) and kept[index][0] < hit[1]:
            continue
        starts.insert(index, hit[0])
        kept.insert(index, hit)
    return kept


def _digit_window(text: str) -> tuple[int, int] | None:
    """The part of `text` the digit-bearing types can be in: from before its first digit to after
    its last (with room for a prefix, a context word or a suffix), or None without digits.
    Each pattern then scans that part only: the prose around a message costs nothing."""
    first = _DIGIT.search(text)
    if first is None:
        return None
    last = len(text) - _DIGIT.search(text[::-1]).start()  # type: ignore[union-attr]
    return max(0, first.start() - _MARGIN), min(len(text), last + _MARGIN)


def detect(
    text: str,
    *,
    types: Collection[PiiType] | None = None,
    entities: bool = False,
    min_confidence: float = 0.0,
) -> list[Finding]:
    """The PII in `text`, in order of position, none overlapping.

    `types`: the types to look for (default: every structured type; names and addresses only
    with `entities=True`). `min_confidence` drops weaker findings (0.9 keeps only validated
    values and known key formats)."""
    wanted = _wanted(types, entities)
    normalized = normalize(text)
    work = normalized.text
    window = _digit_window(work) if not wanted.isdisjoint(_MIN_DIGITS) else None
    digits = 0
    if window is not None:
        part = work[window[0] : window[1]]
        digits = sum(part.count(d) for d in _DIGITS)
    hits: list[Hit] = []
    for kind, detector in _DETECTORS:
        if kind not in wanted:
            continue
        least = _MIN_DIGITS.get(kind)
        if least is None:
            detector(work, hits)
        elif window is not None and digits >= least:
            low, high = window
            if low == 0 and high == len(work):
                detector(work, hits)
            else:  # only where the digits are, shifted back
                found: list[Hit] = []
                detector(work[low:high], found)
                hits.extend((h[0] + low, h[1] + low, *h[2:]) for h in found)
    if hits and ":" in work:
        hits = _outside_hash_tags(work, hits)
    findings: list[Finding] = []
    for start, end, kind, subtype, validator, confidence in _resolve(hits):
        if confidence < min_confidence:
            continue
        first, last = normalized.original_span(start, end)
        findings.append(Finding(kind, first, last, text[first:last], confidence, validator, subtype))
    return findings
