"""The issuer's signing keys: which one signs, which ones are published, and rotation.

The database is the source of truth, so every process of a deployment agrees. Keys are ES256
(P-256) keys, numbered by `generation`; the newest generation signs. The `kid` is the key's RFC 7638
thumbprint.

Rotation. When the newest key is older than `gateway.issuer.key_rotation`, the next process that
needs to sign adds generation + 1 (`keel oauth rotate-key` does so at once). The unique constraint on
`generation` means that of two processes rotating at the same moment one inserts and the other
finds its key: never two new keys.

Publication. A key is published in the JWKS (and accepted by the verifier) while it signs, and
after a newer key replaced it for as long as a token it signed can still be valid: the access token
lifetime, plus `PUBLISH_MARGIN` for processes still signing with it from their cache
(`SIGNING_CACHE` seconds at most) and for clock leeway. After that it is no longer published, and
its row stays in the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from joserfc.jwk import ECKey

from keel.gateway.oauth.crypto import decrypt_private_jwk, encrypt_private_jwk
from keel.store.oauth import OAuthStore, SigningKeyRow

ALGORITHM = "ES256"
CURVE = "P-256"

SIGNING_CACHE = 60.0
"""Seconds a process signs with the key it read before reading the newest one again."""

PUBLISH_MARGIN = 300.0
"""Seconds a replaced key stays published beyond the access token lifetime."""


@dataclass(frozen=True)
class SigningKey:
    """A private signing key, decrypted, with its key id and generation."""

    kid: str
    generation: int
    created_at: datetime
    key: ECKey


def published(rows: Sequence[SigningKeyRow], now: datetime, access_token_ttl: float) -> list[SigningKeyRow]:
    """The keys whose tokens may still be valid at `now`: the newest one, and each older one until
    `access_token_ttl + PUBLISH_MARGIN` seconds after its successor was created."""
    ordered = sorted(rows, key=lambda row: row.generation, reverse=True)
    keep: list[SigningKeyRow] = []
    successor: SigningKeyRow | None = None
    window = timedelta(seconds=access_token_ttl + PUBLISH_MARGIN)
    for row in ordered:
        if successor is None or successor.created_at + window > now:
            keep.append(row)
        successor = row
    return keep


class SigningKeys:
    """Signing keys on `store` (see the module docstring). `secret` (from
    `keel.gateway.oauth.crypto.signing_secret`) is needed to sign and rotate, not to publish."""

    def __init__(
        self,
        store: OAuthStore,
        *,
        rotation: float,
        access_token_ttl: float,
        secret: bytes | None = None,
        cache: float = SIGNING_CACHE,
    ) -> None:
        self.store = store
        self.rotation = rotation
        self.access_token_ttl = access_token_ttl
        self._secret = secret
        self._cache = cache
        self._current: SigningKey | None = None
        self._read_at: datetime | None = None
        self._lock = asyncio.Lock()

    def _fresh(self, now: datetime) -> SigningKey | None:
        current = self._current
        if current is None or self._read_at is None:
            return None
        if (now - self._read_at).total_seconds() >= self._cache:
            return None
        if now >= current.created_at + timedelta(seconds=self.rotation):
            return None
        return current

    async def current(self) -> SigningKey:
        """The key to sign with now: the newest, after adding one if there is none or it is due."""
        now = self.store.clock()
        cached = self._fresh(now)
        if cached is not None:
            return cached
        async with self._lock:
            now = self.store.clock()
            cached = self._fresh(now)
            if cached is not None:
                return cached
            rows = await self.store.signing_keys(limit=1)
            latest = rows[0] if rows else None
            if latest is None or latest.created_at + timedelta(seconds=self.rotation) <= now:
                latest = await self._add(latest.generation + 1 if latest else 1)
            return self._remember(latest)

    async def rotate(self) -> SigningKey:
        """Add a new key now, whatever the age of the current one; it signs from now on in this
        process, and in the others within `SIGNING_CACHE` seconds."""
        async with self._lock:
            rows = await self.store.signing_keys(limit=1)
            row = await self._add(rows[0].generation + 1 if rows else 1)
            return self._remember(row)

    async def published(self) -> list[SigningKeyRow]:
        """The keys in the JWKS now (newest first)."""
        rows = await self.store.signing_keys()
        return published(rows, self.store.clock(), self.access_token_ttl)

    async def jwks(self) -> dict[str, Any]:
        """The JWKS document: the public half of every published key."""
        return {"keys": [dict(row.public_jwk) for row in await self.published()]}

    def forget(self) -> None:
        """Read the newest key from the database at the next signature."""
        self._current = None

    def _remember(self, row: SigningKeyRow) -> SigningKey:
        private = decrypt_private_jwk(row.private_jwe, row.kid, self._need_secret())
        key = ECKey.import_key(private, parameters={"kid": row.kid, "alg": ALGORITHM, "use": "sig"})
        self._current = SigningKey(kid=row.kid, generation=row.generation, created_at=row.created_at, key=key)
        self._read_at = self.store.clock()
        return self._current

    async def _add(self, generation: int) -> SigningKeyRow:
        """Insert a new key of `generation`; if another process got there first, its key."""
        secret = self._need_secret()
        key = ECKey.generate_key(CURVE, private=True)
        kid = key.thumbprint()
        public = {**key.as_dict(private=False), "kid": kid, "alg": ALGORITHM, "use": "sig"}
        row = SigningKeyRow(
            kid=kid,
            generation=generation,
            alg=ALGORITHM,
            public_jwk=public,
            private_jwe=encrypt_private_jwk(key.as_dict(private=True), kid, secret),
            created_at=self.store.clock(),
        )
        if await self.store.add_signing_key(row):
            return row
        for existing in await self.store.signing_keys(limit=5):
            if existing.generation >= generation:
                return existing
        raise RuntimeError(f"signing key generation {generation} could not be added nor found")

    def _need_secret(self) -> bytes:
        if self._secret is None:
            raise RuntimeError("signing needs the key secret (gateway.issuer.key_secret_env)")
        return self._secret


__all__ = ["ALGORITHM", "PUBLISH_MARGIN", "SIGNING_CACHE", "SigningKey", "SigningKeys", "published"]
