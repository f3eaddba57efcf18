"""Signed callbacks: how Keel signs what it POSTs to a `callback_url`, and how a receiver checks it.

Every delivery carries two headers::

    Keel-Timestamp: 1763799000                 (Unix seconds when the delivery was signed)
    Keel-Signature: v1=5257a869e7...            (hex HMAC-SHA256 of "<timestamp>.<body>")

The secret is per endpoint. During a secret rotation the header may carry several signatures
(`v1=<new>,v1=<old>`); a receiver accepts the delivery when any of them matches one of its
secrets. A receiver must reject a timestamp too far from its own clock, so a captured delivery
cannot be replayed later: `verify` does both checks, in constant time.

Receivers in Python can use this module directly::

    from keel.api.signing import verify
    verify([secret], request.headers, await request.body())   # raises SignatureError
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

from keel.errors import KeelError

TIMESTAMP_HEADER = "Keel-Timestamp"
SIGNATURE_HEADER = "Keel-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300


class SignatureError(KeelError):
    """A callback's signature is missing, malformed, stale or does not match."""


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_headers(
    secrets: Iterable[str | bytes], body: bytes, *, now: float | None = None
) -> dict[str, str]:
    """The headers for one delivery of `body`, signed with every secret given (newest first)."""
    keys = list(secrets)
    if not keys:
        raise ValueError("at least one secret is needed to sign a callback")
    timestamp = int(time.time() if now is None else now)
    signatures = ",".join(f"{SCHEME}={sign(key, timestamp, body)}" for key in keys)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signatures}


def verify(
    secrets: Iterable[str | bytes],
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """Check a delivery; return its timestamp. Raises SignatureError saying what is wrong.

    `headers` may be any mapping (names are matched case-insensitively). The body must be the
    exact bytes received, before any JSON parsing.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    raw_timestamp = lowered.get(TIMESTAMP_HEADER.lower())
    raw_signature = lowered.get(SIGNATURE_HEADER.lower())
    if raw_timestamp is None or raw_signature is None:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    try:
        timestamp = int(raw_timestamp.strip())
    except ValueError:
        raise SignatureError(f"{TIMESTAMP_HEADER} is not a Unix timestamp") from None
    skew = abs((time.time() if now is None else now) - timestamp)
    if skew > tolerance_s:
        raise SignatureError(f"{TIMESTAMP_HEADER} is {skew:.0f}s away from now (allowed: {tolerance_s}s)")
    offered = [
        value.strip()
        for scheme, _, value in (part.strip().partition("=") for part in raw_signature.split(","))
        if scheme == SCHEME and value.strip()
    ]
    if not offered:
        raise SignatureError(f"{SIGNATURE_HEADER} has no {SCHEME}= signature")
    expected = [sign(secret, timestamp, body) for secret in secrets]
    # Compare every pair, without stopping early, so timing says nothing about which part matched.
    matched = False
    for candidate in offered:
        for wanted in expected:
            matched |= hmac.compare_digest(candidate, wanted)
    if not matched:
        raise SignatureError("signature does not match the body and any known secret")
    return timestamp
