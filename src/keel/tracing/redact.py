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

# (anchors: substrings one of which must occur, kind, pattern starting with the anchor). The
# boundary checks are lookbehinds placed after the literal, so the engine's fast literal search
# is kept.
_KEY_PATTERNS: tuple[tuple[tuple[str, ...], str, re.Pattern[str]], ...] = tuple(
    (anchors, kind, re.compile(pattern))
    for anchors, kind, pattern in (
        (
            ("-----BEGIN",),
            "private_key",
            r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?s:.*?-----END[A-Z0-9 ]*PRIVATE KEY-----|.*)",
        ),
        (("eyJ",), "jwt", r"eyJ(?<![A-Za-z0-9]eyJ)[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)?"),
        (("sk-",), "api_key", r"sk-(?<![A-Za-z0-9]sk-)[A-Za-z0-9_-]{16,}"),
        (("AKIA", "ASIA"), "api_key", r"A[KS]IA(?<![A-Za-z0-9]A[KS]IA)[0-9A-Z]{16}(?![0-9A-Za-z])"),
        (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), "api_key", r"gh[pousr]_(?<![A-Za-z0-9]gh._)[A-Za-z0-9]{20,}"),
        (("github_pat_",), "api_key", r"github_pat_[A-Za-z0-9_]{20,}"),
        (("xox",), "api_key", r"xox[abeprs]-[A-Za-z0-9-]{10,}"),
        (("AIza",), "api_key", r"AIza[0-9A-Za-z_-]{30,}"),
        (("_live_", "_test_"), "api_key", r"[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}"),
    )
)

# Keywords (lower case) after which a value is a credential: `Bearer <token>`, `password: <value>`.
_SCHEMES = ("bearer", "basic")
_SCHEME_VALUE = re.compile(r"[ \t]+([A-Za-z0-9._~+/=-]{8,})")
_KEYWORDS = (
    "api_key",
    "api-key",
    "apikey",
    "api key",
    "secret",
    "password",
    "passwd",
    "pwd",
    "token",
    "access_key",
    "access-key",
    "private_key",
    "private-key",
    "credential",
    "credentials",
)
_KEYWORD_VALUE = re.compile(
    r"(?:[_-](?:key|token|value|id))?[\"']?[ \t]*[:=][ \t]*[\"']?([^\s\"',;&)}\]]{3,})"
)


def _spans_after(
    text: str, words: Iterable[str], tail: re.Pattern[str], kind: str, edits: list[tuple[int, int, str]]
) -> None:
    """Where one of `words` (case-insensitive) is followed by `tail`, mask `tail`'s group 1."""
    lower = text.lower()
    if len(lower) != len(text):  # a few non-ASCII letters change length when lowered
        lower = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    for word in words:
        start = lower.find(word)
        while start != -1:
            match = tail.match(text, start + len(word))
            if match is not None:
                edits.append((match.start(1), match.end(1), MASK.format(kind)))
            start = lower.find(word, start + 1)


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
    for value in values:
        if value in text:
            text = text.replace(value, MASK.format("secret"))
    for anchors, kind, pattern in _KEY_PATTERNS:
        for anchor in anchors:
            if anchor in text:
                text = pattern.sub(MASK.format(kind), text)
                break
    if ":" in text or "=" in text or " " in text:
        edits: list[tuple[int, int, str]] = []
        _spans_after(text, _SCHEMES, _SCHEME_VALUE, "token", edits)
        _spans_after(text, _KEYWORDS, _KEYWORD_VALUE, "secret", edits)
        text = _apply(text, edits)
    return text


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


def redact_pii(text: str) -> str:
    """`text` with emails, phone numbers, card numbers, IBANs and IPv4 addresses masked."""
    edits: list[tuple[int, int, str]] = []
    if "@" in text:
        _emails(text, edits)
    if any(digit in text for digit in _DIGITS):
        _numbers(text, edits)
    return _apply(text, edits)


def secret_values(values: Iterable[str | None]) -> tuple[str, ...]:
    """The values worth exact-value masking, longest first (so a value containing another one
    is masked whole). Values shorter than 8 characters are skipped: masking them would hide
    ordinary words and numbers, and a key that short is no real key."""
    kept = {v for v in values if v and len(v.strip()) >= 8}
    return tuple(sorted(kept, key=len, reverse=True))


_SENSITIVE_KEY = re.compile(
    r"(?i)(?:^|[_-])(?:api[_-]?key|apikey|secret|secret[_-]?key|client[_-]?secret|password|passwd|pwd|"
    r"token|access[_-]?token|refresh[_-]?token|id[_-]?token|auth[_-]?token|access[_-]?key|"
    r"private[_-]?key|authorization|cookie|credentials?)$"
)
_sensitive_cache: dict[str, bool] = {}


def sensitive_key(key: str) -> bool:
    """Whether a mapping key names a secret (`api_key`, `password`, `Authorization`, `x-auth-token`
    …): its value is masked whole, whatever it holds."""
    known = _sensitive_cache.get(key)
    if known is None:
        known = _SENSITIVE_KEY.search(key) is not None
        if len(_sensitive_cache) < 4096:
            _sensitive_cache[key] = known
    return known

