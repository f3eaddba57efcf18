"""The built-in issuer below HTTP, on SQLite and PostgreSQL: users and sessions, clients, single-use
codes and refresh tokens (under concurrency), refresh-token families, signing keys (one key when
several processes start at once, rotation, publication window, a changed secret), and the verifier
the gateway uses for this issuer's tokens. The protocol over HTTP is test_oauth_http.py."""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey
from sqlalchemy import select
from starlette.responses import Response

from keel.config.gateway import duration_seconds
from keel.errors import UsageError
from keel.gateway.jwt import TokenRefused
from keel.gateway.oauth.crypto import KeyDecryptionError, signing_secret
from keel.gateway.oauth.keys import PUBLISH_MARGIN, SigningKey, SigningKeys
from keel.gateway.oauth.verifier import IssuerVerifier
from keel.gateway.principal import Principal
from keel.gateway.sessions import (
    SESSION_COOKIE,
    cookie_secure,
    set_session_cookie,
    sign_out,
    start_session,
    user_of_session,
)
from keel.store.engine import async_engine
from keel.store.identity import IdentityStore, UnknownUser
from keel.store.tables import oauth_clients, oauth_signing_keys
from tests.gateway.clock import Clock
from tests.gateway.oauth_support import SECRET, SECRET_ENV, issuer_config

ISSUER = "http://127.0.0.1:9999"
ENV = {SECRET_ENV: SECRET}


@pytest.fixture
async def store(store_url: str, clock: Clock) -> AsyncIterator[IdentityStore]:
    async with IdentityStore(store_url, environ={}, clock=clock) as identity:
        yield identity


def _keys(store: IdentityStore, secret: str = SECRET, **config: Any) -> SigningKeys:
    issuer = issuer_config(ISSUER, **config)
    return SigningKeys(
        store,
        rotation=duration_seconds(issuer.key_rotation),
        access_token_ttl=duration_seconds(issuer.access_token_ttl),
        secret=signing_secret(issuer, {SECRET_ENV: secret}),
    )


def _mint(key: SigningKey, clock: Clock, *, header: dict[str, Any] | None = None, **claims: Any) -> str:
    """A token shaped like the issuer's (claims overridable; None removes one)."""
    now = int(clock.now.timestamp())
    body: dict[str, Any] = {
        "iss": ISSUER,
        "aud": "keel",
        "sub": "kc_service",
        "client_id": "kc_service",
        "tenant": "acme",
        "scope": "runs:read admin",
        "jti": secrets.token_urlsafe(16),
        "iat": now,
        "exp": now + 900,
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(header or {"alg": "ES256", "typ": "at+jwt", "kid": key.kid}, body, key.key)


def _verifier(store: IdentityStore, clock: Clock, **kwargs: Any) -> IssuerVerifier:
    return IssuerVerifier(issuer_config(ISSUER), store, clock=lambda: clock.now.timestamp(), **kwargs)


async def _refused(verifier: IssuerVerifier, token: str) -> str:
    with pytest.raises(TokenRefused) as refused:
        await verifier.authenticate(token)
    assert str(refused.value) == "invalid token"
    return refused.value.reason


# -- users and sessions --------------------------------------------------------------------------


async def test_sessions_sign_a_user_in_until_expiry_sign_out_or_disabling(
    store: IdentityStore, clock: Clock
) -> None:
    ada = await store.create_user("acme", "Ada", email="ada@example.com", roles=["operator"])
    cookie = await start_session(store, ada, ttl=3600)
    assert len(cookie) == 43 and cookie not in repr(await store.list_sessions(ada.id))
    signed_in = await user_of_session(store, cookie)
    assert signed_in is not None
    assert (signed_in.id, signed_in.tenant_id, signed_in.roles) == (ada.id, "acme", ("operator",))
    assert await user_of_session(store, None) is None
    assert await user_of_session(store, "not a cookie") is None
    assert await user_of_session(store, secrets.token_urlsafe(32)) is None

    clock.advance(minutes=5)  # last seen is written at most once a minute
    assert await user_of_session(store, cookie) is not None
    assert (await store.list_sessions(ada.id))[0].last_seen_at == clock.now
    clock.advance(minutes=56)  # 3600 s after the start: over
    assert await user_of_session(store, cookie) is None

    second = await start_session(store, ada, ttl=timedelta(hours=1))
    assert await sign_out(store, second) is True and await sign_out(store, second) is False
    assert await user_of_session(store, second) is None

    third = await start_session(store, ada, ttl=3600)
    await store.disable_user(ada.id)
    assert await user_of_session(store, third) is None
    with pytest.raises(UnknownUser):
        await start_session(store, ada, ttl=3600)
    clock.advance(days=2)  # ended sessions are purged a day after they end
    assert await store.purge_expired() == 3 and await store.list_sessions(ada.id) == []


async def test_users_belong_to_one_tenant(store: IdentityStore) -> None:
    ada = await store.create_user("acme", "Ada", email="ada@example.com")
    await store.create_user("globex", "Ada too", email="ada@example.com")  # another tenant: fine
    with pytest.raises(UsageError, match="--email"):
        await store.create_user("acme", "Ada again", email="ada@example.com")
    with pytest.raises(UsageError, match="--role"):
        await store.create_user("acme", "Bob", roles=["Not A Role"])
    assert [u.name for u in await store.list_users(tenant_id="acme")] == ["Ada"]
    assert await store.get_user(ada.id, tenant_id="globex") is None
    with pytest.raises(UnknownUser):
        await store.disable_user(ada.id, tenant_id="globex")
    assert (await store.disable_user("ada@example.com", tenant_id="acme")).id == ada.id


def test_the_session_cookie_attributes() -> None:
    response = Response()
    set_session_cookie(response, "v" * 43, max_age=600, secure=cookie_secure("https://keel.example.com"))
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie and "Secure" in cookie
    assert "SameSite=lax" in cookie and "Path=/" in cookie and "Max-Age=600" in cookie
    assert not cookie_secure("http://localhost:8000") and not cookie_secure("http://127.0.0.1:1")
    assert cookie_secure("http://keel.internal:8000")


# -- clients, codes, refresh tokens ----------------------------------------------------------------


async def test_client_secrets_are_shown_once_and_stored_as_hashes(
    store: IdentityStore, store_url: str
) -> None:
    made = await store.create_client(
        "billing", tenant_id="acme", grant_type="client_credentials", scopes=["runs:read", "runs:write"]
    )
    assert made.secret is not None and made.secret not in repr(made) and made.client.confidential
    engine = async_engine(store_url)
    async with engine.connect() as connection:
        row = (await connection.execute(select(oauth_clients))).mappings().one()
    await engine.dispose()
    assert made.secret not in str(dict(row)) and len(row["secret_hash"]) == 64
    client = await store.get_client(made.client.id)
    assert client is not None and store.client_secret_matches(client, made.secret)
    assert not store.client_secret_matches(client, made.secret[:-1] + "x")

    public = await store.create_client(
        "cli", tenant_id="acme", grant_type="authorization_code", redirect_uris=["http://127.0.0.1:1/cb"]
    )
    assert public.secret is None and not store.client_secret_matches(public.client, "")
    for kwargs, option in [
        ({"grant_type": "password"}, "--grant"),
        ({"grant_type": "client_credentials"}, "--scope"),
        ({"grant_type": "client_credentials", "scopes": ["nope"]}, "--scope"),
        ({"grant_type": "authorization_code"}, "--redirect-uri"),
        ({"grant_type": "authorization_code", "redirect_uris": ["http://evil.example/cb"]}, "--redirect-uri"),
        (
            {"grant_type": "authorization_code", "redirect_uris": ["https://x.example/cb#frag"]},
            "--redirect-uri",
        ),
    ]:
        with pytest.raises(UsageError, match=option):
            await store.create_client("x", tenant_id="acme", **kwargs)  # type: ignore[arg-type]
    assert [c.id for c in await store.list_clients(tenant_id="globex")] == []
    revoked = await store.revoke_client(made.client.id, tenant_id="acme")
    assert revoked.state == "revoked"


async def test_a_code_is_used_once_even_by_concurrent_requests(store: IdentityStore, clock: Clock) -> None:
    common = {
        "user_id": "usr_1",
        "tenant_id": "acme",
        "redirect_uri": "http://127.0.0.1:1/cb",
        "scopes": ["runs:read"],
        "code_challenge": "c" * 43,
        "code_challenge_method": "S256",
        "ttl": 60,
    }
    await store.save_code("code-1", client_id="kc_a", **common)  # type: ignore[arg-type]
    assert (await store.consume_code("code-1", client_id="kc_other")).code is None  # bound to its client
    uses = await asyncio.gather(*[store.consume_code("code-1", client_id="kc_a") for _ in range(8)])
    assert sum(use.code is not None for use in uses) == 1
    assert all(use.reused for use in uses if use.code is None)

    # A code used again revokes the refresh tokens it gave.
    await store.set_code_family(next(u.code for u in uses if u.code).id, "fam_1")  # type: ignore[union-attr]
    await store.save_refresh_token(
        "rt-1", family_id="fam_1", client_id="kc_a", user_id="usr_1", tenant_id="acme", scopes=[], ttl=60
    )
    assert (await store.consume_code("code-1", client_id="kc_a")).reused
    found = await store.find_refresh_token("rt-1")
    assert found is not None and found.revoked_at is not None

    await store.save_code("code-2", client_id="kc_a", **{**common, "ttl": 1})  # type: ignore[arg-type]
    clock.advance(seconds=2)
    expired = await store.consume_code("code-2", client_id="kc_a")
    assert expired.code is None and not expired.reused


async def test_refresh_tokens_are_single_use_and_revoked_by_family(
    store: IdentityStore, clock: Clock
) -> None:
    def save(token: str, jti: str) -> Any:
        return store.save_refresh_token(
            token,
            family_id="fam_x",
            client_id="kc_a",
            user_id="usr_1",
            tenant_id="acme",
            scopes=["runs:read"],
            ttl=3600,
            access_jti=jti,
            access_expires_at=clock.now + timedelta(minutes=15),
        )

    await save("rt-a", "jti-a")
    wins = await asyncio.gather(*[store.consume_refresh_token("rt-a") for _ in range(6)])
    assert wins.count(True) == 1
    await save("rt-b", "jti-b")  # the rotated token
    revocation = await store.revoke_family("fam_x")
    assert revocation.refresh_tokens == 2 and {j for j, _ in revocation.access_tokens} == {"jti-a", "jti-b"}
    assert await store.access_token_revoked("jti-a") and await store.access_token_revoked("jti-b")
    # A token added to the family after its revocation (a concurrent refresh) is dead too.
    await save("rt-c", "jti-c")
    late = await store.find_refresh_token("rt-c")
    assert late is not None and late.family_revoked and late.revoked_at is None
    assert await store.consume_refresh_token("rt-c") is False
    clock.advance(days=3)
    assert await store.purge_expired() >= 3
    assert await store.find_refresh_token("rt-a") is None


# -- signing keys ----------------------------------------------------------------------------------


def _in_threads(count: int, work: Any) -> list[Any]:
    """Run `work()` (a coroutine function) in `count` threads at once, each with its own loop."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        async def go() -> Any:
            barrier.wait(timeout=10)
            return await work()

        try:
            results[index] = asyncio.run(go())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    return results


async def test_processes_starting_together_make_one_key_and_rotate_once(store_url: str, clock: Clock) -> None:
    async def first_key() -> tuple[str, int]:
        async with IdentityStore(store_url, environ={}, clock=clock) as own:  # one "process"
            key = await _keys(own).current()
            return key.kid, key.generation

    results = await asyncio.to_thread(_in_threads, 4, first_key)
    assert len(set(results)) == 1 and results[0][1] == 1

    clock.advance(days=31)  # past key_rotation (30d): every process wants a new key at once
    rotated = await asyncio.to_thread(_in_threads, 4, first_key)
    assert len(set(rotated)) == 1 and rotated[0][1] == 2 and rotated[0][0] != results[0][0]
    engine = async_engine(store_url)
    async with engine.connect() as connection:
        rows = (await connection.execute(select(oauth_signing_keys))).mappings().all()
    await engine.dispose()
    assert sorted(row["generation"] for row in rows) == [1, 2]
    assert all(SECRET not in str(dict(row)) and '"d"' not in str(row["public_jwk"]) for row in rows)


async def test_rotation_keeps_old_tokens_valid_until_they_expire(store: IdentityStore, clock: Clock) -> None:
    keys = _keys(store, key_rotation="1h", access_token_ttl="15m")
    old = await keys.current()
    old_token = _mint(old, clock, exp=int(clock.now.timestamp()) + 7 * 86_400)  # outlives its key
    verifier = _verifier(store, clock)
    assert (await verifier.authenticate(old_token)).id == "kc_service"

    clock.advance(hours=1)
    new = await keys.current()
    assert new.kid != old.kid and new.generation == old.generation + 1
    assert {k["kid"] for k in (await keys.jwks())["keys"]} == {old.kid, new.kid}
    new_token = _mint(new, clock)
    # A key added by another process: the verifier reads the keys again for an unknown kid.
    assert (await verifier.authenticate(new_token)).id == "kc_service"
    assert (await verifier.authenticate(old_token)).id == "kc_service"

    clock.advance(seconds=900 + PUBLISH_MARGIN + 1)  # every token of the old key has expired
    assert {k["kid"] for k in (await keys.jwks())["keys"]} == {new.kid}
    assert await _refused(_verifier(store, clock), old_token) == "unknown_key"
    forced = await keys.rotate()
    assert forced.generation == new.generation + 1 and (await keys.current()).kid == forced.kid


async def test_a_changed_secret_cannot_sign_until_a_new_key(store: IdentityStore, clock: Clock) -> None:
    first = await _keys(store).current()
    token = _mint(first, clock)
    changed = _keys(store, secret="another-secret-" + "z" * 40)
    with pytest.raises(KeyDecryptionError, match="rotate-key"):
        await changed.current()
    assert (await changed.rotate()).generation == 2
    assert (await _verifier(store, clock).authenticate(token)).tenant_id == "acme"  # public keys suffice
    with pytest.raises(UsageError, match="at least 32"):
        signing_secret(issuer_config(ISSUER), {SECRET_ENV: "short"})
    with pytest.raises(UsageError, match="key_secret_env: required"):
        signing_secret(issuer_config(ISSUER, key_secret_env=None), {})


# -- the gateway's verifier ----------------------------------------------------------------------


async def test_the_verifier_maps_tokens_to_principals(store: IdentityStore, clock: Clock) -> None:
    key = await _keys(store).current()
    verifier = _verifier(store, clock)
    service = await verifier.authenticate(_mint(key, clock))
    assert (service.kind, service.id, service.tenant_id) == ("service", "kc_service", "acme")
    assert service.scopes == frozenset({"runs:read", "admin"}) and service.credential == "jwt"
    user = await verifier.authenticate(
        _mint(key, clock, sub="usr_1", scope="runs:read bogus", roles=["operator", "auditor"])
    )
    # Roles are kept (agent_access), but their scopes are not added again: the token's scope is all.
    assert (user.kind, user.user_id, user.roles) == ("user", "usr_1", ("operator", "auditor"))
    assert user.scopes == frozenset({"runs:read"})


async def test_the_verifier_refuses_what_it_must(store: IdentityStore, clock: Clock) -> None:
    key = await _keys(store).current()
    verifier = _verifier(store, clock)
    now = int(clock.now.timestamp())
    cases = {
        "wrong_audience": _mint(key, clock, aud="another-api"),
        "expired": _mint(key, clock, exp=now - 60),
        "not_yet_valid": _mint(key, clock, iat=now + 600),
        "missing_claim": _mint(key, clock, tenant=None),
        "unknown_key": _mint(key, clock, header={"alg": "ES256", "typ": "at+jwt", "kid": "nope"}),
        "malformed": _mint(key, clock, header={"alg": "ES256", "kid": key.kid}),  # no typ at+jwt
    }
    for reason, token in cases.items():
        assert await _refused(verifier, token) == reason, reason
    # HS256 with the public key as the secret: the classic key confusion.
    public = OctKey.import_key(str(key.key.as_dict(private=False)).encode())
    confused = jwt.encode({"alg": "HS256", "typ": "at+jwt", "kid": key.kid}, {"iss": ISSUER}, public)
    assert await _refused(verifier, confused) == "algorithm_not_allowed"
    head, _body, signature = _mint(key, clock).split(".")
    tampered = _mint(key, clock, tenant="globex").split(".")[1]
    assert await _refused(verifier, f"{head}.{tampered}.{signature}") == "bad_signature"
    stranger = _mint(key, clock, iss="https://elsewhere.example")
    assert await _refused(verifier, stranger) == "unknown_issuer"


async def test_other_issuers_go_to_the_external_verifier(store: IdentityStore, clock: Clock) -> None:
    class External:
        def __init__(self) -> None:
            self.seen: list[str] = []

        async def authenticate(self, token: str) -> Principal:
            self.seen.append(token)
            return Principal(kind="user", id="ext", tenant_id="t", scopes=frozenset())

        async def aclose(self) -> None:
            return None

    key = await _keys(store).current()
    external = External()
    verifier = _verifier(store, clock, external=external)
    stranger = _mint(key, clock, iss="https://elsewhere.example")
    assert (await verifier.authenticate(stranger)).id == "ext" and external.seen == [stranger]
    assert (await verifier.authenticate(_mint(key, clock))).id == "kc_service" and len(external.seen) == 1


async def test_revoked_access_tokens_are_refused(store: IdentityStore, clock: Clock) -> None:
    key = await _keys(store).current()
    here = _verifier(store, clock, deny_cache=10)
    elsewhere = _verifier(store, clock, deny_cache=10)
    token = _mint(key, clock, jti="jti-1")
    assert (await here.authenticate(token)).id == "kc_service"
    assert (await elsewhere.authenticate(token)).id == "kc_service"  # "not revoked" now cached there
    await store.revoke_access_token("jti-1", tenant_id="acme", expires_at=clock.now + timedelta(minutes=15))
    here.remember_revoked("jti-1", clock.now.timestamp() + 900)  # revoked through this process
    assert await _refused(here, token) == "revoked"
    assert (await elsewhere.authenticate(token)).id == "kc_service"  # within its deny cache...
    uncached = _verifier(store, clock, deny_cache=0)
    assert await _refused(uncached, token) == "revoked"  # ...and refused once it asks the database
