"""The audit log on both backends: round trip, tenant isolation, stable pages, filters, secrets kept
out of `detail`, the database refusing UPDATE and DELETE, fire-and-forget writes, migration 0005."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from keel.errors import UsageError
from keel.gateway import generate_key
from keel.store import (
    AUDIT_ACTIONS,
    AuditEntry,
    AuditLog,
    InvalidAuditEntry,
    current_revision,
    head_revision,
    upgrade,
)
from keel.store.audit import REDACTED, redact_detail, secret_looking
from keel.store.engine import sync_engine
from keel.store.migrate import alembic_config
from keel.store.tables import audit_log

T0 = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)


@pytest.fixture
async def audit(store_url: str) -> AsyncIterator[AuditLog]:
    async with AuditLog(store_url) as log:
        yield log


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """A blocking engine on the same database, for raw SQL."""
    sync = sync_engine(store_url)
    try:
        yield sync
    finally:
        sync.dispose()


def entry(seconds: float = 0, **fields: object) -> AuditEntry:
    values: dict[str, object] = {
        "action": "auth.sign_in",
        "principal": "user:alice",
        "tenant_id": "acme",
        "recorded_at": T0 + timedelta(seconds=seconds),
    }
    values.update(fields)
    return AuditEntry(**values)  # type: ignore[arg-type]


def count_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(audit_log)).scalar_one())


# -- round trip, order, tenancy, pages, filters ----------------------------------------------------


async def test_an_entry_reads_back_as_written(audit: AuditLog) -> None:
    written = AuditEntry(
        action="key.revoked",
        principal="api_key:k3v7q2mxa4bz",
        outcome="failure",
        tenant_id="acme",
        target="key_0123",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        ip="2001:db8::1",
        detail={"reason": "unknown key", "scopes": ["runs:read"], "attempt": 2, "ok": False, "n": None},
        recorded_at=T0,
    )
    await audit.append(written)
    page = await audit.list(tenant_id="acme")
    assert page.entries == [written]
    assert page.next_cursor is None
    read = page.entries[0]
    assert read.recorded_at == T0 and read.recorded_at.tzinfo is not None
    assert read.detail == {
        "reason": "unknown key",
        "scopes": ["runs:read"],
        "attempt": 2,
        "ok": False,
        "n": None,
    }


async def test_defaults_give_an_id_a_utc_time_and_success(audit: AuditLog) -> None:
    before = datetime.now(UTC)
    await audit.append(AuditEntry(action="config.deployed", principal="operator:cli"))
    [read] = (await audit.list(tenant_id=None)).entries
    assert read.outcome == "success"
    assert read.tenant_id is None and read.target is None and read.detail == {}
    assert len(read.id) == 36  # a UUID
    assert before - timedelta(seconds=1) <= read.recorded_at <= datetime.now(UTC)


async def test_newest_first_and_ties_broken_by_id(audit: AuditLog) -> None:
    await audit.append_many(
        [entry(0, id="a"), entry(10, id="b"), entry(10, id="c"), entry(5, id="d"), entry(10, id="e")]
    )
    page = await audit.list(tenant_id="acme")
    assert [e.id for e in page.entries] == ["e", "c", "b", "d", "a"]


async def test_append_many_is_all_or_nothing(audit: AuditLog, engine: Engine) -> None:
    await audit.append(entry(id="taken"))
    with pytest.raises(IntegrityError):
        await audit.append_many([entry(1, id="fresh"), entry(2, id="taken")])
    assert count_rows(engine) == 1
    await audit.append_many([])
    assert count_rows(engine) == 1


async def test_a_tenant_never_sees_another_tenants_entries(audit: AuditLog) -> None:
    await audit.append_many(
        [
            entry(1, tenant_id="acme", id="acme-1"),
            entry(2, tenant_id="globex", id="globex-1", principal="user:bob"),
            entry(3, tenant_id=None, id="operator-1", principal="operator:cli", action="config.deployed"),
            entry(4, tenant_id="acme", id="acme-2", action="auth.denied", outcome="denied"),
        ]
    )
    assert [e.id for e in (await audit.list(tenant_id="acme")).entries] == ["acme-2", "acme-1"]
    assert [e.id for e in (await audit.list(tenant_id="globex")).entries] == ["globex-1"]
    # Filters never widen the scope: bob's entries are globex's, not acme's.
    assert (await audit.list(tenant_id="acme", principal="user:bob")).entries == []
    assert (await audit.list(tenant_id="globex", action="auth.denied")).entries == []
    assert (await audit.list(tenant_id="initech")).entries == []
    # Unscoped (admin): every tenant's entries and the operator's.
    every = [e.id for e in (await audit.list(tenant_id=None)).entries]
    assert every == ["acme-2", "operator-1", "globex-1", "acme-1"]


async def test_pages_are_stable_while_entries_are_written(audit: AuditLog) -> None:
    # 30 entries, many sharing a time, so the cursor must break ties by id.
    await audit.append_many([entry(i // 4, id=f"e{i:02d}") for i in range(30)])
    expected = [e.id for e in (await audit.list(tenant_id="acme", limit=500)).entries]
    assert len(expected) == 30
    seen: list[str] = []
    cursor: str | None = None
    newer = 0
    while True:
        page = await audit.list(tenant_id="acme", limit=7, cursor=cursor)
        seen += [e.id for e in page.entries]
        # Entries written between pages are newer: they never shift the pages still to come.
        newer += 1
        await audit.append(entry(1000 + newer, id=f"new{newer}"))
        await audit.append(entry(3, id=f"e05-late{newer}", tenant_id="globex"))  # another tenant
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected
    assert len(set(seen)) == 30


async def test_filters(audit: AuditLog) -> None:
    await audit.append_many(
        [
            entry(0, id="1", action="auth.sign_in", principal="user:alice"),
            entry(10, id="2", action="auth.failed", outcome="failure", principal="api_key:aaaaaaaaaaaa"),
            entry(20, id="3", action="auth.denied", outcome="denied", principal="user:alice", target="runs"),
            entry(30, id="4", action="auth.sign_in", principal="user:carol"),
        ]
    )

    async def ids(**filters: object) -> list[str]:
        page = await audit.list(tenant_id="acme", **filters)  # type: ignore[arg-type]
        return [e.id for e in page.entries]

    assert await ids(action="auth.sign_in") == ["4", "1"]
    assert await ids(principal="user:alice") == ["3", "1"]
    assert await ids(outcome="failure") == ["2"]
    assert await ids(target="runs") == ["3"]
    assert await ids(since=T0 + timedelta(seconds=10)) == ["4", "3", "2"]  # inclusive
    assert await ids(until=T0 + timedelta(seconds=20)) == ["2", "1"]  # exclusive
    assert await ids(since=T0 + timedelta(seconds=5), until=T0 + timedelta(seconds=25)) == ["3", "2"]
    assert await ids(action="auth.sign_in", principal="user:alice") == ["1"]
    assert await ids(since=datetime(2026, 3, 1, 12, 0, 10)) == ["4", "3", "2"]  # naive is UTC


async def test_bad_listing_arguments_are_usage_errors(audit: AuditLog) -> None:
    with pytest.raises(UsageError, match=r"unknown audit action 'auth\.hacked'"):
        await audit.list(tenant_id=None, action="auth.hacked")
    with pytest.raises(UsageError, match="unknown audit outcome"):
        await audit.list(tenant_id=None, outcome="maybe")
    for limit in (0, 501, True):
        with pytest.raises(UsageError, match="limit must be an integer from 1 to 500"):
            await audit.list(tenant_id=None, limit=limit)
    with pytest.raises(UsageError, match="invalid cursor"):
        await audit.list(tenant_id=None, cursor="not-a-cursor")


async def test_entries_outside_the_rules_are_refused(audit: AuditLog, engine: Engine) -> None:
    bad = [
        (entry(action="auth.hacked"), "unknown audit action"),
        (entry(outcome="meh"), "unknown audit outcome"),
        (entry(principal="alice"), "must read kind:id"),
        (entry(principal=""), "must read kind:id"),
        (entry(principal="user:" + "x" * 300), "longer than 256"),
        (entry(tenant_id=""), "non-empty string"),
        (entry(tenant_id="t" * 300), "longer than 256"),
        (entry(id=""), "entry id"),
        (entry(target=42), "target must be None or a string"),
        (entry(detail=["not", "a", "mapping"]), "detail must be a mapping"),
    ]
    for item, message in bad:
        with pytest.raises(InvalidAuditEntry, match=message):
            await audit.append(item)
    with pytest.raises(InvalidAuditEntry):
        await audit.append_many([entry(id="fine"), entry(action="nope")])
    assert count_rows(engine) == 0


async def test_long_free_text_is_cut(audit: AuditLog) -> None:
    await audit.append(entry(target="t" * 5000, ip="i" * 100, trace_id="f" * 100))
    [read] = (await audit.list(tenant_id="acme")).entries
    assert read.target == "t" * 1024
    assert read.ip == "i" * 64
    assert read.trace_id == "f" * 64


def test_the_actions_are_one_closed_set() -> None:
    assert len(AUDIT_ACTIONS) == len(set(AUDIT_ACTIONS)) == 12
    assert {"auth.sign_in", "auth.denied", "key.created", "rate_limit.refused"} <= set(AUDIT_ACTIONS)
    assert max(len(action) for action in AUDIT_ACTIONS) <= 32  # the column's width


# -- append-only: the database refuses -------------------------------------------------------------


async def test_the_database_refuses_update_and_delete(audit: AuditLog, engine: Engine) -> None:
    await audit.append_many([entry(0, id="one"), entry(1, id="two", tenant_id="globex")])
    statements = [
        "UPDATE audit_log SET principal = 'user:mallory' WHERE id = 'one'",
        "UPDATE audit_log SET detail = '{}'",
        "DELETE FROM audit_log WHERE id = 'one'",
        "DELETE FROM audit_log",
    ]
    for statement in statements:
        with pytest.raises(IntegrityError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))
    assert count_rows(engine) == 2
    [one] = (await audit.list(tenant_id="acme")).entries
    assert one.principal == "user:alice"


async def test_the_database_refuses_overwriting_an_entry(
    audit: AuditLog, engine: Engine, store_url: str
) -> None:
    await audit.append(entry(id="one"))
    with pytest.raises(IntegrityError):
        await audit.append(entry(id="one", principal="user:mallory"))
    if store_url.startswith("sqlite"):
        # REPLACE deletes the old row without firing delete triggers: a trigger on INSERT refuses it.
        replace = (
            "INSERT OR REPLACE INTO audit_log (id, recorded_at, principal, action, outcome, detail) "
            "VALUES ('one', '2026-03-01 12:00:00.000000', 'user:mallory', 'auth.sign_in', 'success', '{}')"
        )
        upsert = (
            "INSERT INTO audit_log (id, recorded_at, principal, action, outcome, detail) "
            "VALUES ('one', '2026-03-01 12:00:00.000000', 'user:mallory', 'auth.sign_in', 'success', '{}') "
            "ON CONFLICT (id) DO UPDATE SET principal = excluded.principal"
        )
    else:
        replace = "TRUNCATE audit_log"
        upsert = (
            "INSERT INTO audit_log (id, recorded_at, principal, action, outcome, detail) "
            "VALUES ('one', now(), 'user:mallory', 'auth.sign_in', 'success', '{}') "
            "ON CONFLICT (id) DO UPDATE SET principal = excluded.principal"
        )
    for statement in (replace, upsert):
        with pytest.raises(IntegrityError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))
    [one] = (await audit.list(tenant_id="acme")).entries
    assert one.principal == "user:alice"


# -- secrets never reach the table -----------------------------------------------------------------


def test_secret_looking_names() -> None:
    secret = [
        "password",
        "api_key",
        "apiKey",
        "X-Api-Key",
        "key",
        "signing_key",
        "client_secret",
        "secret_hash",
        "access_token",
        "refreshToken",
        "Authorization",
        "cookie",
        "credentials",
        "db_password_hint",
        "pepper",
        "private_key_pem",
        "jwt",
    ]
    public = ["key_id", "key_prefix", "prefix", "keyId", "tokens", "input_tokens", "name", "scopes", "monkey"]
    assert [name for name in secret if not secret_looking(name)] == []
    assert [name for name in public if secret_looking(name)] == []


async def test_secrets_in_detail_are_redacted_before_they_are_stored(audit: AuditLog, engine: Engine) -> None:
    key = generate_key()
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl"
    detail = {
        "password": "hunter2-hunter2",
        "api_key": "sk-live-0123456789abcdef0123",
        "nested": {"client_secret": "s3cr3t-value", "keep": "this", "list": [{"token": "tok-123456789"}]},
        "key_id": "key_0123",
        "prefix": key.prefix,
        "tokens": 4000,
        "header": f"Authorization: Bearer {jwt}",
        "echo": f"called with {key.key} by mistake",
        "dsn": "postgresql://keel:pa55word@db.internal/keel",
    }
    await audit.append(entry(id="secrets", detail=detail))
    [read] = (await audit.list(tenant_id="acme")).entries
    stored = read.detail
    assert stored["password"] == REDACTED
    assert stored["api_key"] == REDACTED
    assert stored["nested"]["client_secret"] == REDACTED
    assert stored["nested"]["keep"] == "this"
    assert stored["nested"]["list"] == [{"token": REDACTED}]
    assert stored["key_id"] == "key_0123"
    assert stored["prefix"] == key.prefix
    assert stored["tokens"] == 4000
    assert stored["echo"] == f"called with keel_{key.prefix}_[REDACTED:api_key] by mistake"
    assert "pa55word" not in stored["dsn"] and "db.internal" in stored["dsn"]
    assert jwt not in stored["header"]
    # Nothing secret anywhere in the row as the database holds it.
    with engine.connect() as connection:
        raw = str(connection.execute(text("SELECT detail FROM audit_log")).scalar_one())
    for secret in (
        "hunter2",
        "sk-live-0123456789abcdef0123",
        "s3cr3t",
        "tok-123456789",
        key.secret,
        "pa55word",
        jwt,
    ):
        assert secret not in raw, secret


async def test_a_secret_in_the_target_is_masked(audit: AuditLog) -> None:
    key = generate_key()
    await audit.append(entry(target=f"revoke {key.key}"))
    [read] = (await audit.list(tenant_id="acme")).entries
    assert read.target == f"revoke keel_{key.prefix}_[REDACTED:api_key]"


def test_detail_is_kept_small() -> None:
    assert redact_detail(None) == {}
    cut = redact_detail({"long": "x" * 2000})
    assert cut["long"].startswith("x" * 512) and len(cut["long"]) < 600
    deep: dict[str, object] = {"v": 1}
    for _ in range(10):
        deep = {"d": deep}
    flattened = redact_detail(deep)
    assert "truncated" in str(flattened) and '"v"' not in str(flattened)
    huge = redact_detail({f"k{i}": "y" * 400 for i in range(20)})
    assert list(huge) == ["truncated"]
    assert redact_detail({"when": T0, "amount": 1.5, 3: "int key"}) == {
        "when": T0.isoformat(),
        "amount": 1.5,
        "3": "int key",
    }


# -- fire and forget -------------------------------------------------------------------------------


async def test_submit_writes_in_the_background(audit: AuditLog) -> None:
    for i in range(120):
        audit.submit(entry(i, id=f"s{i:03d}"))
    assert audit.pending > 0  # nothing was written in the caller's time
    await audit.flush()
    assert audit.pending == 0
    page = await audit.list(tenant_id="acme", limit=500)
    assert len(page.entries) == 120
    # And without flush: the background task writes on its own.
    audit.submit(entry(500, id="later"))
    for _ in range(200):
        await asyncio.sleep(0.01)
        if audit.pending == 0:
            break
    assert (await audit.list(tenant_id="acme", limit=1)).entries[0].id == "later"
    assert audit.dropped == 0


async def test_submit_never_raises(audit: AuditLog, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="keel.store.audit")
    audit.submit(entry(action="auth.hacked"))  # invalid: dropped and logged
    audit.submit("not an entry")  # type: ignore[arg-type]
    twice = entry(id="twice")
    audit.submit(twice)
    audit.submit(twice)  # the second is refused by the database, alone
    audit.submit(entry(1, id="after"))
    await audit.flush()
    assert [e.id for e in (await audit.list(tenant_id="acme")).entries] == ["after", "twice"]
    assert audit.dropped == 3
    assert "unknown audit action" in caplog.text
    assert "refused by the database" in caplog.text


def test_submit_outside_an_event_loop_drops_and_logs(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    log = AuditLog(store_url)
    log.submit(entry())
    assert log.dropped == 1 and log.pending == 0
    assert "running event loop" in caplog.text
    asyncio.run(log.close())


async def test_a_full_queue_drops_new_entries(store_url: str) -> None:
    async with AuditLog(store_url, max_pending=5) as log:
        for i in range(8):
            log.submit(entry(i, id=f"q{i}"))
        assert log.pending == 5 and log.dropped == 3
    async with AuditLog(store_url) as log:
        assert len((await log.list(tenant_id="acme")).entries) == 5


async def test_close_writes_what_is_queued(store_url: str) -> None:
    log = AuditLog(store_url)
    for i in range(10):
        log.submit(entry(i, id=f"c{i}"))
    await log.close()
    assert log.dropped == 0
    log.submit(entry(99, id="too-late"))  # after close: dropped, not raised
    assert log.dropped == 1
    async with AuditLog(store_url) as reader:
        assert len((await reader.list(tenant_id="acme")).entries) == 10


async def test_an_unavailable_database_never_reaches_the_caller(database_url: str) -> None:
    # No tables: every write fails. submit and close still return normally.
    log = AuditLog(database_url, close_timeout=0.5)
    for i in range(3):
        log.submit(entry(i, id=f"u{i}"))
    await asyncio.sleep(0.05)
    assert log.pending == 3  # kept for a retry
    with pytest.raises(UsageError, match="keel db upgrade"):
        await log.flush()  # flush is the explicit call: it does report the error
    await log.close()
    assert log.dropped == 3 and log.pending == 0


# -- migration ------------------------------------------------------------------------------------


def _alembic(url: str, verb: str, revision: str) -> None:
    engine = sync_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            getattr(command, verb)(config, revision)
    finally:
        engine.dispose()


async def test_upgrading_an_existing_0004_database_adds_the_audit_log(database_url: str) -> None:
    _alembic(database_url, "upgrade", "0004")
    assert current_revision(database_url) == "0004"
    engine = sync_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO api_keys (id, prefix, secret_hash, name, scopes, created_at) "
                    "VALUES ('key_1', 'aaaaaaaaaaaa', 'h', 'ci', '[]', '2026-03-01 12:00:00')"
                )
            )
        assert "audit_log" not in inspect(engine).get_table_names()

        upgrade(database_url)
        assert current_revision(database_url) == head_revision()
        inspector = inspect(engine)
        assert {c["name"] for c in inspector.get_columns("audit_log")} == {
            "id",
            "recorded_at",
            "tenant_id",
            "principal",
            "action",
            "outcome",
            "target",
            "trace_id",
            "ip",
            "detail",
        }
        indexes = {index["name"]: index["column_names"] for index in inspector.get_indexes("audit_log")}
        assert indexes["ix_audit_log_tenant_id_recorded_at"] == ["tenant_id", "recorded_at"]
        assert indexes["ix_audit_log_action_recorded_at"] == ["action", "recorded_at"]
        with engine.connect() as connection:  # the existing rows are untouched
            assert connection.execute(text("SELECT name FROM api_keys")).scalar_one() == "ci"

        async with AuditLog(database_url) as log:
            await log.append(entry(id="first"))
            assert [e.id for e in (await log.list(tenant_id="acme")).entries] == ["first"]
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text("DELETE FROM audit_log"))

        # Down to 0004 removes the table (entries and triggers with it), up again restores it.
        _alembic(database_url, "downgrade", "0004")
        assert "audit_log" not in inspect(engine).get_table_names()
        if engine.dialect.name == "postgresql":
            with engine.connect() as connection:
                functions = connection.execute(
                    text("SELECT count(*) FROM pg_proc WHERE proname = 'keel_audit_log_append_only'")
                ).scalar_one()
            assert functions == 0
        upgrade(database_url)
        async with AuditLog(database_url) as log:
            await log.append(entry(id="again"))  # SQLite's row triggers need a row to fire on
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text("UPDATE audit_log SET outcome = 'denied'"))
    finally:
        engine.dispose()
