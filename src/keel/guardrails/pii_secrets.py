"""Secrets: API keys of known formats, JWTs, PEM private keys, credentials after `Bearer`/`Basic`,
values after `password:`-like keywords, passwords in URLs, and generic high-entropy tokens.

Known key formats (subtype): OpenAI and Anthropic `sk-…` (`openai_key`), AWS access key ids
`AKIA…`/`ASIA…` (`aws_access_key`), GitHub `ghp_…`/`gho_…`/`ghu_…`/`ghs_…`/`ghr_…`/`github_pat_…`
(`github_token`), GitLab `glpat-…`, Slack `xox[abeprs]-…` and webhook URLs (`slack_token`),
Google `AIza…` and `ya29.…` (`google_key`), Stripe `sk_live_…`/`rk_…`/`pk_…`/`whsec_…`
(`stripe_key`), Hugging Face `hf_…`, npm `npm_…`, PyPI `pypi-…`, SendGrid `SG.….…`, Shopify
`shpat_…`, DigitalOcean `dop_v1_…`.

Each key pattern runs only when its literal anchor occurs in the text (a C-speed substring
test), so text without secrets costs a few substring tests and one pass of `str.split`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re

from keel.guardrails.pii_finding import Hit

# (gate, anchors, subtype, pattern): the pattern runs when its one-character gate (a memchr-speed
# test, shared by several patterns) and then one of its anchors occur; it starts with its anchor,
# and the boundary check is a lookbehind placed after the literal.
_KEYS: tuple[tuple[str, tuple[str, ...], str, re.Pattern[str]], ...] = tuple(
    (gate, anchors, subtype, re.compile(pattern))
    for gate, anchors, subtype, pattern in (
        ("-", ("sk-",), "openai_key", r"sk-(?<![A-Za-z0-9]sk-)[A-Za-z0-9_-]{16,}"),
        ("-", ("glpat-",), "gitlab_token", r"glpat-[A-Za-z0-9_-]{20,}"),
        ("-", ("xox",), "slack_token", r"xox[abeprs]-[A-Za-z0-9-]{10,}"),
        ("-", ("pypi-",), "pypi_token", r"pypi-AgE[A-Za-z0-9_-]{50,}"),
        ("A", ("AKIA", "ASIA"), "aws_access_key", r"A[KS]IA(?<![A-Za-z0-9]A[KS]IA)[0-9A-Z]{16}(?![0-9A-Za-z])"),
        ("A", ("AIza",), "google_key", r"AIza[0-9A-Za-z_-]{30,}"),
        ("_", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), "github_token", r"gh[pousr]_(?<![A-Za-z0-9]gh._)[A-Za-z0-9]{20,}"),
        ("_", ("github_pat_",), "github_token", r"github_pat_[A-Za-z0-9_]{20,}"),
        ("_", ("_live_", "_test_"), "stripe_key", r"[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}"),
        ("_", ("whsec_",), "stripe_key", r"whsec_[A-Za-z0-9+/=]{24,}"),
        ("_", ("hf_",), "huggingface_token", r"hf_(?<![A-Za-z0-9]hf_)[A-Za-z0-9]{30,}"),
        ("_", ("npm_",), "npm_token", r"npm_(?<![A-Za-z0-9]npm_)[A-Za-z0-9]{36}"),
        ("_", ("shpat_", "shpss_", "shpca_", "shppa_"), "shopify_token", r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}"),
        ("_", ("dop_v1_",), "digitalocean_token", r"dop_v1_[a-f0-9]{64}"),
        (".", ("ya29.",), "google_oauth_token", r"ya29\.[0-9A-Za-z_-]{20,}"),
        (".", ("SG.",), "sendgrid_key", r"SG\.(?<![A-Za-z0-9]SG\.)[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}"),
        ("/", ("hooks.slack.com/",), "slack_webhook", r"hooks\.slack\.com/services/[A-Za-z0-9_/]{20,}"),
    )
)  # fmt: skip

_JWT = re.compile(
    r"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{5,}\.(?:eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)?|[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)"
)
_PEM = re.compile(
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?s:.*?-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|.*)"
)
_ARMOR = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(?s:.*?)-----END [A-Z0-9 ]+-----")
# Credentials after a scheme: `Bearer <token>`, `Basic <base64>` (with a digit or a symbol, so
# "basic question" stays English).
_SCHEME = re.compile(r"(?i:bearer|basic)[ \t]+((?=[A-Za-z]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,})")
_SCHEME_ANCHORS = ("bearer", "basic")
# Values after a keyword and `:` or `=`: `password: hunter2`, `api_key=…`, `"client_secret": "…"`;
# what redaction left (a tag such as `[SECRET]` or `[REDACTED:secret]`, a mask `********`) is no value.
_KEYWORD = re.compile(
    r"(?<!\[)(?i:api[_ -]?key|secret|passw(?:or)?d|pwd|token|access[_-]?key|private[_-]?key|credentials?)"
    r"(?i:[_-](?:key|token|value|id|base|secret|string))*[\"']?[ \t]*[:=][ \t]*[\"']?"
    r"(?!\[[A-Za-z_]+(?::[0-9a-z_]+)?\]|\*+(?![^\s\"',;&)}\]]))([^\s\"',;&)}\]]{3,})"
)
_KEYWORD_ANCHORS = ("api", "secret", "passw", "pwd", "token", "access", "private", "credential")
# A password in a URL: scheme://user:password@host (the host is included: it is what opens); not
# one already masked as `***`.
_URL_PASSWORD = re.compile(r"://[^\s:/@]*:(?!\*+@)([^\s:/@]{1,128}@[A-Za-z0-9.-]+)")
_TOKEN_RUN = re.compile(r"[A-Za-z0-9_+/-]{20,}={0,2}")
_WORDS = re.compile(r"[A-Z]?[a-z]{3,}")
_DIGIT = re.compile(r"[0-9]")
# An object id: a short lower-case type prefix and an underscore (known key prefixes are matched
# before this runs, by their own patterns).
_OBJECT_ID = re.compile(r"[a-z]{2,5}_[A-Za-z0-9]")
# A long hexadecimal value is a secret only right after a word naming one: "auth token 8f14e45f…".
_HEX = re.compile(r"[0-9a-fA-F]{32,128}")
_HEX_CONTEXT = re.compile(r"(?i:token|secret|key|password|passwd|credential)s?[ \t]+(?:is[ \t]+)?\Z")
# Words naming an identifier: a random-looking value after them is an id, not a secret.
_ID_WORDS = re.compile(
    r"(?i:(?:request|trace|correlation|span|message|event|session|transaction|order)[-_ ]?id)\W{0,4}\Z"
)
_SECRET_WORDS = re.compile(r"(?i:token|key|secret|passw|bearer|auth|credential|api)")

# What `secrets` needs before any pattern but the generic tokens' can match, as (gate, anchors):
# the one-character gate, then one of the anchors, occur in the text. Case-sensitive, except the
# scheme and keyword anchors, which are found in the lower-cased text (keywords only when the text
# has a `:` or `=`, schemes when it has one or a space). For cheap supersets such as
# `keel.tracing.redact.may_hold_secret`.
ANCHORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    *((gate, anchors) for gate, anchors, _, _ in _KEYS),
    ("J", ("eyJ",)),
    ("-", ("-----BEGIN",)),
    ("@", ("://",)),
)
SCHEME_ANCHORS = _SCHEME_ANCHORS
KEYWORD_ANCHORS = _KEYWORD_ANCHORS


def _lowered(text: str) -> str:
    """`text` lower-cased with its indices kept (a few non-ASCII letters lengthen when lowered)."""
    lower = text.lower()
    if len(lower) != len(text):
        lower = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    return lower


def _json_segment(segment: str) -> bool:
    """Whether a base64url segment decodes to a JSON object (a JWT header or payload)."""
    try:
        decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        return isinstance(json.loads(decoded), dict)
    except (binascii.Error, ValueError):
        return False


def _entropy(token: str) -> float:
    """Shannon entropy of the characters of `token`, in bits per character."""
    size = len(token)
    return -sum(n / size * math.log2(n / size) for n in (token.count(c) for c in set(token)))


def _random_looking(token: str) -> bool:
    """Whether a run of token characters looks generated rather than written: upper and lower case
    letters and digits, few runs of lower-case letters long enough to be words, high entropy."""
    if token.islower() or token.isupper() or _DIGIT.search(token) is None:
        return False  # one case only (hex hashes, UUIDs), or no digit
    if _OBJECT_ID.match(token):
        return False  # an object id such as ch_3MmlLrLkdIwHu7ix0snN0B15
    if sum(len(word) for word in _WORDS.findall(token)) >= len(token) * 0.6:
        return False  # camelCase identifiers and file names are mostly words
    return _entropy(token) >= 3.5


def _decodes_to_text(token: str) -> bool:
    """Whether `token` is base64 of printable text (encoded data, not a generated secret)."""
    try:
        decoded = base64.b64decode(
            token + "=" * (-len(token) % 4), altchars=b"-_" if "-" in token or "_" in token else None
        )
    except (binascii.Error, ValueError):
        return False
    printable = sum(1 for b in decoded if 32 <= b < 127 or b in (9, 10, 13))
    return len(decoded) >= 8 and printable >= len(decoded) * 0.95


def _armored(text: str) -> list[tuple[int, int]]:
    """Spans of PEM blocks other than private keys (public keys, certificates): their base64 body
    is not a secret (private keys are found whole by their own pattern)."""
    if "-" not in text or "-----BEGIN" not in text:
        return []
    return [m.span() for m in _ARMOR.finditer(text) if "PRIVATE" not in m.group(1)]


def _generic_tokens(text: str, hits: list[Hit]) -> None:
    long_words = [word for word in text.split() if len(word) >= 20]
    if not long_words:
        return
    position = 0
    # Spans already found (known keys, JWTs, private keys) and PEM blocks that are not secrets.
    skip = [(hit[0], hit[1]) for hit in hits] + _armored(text)
    for word in long_words:
        position = text.find(word, position)
        if (
            "://" in word
            or "@" in word
            or "base64," in word
            or word.startswith(("sha256-", "sha384-", "sha512-"))
        ):
            position += len(word)
            continue
        for run in _TOKEN_RUN.finditer(word):
            start = position + run.start()
            if any(first <= start < last for first, last in skip):
                continue
            token = run.group().rstrip("=")
            if _HEX.fullmatch(token) and _HEX_CONTEXT.search(text, max(0, start - 24), start):
                hits.append((start, start + len(token), "secret", "hex_secret", None, 0.7))
                continue
            if len(token) > 512 or not _random_looking(token) or _decodes_to_text(token):
                continue
            if _ID_WORDS.search(text, max(0, start - 24), start):
                continue
            near = _SECRET_WORDS.search(text, max(0, start - 32), start) is not None
            hits.append(
                (start, start + len(run.group()), "secret", "high_entropy", "entropy", 0.8 if near else 0.6)
            )
        position += len(word)


def secrets(text: str, hits: list[Hit]) -> None:
    found: list[Hit] = []
    gates: dict[str, bool] = {}
    for gate, anchors, subtype, pattern in _KEYS:
        present = gates.get(gate)
        if present is None:
            present = gates[gate] = gate in text
        if present and any(anchor in text for anchor in anchors):
            for match in pattern.finditer(text):
                found.append((match.start(), match.end(), "secret", subtype, "prefix", 0.97))
    if "J" in text and "." in text and "eyJ" in text:
        for match in _JWT.finditer(text):
            header, payload = match.group().split(".", 2)[:2]
            if _json_segment(header):
                found.append((match.start(), match.end(), "secret", "jwt", "json-header", 0.97))
            elif payload.startswith("eyJ"):
                found.append((match.start(), match.end(), "secret", "jwt", None, 0.7))
    if gates.get("-") and "-----BEGIN" in text:
        for match in _PEM.finditer(text):
            found.append((match.start(), match.end(), "secret", "private_key", "pem-armor", 0.99))
    if "@" in text and "://" in text:
        for match in _URL_PASSWORD.finditer(text):
            found.append((match.start(1), match.end(1), "secret", "url_password", None, 0.96))
    keyed = ":" in text or "=" in text
    if keyed or " " in text:
        lower = _lowered(text)
        _after_anchors(text, lower, _SCHEME_ANCHORS, _SCHEME, "bearer_token", found)
        if keyed:
            _after_anchors(text, lower, _KEYWORD_ANCHORS, _KEYWORD, "keyword_value", found)
    _generic_tokens(text, found)
    hits.extend(found)


def _after_anchors(
    text: str, lower: str, anchors: tuple[str, ...], pattern: re.Pattern[str], subtype: str, hits: list[Hit]
) -> None:
    for anchor in anchors:
        start = lower.find(anchor)
        while start != -1:
            match = pattern.match(text, start)
            if match is not None:
                value = match.group(1)
                credential = len(value) >= 8 or any(not c.isalpha() for c in value)
                confidence = 0.9 if credential else 0.5
                hits.append((match.start(1), match.end(1), "secret", subtype, None, confidence))
            start = lower.find(anchor, start + 1)
