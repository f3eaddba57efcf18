"""Authentication and authorization of one request: `Gateway.authenticate` and `Gateway.authorize`.

A request carries its credential as `Authorization: Bearer <credential>`: a Keel API key
(`keel_...`, checked against `keel.store.keys.KeyStore`) or, when issuers are configured, a JWT
access token (`keel.gateway.jwt`). With `gateway.auth: off` every caller is the anonymous principal
(local development only). Everything else is refused: deny by default.

A verified API key is remembered for `gateway.key_cache` seconds (keyed by a SHA-256 digest of the
presented key, never the key itself), so a busy client does not cost a database read per request;
a key revoked in another process therefore stops working within that time (at once in the
process that revoked it, and at once everywhere with `key_cache: 0`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Protocol

from keel.config.gateway import GatewayConfig
from keel.errors import KeelError
from keel.gateway.jwt import looks_like_jwt
from keel.gateway.keys import KEY_SCHEME, ApiKeyRefused, Scope
from keel.gateway.principal import DEFAULT_TENANT, Principal

if TYPE_CHECKING:
    from keel.store.keys import ApiKeyRecord, KeyStore

RefusedReason = Literal[
    "missing_credentials",
    "malformed_credentials",
    "unsupported_credentials",
    "invalid_api_key",
    "invalid_token",
]

_MAX_CACHED_KEYS = 10_000


class NotAuthenticated(KeelError):
    """No valid credential (HTTP 401). The message is for the client; `reason` and `detail` are
    for logs and the audit log only (they may say which check failed)."""

    def __init__(self, reason: RefusedReason, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.reason: RefusedReason = reason
        self.detail = detail


class Forbidden(KeelError):
    """A known principal may not do this (HTTP 403); `code` is the API's problem code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _CachedKey:
    record: ApiKeyRecord
    until: float


class Gateway:
    """Who is calling and what they may do, for one server process (see the module docstring)."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        keys: KeyStore | None = None,
        jwt: TokenVerifier | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.keys = keys
        self.jwt = jwt
        self._clock = clock
        self._cache: dict[bytes, _CachedKey] = {}
        self._anonymous = Principal(
            kind="anonymous",
            id="anonymous",
            tenant_id=config.anonymous.tenant,
            scopes=frozenset(config.anonymous.scopes),
            credential="anonymous",
        )

    @property
    def open(self) -> bool:
        """True when authentication is off (`gateway.auth: off`)."""
        return self.config.auth == "off"

    # -- authentication ----------------------------------------------------------------------------

    async def authenticate(self, authorization: str | None) -> Principal:
        """The principal behind an `Authorization` header value, or `NotAuthenticated`."""
        if self.open:
            return self._anonymous
        if authorization is None or not authorization.strip():
            raise NotAuthenticated(
                "missing_credentials",
                "this endpoint needs credentials: Authorization: Bearer <API key or token>",
            )
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential or " " in credential:
            raise NotAuthenticated(
                "malformed_credentials", "the Authorization header must be 'Bearer <API key or token>'"
            )
        if credential.startswith(f"{KEY_SCHEME}_"):
            return await self._api_key(credential)
        if self.jwt is not None and looks_like_jwt(credential):
            try:
                return await self.jwt.authenticate(credential)
            except KeelError as exc:
                reason = getattr(exc, "reason", None)
                raise NotAuthenticated("invalid_token", "invalid token", detail=str(reason)) from None
        raise NotAuthenticated(
            "unsupported_credentials",
            "unsupported credentials: use a Keel API key"
            + (" or a JWT from a configured issuer" if self.jwt is not None else ""),
        )

    async def _api_key(self, key: str) -> Principal:
        if self.keys is None:
            raise NotAuthenticated(
                "invalid_api_key", "invalid API key", detail="API keys need storage (storage.enabled)"
            )
        digest = hashlib.sha256(key.encode()).digest()
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and cached.until > now and not _expired(cached.record):
            return principal_of_key(cached.record)
        try:
            record = await self.keys.verify(key)
        except ApiKeyRefused as exc:
            self._cache.pop(digest, None)
            raise NotAuthenticated(
                "invalid_api_key", "invalid API key", detail=f"{exc.reason} (prefix {exc.prefix})"
            ) from None
        if self.config.key_cache > 0:
            if len(self._cache) >= _MAX_CACHED_KEYS:
                self._cache.clear()
            self._cache[digest] = _CachedKey(record, now + self.config.key_cache)
        return principal_of_key(record)

    def forget_key(self, key_id: str) -> None:
        """Drop a key from the cache (after revoking it here)."""
        for digest, cached in list(self._cache.items()):
            if cached.record.id == key_id:
                del self._cache[digest]

    # -- authorization -----------------------------------------------------------------------------

    def authorize(self, principal: Principal, scope: Scope) -> None:
        """Raise `Forbidden` unless `principal` holds `scope` itself."""
        if not principal.has_scope(scope):
            raise Forbidden("missing_scope", f"this needs the scope {scope!r}, which these credentials lack")

    def may_run(self, principal: Principal, agent: str) -> bool:
        """Whether `gateway.agent_access` lets `principal` run `agent` (an agent not listed there:
        yes; the route's scope is checked separately)."""
        grants = self.config.agent_access.get(agent)
        if grants is None:
            return True
        for grant in grants:
            if grant == "*":
                return True
            kind, _, value = grant.partition(":")
            if (
                (kind == "tenant" and principal.tenant_id == value)
                or (kind == "role" and value in principal.roles)
                or (kind in ("user", "service") and principal.kind == kind and principal.id == value)
            ):
                return True
        return False

    def check_agent(self, principal: Principal, agent: str) -> None:
        if not self.may_run(principal, agent):
            raise Forbidden("agent_forbidden", f"these credentials may not run the agent {agent!r}")

    async def aclose(self) -> None:
        self._cache.clear()
        if self.keys is not None:
            await self.keys.close()
        if self.jwt is not None:
            await self.jwt.aclose()


class TokenVerifier(Protocol):
    """What the gateway needs of a JWT verifier (`keel.gateway.jwt.JwtVerifier`)."""

    async def authenticate(self, token: str) -> Principal: ...

    async def aclose(self) -> None: ...


def principal_of_key(record: ApiKeyRecord) -> Principal:
    """An API key acts as a service principal named by the key's public prefix."""
    return Principal(
        kind="service",
        id=record.prefix,
        tenant_id=record.tenant_id or DEFAULT_TENANT,
        scopes=frozenset(record.scopes),
        credential="api_key",
        key_prefix=record.prefix,
    )


def _expired(record: ApiKeyRecord) -> bool:
    if record.expires_at is None:
        return False
    return record.expires_at <= datetime.now(UTC)


def gateway_for(
    config: GatewayConfig, database_url: str | None, environ: Mapping[str, str] | None = None
) -> Gateway:
    """The gateway of a server: API keys on `database_url` (when storage is on), JWTs from the
    issuers in `config.jwt`, and, with `config.issuer.enabled`, the access tokens of the built-in
    issuer, verified against its keys in the database (`keel.gateway.oauth.verifier`, no HTTP)."""
    from keel.store.keys import KeyStore

    keys = KeyStore(database_url, environ=environ) if database_url is not None else None
    jwt: TokenVerifier | None = None
    if config.jwt:
        from keel.gateway.jwt import JwtVerifier

        jwt = JwtVerifier(config.jwt, config.roles)
    if config.issuer.enabled:
        from keel.errors import UsageError
        from keel.gateway.oauth.verifier import IssuerVerifier
        from keel.store.identity import IdentityStore

        if database_url is None:
            raise UsageError("gateway.issuer: the built-in issuer needs storage (storage.enabled)")
        jwt = IssuerVerifier(
            config.issuer,
            IdentityStore(database_url, environ=environ),
            external=jwt,
            deny_cache=config.key_cache,
        )
    return Gateway(config, keys=keys, jwt=jwt)
