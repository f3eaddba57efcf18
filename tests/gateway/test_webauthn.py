"""Passkey ceremonies (keel.gateway.webauthn) against a software authenticator, on both backends.

The authenticator (tests/gateway/soft_authenticator.py) makes real attestation objects and real
ES256 assertions; py_webauthn verifies them as it would a hardware key's. Nothing is mocked: the
challenges, enrolment links and passkeys live in a migrated database, on the test's clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from keel.api.passkeys import IdentityUsers
from keel.gateway.webauthn import (
    ALGORITHMS,
    SIGN_IN_FAILED,
    PasskeyCeremonies,
    PasskeyRefused,
    PasskeyUser,
    RelyingParty,
    user_handle,
)
from keel.store.identity import IdentityStore
from keel.store.passkeys import PasskeyStore
from tests.gateway.clock import Clock
from tests.gateway.soft_authenticator import SoftAuthenticator, b64url

RP = RelyingParty(id="keel.example.com", name="Keel", origins=("https://keel.example.com",))
ORIGIN = "https://keel.example.com"


class Users:
    """Users from the identity store, as the server's router sees them (`IdentityUsers`)."""

    def __init__(self, url: str) -> None:
        self.identity = IdentityStore(url)
        self.directory = IdentityUsers(self.identity)

    async def __aenter__(self) -> Users:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.identity.close()

    async def add(self, name: str, tenant: str) -> str:
        return (await self.identity.create_user(tenant, name.title(), email=f"{name}@{tenant}.test")).id

    async def disable(self, user_id: str) -> None:
        await self.identity.disable_user(user_id)

    async def passkey_user(self, user_id: str) -> PasskeyUser | None:
        return await self.directory.passkey_user(user_id)


@pytest.fixture
async def store(store_url: str, clock: Clock) -> AsyncIterator[PasskeyStore]:
    async with PasskeyStore(store_url, clock=clock) as passkeys:
        yield passkeys


@pytest.fixture
async def users(store_url: str) -> AsyncIterator[Users]:
    async with Users(store_url) as directory:
        yield directory


@pytest.fixture
def ceremonies(store: PasskeyStore, users: Users) -> PasskeyCeremonies:
    return PasskeyCeremonies(RP, store, users)


async def _enrolled(
    ceremonies: PasskeyCeremonies, users: Users, name: str = "ada", tenant: str = "acme"
) -> tuple[str, SoftAuthenticator]:
    """A user with one registered passkey on a fresh authenticator: (user id, authenticator)."""
    user_id = await users.add(name, tenant)
    link = await ceremonies.store.create_enrollment(user_id, tenant, created_by="operator:test")
    authenticator = SoftAuthenticator(origin=ORIGIN)
    options = await ceremonies.registration_options(link.token)
    await ceremonies.finish_registration(link.token, authenticator.create(options), name="laptop")
    return user_id, authenticator


async def _refusal(ceremonies: PasskeyCeremonies, credential: dict[str, Any]) -> PasskeyRefused:
    with pytest.raises(PasskeyRefused) as refused:
        await ceremonies.finish_authentication(credential)
    assert str(refused.value) == SIGN_IN_FAILED  # whatever went wrong, the client learns nothing
    return refused.value


# -- registration -----------------------------------------------------------------------------------


async def test_registration_stores_the_passkey_and_spends_the_link(
    ceremonies: PasskeyCeremonies, users: Users
) -> None:
    user_id = await users.add("ada", "acme")
    link = await ceremonies.store.create_enrollment(user_id, "acme")
    options = await ceremonies.registration_options(link.token)

    assert options["rp"] == {"id": RP.id, "name": "Keel"}
    assert options["user"] == {
        "id": b64url(user_handle(user_id)),  # the opaque user id, never the e-mail address
        "name": "ada@acme.test",
        "displayName": "Ada",
    }
    assert [p["alg"] for p in options["pubKeyCredParams"]] == [int(a) for a in ALGORITHMS] == [-7, -8, -257]
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["attestation"] == "none"
    assert len(_challenge(options)) == 32

    authenticator = SoftAuthenticator(origin=ORIGIN)
    passkey = await ceremonies.finish_registration(link.token, authenticator.create(options), name="laptop")
    assert authenticator.last_created is not None
    assert passkey.credential_id == b64url(authenticator.last_created.credential_id)
    assert (passkey.user_id, passkey.tenant_id, passkey.name, passkey.sign_count) == (
        user_id,
        "acme",
        "laptop",
        0,
    )
    assert passkey.aaguid == "6b65656c-2d73-6f66-742d-617574686e21"
    assert passkey.transports == ("internal", "hybrid")
    assert [p.id for p in await ceremonies.store.list_passkeys(user_id=user_id, tenant_id="acme")] == [
        passkey.id
    ]
    assert await ceremonies.store.list_passkeys(tenant_id="other") == []

    # The link was spent with the registration: it enrols nobody else.
    with pytest.raises(PasskeyRefused) as used:
        await ceremonies.registration_options(link.token)
    assert used.value.reason == "enrollment_used" and "ask an administrator" in str(used.value)


async def test_a_second_passkey_excludes_the_first(ceremonies: PasskeyCeremonies, users: Users) -> None:
    user_id, authenticator = await _enrolled(ceremonies, users)
    link = await ceremonies.store.create_enrollment(user_id, "acme")
    options = await ceremonies.registration_options(link.token)
    assert [c["id"] for c in options["excludeCredentials"]] == [b64url(c) for c in authenticator.credentials]
    other = SoftAuthenticator(origin=ORIGIN)
    await ceremonies.finish_registration(link.token, other.create(options), name="phone")
    assert len(await ceremonies.store.list_passkeys(user_id=user_id)) == 2


@pytest.mark.parametrize(
    ("misbehaviour", "reason"),
    [
        ({"origin": "https://evil.example.net"}, "wrong_origin"),
        ({"rp_id": "evil.example.net"}, "wrong_rp_id"),
    ],
)
async def test_registration_from_elsewhere_is_refused(
    ceremonies: PasskeyCeremonies, users: Users, misbehaviour: dict[str, str], reason: str
) -> None:
    user_id = await users.add("ada", "acme")
    link = await ceremonies.store.create_enrollment(user_id, "acme")
    options = await ceremonies.registration_options(link.token)
    response = SoftAuthenticator(origin=ORIGIN).create(options, **misbehaviour)
    with pytest.raises(PasskeyRefused) as refused:
        await ceremonies.finish_registration(link.token, response)
    assert refused.value.reason == reason
    assert await ceremonies.store.list_passkeys(user_id=user_id) == []
    # The link itself is still good (the challenge, not the link, was spent).
    again = await ceremonies.registration_options(link.token)
    await ceremonies.finish_registration(link.token, SoftAuthenticator(origin=ORIGIN).create(again))


async def test_registration_needs_user_verification(ceremonies: PasskeyCeremonies, users: Users) -> None:
    user_id = await users.add("ada", "acme")
    link = await ceremonies.store.create_enrollment(user_id, "acme")
    options = await ceremonies.registration_options(link.token)
    response = SoftAuthenticator(origin=ORIGIN, user_verification=False).create(options)
    with pytest.raises(PasskeyRefused) as refused:
        await ceremonies.finish_registration(link.token, response)
    assert refused.value.reason == "user_not_verified"


async def test_enrolment_links_expire_and_are_bound_to_their_challenge(
    ceremonies: PasskeyCeremonies, users: Users, clock: Clock
) -> None:
    ada, bob = await users.add("ada", "acme"), await users.add("bob", "acme")
    ada_link = await ceremonies.store.create_enrollment(ada, "acme")
    bob_link = await ceremonies.store.create_enrollment(bob, "acme")
    # A challenge made for Ada's link cannot register a passkey through Bob's.
    ada_options = await ceremonies.registration_options(ada_link.token)
    with pytest.raises(PasskeyRefused) as crossed:
        await ceremonies.finish_registration(
            bob_link.token, SoftAuthenticator(origin=ORIGIN).create(ada_options)
        )
    assert crossed.value.reason == "challenge_mismatch"

    with pytest.raises(PasskeyRefused) as unknown:
        await ceremonies.registration_options("not-a-token")
    assert unknown.value.reason == "unknown_enrollment"

    clock.advance(hours=24, seconds=1)
    with pytest.raises(PasskeyRefused) as expired:
        await ceremonies.registration_options(bob_link.token)
    assert expired.value.reason == "enrollment_expired"


async def test_a_disabled_user_cannot_enrol(ceremonies: PasskeyCeremonies, users: Users) -> None:
    user_id = await users.add("ada", "acme")
    link = await ceremonies.store.create_enrollment(user_id, "acme")
    await users.disable(user_id)
    with pytest.raises(PasskeyRefused) as refused:
        await ceremonies.registration_options(link.token)
    assert refused.value.reason == "user_disabled"


# -- sign-in ----------------------------------------------------------------------------------------


async def test_sign_in_without_a_user_name(ceremonies: PasskeyCeremonies, users: Users) -> None:
    user_id, authenticator = await _enrolled(ceremonies, users)
    options = await ceremonies.authentication_options()
    assert options["rpId"] == RP.id and options["allowCredentials"] == []
    assert options["userVerification"] == "required" and len(_challenge(options)) == 32

    signed_in = await ceremonies.finish_authentication(authenticator.get(options))
    assert (signed_in.user.id, signed_in.user.tenant_id) == (user_id, "acme")
    assert signed_in.passkey.sign_count == 1 and signed_in.passkey.last_used_at is not None

    # Again, with a fresh challenge: the counter moves on.
    signed_in = await ceremonies.finish_authentication(
        authenticator.get(await ceremonies.authentication_options())
    )
    assert signed_in.passkey.sign_count == 2


async def test_an_authenticator_without_a_counter_signs_in_every_time(
    ceremonies: PasskeyCeremonies, users: Users
) -> None:
    user_id, authenticator = await _enrolled(ceremonies, users)
    authenticator.counter_step = 0  # synced passkeys report 0 every time
    for _ in range(3):
        signed_in = await ceremonies.finish_authentication(
            authenticator.get(await ceremonies.authentication_options())
        )
        assert signed_in.user.id == user_id and signed_in.passkey.sign_count == 0


@pytest.mark.parametrize(
    ("misbehaviour", "reason"),
    [
        ({"origin": "https://keel.example.com.evil.net"}, "wrong_origin"),
        ({"origin": "http://keel.example.com"}, "wrong_origin"),
        ({"rp_id": "example.com"}, "wrong_rp_id"),
        ({"corrupt_signature": True}, "bad_signature"),
    ],
)
async def test_sign_in_refusals(
    ceremonies: PasskeyCeremonies, users: Users, misbehaviour: dict[str, Any], reason: str
) -> None:
    _user_id, authenticator = await _enrolled(ceremonies, users)
    options = await ceremonies.authentication_options()
    refused = await _refusal(ceremonies, authenticator.get(options, **misbehaviour))
    assert refused.reason == reason
    # The challenge was spent by the failed attempt: the right answer to it comes too late.
    assert (await _refusal(ceremonies, authenticator.get(options))).reason == "challenge_used"


async def test_sign_in_needs_user_verification(ceremonies: PasskeyCeremonies, users: Users) -> None:
    _user_id, authenticator = await _enrolled(ceremonies, users)
    authenticator.user_verification = False
    refused = await _refusal(ceremonies, authenticator.get(await ceremonies.authentication_options()))
    assert refused.reason == "user_not_verified"


async def test_a_replayed_assertion_is_refused(ceremonies: PasskeyCeremonies, users: Users) -> None:
    _user_id, authenticator = await _enrolled(ceremonies, users)
    assertion = authenticator.get(await ceremonies.authentication_options())
    await ceremonies.finish_authentication(assertion)
    assert (await _refusal(ceremonies, assertion)).reason == "challenge_used"


async def test_an_expired_challenge_is_refused(
    ceremonies: PasskeyCeremonies, users: Users, clock: Clock
) -> None:
    _user_id, authenticator = await _enrolled(ceremonies, users)
    options = await ceremonies.authentication_options()
    clock.advance(minutes=5, seconds=1)
    assert (await _refusal(ceremonies, authenticator.get(options))).reason == "challenge_expired"
    # Within the five minutes it is fine.
    options = await ceremonies.authentication_options()
    clock.advance(minutes=4, seconds=59)
    await ceremonies.finish_authentication(authenticator.get(options))


async def test_a_challenge_made_elsewhere_or_for_registration_is_refused(
    ceremonies: PasskeyCeremonies, users: Users
) -> None:
    user_id, authenticator = await _enrolled(ceremonies, users)
    made_up = {"challenge": b64url(b"\x07" * 32), "rpId": RP.id}
    assert (await _refusal(ceremonies, authenticator.get(made_up))).reason == "unknown_challenge"
    link = await ceremonies.store.create_enrollment(user_id, "acme")
    registration = await ceremonies.registration_options(link.token)
    for_registration = {"challenge": registration["challenge"], "rpId": RP.id}
    assert (await _refusal(ceremonies, authenticator.get(for_registration))).reason == "unknown_challenge"


async def test_a_counter_going_backwards_marks_the_passkey_as_cloned(
    ceremonies: PasskeyCeremonies, users: Users
) -> None:
    _user_id, authenticator = await _enrolled(ceremonies, users)
    for _ in range(3):
        await ceremonies.finish_authentication(authenticator.get(await ceremonies.authentication_options()))
    # A copy of the key, behind the original: counter 2 after 3.
    cloned = await _refusal(
        ceremonies, authenticator.get(await ceremonies.authentication_options(), sign_count=2)
    )
    assert cloned.reason == "counter_regression"
    [passkey] = await ceremonies.store.list_passkeys()
    assert passkey.clone_suspected_at is not None and passkey.sign_count == 3
    # From now on the credential is refused, even with a counter that moves forward.
    refused = await _refusal(
        ceremonies, authenticator.get(await ceremonies.authentication_options(), sign_count=10)
    )
    assert refused.reason == "clone_suspected"


async def test_a_counter_that_stands_still_is_refused(ceremonies: PasskeyCeremonies, users: Users) -> None:
    _user_id, authenticator = await _enrolled(ceremonies, users)
    await ceremonies.finish_authentication(authenticator.get(await ceremonies.authentication_options()))
    same = await _refusal(
        ceremonies, authenticator.get(await ceremonies.authentication_options(), sign_count=1)
    )
    assert same.reason == "counter_regression"


async def test_a_forged_assertion_does_not_mark_the_passkey(
    ceremonies: PasskeyCeremonies, users: Users
) -> None:
    """Only a verified signature may mark a credential: otherwise anyone knowing a credential id
    could lock its owner out with a made-up low counter."""
    _user_id, authenticator = await _enrolled(ceremonies, users)
    await ceremonies.finish_authentication(authenticator.get(await ceremonies.authentication_options()))
    forged = authenticator.get(
        await ceremonies.authentication_options(), sign_count=0, corrupt_signature=True
    )
    assert (await _refusal(ceremonies, forged)).reason == "bad_signature"
    [passkey] = await ceremonies.store.list_passkeys()
    assert passkey.clone_suspected_at is None
    await ceremonies.finish_authentication(authenticator.get(await ceremonies.authentication_options()))


async def test_an_unknown_credential_is_refused(ceremonies: PasskeyCeremonies, users: Users) -> None:
    user_id = await users.add("ada", "acme")
    link = await ceremonies.store.create_enrollment(user_id, "acme")
    stranger = SoftAuthenticator(origin=ORIGIN)
    stranger.create(await ceremonies.registration_options(link.token))  # made, never registered
    refused = await _refusal(ceremonies, stranger.get(await ceremonies.authentication_options()))
    assert refused.reason == "unknown_credential"


async def test_a_user_handle_of_someone_else_is_refused(ceremonies: PasskeyCeremonies, users: Users) -> None:
    _ada, authenticator = await _enrolled(ceremonies, users)
    [credential] = authenticator.credentials.values()
    credential.user_handle = user_handle("usr_someone_else")
    refused = await _refusal(ceremonies, authenticator.get(await ceremonies.authentication_options()))
    assert refused.reason == "user_mismatch"


async def test_a_disabled_user_cannot_sign_in(ceremonies: PasskeyCeremonies, users: Users) -> None:
    user_id, authenticator = await _enrolled(ceremonies, users)
    await users.disable(user_id)
    refused = await _refusal(ceremonies, authenticator.get(await ceremonies.authentication_options()))
    assert (refused.reason, refused.user_id, refused.tenant_id) == ("user_disabled", user_id, "acme")


async def test_malformed_answers_are_refused(ceremonies: PasskeyCeremonies) -> None:
    for junk in ({}, {"id": "x"}, {"id": "AA", "rawId": "AA", "type": "public-key", "response": {}}):
        assert (await _refusal(ceremonies, junk)).reason == "malformed"


async def test_expired_challenges_are_purged(
    ceremonies: PasskeyCeremonies, store: PasskeyStore, clock: Clock, store_url: str
) -> None:
    from sqlalchemy import func, select

    from keel.store.tables import webauthn_challenges

    for _ in range(3):
        await ceremonies.authentication_options()
    clock.advance(minutes=5)
    clock.advance(hours=1, seconds=1)
    await ceremonies.authentication_options()
    async with store._engine.connect() as connection:
        count = (await connection.execute(select(func.count()).select_from(webauthn_challenges))).scalar()
    assert count == 1


def _challenge(options: dict[str, Any]) -> bytes:
    from tests.gateway.soft_authenticator import unb64url

    return unb64url(options["challenge"])


@pytest.mark.parametrize(
    ("rp_id", "origins", "problem"),
    [
        ("keel.example.com", ["https://keel.example.com", "https://eu.keel.example.com:8443"], None),
        ("localhost", ["http://localhost:8000"], None),
        ("keel.example.com", ["https://evil.example.net"], "is not on rp_id"),
        ("keel.example.com", ["https://notkeel.example.com"], "is not on rp_id"),
        ("keel.example.com", ["http://keel.example.com"], "must be https"),
    ],
)
def test_relying_party_from_config(rp_id: str, origins: list[str], problem: str | None) -> None:
    from keel.config.gateway import PasskeysConfig
    from keel.errors import UsageError

    config = PasskeysConfig(enabled=True, rp_id=rp_id, origins=origins)
    if problem is None:
        rp = RelyingParty.from_config(config)
        assert (rp.id, rp.origins) == (rp_id, tuple(origins))
        return
    with pytest.raises(UsageError, match=problem):
        RelyingParty.from_config(config)
