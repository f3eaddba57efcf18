"""Masking of secrets and personal data in text. Patterns are compiled once, at import.

Two layers:

- **secrets**, masked in every capture mode: API keys (OpenAI and Anthropic `sk-…`, AWS `AKIA…`,
  GitHub `ghp_…`/`github_pat_…`, Slack `xox…`, Google `AIza…`, Stripe `sk_live_…`), `Bearer`/`Basic`
  credentials, `api_key=…`/`password: …` assignments, JWTs and PEM private key blocks (also when the
  block is cut short), plus the exact values of environment variables known to hold keys.
- **personal data**, masked in `redacted` mode: email addresses, phone numbers, payment card
  numbers (Luhn-checked, issuer prefixes 2–6), IBANs (mod-97 checked) and IPv4 addresses.

Each match becomes `[REDACTED:<kind>]`. The functions are pure and thread-safe.

Speed: Python's regex engine spends 10–20 ns per character on any pattern that cannot start with
a literal, so each pattern here runs only when a cheap substring test (C speed) finds its anchor:
a key's literal prefix, a keyword, an `@`, a digit. Text with nothing to mask costs a few
microseconds per 2 KB.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[REDACTED:{}]"
_DIGITS = "0123456789"

# (gate, anchors, kind, pattern): the pattern runs only when the single-character `gate` (a
# memchr-speed test) and then one of the `anchors` occur. Each pattern starts with its anchor,
# and its boundary check is a lookbehind placed after the literal, so the engine's fast literal
# search is kept.
_KEY_PATTERNS: tuple[tuple[str, tuple[str, ...], str, re.Pattern[str]], ...] = tuple(
    (gate, anchors, kind, re.compile(pattern))
    for gate, anchors, kind, pattern in (
        (
            "-",
            ("-----BEGIN",),
            "private_key",
            r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?s:.*?-----END[A-Z0-9 ]*PRIVATE KEY-----|.*)",
        ),
        (
            ".",
            ("eyJ",),
            "jwt",
            r"eyJ(?<![A-Za-z0-9]eyJ)[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)?",
        ),
        ("-", ("sk-",), "api_key", r"sk-(?<![A-Za-z0-9]sk-)[A-Za-z0-9_-]{16,}"),
        ("A", ("AKIA", "ASIA"), "api_key", r"A[KS]IA(?<![A-Za-z0-9]A[KS]IA)[0-9A-Z]{16}(?![0-9A-Za-z])"),
        (
            "_",
            ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
            "api_key",
            r"gh[pousr]_(?<![A-Za-z0-9]gh._)[A-Za-z0-9]{20,}",
        ),
        ("_", ("github_pat_",), "api_key", r"github_pat_[A-Za-z0-9_]{20,}"),
        ("-", ("xox",), "api_key", r"xox[abeprs]-[A-Za-z0-9-]{10,}"),
        ("A", ("AIza",), "api_key", r"AIza[0-9A-Za-z_-]{30,}"),
        ("_", ("_live_", "_test_"), "api_key", r"[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}"),
    )
)

# Credentials after a keyword: `Bearer <token>`, `password: <value>`. Anchors are searched in the
# lower-cased text; the pattern then matches, case-insensitively, at the anchor.
_SCHEME_ANCHORS = ("bearer", "basic")
# A credential has a digit or a symbol: "basic question" is English, not a Basic credential.
_SCHEME = re.compile(r"(?i:bearer|basic)[ \t]+((?=[A-Za-z]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,})")
_KEYWORD_ANCHORS = ("api", "secret", "passw", "pwd", "token", "access", "private", "credential")
_KEYWORD = re.compile(
    r"(?i:api[_ -]?key|secret|passw(?:or)?d|pwd|token|access[_-]?key|private[_-]?key|credentials?)"
    r"(?:[_-](?:key|token|value|id))?[\"']?[ \t]*[:=][ \t]*[\"']?([^\s\"',;&)}\]]{3,})"
)


def _lowered(text: str) -> str:
    """`text` lower-cased with its indices kept (a few non-ASCII letters lengthen when lowered)."""
    lower = text.lower()
    if len(lower) != len(text):
        lower = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    return lower


def _masked_after(
    text: str, lower: str, anchors: tuple[str, ...], pattern: re.Pattern[str], kind: str
) -> list[tuple[int, int, str]]:
    """Edits masking group 1 of `pattern` wherever it matches at one of `anchors`."""
    edits: list[tuple[int, int, str]] = []
    for anchor in anchors:
        start = lower.find(anchor)
        while start != -1:
            match = pattern.match(text, start)
            if match is not None:
                edits.append((match.start(1), match.end(1), MASK.format(kind)))
            start = lower.find(anchor, start + 1)
    return edits


def _apply(text: str, edits: list[tuple[int, int, str]]) -> str:
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


def redact_secrets(text: str, values: tuple[str, ...] = ()) -> str:
    """`text` with every secret masked: the known patterns, and each string of `values` exactly."""
    if not may_hold_secret(text, values):
        return text
    for value in values:
        if value in text:
            text = text.replace(value, MASK.format("secret"))
    gates: dict[str, bool] = {}
    for gate, anchors, kind, pattern in _KEY_PATTERNS:
        present = gates.get(gate)
        if present is None:
            present = gates[gate] = gate in text
        if present and any(anchor in text for anchor in anchors):
            text = pattern.sub(MASK.format(kind), text)
    keyed = ":" in text or "=" in text
    if keyed or " " in text:
        lower = _lowered(text)
        edits = _masked_after(text, lower, _SCHEME_ANCHORS, _SCHEME, "token")
        if keyed:
            edits += _masked_after(text, lower, _KEYWORD_ANCHORS, _KEYWORD, "secret")
        text = _apply(text, edits)
    return text


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


def _by_gate() -> tuple[tuple[str, tuple[str, ...]], ...]:
    groups: dict[str, list[str]] = {}
    for gate, anchors, _, _ in _KEY_PATTERNS:
        groups.setdefault(gate, []).extend(a for a in anchors if a not in groups.get(gate, []))
    return tuple((gate, tuple(anchors)) for gate, anchors in groups.items())


_GATED_ANCHORS = _by_gate()
_KEYED_ANCHORS = tuple(dict.fromkeys((*_SCHEME_ANCHORS, *_KEYWORD_ANCHORS, *_KEY_NAME_ANCHORS)))


def may_hold_secret(text: str, values: tuple[str, ...] = ()) -> bool:
    """Whether `text` may hold a secret `redact_secrets` would mask, or (in JSON text) a mapping
    key `sensitive_key` would flag: a cheap superset test of substrings, no regex. False means
    the text can be used as it is."""
    for value in values:
        if value in text:
            return True
    for gate, anchors in _GATED_ANCHORS:
        if gate in text:
            for anchor in anchors:
                if anchor in text:
                    return True
    keyed = ":" in text or "=" in text  # keywords and key names need one; schemes a space
    if keyed or " " in text:
        lower = text.lower()
        for word in _KEYED_ANCHORS if keyed else _SCHEME_ANCHORS:
            if word in lower:
                return True
    return False


# --- personal data ----------------------------------------------------------------------------------

_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9._%+-]{1,64}\Z")
_EMAIL_DOMAIN = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_NUMBER_RUN = re.compile(r"[0-9][0-9 ().+-]*")
_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])")
_NUMBERS = re.compile(
    r"(?P<card>(?<![\d.])[2-6](?:[ -]?\d){12,18}(?!\d))"
    r"|(?P<ip>(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\d|\.\d))"
    r"|(?P<phone>\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){1,5}(?!\d)"  # international: +1 (415) 555-2671
    r"|(?<![\w+])\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?!\w)"  # North American: (415) 555-2671
    r"|(?<![\w+])0\d{1,4}(?:[ .-]\d{2,8}){1,4}(?!\w))"  # national, with a trunk 0: 020 7946 0958
)


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn checksum of payment card numbers."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """Whether a string (spaces allowed) is an IBAN with a valid mod-97 check."""
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _number_kind(kind: str, text: str) -> bool:
    if kind == "card":
        digits = text.replace(" ", "").replace("-", "")
        return 13 <= len(digits) <= 19 and luhn_valid(digits)
    if kind == "phone":
        return 9 <= sum(c.isdigit() for c in text) <= 15
    return True


def _emails(text: str, edits: list[tuple[int, int, str]]) -> None:
    at = text.find("@")
    while at != -1:
        local = _EMAIL_LOCAL.search(text, max(0, at - 64), at)
        domain = _EMAIL_DOMAIN.match(text, at + 1)
        if local is not None and domain is not None:
            edits.append((local.start(), domain.end(), MASK.format("email")))
        at = text.find("@", at + 1)


def _numbers(text: str, edits: list[tuple[int, int, str]]) -> None:
    for run in _NUMBER_RUN.finditer(text):
        start, end = run.span()
        if start >= 2 and text[start - 2 : start].isupper() and text[start - 2 : start].isalpha():
            iban = _IBAN.match(text, start - 2)
            if iban is not None and (start < 3 or not text[start - 3].isalnum()) and iban_valid(iban.group()):
                edits.append((iban.start(), iban.end(), MASK.format("iban")))
                continue
        if end - start < 7:
            continue
        if start > 0 and text[start - 1] in "+(":
            start -= 1
        for match in _NUMBERS.finditer(text, start, end):
            kind = match.lastgroup or "number"
            if _number_kind(kind, match.group()):
                edits.append((match.start(), match.end(), MASK.format(kind)))


def _pii_edits(text: str) -> list[tuple[int, int, str]]:
    edits: list[tuple[int, int, str]] = []
    if "@" in text:
        _emails(text, edits)
    if any(digit in text for digit in _DIGITS):
        _numbers(text, edits)
    return edits


def redact_pii(text: str) -> str:
    """`text` with emails, phone numbers, card numbers, IBANs and IPv4 addresses masked."""
    return _apply(text, _pii_edits(text))


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
