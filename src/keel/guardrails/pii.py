"""PII detection and redaction: one detector for guardrails and for trace redaction.

    findings = detect("mail jane@example.com, card 4111 1111 1111 1111")
    text, findings = redact(text)                  # "mail [EMAIL], card [CARD]"
    text, findings = redact(text, style="mask")    # "mail j***@example.com, card **** **** **** 1111"
    text, findings = redact(text, style="hash")    # "mail [EMAIL:5d41402abc], …" (stable per value)

Types (`PiiType`): `email`, `phone`, `card` (Luhn and issuer prefix), `iban` (mod 97 and the
country's length), `national_id` (see `keel.guardrails.pii_numbers`), `ip` (v4 and v6), `secret`
(see `keel.guardrails.pii_secrets`); with `entities=True`, `name` and `address` too, found by a
documented heuristic (`keel.guardrails.pii_entities`).

Matching runs on a normalized copy of the text (NFKC, any script's digits, invisible characters
removed: `keel.guardrails.pii_normalize`), so a card number split by zero-width spaces or written
in fullwidth digits is still found; offsets always refer to the original text. Where two
detections overlap, the more confident (then the longer) one wins.

Only the detectors of the requested `types` run, so `detect(text, types={"secret"})` costs only
the secret patterns. The functions are pure and thread-safe. See docs/guardrails.md.
"""

from __future__ import annotations

from keel.guardrails.pii_detect import detect
from keel.guardrails.pii_finding import ALL_TYPES, ENTITY_TYPES, STRUCTURED_TYPES, Finding, PiiType
from keel.guardrails.pii_pseudonym import Pseudonymizer, escape_tokens
from keel.guardrails.pii_redact import RedactStyle, canonical, redact

__all__ = [
    "ALL_TYPES",
    "ENTITY_TYPES",
    "STRUCTURED_TYPES",
    "Finding",
    "PiiType",
    "Pseudonymizer",
    "RedactStyle",
    "canonical",
    "detect",
    "escape_tokens",
    "redact",
]
