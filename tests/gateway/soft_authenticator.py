"""A software WebAuthn authenticator (and the browser around it) for the passkey tests.

It answers `navigator.credentials.create()` and `.get()` options (the JSON the server sends) with
what a browser would post back: real CBOR attestation objects (format `none`) and real assertions
signed with an EC P-256 key (ES256) through `cryptography`. Nothing of py_webauthn is used or
replaced here: the server verifies these answers exactly as it would a hardware key's.

Knobs make it misbehave the ways the tests need: another origin or RP id than the options say, no
user verification, a signature counter set by hand (to go backwards), a corrupted signature.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

FLAG_UP = 0x01
FLAG_UV = 0x04
FLAG_AT = 0x40
SOFT_AAGUID = bytes.fromhex("6b65656c2d736f66742d617574686e21")  # "keel-soft-authn!"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftCredential:
    """One credential the authenticator holds (a discoverable one: it keeps the user handle)."""

    credential_id: bytes
    private_key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0

    def cose_public_key(self) -> bytes:
        numbers = self.private_key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )


@dataclass
class SoftAuthenticator:
    """A platform authenticator with user verification, holding discoverable credentials.

    `origin` is the page the (simulated) browser is on; `counter_step` is how much the signature
    counter moves per signature (0: an authenticator without a counter, like synced passkeys).
    """

    origin: str
    counter_step: int = 1
    user_verification: bool = True
    credentials: dict[bytes, SoftCredential] = field(default_factory=dict)
    last_created: SoftCredential | None = None

    # -- navigator.credentials.create ---------------------------------------------------------------

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        keep: bool = True,
    ) -> dict[str, Any]:
        """The RegistrationResponseJSON for `options` (PublicKeyCredentialCreationOptionsJSON).

        `origin`/`rp_id` override what the browser would use (to test refusals); `keep=False`
        forgets the credential afterwards."""
        assert {"alg": -7, "type": "public-key"} in options["pubKeyCredParams"], "ES256 must be allowed"
        rp = rp_id or options["rp"]["id"]
        credential = SoftCredential(
            credential_id=secrets.token_bytes(32),
            private_key=ec.generate_private_key(ec.SECP256R1()),
            rp_id=rp,
            user_handle=unb64url(options["user"]["id"]),
            sign_count=0,
        )
        excluded = {unb64url(c["id"]) for c in options.get("excludeCredentials", [])}
        assert not excluded & set(self.credentials), "an excluded credential is on this authenticator"
        auth_data = (
            hashlib.sha256(rp.encode()).digest()
            + bytes([self._flags() | FLAG_AT])
            + struct.pack(">I", credential.sign_count)
            + SOFT_AAGUID
            + struct.pack(">H", len(credential.credential_id))
            + credential.credential_id
            + credential.cose_public_key()
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        if keep:
            self.credentials[credential.credential_id] = credential
        self.last_created = credential
        return {
            "id": b64url(credential.credential_id),
            "rawId": b64url(credential.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal", "hybrid"],
            },
            "clientExtensionResults": {"credProps": {"rk": True}},
        }

    # -- navigator.credentials.get ------------------------------------------------------------------

    def get(
        self,
        options: dict[str, Any],
        *,
        credential: SoftCredential | None = None,
        origin: str | None = None,
        rp_id: str | None = None,
        sign_count: int | None = None,
        corrupt_signature: bool = False,
    ) -> dict[str, Any]:
        """The AuthenticationResponseJSON for `options` (PublicKeyCredentialRequestOptionsJSON),
        signed by `credential` (default: the only one held for the options' RP id)."""
        if credential is None:
            allowed = {unb64url(c["id"]) for c in options.get("allowCredentials", [])}
            mine = [
                c
                for c in self.credentials.values()
                if c.rp_id == options["rpId"] and (not allowed or c.credential_id in allowed)
            ]
            assert len(mine) == 1, f"expected one credential for {options['rpId']}, have {len(mine)}"
            credential = mine[0]
        if sign_count is None:
            credential.sign_count += self.counter_step
            sign_count = credential.sign_count
        rp = rp_id or credential.rp_id
        auth_data = (
            hashlib.sha256(rp.encode()).digest() + bytes([self._flags()]) + struct.pack(">I", sign_count)
        )
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = credential.private_key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        if corrupt_signature:
            signature = signature[:-1] + bytes([signature[-1] ^ 0x01])
        return {
            "id": b64url(credential.credential_id),
            "rawId": b64url(credential.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(credential.user_handle),
            },
            "clientExtensionResults": {},
        }

    # -- shared -------------------------------------------------------------------------------------

    def _flags(self) -> int:
        return FLAG_UP | (FLAG_UV if self.user_verification else 0)

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin or self.origin, "crossOrigin": False},
            separators=(",", ":"),
        ).encode()
