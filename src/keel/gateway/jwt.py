"""Keel as an OAuth2/OIDC resource server: JWT access tokens from configured external issuers.

`JwtVerifier.authenticate(token)` returns the token's `Principal` or raises `TokenRefused`, whose
message is always "invalid token"; `reason` says why, for logs and audit only. See docs/auth-jwt.md.

What is checked, in order (the first failure is the reason):
1. The token is a JWS in compact form of at most `MAX_TOKEN_LENGTH` characters, with JSON object
   header and payload, no `crit` header and no duplicate member names (malformed).
2. Its unverified `iss` is exactly one of the configured issuers (unknown_issuer); the issuer is
   chosen by that claim only, never by a header.
3. Its header `alg` is in that issuer's `algorithms` (algorithm_not_allowed). `none` and every HS*
   algorithm are refused whatever the configuration says: an HMAC "verified" with a public key is
   the classic RS/HS key confusion. `jku`, `x5u`, `jwk` and `x5c` headers are ignored: keys come
   only from the issuer's configured JWKS.
4. The key: the JWKS key named by the header `kid` (keel.gateway.jwks fetches, caches and refetches
   on rotation); none known -> unknown_key, or wrong_issuer when the kid belongs to another
   configured issuer; a key whose type, curve or own `alg` does not fit the token's `alg` ->
   algorithm_not_allowed; no key set obtainable -> jwks_unavailable.
5. The signature (bad_signature).
6. The claims: `aud` (a string or a list) contains the issuer's audience (wrong_audience); `exp`
   present and `now < exp + leeway` (expired); `nbf` and `iat`, when present, `<= now + leeway`
   (not_yet_valid); subject and tenant non-empty strings of at most 256 characters, and the kind
   claim when configured, 'user' or 'service' (missing_claim). `aud` and `exp` are required
   (missing_claim when absent); a claim of the wrong JSON type is malformed.

Scopes: the scopes claim (a space-separated string or a list of strings) plus the scopes of the
token's roles (`gateway.roles`), through `scopes_of`: unknown scopes and roles grant nothing.

Kind: the configured `claims.kind` claim ('user' or 'service') when set. Otherwise the token is a
service's when it has no user behind it: `gty` is "client-credentials" (Auth0), `idtyp` is "app"
(Microsoft Entra), or `client_id`, `azp` or `cid` equals `sub` (RFC 9068 and most IdPs for the
client credentials grant); any other token is a user's.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal

import httpx
from joserfc.jws import JWSRegistry  # importing joserfc.jws registers the algorithms

from keel.config.gateway import JwtIssuerConfig
from keel.errors import KeelError
from keel.gateway.jwks import HTTP_TIMEOUT, KEY_FITS, IssuerKeys, VerificationKey
from keel.gateway.principal import Principal, PrincipalKind, scopes_of

TokenRefusalReason = Literal[
    "malformed",
    "unknown_issuer",
    "algorithm_not_allowed",
    "unknown_key",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "wrong_audience",
    "wrong_issuer",
    "missing_claim",
    "jwks_unavailable",
]
"""Why a token was refused: for logs and audit, never shown to the client."""

PUBLIC_REFUSAL = "invalid token"

MAX_TOKEN_LENGTH = 16_384
MAX_CLAIM_LENGTH = 256

NEVER_ALLOWED = frozenset({"none", "HS256", "HS384", "HS512"})

_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


class TokenRefused(KeelError):
    """The token cannot be used. The message never says why; `reason` does, for logs and audit."""

    def __init__(self, reason: TokenRefusalReason, *, issuer: str | None = None, detail: str = "") -> None:
        self.reason: TokenRefusalReason = reason
        self.issuer = issuer  # the configured issuer the token claimed, when known
        self.detail = detail  # more for the logs (a claim's name, an algorithm), never a secret
        super().__init__(PUBLIC_REFUSAL)


def looks_like_jwt(token: str) -> bool:
    """Three base64url segments separated by dots (a JWS in compact form), not too long: tells a JWT
    from a Keel API key (`keel_...`, no dots) before any verification."""
    return len(token) <= MAX_TOKEN_LENGTH and _JWT.fullmatch(token) is not None


class JwtVerifier:
    """Verifies JWT access tokens from `issuers` (see the module docstring).

    `role_scopes` is `gateway.roles`. `http` is used for discovery and JWKS requests (not closed by
    `aclose`); without it the verifier makes and owns one. `clock` gives Unix time in seconds, for
    the time claims and the JWKS cache.
    """

    def __init__(
        self,
        issuers: Sequence[JwtIssuerConfig],
        role_scopes: Mapping[str, Sequence[str]],
        *,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._clock = clock or time.time
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False)
        self._role_scopes = {role: tuple(scopes) for role, scopes in role_scopes.items()}
        self._issuers: dict[str, IssuerKeys] = {
            config.issuer: IssuerKeys(config, self._http, self._clock) for config in issuers
        }
        self._algorithms = {config.issuer: frozenset(config.algorithms) - NEVER_ALLOWED for config in issuers}

    def keys_of(self, issuer: str) -> IssuerKeys:
        """The key cache of a configured issuer (for tests and diagnostics)."""
        return self._issuers[issuer]

    async def authenticate(self, token: str) -> Principal:
        """The principal the token names, or `TokenRefused`."""
        header, claims, signing_input, signature = _decode(token)
        iss = claims.get("iss")
        if not isinstance(iss, str) or iss not in self._issuers:
            raise TokenRefused("unknown_issuer", detail=repr(iss)[:200])
        issuer = self._issuers[iss]
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms[iss]:
            raise TokenRefused("algorithm_not_allowed", issuer=iss, detail=repr(alg)[:40])
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenRefused("malformed", issuer=iss, detail="kid is not a string")

        keys = await issuer.lookup(kid)
        if keys is None:
            raise TokenRefused("jwks_unavailable", issuer=iss)
        if not keys:
            if kid is not None and self._kid_of_another_issuer(iss, kid):
                raise TokenRefused("wrong_issuer", issuer=iss, detail=f"kid {kid!r} is another issuer's")
            raise TokenRefused("unknown_key", issuer=iss, detail=f"kid {kid!r}"[:200])
        fitting = [key for key in keys if key.fits(alg)]
        if not fitting:
            raise TokenRefused(
                "algorithm_not_allowed", issuer=iss, detail=f"no key for {alg} with kid {kid!r}"
            )
        if not any(_verify(alg, key, signing_input, signature) for key in fitting):
            raise TokenRefused("bad_signature", issuer=iss)

        self._check_claims(issuer.config, claims)
        return self._principal(issuer.config, claims)

    def _kid_of_another_issuer(self, iss: str, kid: str) -> bool:
        for other, keys in self._issuers.items():
            cached = keys.cached
            if other != iss and cached is not None and cached.has_kid(kid):
                return True
        return False

    def _check_claims(self, config: JwtIssuerConfig, claims: Mapping[str, Any]) -> None:
        iss = config.issuer
        if claims.get("iss") != iss:  # chosen by it; checked again after the signature all the same
            raise TokenRefused("wrong_issuer", issuer=iss)
        aud = claims.get("aud")
        if aud is None:
            raise TokenRefused("missing_claim", issuer=iss, detail="aud")
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise TokenRefused("malformed", issuer=iss, detail="aud")
        if config.audience not in audiences:
            raise TokenRefused("wrong_audience", issuer=iss)

        now = self._clock()
        exp = _time_claim(claims, "exp", iss)
        if exp is None:
            raise TokenRefused("missing_claim", issuer=iss, detail="exp")
        if now >= exp + config.leeway:
            raise TokenRefused("expired", issuer=iss)
        for name in ("nbf", "iat"):
            at = _time_claim(claims, name, iss)
            if at is not None and at > now + config.leeway:
                raise TokenRefused("not_yet_valid", issuer=iss, detail=name)

    def _principal(self, config: JwtIssuerConfig, claims: Mapping[str, Any]) -> Principal:
        names = config.claims
        subject = _identifier(claims, names.subject, config.issuer)
        tenant = _identifier(claims, names.tenant, config.issuer)
        roles = _strings(claim(claims, names.roles))
        scopes = scopes_of(_strings(claim(claims, names.scopes)), roles, self._role_scopes)
        kind: PrincipalKind
        if names.kind is not None:
            value = claim(claims, names.kind)
            if value not in ("user", "service"):
                raise TokenRefused("missing_claim", issuer=config.issuer, detail=names.kind)
            kind = "user" if value == "user" else "service"
        else:
            kind = "service" if _is_service(claims, subject) else "user"
        return Principal(
            kind=kind,
            id=subject,
            tenant_id=tenant,
            scopes=scopes,
            roles=roles,
            credential="jwt",
            issuer=config.issuer,
            claims=MappingProxyType(dict(claims)),
        )

    async def aclose(self) -> None:
        """Cancel fetches in flight; close the HTTP client if the verifier made it."""
        for keys in self._issuers.values():
            await keys.aclose()
        if self._owns_http:
            await self._http.aclose()


def claim(claims: Mapping[str, Any], name: str) -> Any:
    """The claim `name`: a top-level claim of exactly that name (claim names may contain dots, such as
    `https://example.com/tenant`), else the dotted path into nested objects (`realm_access.roles`)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _decode(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Header, payload, signing input and signature of a compact JWS, or `TokenRefused("malformed")`."""
    if not isinstance(token, str) or not looks_like_jwt(token):
        raise TokenRefused("malformed")
    header_part, payload_part, signature_part = token.split(".")
    try:
        header = _json(_b64decode(header_part))
        payload = _json(_b64decode(payload_part))
        signature = _b64decode(signature_part)
    except (ValueError, binascii.Error, RecursionError):
        raise TokenRefused("malformed") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise TokenRefused("malformed")
    if "crit" in header or header.get("b64", True) is not True:
        raise TokenRefused("malformed", detail="unsupported header")
    return header, payload, f"{header_part}.{payload_part}".encode("ascii"), signature


def _b64decode(segment: str) -> bytes:
    if len(segment) % 4 == 1:
        raise ValueError("bad base64url length")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _json(data: bytes) -> Any:
    return json.loads(data, object_pairs_hook=_unique_members, parse_constant=_no_constant)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: Python accepts them, the RFC does not


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member name")  # parsers disagree on which one wins
    return result


def _verify(alg: str, key: VerificationKey, signing_input: bytes, signature: bytes) -> bool:
    if alg not in KEY_FITS:  # defence in depth: only asymmetric algorithms ever reach here
        return False
    try:
        return bool(JWSRegistry.algorithms[alg].verify(signing_input, signature, key.key))
    except Exception:  # a signature of the wrong size or shape is just a bad signature
        return False


def _time_claim(claims: Mapping[str, Any], name: str, iss: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TokenRefused("malformed", issuer=iss, detail=name)
    return float(value)


def _identifier(claims: Mapping[str, Any], name: str, iss: str) -> str:
    value = claim(claims, name)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_CLAIM_LENGTH:
        raise TokenRefused("missing_claim", issuer=iss, detail=name)
    return value


def _strings(value: Any) -> tuple[str, ...]:
    """A space-separated string or a list of strings, as a tuple without duplicates (others: ())."""
    items = value.split() if isinstance(value, str) else value if isinstance(value, list) else []
    return tuple(dict.fromkeys(item for item in items if isinstance(item, str) and item))


def _is_service(claims: Mapping[str, Any], subject: str) -> bool:
    if claims.get("gty") == "client-credentials" or claims.get("idtyp") == "app":
        return True
    return any(claims.get(name) == subject for name in ("client_id", "azp", "cid"))


__all__ = [
    "PUBLIC_REFUSAL",
    "JwtVerifier",
    "TokenRefusalReason",
    "TokenRefused",
    "claim",
    "looks_like_jwt",
]
