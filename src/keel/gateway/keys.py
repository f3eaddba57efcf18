"""API keys: format, hashing, scopes and expiry. No I/O here; `keel.store.keys.KeyStore` stores them.

Format. A key reads `keel_<prefix>_<secret>`:
- `prefix`: 12 characters of lowercase base32 (`a-z`, `2-7`, 60 random bits). It is public: the
  lookup id of the key, shown in listings and logs, unique in the database.
- `secret`: 32 random bytes from `secrets`, URL-safe base64 without padding (43 characters).

Storage. Only `HMAC-SHA256(pepper, secret)` is stored (hex). The pepper is the server secret in the
environment variable `KEEL_KEY_PEPPER` when set; otherwise a fixed, public domain-separation key
(`DEFAULT_PEPPER`), so the hash is still specific to Keel API keys. A pepper kept outside the
database means a stolen copy of the database alone cannot even test guesses; changing the pepper
invalidates every existing key. The secret has 256 random bits, so no slow password hash is
needed: nothing can be brute-forced.

Checking. `parse_key` refuses anything not shaped like a key before any lookup; the stored hash is
compared with `hmac.compare_digest`. Every refusal (malformed, unknown prefix, wrong secret,
revoked, expired) raises the same `ApiKeyRefused`, whose message is always "invalid API key":
`reason` says which, for logs and audit only, never for the client.

Scopes. A closed set (`Scope`, `SCOPES`), defined here only. Deny by default: a key has exactly
the scopes it was given, and no scope implies another (`admin` does not imply `runs:read`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

from keel.errors import KeelError, UsageError

KEY_SCHEME = "keel"
PREFIX_LENGTH = 12
PREFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
SECRET_BYTES = 32
SECRET_LENGTH = 43  # URL-safe base64 of 32 bytes, without padding

PEPPER_ENV = "KEEL_KEY_PEPPER"
DEFAULT_PEPPER = b"keel.gateway.api-key.v1"
"""Domain-separation key used when KEEL_KEY_PEPPER is unset. Public: it is not a secret."""

_KEY = re.compile(
    rf"^{KEY_SCHEME}_([{PREFIX_ALPHABET}]{{{PREFIX_LENGTH}}})_([A-Za-z0-9_-]{{{SECRET_LENGTH}}})$"
)
_DURATION = re.compile(r"^(\d{1,9})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

Scope = Literal[
    "runs:write",
    "runs:read",
    "approvals:decide",
    "prompts:read",
    "prompts:write",
    "prompts:deploy",
    "evals:run",
    "keys:admin",
    "admin",
]
"""What a key may do. The closed set of scopes: any other is refused when a key is created."""

SCOPES: tuple[Scope, ...] = get_args(Scope)

RefusalReason = Literal["malformed", "unknown_prefix", "wrong_secret", "revoked", "expired"]
"""Why a key was refused: for logs and audit, never shown to the client."""

PUBLIC_REFUSAL = "invalid API key"


class ApiKeyRefused(KeelError):
    """The key cannot be used. The message never says why; `reason` does, for logs and audit."""

    def __init__(self, reason: RefusalReason, *, prefix: str | None = None) -> None:
        self.reason: RefusalReason = reason
        self.prefix = prefix  # the public part, when the key was well formed
        super().__init__(PUBLIC_REFUSAL)


class InvalidScope(UsageError):
    """A key was asked for a scope outside `SCOPES`, or for none."""


class InvalidExpiry(UsageError):
    """An expiry that is not a duration or a time, or that is not in the future."""


@dataclass(frozen=True, repr=False)
class ParsedKey:
    """A well-formed key split into its public prefix and its secret. `repr` hides the secret."""

    prefix: str
    secret: str

    def __repr__(self) -> str:
        return f"ParsedKey(prefix={self.prefix!r}, secret='***')"


@dataclass(frozen=True, repr=False)
class GeneratedKey(ParsedKey):
    """A new key. `key` is the full key, to be shown once and never stored."""

    @property
    def key(self) -> str:
        return f"{KEY_SCHEME}_{self.prefix}_{self.secret}"

    def __repr__(self) -> str:
        return f"GeneratedKey(prefix={self.prefix!r}, secret='***')"


def generate_key() -> GeneratedKey:
    """A new random key: 60 bits of public prefix, 256 bits of secret."""
    prefix = "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    return GeneratedKey(prefix=prefix, secret=secrets.token_urlsafe(SECRET_BYTES))


def parse_key(key: object) -> ParsedKey:
    """The key's prefix and secret; `ApiKeyRefused("malformed")` for anything else."""
    if not isinstance(key, str):
        raise ApiKeyRefused("malformed")
    match = _KEY.fullmatch(key)
    if match is None:
        raise ApiKeyRefused("malformed")
    return ParsedKey(prefix=match.group(1), secret=match.group(2))


def key_pepper(environ: Mapping[str, str] | None = None) -> bytes:
    """The HMAC key: `KEEL_KEY_PEPPER` (UTF-8) when set and not blank, else `DEFAULT_PEPPER`."""
    value = (os.environ if environ is None else environ).get(PEPPER_ENV, "")
    return value.encode() if value.strip() else DEFAULT_PEPPER


def hash_secret(secret: str, pepper: bytes) -> str:
    """HMAC-SHA256 of the secret under `pepper`, as 64 hex digits: what the database stores."""
    return hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()


def secret_matches(secret: str, stored_hash: str, pepper: bytes) -> bool:
    """Whether `secret` hashes to `stored_hash`, compared in constant time."""
    return hmac.compare_digest(hash_secret(secret, pepper), stored_hash)


def validate_scopes(scopes: Iterable[str]) -> tuple[Scope, ...]:
    """The scopes, deduplicated in `SCOPES` order; `InvalidScope` for an unknown one or for none."""
    requested = [scopes] if isinstance(scopes, str) else list(scopes)
    unknown = sorted({scope for scope in requested if scope not in SCOPES})
    if unknown:
        raise InvalidScope(
            f"unknown scope{'s' if len(unknown) > 1 else ''} {', '.join(repr(s) for s in unknown)}; "
            f"known scopes: {', '.join(SCOPES)}"
        )
    if not requested:
        raise InvalidScope(f"a key needs at least one scope; known scopes: {', '.join(SCOPES)}")
    return tuple(scope for scope in SCOPES if scope in requested)


def parse_expiry(value: str | datetime | timedelta | None, *, now: datetime) -> datetime | None:
    """When a key expires: None (never), a datetime, a timedelta or duration (`30d`, `12h`, `90m`,
    `2w`, `45s`) from `now`, or an ISO 8601 time (UTC when it has no offset). Must be after `now`."""
    if value is None:
        return None
    if isinstance(value, str):
        value = _expiry_from_text(value.strip())
    try:
        expires_at = now + value if isinstance(value, timedelta) else value
    except OverflowError:
        raise InvalidExpiry("expiry is too far in the future") from None
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    if expires_at <= now:
        raise InvalidExpiry(f"expiry must be in the future, got {expires_at.isoformat()}")
    return expires_at.astimezone(UTC)


def _expiry_from_text(text: str) -> datetime | timedelta:
    if match := _DURATION.fullmatch(text):
        try:
            return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        except OverflowError:
            raise InvalidExpiry(f"expiry {text!r} is too far in the future") from None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidExpiry(
            f"expiry: expected a duration like 30d, 12h, 90m or an ISO 8601 time, got {text!r}"
        ) from None
