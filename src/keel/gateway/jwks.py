"""The signing keys of one external issuer: fetched, parsed once, cached, refreshed with restraint.

`IssuerKeys` holds the JWKS of one configured issuer (`JwtIssuerConfig`). The JWKS comes from
`jwks_url`, or, without it, from the `jwks_uri` of the issuer's OIDC discovery document
(`<issuer>/.well-known/openid-configuration`), whose `issuer` must be exactly the configured one.

Keys are parsed once per fetch (public members only; `oct` keys, keys for encryption, RSA keys
under 2048 bits and unknown curves are dropped) and indexed by `kid`, so verifying a token whose
key is known does no network I/O and no parsing.

When the network is asked:
- the first time a token of the issuer is seen (every concurrent request waits for one fetch:
  single flight);
- when the cached set is older than `jwks_cache` seconds;
- when a token names a `kid` the set does not have (the issuer may have rotated its keys), at most
  once every `REFETCH_INTERVAL` seconds per issuer, so tokens with made-up kids cannot make Keel
  hammer the identity provider.

A failed fetch keeps the cached set in use (a stale set is better than refusing every token while
the IdP is briefly down) and is retried after `REFETCH_INTERVAL` seconds; with nothing cached, after
`RETRY_WITHOUT_KEYS` seconds, and tokens are meanwhile refused without waiting on the network.
Every HTTP request times out after `HTTP_TIMEOUT` seconds, follows no redirect, and reads at most
`MAX_DOCUMENT_BYTES`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from keel.config.gateway import JwtIssuerConfig

log = logging.getLogger("keel.gateway.jwt")

REFETCH_INTERVAL = 30.0
"""At most one JWKS fetch per issuer in this many seconds for an unknown kid, or after a failure."""

RETRY_WITHOUT_KEYS = 5.0
"""After a failed fetch with no keys cached, seconds before the next attempt."""

HTTP_TIMEOUT = 5.0
"""Seconds for each discovery or JWKS request (connect, read, write and pool)."""

MAX_DOCUMENT_BYTES = 512 * 1024
"""A discovery document or JWKS larger than this is refused."""

MIN_RSA_BITS = 2048

DISCOVERY_PATH = "/.well-known/openid-configuration"

# Which key fits which algorithm: key type, and the curves allowed (None: no curve).
KEY_FITS: Mapping[str, tuple[str, frozenset[str] | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}

_PUBLIC_MEMBERS = {"RSA": ("n", "e"), "EC": ("crv", "x", "y"), "OKP": ("crv", "x")}
_CURVES = {"EC": frozenset({"P-256", "P-384", "P-521"}), "OKP": frozenset({"Ed25519", "Ed448"})}


class JwksError(Exception):
    """A discovery document or JWKS could not be fetched or used (logged, never shown)."""


@dataclass(frozen=True)
class VerificationKey:
    """One public key of an issuer, parsed, with what it may verify."""

    kid: str | None
    kty: str
    crv: str | None
    alg: str | None  # the JWK's own `alg`, when it declares one
    key: Key

    def fits(self, alg: str) -> bool:
        """Whether this key may verify a signature made with `alg`."""
        fit = KEY_FITS.get(alg)
        if fit is None or fit[0] != self.kty:
            return False
        if fit[1] is not None and self.crv not in fit[1]:
            return False
        return self.alg is None or self.alg == alg


@dataclass(frozen=True)
class KeySet:
    """A parsed JWKS, indexed by kid, and when it was fetched."""

    by_kid: Mapping[str, tuple[VerificationKey, ...]]
    all: tuple[VerificationKey, ...]
    fetched_at: float

    def find(self, kid: str | None) -> tuple[VerificationKey, ...]:
        """The keys named `kid`; for a token without a kid, every key (the caller filters by alg)."""
        if kid is None:
            return self.all
        return self.by_kid.get(kid, ())

    def has_kid(self, kid: str) -> bool:
        return kid in self.by_kid


def parse_jwks(document: object, *, issuer: str, fetched_at: float) -> KeySet:
    """The usable signature keys of a JWKS document. `JwksError` if it is not a JWKS at all."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError("not a JWKS: no 'keys' list")
    by_kid: dict[str, list[VerificationKey]] = {}
    parsed: list[VerificationKey] = []
    for index, jwk in enumerate(document["keys"]):
        try:
            key = _parse_jwk(jwk)
        except (ValueError, TypeError, KeyError) as exc:  # joserfc raises ValueError subclasses
            log.warning("jwt issuer %s: JWKS key #%d skipped: %s", issuer, index, exc)
            continue
        if key is None:
            continue
        parsed.append(key)
        if key.kid is not None:
            by_kid.setdefault(key.kid, []).append(key)
    if not parsed:
        log.warning("jwt issuer %s: the JWKS has no usable signature key", issuer)
    return KeySet(
        by_kid={kid: tuple(keys) for kid, keys in by_kid.items()}, all=tuple(parsed), fetched_at=fetched_at
    )


def _parse_jwk(jwk: object) -> VerificationKey | None:
    """A signature key, None for a key that is not one (encryption, symmetric, unknown type)."""
    if not isinstance(jwk, dict):
        raise ValueError("not a JSON object")
    kty = jwk.get("kty")
    if kty not in _PUBLIC_MEMBERS:
        return None  # `oct` (a shared secret has no business in a JWKS) or unknown
    if jwk.get("use", "sig") != "sig":
        return None
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return None
    kid, alg, crv = jwk.get("kid"), jwk.get("alg"), jwk.get("crv")
    if kid is not None and not isinstance(kid, str):
        raise ValueError("kid is not a string")
    if alg is not None and alg not in KEY_FITS:
        return None  # declared for an algorithm Keel never accepts (HS*, RSA-OAEP, ...)
    if kty in _CURVES and crv not in _CURVES[kty]:
        return None  # e.g. X25519 (key agreement) or an unsupported curve
    public = {name: jwk[name] for name in _PUBLIC_MEMBERS[kty]}
    if not all(isinstance(value, str) for value in public.values()):
        raise ValueError("key members must be base64url strings")
    public["kty"] = kty
    key: Key
    if kty == "RSA":
        bits = int.from_bytes(base64.urlsafe_b64decode(public["n"] + "==")).bit_length()
        if bits < MIN_RSA_BITS:
            raise ValueError(f"RSA key of {bits} bits; at least {MIN_RSA_BITS} needed")
        key = RSAKey.import_key(public)
    elif kty == "EC":
        key = ECKey.import_key(public)
    else:
        key = OKPKey.import_key(public)
    return VerificationKey(kid=kid, kty=kty, crv=crv if isinstance(crv, str) else None, alg=alg, key=key)


@dataclass
class _State:
    keys: KeySet | None = None
    jwks_uri: str | None = None
    next_attempt_at: float = float("-inf")  # after a failure: no fetch before this
    last_kid_refetch: float = float("-inf")
    inflight: asyncio.Task[None] | None = None
    fetches: int = field(default=0)


class IssuerKeys:
    """The keys of one issuer (see the module docstring). `http` is shared and owned by the caller."""

    def __init__(self, config: JwtIssuerConfig, http: httpx.AsyncClient, clock: Callable[[], float]) -> None:
        self.config = config
        self._http = http
        self._clock = clock
        self._state = _State(jwks_uri=config.jwks_url)

    @property
    def cached(self) -> KeySet | None:
        """The current key set, if any was ever fetched (possibly stale)."""
        return self._state.keys

    @property
    def fetches(self) -> int:
        """How many fetches were attempted (for tests and metrics)."""
        return self._state.fetches

    async def lookup(self, kid: str | None) -> tuple[VerificationKey, ...] | None:
        """The keys that may have signed a token naming `kid`: () when there is none even after a
        refetch (or a refetch is not allowed yet); None when no key set could be obtained at all."""
        state = self._state
        now = self._clock()
        refreshed = False
        keys = state.keys
        if (keys is None or now - keys.fetched_at >= self.config.jwks_cache) and now >= state.next_attempt_at:
            await self._refresh()
            refreshed = True
            keys = state.keys
        if keys is None:
            return None
        found = keys.find(kid)
        if found or kid is None or refreshed:
            return found
        if state.inflight is not None:  # a fetch is under way (maybe for this very kid): wait for it
            await self._refresh()
            keys = state.keys
            found = keys.find(kid) if keys is not None else ()
            if found:
                return found
        # An unknown kid: the issuer may have rotated its keys. Refetch, but rarely.
        now = self._clock()
        if now - state.last_kid_refetch < REFETCH_INTERVAL or now < state.next_attempt_at:
            return ()
        state.last_kid_refetch = now
        await self._refresh()
        keys = state.keys
        return keys.find(kid) if keys is not None else None

    async def _refresh(self) -> None:
        """Fetch the key set, sharing one fetch among every concurrent caller."""
        task = self._state.inflight
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch())
            self._state.inflight = task
        await asyncio.shield(task)

    async def _fetch(self) -> None:
        state = self._state
        state.fetches += 1
        try:
            uri = state.jwks_uri or await self._discover()
            state.jwks_uri = uri
            document = await self._get_json(uri)
            state.keys = parse_jwks(document, issuer=self.config.issuer, fetched_at=self._clock())
            state.next_attempt_at = float("-inf")
        except Exception as exc:  # whatever went wrong, the cached keys stay in use
            retry = REFETCH_INTERVAL if state.keys is not None else RETRY_WITHOUT_KEYS
            state.next_attempt_at = self._clock() + retry
            if self.config.jwks_url is None:
                state.jwks_uri = None  # discover again next time: the jwks_uri may have moved
            log.warning(
                "jwt issuer %s: JWKS fetch failed (%s); %s; next attempt in %.0f s",
                self.config.issuer,
                exc,
                "keeping the cached keys" if state.keys is not None else "no keys cached",
                retry,
            )
        finally:
            state.inflight = None

    async def _discover(self) -> str:
        url = self.config.issuer.rstrip("/") + DISCOVERY_PATH
        document = await self._get_json(url)
        if not isinstance(document, dict):
            raise JwksError(f"discovery document at {url} is not a JSON object")
        if document.get("issuer") != self.config.issuer:
            raise JwksError(
                f"discovery document at {url} names issuer {document.get('issuer')!r}, "
                f"expected {self.config.issuer!r}"
            )
        uri = document.get("jwks_uri")
        if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
            raise JwksError(f"discovery document at {url} has no http(s) jwks_uri")
        return uri

    async def _get_json(self, url: str) -> Any:
        async with self._http.stream(
            "GET",
            url,
            headers={"accept": "application/json"},
            timeout=HTTP_TIMEOUT,
            follow_redirects=False,
        ) as response:
            if response.status_code != 200:
                raise JwksError(f"GET {url}: HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise JwksError(f"GET {url}: larger than {MAX_DOCUMENT_BYTES} bytes")
        try:
            return json.loads(body)
        except ValueError:
            raise JwksError(f"GET {url}: not JSON") from None

    async def aclose(self) -> None:
        """Cancel a fetch in flight."""
        task = self._state.inflight
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


__all__ = [
    "HTTP_TIMEOUT",
    "KEY_FITS",
    "REFETCH_INTERVAL",
    "RETRY_WITHOUT_KEYS",
    "IssuerKeys",
    "JwksError",
    "KeySet",
    "VerificationKey",
    "parse_jwks",
]
