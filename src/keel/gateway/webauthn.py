"""Passkeys: the WebAuthn registration and authentication ceremonies, with py_webauthn.

    ceremonies = PasskeyCeremonies(RelyingParty.from_config(config.gateway.passkeys), store, users)
    options = await ceremonies.registration_options(enrollment_token)      # -> navigator.credentials.create
    passkey = await ceremonies.finish_registration(enrollment_token, credential_json)
    options = await ceremonies.authentication_options()                    # -> navigator.credentials.get
    signed_in = await ceremonies.finish_authentication(credential_json)    # the user, or PasskeyRefused

Storage is `keel.store.passkeys.PasskeyStore`; users come from a `UserDirectory` (the identity
store, adapted by `keel.api.passkeys`). See docs/passkeys.md.

Challenges. Every ceremony starts with 32 random bytes made here and stored server-side (hashed)
with a purpose, a 5-minute expiry and single use. The browser returns the challenge inside the
signed `clientDataJSON`: the server looks it up by hash and spends it before verifying anything
else, so a response can be verified at most once, and a stale one never.

What a response must show (both ceremonies; py_webauthn checks each again):
- `clientDataJSON.type` is `webauthn.create` / `webauthn.get`, its challenge is one this server
  made for this purpose (and, for a registration, for this enrolment link's user), and its origin is
  one of `gateway.passkeys.origins`, exactly.
- the authenticator data's RP id hash is SHA-256 of `gateway.passkeys.rp_id`;
- user presence *and* user verification (PIN, biometrics): a passkey is the whole sign-in, so it
  must be two factors in one (something you have, and something you know or are);
- the public key uses ES256, EdDSA or RS256; attestation is not requested (`none`), so any
  authenticator model may enrol (its AAGUID is recorded, unverified);
- for a sign-in, the signature over authenticator data and the client data hash verifies with the
  stored public key of the presented credential id, and the user handle, when sent, is that
  credential's user.

Signature counter. Authenticators that keep a per-credential counter increase it at every
signature. After the signature is verified, if the stored or the new counter is non-zero and the
new one is not greater than the stored one, the counter went backwards (or stood still): two copies
of the private key may exist, a cloned authenticator. The sign-in is refused and the credential is
marked `clone_suspected_at`, which refuses it from then on, until an administrator deletes it and
the user enrols a new passkey. Authenticators that always report 0 (synced passkeys, such as
Apple's and Google's) never trip this: 0 after 0 is accepted. The counter is moved forward with a
conditional UPDATE, so two sign-ins racing with the same counter cannot both succeed.

Discoverable credentials. Registration asks for a resident key (`residentKey: preferred`), so the
passkey itself carries the user handle and sign-in needs no user name (`allowCredentials` empty). An
authenticator that cannot store one still registers, but such a credential cannot be offered by a
username-less sign-in page.

Refusals. Every failure raises `PasskeyRefused`; its `reason` is for logs and the audit log. Sign-in
refusals carry one message for the client whatever went wrong (`passkey sign-in failed`), so a client
cannot probe which credentials or users exist; enrolment refusals say what to do (the link holder is
the user being enrolled).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    options_to_json_dict,
    parse_attestation_object,
    parse_authentication_credential_json,
    parse_authenticator_data,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    ClientDataType,
    CollectedClientData,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from keel.config.gateway import PasskeysConfig
from keel.errors import KeelError, UsageError
from keel.store.passkeys import (
    ChallengeRefused,
    DuplicateCredential,
    EnrollmentRecord,
    EnrollmentRefused,
    PasskeyRecord,
    PasskeyStore,
)

ALGORITHMS = (
    COSEAlgorithmIdentifier.ECDSA_SHA_256,  # ES256 (-7): what nearly every authenticator uses
    COSEAlgorithmIdentifier.EDDSA,  # EdDSA (-8)
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,  # RS256 (-257): Windows Hello
)
CEREMONY_TIMEOUT_MS = 300_000
"""How long the browser may wait for the user (a hint): the challenge's own lifetime, 5 minutes."""

SIGN_IN_FAILED = "passkey sign-in failed"
USER_HANDLE_MAX_BYTES = 64

RefusedReason = Literal[
    "malformed",
    "wrong_type",
    "unknown_challenge",
    "challenge_used",
    "challenge_expired",
    "challenge_mismatch",
    "wrong_origin",
    "wrong_rp_id",
    "user_not_present",
    "user_not_verified",
    "unsupported_algorithm",
    "bad_signature",
    "invalid_response",
    "unknown_credential",
    "clone_suspected",
    "counter_regression",
    "user_mismatch",
    "unknown_user",
    "user_disabled",
    "unknown_enrollment",
    "enrollment_used",
    "enrollment_expired",
    "duplicate_credential",
]


class PasskeyRefused(KeelError):
    """A ceremony failed. `str(exc)` is for the client; `reason` and `detail` for logs and audit."""

    def __init__(
        self,
        reason: RefusedReason,
        message: str = SIGN_IN_FAILED,
        *,
        detail: str | None = None,
        user_id: str | None = None,
        tenant_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason: RefusedReason = reason
        self.detail = detail
        self.user_id = user_id  # who it was about, when known (for the audit log)
        self.tenant_id = tenant_id


@dataclass(frozen=True)
class RelyingParty:
    """This server as a WebAuthn relying party: its id (a domain), name and allowed origins."""

    id: str
    name: str
    origins: tuple[str, ...]

    @classmethod
    def from_config(cls, config: PasskeysConfig) -> RelyingParty:
        """The relying party of `gateway.passkeys`; `UsageError` for origins no browser would
        accept: each must be https (or http on localhost) on `rp_id` or one of its subdomains."""
        if config.rp_id is None or not config.origins:
            raise UsageError("gateway.passkeys: rp_id and origins are required")
        for origin in config.origins:
            parts = urlsplit(origin)
            host = parts.hostname or ""
            if host != config.rp_id and not host.endswith(f".{config.rp_id}"):
                raise UsageError(
                    f"gateway.passkeys.origins: {origin!r} is not on rp_id {config.rp_id!r} (nor a "
                    "subdomain of it): browsers would refuse its passkeys"
                )
            local = host == "localhost" or host.endswith(".localhost")
            if parts.scheme != "https" and not local:
                raise UsageError(
                    f"gateway.passkeys.origins: {origin!r} must be https (plain http only on localhost)"
                )
        return cls(id=config.rp_id, name=config.rp_name, origins=tuple(config.origins))

    @property
    def id_hash(self) -> bytes:
        return hashlib.sha256(self.id.encode()).digest()


@dataclass(frozen=True)
class PasskeyUser:
    """What the ceremonies need to know of a user."""

    id: str
    tenant_id: str
    name: str  # shown by the authenticator to pick an account (an e-mail address, a login)
    display_name: str
    disabled: bool = False


class UserDirectory(Protocol):
    """Where users come from (`keel.api.passkeys` adapts the identity store)."""

    async def passkey_user(self, user_id: str) -> PasskeyUser | None: ...


@dataclass(frozen=True)
class SignedIn:
    """A successful sign-in: the user and the passkey used (its counter and last use updated)."""

    user: PasskeyUser
    passkey: PasskeyRecord


def user_handle(user_id: str) -> bytes:
    """The WebAuthn user handle of a user: its id's bytes (an opaque id, no personal data), or
    their SHA-256 when longer than the 64 bytes a handle may hold."""
    raw = user_id.encode()
    return raw if len(raw) <= USER_HANDLE_MAX_BYTES else hashlib.sha256(raw).digest()


class PasskeyCeremonies:
    """Registration and sign-in for one relying party (see the module docstring)."""

    def __init__(self, rp: RelyingParty, store: PasskeyStore, users: UserDirectory) -> None:
        self.rp = rp
        self.store = store
        self.users = users

    # -- registration ------------------------------------------------------------------------------

    async def enrolling_user(self, token: str) -> tuple[EnrollmentRecord, PasskeyUser]:
        """The usable enrolment link with this token and its user, else `PasskeyRefused`."""
        try:
            enrollment = await self.store.enrollment(token)
        except EnrollmentRefused as exc:
            raise PasskeyRefused(exc.reason, _ENROLLMENT_MESSAGES[exc.reason]) from None
        user = await self.users.passkey_user(enrollment.user_id)
        who = {"user_id": enrollment.user_id, "tenant_id": enrollment.tenant_id}
        if user is None or user.tenant_id != enrollment.tenant_id:
            raise PasskeyRefused("unknown_user", "this enrolment link's user does not exist", **who)
        if user.disabled:
            raise PasskeyRefused("user_disabled", "this account is disabled", **who)
        return enrollment, user

    async def registration_options(self, token: str) -> dict[str, Any]:
        """`PublicKeyCredentialCreationOptions` (JSON) for the user of this enrolment link."""
        enrollment, user = await self.enrolling_user(token)
        challenge = await self.store.create_challenge(
            "register", user_id=user.id, tenant_id=user.tenant_id, enrollment_id=enrollment.id
        )
        existing = await self.store.list_passkeys(user_id=user.id, tenant_id=user.tenant_id)
        options = generate_registration_options(
            rp_id=self.rp.id,
            rp_name=self.rp.name,
            user_name=user.name,
            user_id=user_handle(user.id),
            user_display_name=user.display_name,
            challenge=challenge,
            timeout=CEREMONY_TIMEOUT_MS,
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[_descriptor(p) for p in existing],
            supported_pub_key_algs=list(ALGORITHMS),
        )
        body = options_to_json_dict(options)
        body["extensions"] = {"credProps": True}
        return body

    async def finish_registration(
        self, token: str, credential: Mapping[str, Any], *, name: str | None = None
    ) -> PasskeyRecord:
        """Verify the browser's `navigator.credentials.create()` answer and store the passkey; the
        enrolment link is spent with it. `PasskeyRefused` otherwise."""
        enrollment, user = await self.enrolling_user(token)
        who = {"user_id": user.id, "tenant_id": user.tenant_id}
        try:
            parsed = parse_registration_credential_json(dict(credential))
            client_data = parse_client_data_json(parsed.response.client_data_json)
            attestation = parse_attestation_object(parsed.response.attestation_object)
        except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
            raise PasskeyRefused("malformed", "not a WebAuthn registration", detail=str(exc), **who) from None
        self._check_client_data(client_data, ClientDataType.WEBAUTHN_CREATE, "not a registration", who)
        try:
            challenge = await self.store.consume_challenge(client_data.challenge, "register")
        except ChallengeRefused as exc:
            raise PasskeyRefused(exc.reason, _CHALLENGE_MESSAGES[exc.reason], **who) from None
        if challenge.user_id != user.id or challenge.enrollment_id != enrollment.id:
            raise PasskeyRefused("challenge_mismatch", "this challenge was made for another enrolment", **who)
        self._check_origin(client_data, "this page's origin may not register passkeys", who)
        flags = attestation.auth_data.flags
        self._check_authenticator(
            attestation.auth_data.rp_id_hash, flags.up, flags.uv, "registration refused", who
        )
        try:
            verified = verify_registration_response(
                credential=parsed,
                expected_challenge=client_data.challenge,
                expected_rp_id=self.rp.id,
                expected_origin=list(self.rp.origins),
                require_user_presence=True,
                require_user_verification=True,
                supported_pub_key_algs=list(ALGORITHMS),
            )
        except WebAuthnException as exc:
            raise _refusal(exc, "registration refused", who) from None
        transports = [t.value for t in parsed.response.transports or ()]
        try:
            return await self.store.add_passkey(
                credential_id=bytes_to_base64url(verified.credential_id),
                user_id=user.id,
                tenant_id=user.tenant_id,
                public_key=verified.credential_public_key,
                sign_count=verified.sign_count,
                transports=transports,
                aaguid=verified.aaguid,
                name=(name or "").strip()[:100] or "passkey",
                enrollment_id=enrollment.id,
            )
        except EnrollmentRefused as exc:
            raise PasskeyRefused(exc.reason, _ENROLLMENT_MESSAGES[exc.reason], **who) from None
        except DuplicateCredential:
            raise PasskeyRefused(
                "duplicate_credential", "this passkey is registered already", **who
            ) from None

    # -- authentication ----------------------------------------------------------------------------

    async def authentication_options(self) -> dict[str, Any]:
        """`PublicKeyCredentialRequestOptions` (JSON) for a username-less sign-in."""
        challenge = await self.store.create_challenge("authenticate")
        options = generate_authentication_options(
            rp_id=self.rp.id,
            challenge=challenge,
            timeout=CEREMONY_TIMEOUT_MS,
            allow_credentials=[],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        return options_to_json_dict(options)

    async def finish_authentication(self, credential: Mapping[str, Any]) -> SignedIn:
        """Verify the browser's `navigator.credentials.get()` answer: the signed-in user, else
        `PasskeyRefused` (always with the message `passkey sign-in failed`)."""
        try:
            parsed = parse_authentication_credential_json(dict(credential))
            client_data = parse_client_data_json(parsed.response.client_data_json)
            auth_data = parse_authenticator_data(parsed.response.authenticator_data)
        except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
            raise PasskeyRefused("malformed", detail=str(exc)) from None
        self._check_client_data(client_data, ClientDataType.WEBAUTHN_GET, SIGN_IN_FAILED, {})
        try:
            await self.store.consume_challenge(client_data.challenge, "authenticate")
        except ChallengeRefused as exc:
            raise PasskeyRefused(exc.reason) from None
        passkey = await self.store.passkey_by_credential_id(parsed.id)
        if passkey is None:
            raise PasskeyRefused("unknown_credential", detail=f"credential {parsed.id[:24]}")
        # From here on the refusal names whose credential it was (for the audit log only).
        who = {"user_id": passkey.user_id, "tenant_id": passkey.tenant_id}
        self._check_origin(client_data, SIGN_IN_FAILED, who)
        self._check_authenticator(
            auth_data.rp_id_hash, auth_data.flags.up, auth_data.flags.uv, SIGN_IN_FAILED, who
        )
        if passkey.clone_suspected_at is not None:
            raise PasskeyRefused(
                "clone_suspected",
                detail=f"passkey {passkey.id} is marked as possibly cloned since {passkey.clone_suspected_at}",
                **who,
            )
        handle = parsed.response.user_handle
        if handle and handle != user_handle(passkey.user_id):
            raise PasskeyRefused("user_mismatch", detail="the user handle is not the passkey's user", **who)
        try:
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=client_data.challenge,
                expected_rp_id=self.rp.id,
                expected_origin=list(self.rp.origins),
                credential_public_key=passkey.public_key,
                credential_current_sign_count=0,  # the counter is checked below, after the signature
                require_user_verification=True,
            )
        except WebAuthnException as exc:
            raise _refusal(exc, SIGN_IN_FAILED, who) from None

        new_count, stored = verified.new_sign_count, passkey.sign_count
        if (new_count or stored) and new_count <= stored:
            await self.store.suspect_clone(passkey.id)
            raise PasskeyRefused(
                "counter_regression",
                detail=f"signature counter {new_count} after {stored}: passkey {passkey.id} may be cloned",
                **who,
            )
        user = await self.users.passkey_user(passkey.user_id)
        if user is None or user.tenant_id != passkey.tenant_id:
            raise PasskeyRefused("unknown_user", **who)
        if user.disabled:
            raise PasskeyRefused("user_disabled", **who)
        if not await self.store.record_use(passkey.id, seen=stored, new_count=new_count):
            raise PasskeyRefused(
                "counter_regression", detail="another sign-in moved the counter meanwhile", **who
            )
        return SignedIn(user=user, passkey=await self.store.passkey_by_credential_id(parsed.id) or passkey)

    # -- checks shared by both ceremonies ----------------------------------------------------------

    def _check_client_data(
        self, client_data: CollectedClientData, wanted: str, message: str, who: dict[str, Any]
    ) -> None:
        if client_data.type != wanted:
            raise PasskeyRefused(
                "wrong_type", message, detail=f"clientDataJSON.type {client_data.type!r}", **who
            )

    def _check_origin(self, client_data: CollectedClientData, message: str, who: dict[str, Any]) -> None:
        if client_data.origin not in self.rp.origins:
            raise PasskeyRefused(
                "wrong_origin", message, detail=f"origin {client_data.origin[:200]!r}", **who
            )

    def _check_authenticator(
        self, rp_id_hash: bytes, up: bool, uv: bool, message: str, who: dict[str, Any]
    ) -> None:
        if rp_id_hash != self.rp.id_hash:
            raise PasskeyRefused("wrong_rp_id", message, detail="RP id hash mismatch", **who)
        if not up:
            raise PasskeyRefused("user_not_present", message, **who)
        if not uv:
            raise PasskeyRefused(
                "user_not_verified", message, detail="no user verification (PIN, biometrics)", **who
            )


def _descriptor(passkey: PasskeyRecord) -> PublicKeyCredentialDescriptor:
    transports = []
    for value in passkey.transports:
        try:
            transports.append(AuthenticatorTransport(value))
        except ValueError:
            continue
    return PublicKeyCredentialDescriptor(id=base64url_to_bytes(passkey.credential_id), transports=transports)


def _refusal(exc: WebAuthnException, message: str, who: dict[str, Any]) -> PasskeyRefused:
    """py_webauthn's verdict as a refusal (our own checks ran first; these are what is left)."""
    text = str(exc)
    reason: RefusedReason = "invalid_response"
    if "signature" in text.lower():
        reason = "bad_signature"
    elif "alg" in text:
        reason = "unsupported_algorithm"
    elif "origin" in text:
        reason = "wrong_origin"
    elif "RP ID" in text:
        reason = "wrong_rp_id"
    return PasskeyRefused(reason, message, detail=text[:300], **who)


_CHALLENGE_MESSAGES: dict[str, str] = {
    "unknown_challenge": "unknown challenge: start the registration again",
    "challenge_used": "this challenge was used already: start the registration again",
    "challenge_expired": "the challenge expired (5 minutes): start the registration again",
}

_ENROLLMENT_MESSAGES: dict[str, str] = {
    "unknown_enrollment": "this enrolment link is not valid: ask an administrator for a new one",
    "enrollment_used": "this enrolment link was used already: ask an administrator for a new one",
    "enrollment_expired": "this enrolment link has expired: ask an administrator for a new one",
}
