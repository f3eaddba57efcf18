"""KeyStore on SQLite and PostgreSQL: create, verify, refuse, revoke, list per tenant, last use."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from keel.errors import UsageError
from keel.gateway import ApiKeyRefused, InvalidExpiry, InvalidScope, generate_key, hash_secret, parse_key
from keel.gateway.keys import DEFAULT_PEPPER
from keel.store import KeyStore, UnknownKey
from keel.store.engine import sync_engine
from keel.store.tables import api_keys
from tests.gateway.clock import T0, Clock


def stored_rows(url: str) -> list[dict[str, Any]]:
    engine = sync_engine(url)
    try:
        with engine.connect() as connection:
            return [dict(row) for row in connection.execute(select(api_keys)).mappings()]
    finally:
        engine.dispose()


async def refusal(keys: KeyStore, key: object) -> ApiKeyRefused:
    with pytest.raises(ApiKeyRefused) as caught:
        await keys.verify(key)
    assert str(caught.value) == "invalid API key"  # the same message whatever the reason
    return caught.value


async def test_create_returns_the_key_once_and_verify_returns_the_principal(keys: KeyStore) -> None:
    created = await keys.create(
        "ci deploys", ["runs:read", "runs:write"], tenant_id="acme", created_by="cli:ada"
    )
    parsed = parse_key(created.key)
    record = created.record
    assert record.prefix == parsed.prefix
    assert record.id.startswith("key_")
    assert record.scopes == ("runs:write", "runs:read")
    assert (record.tenant_id, record.name, record.created_by) == ("acme", "ci deploys", "cli:ada")
    assert (record.created_at, record.expires_at, record.revoked_at) == (T0, None, None)
    assert record.state == "active"
    assert parsed.secret not in repr(created)

    principal = await keys.verify(created.key)

    assert (principal.id, principal.tenant_id, principal.scopes) == (record.id, "acme", record.scopes)
    assert principal.has_scope("runs:write")
    assert not principal.has_scope("admin")  # deny by default: exactly the scopes given


async def test_only_the_hash_is_stored_never_the_secret(keys: KeyStore, store_url: str) -> None:
    created = await keys.create("ci", ["runs:read"])
    secret = parse_key(created.key).secret

    [row] = stored_rows(store_url)

    assert row["prefix"] == created.record.prefix
    assert row["secret_hash"] == hash_secret(secret, DEFAULT_PEPPER)
    assert row["secret_hash"] != secret
    for value in row.values():
        assert secret not in str(value)
        assert created.key not in str(value)
    listed = await keys.list_keys()
    assert "secret_hash" not in {field for field in vars(listed[0])}
    assert row["secret_hash"] not in repr(listed) and secret not in repr(listed)


async def test_every_refusal_looks_the_same_to_the_caller(keys: KeyStore, clock: Clock) -> None:
    good = await keys.create("good", ["runs:read"])
    revoked = await keys.create("revoked", ["runs:read"])
    expiring = await keys.create("expiring", ["runs:read"], expires="1h")
    await keys.revoke(revoked.record.id)
    prefix = good.record.prefix

    wrong_secret = f"keel_{prefix}_{generate_key().secret}"
    unknown_prefix = generate_key().key
    assert (await refusal(keys, "keel_nope")).reason == "malformed"
    assert (await refusal(keys, wrong_secret)).reason == "wrong_secret"
    assert (await refusal(keys, unknown_prefix)).reason == "unknown_prefix"
    assert (await refusal(keys, revoked.key)).reason == "revoked"
    assert (await keys.verify(expiring.key)).id == expiring.record.id
    clock.advance(hours=1)
    assert (await refusal(keys, expiring.key)).reason == "expired"
    assert (await keys.verify(good.key)).id == good.record.id


async def test_a_key_hashed_under_another_pepper_is_refused(keys: KeyStore, store_url: str) -> None:
    created = await keys.create("ci", ["runs:read"])
    async with KeyStore(store_url, pepper=b"the production pepper") as peppered:
        assert (await refusal(peppered, created.key)).reason == "wrong_secret"
        other = await peppered.create("peppered", ["runs:read"])
        assert (await peppered.verify(other.key)).id == other.record.id
    assert (await refusal(keys, other.key)).reason == "wrong_secret"


async def test_the_pepper_is_read_from_keel_key_pepper(store_url: str) -> None:
    async with KeyStore(store_url, environ={"KEEL_KEY_PEPPER": "pepper-1"}) as first:
        created = await first.create("ci", ["runs:read"])
    [row] = stored_rows(store_url)
    assert row["secret_hash"] == hash_secret(parse_key(created.key).secret, b"pepper-1")
    async with KeyStore(store_url, environ={"KEEL_KEY_PEPPER": "pepper-2"}) as second:
        assert (await refusal(second, created.key)).reason == "wrong_secret"


async def test_bad_scopes_expiry_and_names_are_refused_at_creation(keys: KeyStore, store_url: str) -> None:
    with pytest.raises(InvalidScope, match="unknown scope 'runs:delete'"):
        await keys.create("ci", ["runs:read", "runs:delete"])
    with pytest.raises(InvalidScope, match="at least one scope"):
        await keys.create("ci", [])
    with pytest.raises(InvalidExpiry, match="in the future"):
        await keys.create("ci", ["runs:read"], expires=T0 - timedelta(seconds=1))
    with pytest.raises(UsageError, match="name must be a non-empty string"):
        await keys.create("  ", ["runs:read"])
    with pytest.raises(UsageError, match="longer than 256"):
        await keys.create("ci", ["runs:read"], tenant_id="t" * 257)
    assert stored_rows(store_url) == []


async def test_revoke_is_idempotent_by_id_or_prefix(keys: KeyStore, clock: Clock) -> None:
    created = await keys.create("ci", ["runs:read"])
    first = await keys.revoke(created.record.id)
    clock.advance(minutes=5)
    again = await keys.revoke(created.record.prefix)
    assert first.revoked_at == again.revoked_at == T0
    assert again.state == "revoked"
    with pytest.raises(UnknownKey, match="no API key with id or prefix 'key_missing'"):
        await keys.revoke("key_missing")


async def test_list_shows_every_key_with_its_state(keys: KeyStore, clock: Clock) -> None:
    active = await keys.create("active", ["runs:read"])
    clock.advance(seconds=1)
    expired = await keys.create("expired", ["runs:read"], expires="1m")
    clock.advance(seconds=1)
    revoked = await keys.create("revoked", ["admin"])
    await keys.revoke(revoked.record.id)
    clock.advance(minutes=2)

    listed = await keys.list_keys()

    assert [(k.id, k.state) for k in listed] == [
        (revoked.record.id, "revoked"),
        (expired.record.id, "expired"),
        (active.record.id, "active"),
    ]


async def test_tenants_cannot_see_or_revoke_each_others_keys(keys: KeyStore) -> None:
    acme = await keys.create("acme ci", ["runs:write"], tenant_id="acme")
    globex = await keys.create("globex ci", ["runs:write"], tenant_id="globex")

    assert [k.id for k in await keys.list_keys(tenant_id="acme")] == [acme.record.id]
    assert [k.id for k in await keys.list_keys(tenant_id="globex")] == [globex.record.id]
    assert {k.id for k in await keys.list_keys()} == {acme.record.id, globex.record.id}
    for target in (globex.record.id, globex.record.prefix):
        with pytest.raises(UnknownKey):
            await keys.revoke(target, tenant_id="acme")
    assert (await keys.verify(globex.key)).tenant_id == "globex"  # still usable
    assert (await keys.revoke(globex.record.id, tenant_id="globex")).state == "revoked"
    assert (await keys.verify(acme.key)).tenant_id == "acme"


async def test_last_use_is_written_at_most_once_a_minute(
    keys: KeyStore, store_url: str, clock: Clock
) -> None:
    created = await keys.create("ci", ["runs:read"])
    assert stored_rows(store_url)[0]["last_used_at"] is None

    assert (await keys.verify(created.key)).last_used_at == T0
    clock.advance(seconds=30)
    for _ in range(5):
        await keys.verify(created.key)
    assert stored_rows(store_url)[0]["last_used_at"] == T0

    clock.advance(seconds=30)  # 60 s after the last write
    assert (await keys.verify(created.key)).last_used_at == T0 + timedelta(seconds=60)
    assert stored_rows(store_url)[0]["last_used_at"] == T0 + timedelta(seconds=60)


async def test_last_use_throttling_holds_across_processes(store_url: str, clock: Clock) -> None:
    stores = [KeyStore(store_url, environ={}, clock=clock) for _ in range(3)]
    try:
        created = await stores[0].create("ci", ["runs:read"])
        await stores[0].verify(created.key)
        clock.advance(seconds=59)
        # Other processes read the row: written 59 s ago, so none of them writes.
        await asyncio.gather(*(store.verify(created.key) for store in stores[1:]))
        assert stored_rows(store_url)[0]["last_used_at"] == T0
        clock.advance(seconds=1)
        principals = await asyncio.gather(*(store.verify(created.key) for store in stores))
        assert stored_rows(store_url)[0]["last_used_at"] == T0 + timedelta(seconds=60)
        assert all(p.id == created.record.id for p in principals)
    finally:
        for store in stores:
            await store.close()
