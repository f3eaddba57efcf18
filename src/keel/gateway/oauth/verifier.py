"""How a Keel server accepts the access tokens of its own built-in issuer, without HTTP to itself.

`IssuerVerifier` is the gateway's token verifier (`keel.gateway.auth.TokenVerifier`) when
`gateway.issuer.enabled`: a token whose unverified `iss` is the built-in issuer is checked here,
against the public keys in the database; any other token goes to the external issuers' verifier
(`keel.gateway.jwt.JwtVerifier`, when `gateway.jwt` lists some), unchanged.

Checks, in order (the first failure is the reason, as in `keel.gateway.jwt`; the client only ever
reads "invalid token"):
1. header `typ` is `at+jwt` (RFC 9068), `alg` is ES256, `kid` a string (malformed /
   algorithm_not_allowed);
2. the key: a published key of that kid (`keel.gateway.oauth.keys.published`); keys are read from
   the database at most every `KEY_CACHE` seconds, and again at once (at most once a second) for an
   unknown kid, so a key added by a rotation in another process is found on its first token
   (unknown_key);
3. the signature (bad_signature);
4. `aud` contains `gateway.issuer.audience` (wrong_audience); `exp` in the future and `iat`, `nbf`
   not in the future, with `leeway` seconds of skew (expired, not_yet_valid); `sub`, `client_id`,
   `tenant` and `jti` non-empty strings (missing_claim);
5. the `jti` is not on the deny list (revoked: reason `revoked`). A "not revoked" answer is
   remembered for `deny_cache` seconds (`gateway.key_cache`): a token revoked through another
   process is refused within that time; through this one, at once.

The principal: kind `service` when `sub` is the `client_id` (client credentials), else `user`; its
scopes exactly the token's `scope` (roles were already applied when the token was issued, and the
user's roles narrowed by the request: they are not added again); its roles the token's `roles`
(for `gateway.agent_access`).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, cast

from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import ECKey

from keel.config.gateway import IssuerConfig
from keel.gateway.jwt import MAX_CLAIM_LENGTH, TokenRefusalReason, TokenRefused, looks_like_jwt
from keel.gateway.oauth.keys import ALGORITHM, published
from keel.gateway.principal import Principal, scopes_of
from keel.store.oauth import OAuthStore

KEY_CACHE = 60.0
"""Seconds the published keys are used before they are read from the database again."""

UNKNOWN_KID_INTERVAL = 1.0
"""At most one database read per this many seconds for tokens naming an unknown kid."""

LEEWAY = 30.0
_MAX_REMEMBERED = 10_000


class TokenRevoked(TokenRefused):
    """A valid token of the built-in issuer whose `jti` is on the deny list: reason `revoked`
    (the message is "invalid token", as for every refusal)."""

    def __init__(self, *, issuer: str, detail: str = "") -> None:
        super().__init__("expired", issuer=issuer, detail=detail)
        self.reason = cast(TokenRefusalReason, "revoked")


class IssuerVerifier:
    """Tokens of the built-in issuer (see the module docstring); others go to `external`.

    `store` is owned (closed by `aclose`), as is `external`. `clock` gives Unix time in seconds.
    """

    def __init__(
        self,
        config: IssuerConfig,
        store: OAuthStore,
        *,
        external: Any | None = None,
        deny_cache: float = 10.0,
        leeway: float = LEEWAY,
        clock: Callable[[], float] | None = None,
    ) -> None:
        from keel.config.gateway import duration_seconds

        if config.issuer is None:
            raise ValueError("the built-in issuer needs gateway.issuer.issuer")
        self.issuer: str = config.issuer
        self.audience = config.audience
        self.access_token_ttl = duration_seconds(config.access_token_ttl)
        self.store = store
        self.external = external
        self._deny_cache = deny_cache
        self._leeway = leeway
        self._clock = clock or time.time
        self._keys: dict[str, ECKey] = {}
        self._keys_read_at = float("-inf")
        self._unknown_kid_read_at = float("-inf")
        self._lock = asyncio.Lock()
        self._not_revoked: dict[str, float] = {}  # jti -> until (monotonic clock)
        self._revoked: dict[str, float] = {}  # jti -> token expiry (unix time)

    async def authenticate(self, token: str) -> Principal:
        """The principal of a valid token, or `TokenRefused`."""
        decoded = _peek(token)
        if decoded is None or decoded[1].get("iss") != self.issuer:
            if self.external is not None:
                principal: Principal = await self.external.authenticate(token)
                return principal
            if decoded is None:
                raise TokenRefused("malformed")
            raise TokenRefused("unknown_issuer", detail=repr(decoded[1].get("iss"))[:200])
        return await self.verify(token, decoded[0])

    async def verify(self, token: str, header: Mapping[str, Any] | None = None) -> Principal:
        """A token of the built-in issuer, checked (see the module docstring)."""
        iss = self.issuer
        if header is None:
            decoded = _peek(token)
            if decoded is None:
                raise TokenRefused("malformed", issuer=iss)
            header = decoded[0]
        if header.get("typ") != "at+jwt":
            raise TokenRefused("malformed", issuer=iss, detail="typ is not at+jwt")
        if header.get("alg") != ALGORITHM:
            raise TokenRefused("algorithm_not_allowed", issuer=iss, detail=repr(header.get("alg"))[:40])
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise TokenRefused("malformed", issuer=iss, detail="no kid")
        key = await self._key(kid)
        if key is None:
            raise TokenRefused("unknown_key", issuer=iss, detail=f"kid {kid!r}"[:200])
        try:
            verified = jws.deserialize_compact(token, key, algorithms=[ALGORITHM])
        except BadSignatureError:
            raise TokenRefused("bad_signature", issuer=iss) from None
        except (JoseError, ValueError):
            raise TokenRefused("malformed", issuer=iss) from None
        try:
            claims = json.loads(verified.payload)
        except ValueError:
            raise TokenRefused("malformed", issuer=iss) from None
        if not isinstance(claims, dict):
            raise TokenRefused("malformed", issuer=iss)
        self._check_claims(claims)
        jti = claims["jti"]
        if await self.revoked(jti):
            raise TokenRevoked(issuer=iss, detail=f"jti {jti}")
        return self._principal(claims)

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        iss = self.issuer
        if claims.get("iss") != iss:
            raise TokenRefused("wrong_issuer", issuer=iss)
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud
        if aud is None:
            raise TokenRefused("missing_claim", issuer=iss, detail="aud")
        if not isinstance(audiences, list) or self.audience not in audiences:
            raise TokenRefused("wrong_audience", issuer=iss)
        now = self._clock()
        exp = _number(claims, "exp", iss)
        if exp is None:
            raise TokenRefused("missing_claim", issuer=iss, detail="exp")
        if now >= exp + self._leeway:
            raise TokenRefused("expired", issuer=iss)
        for name in ("iat", "nbf"):
            at = _number(claims, name, iss)
            if at is not None and at > now + self._leeway:
                raise TokenRefused("not_yet_valid", issuer=iss, detail=name)
        for name in ("sub", "client_id", "tenant", "jti"):
            value = claims.get(name)
            if not isinstance(value, str) or not value.strip() or len(value) > MAX_CLAIM_LENGTH:
                raise TokenRefused("missing_claim", issuer=iss, detail=name)

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        scope = claims.get("scope")
        roles = claims.get("roles")
        role_names = (
            tuple(dict.fromkeys(r for r in roles if isinstance(r, str))) if isinstance(roles, list) else ()
        )
        return Principal(
            kind="service" if claims["sub"] == claims["client_id"] else "user",
            id=claims["sub"],
            tenant_id=claims["tenant"],
            scopes=scopes_of(scope.split() if isinstance(scope, str) else (), (), {}),
            roles=role_names,
            credential="jwt",
            issuer=self.issuer,
            claims=MappingProxyType(dict(claims)),
        )

    # -- keys ------------------------------------------------------------------------------------

    async def _key(self, kid: str) -> ECKey | None:
        now = time.monotonic()
        if now - self._keys_read_at >= KEY_CACHE:
            await self._read_keys(now)
        key = self._keys.get(kid)
        if key is None and now - self._unknown_kid_read_at >= UNKNOWN_KID_INTERVAL:
            self._unknown_kid_read_at = now
            await self._read_keys(now)
            key = self._keys.get(kid)
        return key

    async def _read_keys(self, started: float) -> None:
        async with self._lock:  # one read at a time; a read that began meanwhile serves this one
            if self._keys_read_at >= started:
                return
            rows = await self.store.signing_keys()
            keep = published(rows, self.store.clock(), self.access_token_ttl)
            self._keys = {
                row.kid: ECKey.import_key(dict(row.public_jwk), parameters={"kid": row.kid}) for row in keep
            }
            self._keys_read_at = time.monotonic()

    def forget_keys(self) -> None:
        """Read the keys from the database at the next token (after a rotation here)."""
        self._keys_read_at = float("-inf")

    # -- the deny list -----------------------------------------------------------------------------

    async def revoked(self, jti: str) -> bool:
        """Whether the access token `jti` was revoked (see the module docstring for the cache)."""
        if jti in self._revoked:
            return True
        now = time.monotonic()
        until = self._not_revoked.get(jti)
        if until is not None and until > now:
            return False
        revoked = await self.store.access_token_revoked(jti)
        if len(self._not_revoked) >= _MAX_REMEMBERED:
            self._not_revoked.clear()
        if revoked:
            self._not_revoked.pop(jti, None)
            self.remember_revoked(jti, self._clock() + self.access_token_ttl + self._leeway)
        elif self._deny_cache > 0:
            self._not_revoked[jti] = now + self._deny_cache
        return revoked

    def remember_revoked(self, jti: str, expires_at: float) -> None:
        """Refuse `jti` in this process at once (it was just revoked here), until it expires."""
        self._not_revoked.pop(jti, None)
        now = self._clock()
        if len(self._revoked) >= _MAX_REMEMBERED:
            self._revoked = {j: e for j, e in self._revoked.items() if e + self._leeway > now}
        if len(self._revoked) < _MAX_REMEMBERED:
            self._revoked[jti] = expires_at

    async def aclose(self) -> None:
        await self.store.close()
        if self.external is not None:
            await self.external.aclose()


def expiry_of(claims: Mapping[str, Any]) -> datetime:
    """The `exp` claim of verified claims, as an aware datetime."""
    return datetime.fromtimestamp(float(claims["exp"]), UTC)


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Header and claims of a compact JWS, unverified (to pick the issuer); None if not one."""
    if not isinstance(token, str) or not looks_like_jwt(token):
        return None
    try:
        obj = jws.extract_compact(token.encode("ascii"))
        claims = json.loads(obj.payload)
    except (JoseError, ValueError, UnicodeError):
        return None
    header = obj.headers()
    if not isinstance(claims, dict) or not isinstance(header, dict):
        return None
    return dict(header), claims


def _number(claims: Mapping[str, Any], name: str, iss: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TokenRefused("malformed", issuer=iss, detail=name)
    return float(value)


__all__ = ["KEY_CACHE", "IssuerVerifier", "TokenRevoked", "expiry_of"]
