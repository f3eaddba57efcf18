"""`redact`: PII replaced by a tag, a partial mask or a stable keyed hash; `canonical` values."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Collection
from typing import Literal

from keel.guardrails.pii_detect import detect
from keel.guardrails.pii_finding import Finding, PiiType
from keel.guardrails.pii_normalize import normalize

RedactStyle = Literal["tag", "mask", "hash"]


def canonical(finding: Finding) -> str:
    """The value of a finding without its formatting: the same value written differently (spaces,
    dashes, case, fullwidth digits, hidden characters) has the same canonical form."""
    value = normalize(finding.text).text
    kind = finding.type
    if kind == "email":
        return value.lower()
    if kind == "phone":
        digits = "".join(c for c in value if c.isdigit())
        return "+" + digits if value.startswith("+") else digits
    if kind in ("card", "iban", "national_id"):
        return "".join(c for c in value if c.isalnum()).upper()
    if kind == "ip":
        try:
            return ipaddress.ip_address(value.split("%", 1)[0]).compressed
        except ValueError:
            return value
    return " ".join(value.split()) if kind in ("name", "address") else value


def _tag(kind: PiiType) -> str:
    return kind.upper()


def _hash(finding: Finding, key: bytes) -> str:
    digest = hashlib.blake2b(
        canonical(finding).encode(), digest_size=5, key=key[:64], person=b"keel-pii"
    ).hexdigest()
    return f"[{_tag(finding.type)}:{digest}]"


def _mask(finding: Finding) -> str:
    """A partial mask: the format stays, letters and digits become `*` except what helps a reader
    tell values apart (a card's last 4 digits, an IBAN's country and last 4, a phone's last 2, an
    email's domain and first letter). Secrets are replaced whole, length hidden."""
    value = finding.text
    kind = finding.type
    if kind == "secret":
        return "********"
    if kind == "email":
        at = value.rfind("@")
        return value[:1] + "***" + value[at:]
    keep_last = {"card": 4, "iban": 4, "phone": 2}.get(kind, 0)
    keep_first = 2 if kind == "iban" else 0
    positions = [i for i, c in enumerate(value) if c.isalnum()]
    kept = set(positions[:keep_first]) | (set(positions[-keep_last:]) if keep_last else set())
    return "".join(c if (i in kept or not c.isalnum()) else "*" for i, c in enumerate(value))


def redact(
    text: str,
    *,
    types: Collection[PiiType] | None = None,
    style: RedactStyle = "tag",
    entities: bool = False,
    min_confidence: float = 0.0,
    hash_key: bytes = b"",
) -> tuple[str, list[Finding]]:
    """`text` with its PII replaced, and what was replaced.

    `style`: `tag` (`[EMAIL]`, `[CARD]` …), `mask` (partial, see `_mask`), or `hash`
    (`[EMAIL:<10 hex>]`, a keyed BLAKE2b of the canonical value: the same value gives the same
    hash wherever it appears, so redacted logs can still be joined). Without a `hash_key` the
    hash of a phone number or card can be found by trying every candidate: set a secret key when
    the redacted text leaves your hands."""
    findings = detect(text, types=types, entities=entities, min_confidence=min_confidence)
    if not findings:
        return text, findings
    if style not in ("tag", "mask", "hash"):
        raise ValueError(f"redaction style must be tag, mask or hash, not {style!r}")
    out: list[str] = []
    position = 0
    for finding in findings:
        out.append(text[position : finding.start])
        if style == "tag":
            out.append(f"[{_tag(finding.type)}]")
        elif style == "mask":
            out.append(_mask(finding))
        else:
            out.append(_hash(finding, hash_key))
        position = finding.end
    out.append(text[position:])
    return "".join(out), findings
