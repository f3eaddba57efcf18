"""Masking of secrets and personal data in what Keel stores and logs: span content, error
messages, event attributes, log records. The finding is done by `keel.guardrails.pii`'s detector,
the one the `pii` guardrail uses, so a trace stored with capture `redacted` never holds a value
that guardrail would find. Patterns are compiled once, at import.

Two layers:

- **secrets**, masked in every capture mode (`redact_secrets`): what the detector calls a secret
  (API keys of known formats, JWTs, PEM private keys also cut short, `Bearer`/`Basic` credentials,
  values after `api_key=`/`password:`-like keywords, passwords in URLs), and the exact values of
  environment variables known to hold keys. Generated-looking tokens with no known format (and
  hex values after "token") are left to the second layer: an id is not a secret.
- **everything the detector finds** (`redact_all`, capture `redacted`): the secrets above, the
  generated-looking tokens, and personal data: email addresses, phone numbers, payment cards
  (Luhn), IBANs (mod 97), national identity numbers, IPv4 and IPv6 addresses; also when hidden
  with invisible, fullwidth or other-script characters.

Each value becomes `[REDACTED:<kind>]`: `email`, `phone`, `card`, `iban`, `national_id`, `ip`, and
for secrets `api_key` (a key of a known format), `jwt`, `private_key`, `token` (after `Bearer`
or `Basic`) or `secret` (the rest). The functions are pure and thread-safe.

Speed: in every mode, `may_hold_secret` (substring tests at C speed, no regex) lets text with no
secret anchor skip the detector: the price of `on` is that test on most strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from keel.guardrails import pii_checks, pii_secrets
from keel.guardrails.pii import STRUCTURED_TYPES, Finding, PiiType, detect

MASK = "[REDACTED:{}]"

_SECRET: frozenset[PiiType] = frozenset({"secret"})
_PERSONAL: frozenset[PiiType] = STRUCTURED_TYPES - _SECRET
# Secret subtypes (see keel.guardrails.pii_secrets) and their masks; any other subtype is a key
# of a known format, `api_key`.
_SECRET_KINDS = {
    "jwt": "jwt",
    "private_key": "private_key",
    "bearer_token": "token",
    "keyword_value": "secret",
    "url_password": "secret",
    "hex_secret": "secret",
    "high_entropy": "secret",
}
# Found by shape alone (a generated-looking token, hex after "token"): masked by `redact_all` only.
_HEURISTIC = frozenset({"high_entropy", "hex_secret"})
_MASKS = {kind: MASK.format(kind) for kind in {*_PERSONAL, *_SECRET_KINDS.values(), "api_key"}}
_VALUE_MASK = MASK.format("secret")
_DIGITS = "0123456789"

_Edit = tuple[int, int, str]


def _mask_of(finding: Finding) -> str:
    if finding.type == "secret":
        return _MASKS[_SECRET_KINDS.get(finding.subtype, "api_key")]
    return _MASKS[finding.type]


def _value_edits(text: str, values: tuple[str, ...]) -> list[_Edit]:
    """Edits masking each occurrence of the exact `values`."""
    edits: list[_Edit] = []
    for value in values:
        start = text.find(value)
        while start != -1:
            edits.append((start, start + len(value), _VALUE_MASK))
            start = text.find(value, start + len(value))
    return edits


def _apply(text: str, edits: list[_Edit]) -> str:
    """`text` with the (start, end, replacement) edits applied; overlapping edits merge."""
    if not edits:
        return text
    edits.sort()
    out: list[str] = []
    position = 0
    for start, end, replacement in edits:
        if start < position:  # overlaps the previous edit: extend it
            if end > position:
                position = end
            continue
        out.append(text[position:start])
        out.append(replacement)
        position = end
    out.append(text[position:])
    return "".join(out)


def _redacted(text: str, values: tuple[str, ...], findings: list[Finding], heuristic: bool) -> str:
    edits = _value_edits(text, values) if values else []
    edits.extend((f.start, f.end, _mask_of(f)) for f in findings if heuristic or f.subtype not in _HEURISTIC)
    return _apply(text, edits)


def redact_secrets(text: str, values: tuple[str, ...] = ()) -> str:
    """`text` with every secret masked (the detector's, but generated-looking tokens), and each
    string of `values` exactly. What every capture mode does."""
    if not may_hold_secret(text, values):
        return text
    return _redacted(text, values, detect(text, types=_SECRET), heuristic=False)


def redact_pii(text: str) -> str:
    """`text` with personal data masked: what the detector finds other than secrets."""
    return _redacted(text, (), detect(text, types=_PERSONAL), heuristic=True)


def redact_all(text: str, values: tuple[str, ...] = ()) -> str:
    """`text` with everything the detector finds masked (personal data, secrets, generated-looking
    tokens), and each string of `values` exactly. What capture `redacted` does."""
    if _nothing_to_find(text, values):
        return text
    return _redacted(text, values, detect(text), heuristic=True)


def _nothing_to_find(text: str, values: tuple[str, ...]) -> bool:
    """Whether the detector surely finds nothing in `text` (most short strings of a run's content):
    ASCII (nothing for normalization to turn into a digit or an `@`), no digit (every type but
    email and secret needs one), no `@` and no bracket (emails, also `jane [at] example [dot]
    com`), no secret anchor, no word of 20 characters (a generated-looking token). Substring tests
    only; False means: ask the detector."""
    if not text.isascii() or "@" in text or "]" in text or ")" in text:
        return False
    for digit in _DIGITS:
        if digit in text:
            return False
    if may_hold_secret(text, values):
        return False
    return len(text) < 20 or max(map(len, text.split()), default=0) < 20


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn checksum of payment card numbers."""
    return pii_checks.luhn_valid(digits)


def iban_valid(text: str) -> bool:
    """Whether a string (spaces allowed) is an IBAN with a valid mod-97 check."""
    return pii_checks.iban_mod97(text.replace(" ", "").upper())


# Lower-case words found in every key name `sensitive_key` matches.
_KEY_NAME_ANCHORS = (
    "api",
    "secret",
    "passw",
    "pwd",
    "token",
    "access",
    "private",
    "auth",
    "cookie",
    "credential",
)
_KEYED_ANCHORS = tuple(
    dict.fromkeys((*pii_secrets.SCHEME_ANCHORS, *pii_secrets.KEYWORD_ANCHORS, *_KEY_NAME_ANCHORS))
)


def may_hold_secret(text: str, values: tuple[str, ...] = ()) -> bool:
    """Whether `text` may hold a secret `redact_secrets` would mask, or (in JSON text) a mapping
    key `sensitive_key` would flag: a cheap superset test of substrings, no regex. False means
    the text can be used as it is."""
    for value in values:
        if value in text:
            return True
    for gate, anchors in pii_secrets.ANCHORS:
        if gate in text:
            for anchor in anchors:
                if anchor in text:
                    return True
    keyed = ":" in text or "=" in text  # keywords and key names need one; schemes a space
    if keyed or " " in text:
        lower = text.lower()
        for word in _KEYED_ANCHORS if keyed else pii_secrets.SCHEME_ANCHORS:
            if word in lower:
                return True
    return not text.isascii() and _may_hide_secret(text, values)


def _may_hide_secret(text: str, values: tuple[str, ...]) -> bool:
    """The test above on the text the detector reads (fullwidth letters folded, invisible
    characters dropped): a key written in fullwidth characters is found there."""
    from keel.guardrails.pii_normalize import normalize

    folded = normalize(text).text
    return folded != text and may_hold_secret(folded, values)


def secret_values(values: Iterable[str | None]) -> tuple[str, ...]:
    """The values worth exact-value masking, longest first (so a value containing another one
    is masked whole). Values shorter than 8 characters are skipped: masking them would hide
    ordinary words and numbers, and a key that short is no real key."""
    kept = {v for v in values if v and len(v.strip()) >= 8}
    return tuple(sorted(kept, key=len, reverse=True))


_SENSITIVE_KEY = re.compile(
    r"(?:^|[_-])(?:api[_-]?key|apikey|secret|secret[_-]?key|client[_-]?secret|password|passwd|pwd|"
    r"token|access[_-]?token|refresh[_-]?token|id[_-]?token|auth[_-]?token|access[_-]?key|"
    r"private[_-]?key|authorization|cookie|credentials?)$"
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_sensitive_cache: dict[str, bool] = {}


def sensitive_key(key: str) -> bool:
    """Whether a mapping key names a secret (`api_key`, `password`, `Authorization`,
    `x-auth-token`, `sessionToken` …): its value is masked whole, whatever it holds."""
    known = _sensitive_cache.get(key)
    if known is None:
        known = _SENSITIVE_KEY.search(_CAMEL.sub("_", key).lower()) is not None
        if len(_sensitive_cache) < 4096:
            _sensitive_cache[key] = known
    return known
