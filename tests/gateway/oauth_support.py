"""Helpers of the built-in issuer's tests (tests/gateway/test_oauth*.py)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import textwrap
from urllib.parse import parse_qs, urlsplit

import httpx

from keel.config.gateway import IssuerConfig

SECRET_ENV = "KEEL_TEST_ISSUER_SECRET"
SECRET = "test-only-issuer-secret-" + "k" * 32
REDIRECT = "http://127.0.0.1:8765/callback"
OTHER_REDIRECT = "http://127.0.0.1:8765/other"
ROLES = {"operator": ["runs:read", "runs:write"], "auditor": ["admin"]}


def issuer_config(issuer: str = "http://127.0.0.1:9999", **overrides: object) -> IssuerConfig:
    return IssuerConfig(
        **{"enabled": True, "issuer": issuer, "key_secret_env": SECRET_ENV, **overrides}  # type: ignore[arg-type]
    )


def gateway_yaml(issuer: str, *, key_cache: float = 10, extra: str = "") -> str:
    """The `gateway:` section of a project whose server is the built-in issuer at `issuer`."""
    return textwrap.dedent(
        f"""\
        key_cache: {key_cache}
        roles:
          operator: [runs:read, runs:write]
          auditor: [admin]
        issuer:
          enabled: true
          issuer: "{issuer}"
          key_secret_env: {SECRET_ENV}
        """
    ) + textwrap.dedent(extra)


def pkce() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(client_id: str, challenge: str, **overrides: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "runs:read runs:write admin",
        "state": "st-" + secrets.token_hex(4),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v != ""}


def redirect_query(response: httpx.Response) -> dict[str, str]:
    """The query parameters of a 302's Location."""
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}
