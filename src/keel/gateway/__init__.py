"""Keel's gateway: who may call Keel, and what they may do.

- `keel.gateway.keys`: API keys: their format, how their secret is hashed and checked, the closed
  set of scopes, expiry. Storage is `keel.store.keys.KeyStore`.

See docs/gateway.md.
"""

from keel.gateway.keys import (
    SCOPES,
    ApiKeyRefused,
    GeneratedKey,
    InvalidExpiry,
    InvalidScope,
    ParsedKey,
    RefusalReason,
    Scope,
    generate_key,
    hash_secret,
    key_pepper,
    parse_expiry,
    parse_key,
    secret_matches,
    validate_scopes,
)

__all__ = [
    "SCOPES",
    "ApiKeyRefused",
    "GeneratedKey",
    "InvalidExpiry",
    "InvalidScope",
    "ParsedKey",
    "RefusalReason",
    "Scope",
    "generate_key",
    "hash_secret",
    "key_pepper",
    "parse_expiry",
    "parse_key",
    "secret_matches",
    "validate_scopes",
]
