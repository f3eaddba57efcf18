"""Keel's built-in OAuth2 authorization server (see docs/oauth.md).

- `keel.gateway.oauth.server`: the protocol (Authlib's grants on Keel's store): client credentials,
  authorization code with PKCE (S256), rotating refresh tokens, revocation, RFC 9068 access tokens.
- `keel.gateway.oauth.keys`: the ES256 signing keys in the database, their rotation and publication.
- `keel.gateway.oauth.crypto`: the server secret that encrypts the private keys at rest.
- `keel.gateway.oauth.verifier`: how the gateway accepts this issuer's tokens (keys from the
  database, no HTTP to itself), next to external issuers.

HTTP routes are in `keel.api.oauth`; the users and sessions behind the authorization endpoint are
`keel.store.identity` and `keel.gateway.sessions`.
"""

from keel.gateway.oauth.crypto import MIN_SECRET_LENGTH, signing_secret
from keel.gateway.oauth.keys import SigningKeys
from keel.gateway.oauth.verifier import IssuerVerifier, TokenRevoked

__all__ = ["MIN_SECRET_LENGTH", "IssuerVerifier", "SigningKeys", "TokenRevoked", "signing_secret"]
