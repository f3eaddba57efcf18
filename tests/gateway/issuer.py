"""A tiny real OIDC issuer for the JWT tests, served over loopback HTTP in a thread.

It serves the discovery document (`/.well-known/openid-configuration`) and the JWKS (`/jwks`),
signs access tokens with joserfc (RSA and EC keys), can rotate its keys, go down (HTTP 503), or
claim another issuer in its discovery document, and counts the requests it serves.

    with OidcIssuer() as idp:
        token = idp.token(sub="ada", tenant="acme")
"""

from __future__ import annotations

import base64
import functools
import json
import threading
import time
import warnings
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey

SigningKey = RSAKey | ECKey | OKPKey

AUDIENCE = "https://keel.test/api"
JWKS_PATH = "/jwks"
DISCOVERY_PATH = "/.well-known/openid-configuration"


def new_key(kty: Literal["RSA", "EC", "OKP"] = "RSA", kid: str | None = None) -> SigningKey:
    """A fresh private key (RSA 2048, EC P-256 or Ed25519) with a kid (its thumbprint unless given)."""
    key: SigningKey
    if kty == "RSA":
        key = RSAKey.generate_key(2048)
    elif kty == "EC":
        key = ECKey.generate_key("P-256")
    else:
        key = OKPKey.generate_key("Ed25519")
    key.ensure_kid()
    if kid is not None:
        key = type(key).import_key({**key.as_dict(private=True), "kid": kid})
    return key


@functools.cache
def default_key() -> SigningKey:
    """One RSA key for every issuer that is given none (generating RSA keys is slow)."""
    return new_key("RSA")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A compact JWS from parts, signed or not: for forging tokens."""
    return ".".join(
        (b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()), b64url(signature))
    )


class OidcIssuer:
    """An OIDC issuer on http://127.0.0.1:<port>. Thread-safe counters; `clock` gives Unix time."""

    def __init__(
        self, *, clock: Callable[[], float] = time.time, keys: list[SigningKey] | None = None
    ) -> None:
        self.clock = clock
        self.published: list[SigningKey] = list(keys) if keys else [default_key()]
        self.signing_key: SigningKey = self.published[0]
        self.down = False
        self.discovery_issuer: str | None = None  # claim this issuer in discovery instead of ours
        self.jwks_fetches = 0
        self.discovery_fetches = 0
        self.requests = 0  # every request, whatever its path or answer
        self.jwks_delay = 0.0  # seconds each JWKS answer is held back (to show single flight)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, name="oidc-issuer", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def issuer(self) -> str:
        return self.url

    @property
    def jwks_url(self) -> str:
        return self.url + JWKS_PATH

    def __enter__(self) -> OidcIssuer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    # -- keys and tokens ----------------------------------------------------------------------------

    def rotate(self, kty: Literal["RSA", "EC", "OKP"] = "RSA", *, retire_old: bool = False) -> SigningKey:
        """Publish a new key and sign with it from now on; `retire_old` unpublishes the others."""
        key = new_key(kty)
        with self._lock:
            self.published = [key] if retire_old else [*self.published, key]
            self.signing_key = key
        return key

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            keys = list(self.published)
        return {"keys": [{**k.as_dict(private=False), "use": "sig"} for k in keys]}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """Valid access-token claims for AUDIENCE; `None` values remove a claim."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "ada",
            "tenant": "acme",
            "scope": "runs:write runs:read",
            "iat": now,
            "exp": now + 300,
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def token(
        self,
        *,
        key: SigningKey | None = None,
        alg: str | None = None,
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A signed token: `self.claims(**claims)` signed by `key` (the signing key by default)."""
        key = key or self.signing_key
        alg = alg or ("RS256" if isinstance(key, RSAKey) else "ES256" if isinstance(key, ECKey) else "EdDSA")
        protected = {"alg": alg, "typ": "at+jwt", "kid": key.kid, **(header or {})}
        payload = json.dumps(self.claims(**claims))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SecurityWarning)  # joserfc deprecates "EdDSA" (RFC 9864)
            return jws.serialize_compact(protected, payload, key, algorithms=[alg])

    # -- HTTP ------------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with idp._lock:
                    idp.requests += 1
                if self.path == DISCOVERY_PATH:
                    with idp._lock:
                        idp.discovery_fetches += 1
                    body: Any = {
                        "issuer": idp.discovery_issuer or idp.issuer,
                        "jwks_uri": idp.jwks_url,
                        "token_endpoint": idp.url + "/token",
                        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                    }
                elif self.path == JWKS_PATH:
                    with idp._lock:
                        idp.jwks_fetches += 1
                    if idp.jwks_delay:
                        time.sleep(idp.jwks_delay)
                    body = idp.jwks()
                else:
                    self._send(404, {"error": "not_found"})
                    return
                if idp.down:
                    self._send(503, {"error": "unavailable"})
                else:
                    self._send(200, body)

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
