"""The server secret that protects the issuer's signing keys at rest, and the encryption itself.

`gateway.issuer.key_secret_env` names an environment variable holding a secret of at least
`MIN_SECRET_LENGTH` characters. A 256-bit key is derived from it with HKDF-SHA256, and each signing
key's private JWK is stored as a compact JWE (`alg: dir`, `enc: A256GCM`) whose protected header
carries the key's `kid`: the ciphertext is authenticated, and bound to its key id. Only the public
half is stored in clear (it is published in the JWKS anyway).

Changing the secret makes the stored private keys unreadable: signing then fails with a clear
error until `keel oauth rotate-key` (with the new secret) makes a new key. Tokens signed earlier
still verify: verification only needs the public keys.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from keel.config.gateway import IssuerConfig
from keel.errors import UsageError

MIN_SECRET_LENGTH = 32
_SALT = b"keel.oauth.signing-keys.v1"
_INFO = b"A256GCM key-encryption key"


class KeyDecryptionError(UsageError):
    """A stored signing key cannot be decrypted with the configured secret (it was changed)."""


def signing_secret(config: IssuerConfig, environ: Mapping[str, str] | None = None) -> bytes:
    """The key-encryption key derived from the secret in `config.key_secret_env`; UsageError naming
    the setting when it is not configured, the variable is not set, or the secret is too short."""
    env = os.environ if environ is None else environ
    name = config.key_secret_env
    hint = "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
    if name is None:
        raise UsageError(
            "gateway.issuer.key_secret_env: required when the built-in issuer is enabled: the name of an "
            f"environment variable holding a secret of at least {MIN_SECRET_LENGTH} characters that "
            f"encrypts the signing keys ({hint})"
        )
    value = env.get(name)
    if value is None or not value.strip():
        raise UsageError(
            f"gateway.issuer.key_secret_env: the environment variable {name} is not set; it must hold a "
            f"secret of at least {MIN_SECRET_LENGTH} characters that encrypts the signing keys ({hint})"
        )
    if len(value.strip()) < MIN_SECRET_LENGTH:
        raise UsageError(
            f"gateway.issuer.key_secret_env: the secret in {name} has {len(value.strip())} characters; "
            f"at least {MIN_SECRET_LENGTH} are needed ({hint})"
        )
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO)
    return hkdf.derive(value.strip().encode())


def encrypt_private_jwk(private_jwk: Mapping[str, Any], kid: str, secret: bytes) -> str:
    """The private JWK as a compact JWE (dir, A256GCM) under `secret`, bound to `kid`."""
    header = {"alg": "dir", "enc": "A256GCM", "kid": kid, "cty": "jwk+json"}
    return jwe.encrypt_compact(header, json.dumps(dict(private_jwk)).encode(), OctKey.import_key(secret))


def decrypt_private_jwk(value: str, kid: str, secret: bytes) -> dict[str, Any]:
    """The private JWK stored for `kid`; `KeyDecryptionError` if the secret does not open it."""
    try:
        opened = jwe.decrypt_compact(value, OctKey.import_key(secret), algorithms=["dir", "A256GCM"])
    except (JoseError, ValueError) as exc:
        raise KeyDecryptionError(
            f"the signing key {kid} cannot be decrypted with the secret in gateway.issuer.key_secret_env "
            f"({type(exc).__name__}); was the secret changed? Restore it, or run `keel oauth rotate-key` "
            "to make a new signing key"
        ) from None
    if opened.headers().get("kid") != kid or opened.plaintext is None:
        raise KeyDecryptionError(f"the stored signing key {kid} does not belong to that key id")
    document: dict[str, Any] = json.loads(opened.plaintext)
    return document


__all__ = [
    "MIN_SECRET_LENGTH",
    "KeyDecryptionError",
    "decrypt_private_jwk",
    "encrypt_private_jwk",
    "signing_secret",
]
