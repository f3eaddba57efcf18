"""Migrations: idempotent, safe when several threads or processes start at once, and in step with
the table definitions the code queries."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from keel.errors import UsageError
from keel.store import RunStore, current_revision, head_revision, upgrade
from keel.store.engine import async_engine, sync_engine
from keel.store.migrate import VERSION_TABLE
from keel.store.tables import metadata

TABLES = {"runs", "run_usage", "run_tags", "run_tools", "spans", VERSION_TABLE}


def test_upgrade_creates_the_tables_and_is_idempotent(database_url: str) -> None:
    assert current_revision(database_url) is None
    upgrade(database_url)
    upgrade(database_url)
    assert current_revision(database_url) == head_revision()
    engine = sync_engine(database_url)
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()


def test_the_migrated_schema_matches_the_table_definitions(store_url: str) -> None:
    engine = sync_engine(store_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "version_table": VERSION_TABLE}
            )
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_concurrent_upgrades_in_threads(database_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def migrate() -> None:
        try:
            barrier.wait(timeout=10)
            upgrade(database_url)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert current_revision(database_url) == head_revision()


def test_concurrent_upgrades_in_processes(database_url: str) -> None:
    # Each process waits for a go line on stdin so all of them migrate at the same moment.
    script = "import sys; from keel.store import upgrade; sys.stdin.readline(); upgrade(sys.argv[1])"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, database_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    results = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], results
    assert current_revision(database_url) == head_revision()


def test_sqlite_connections_are_tuned(sqlite_url: str) -> None:
    engine = sync_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            settings = {
                name: connection.execute(text(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    finally:
        engine.dispose()
    assert settings == {"journal_mode": "wal", "synchronous": 1, "foreign_keys": 1, "busy_timeout": 5000}


async def test_async_sqlite_connections_are_tuned_too(sqlite_url: str) -> None:
    engine = async_engine(sqlite_url + "?timeout=0.5")
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await connection.execute(text("PRAGMA busy_timeout"))).scalar() == 500
    finally:
        await engine.dispose()


async def test_querying_before_upgrade_says_to_run_keel_db_upgrade(database_url: str) -> None:
    store = await RunStore.open(database_url)
    try:
        with pytest.raises(UsageError, match="keel db upgrade"):
            await store.get_run("nope")
    finally:
        await store.close()


def test_unreachable_database_is_a_usage_error_without_the_password() -> None:
    with pytest.raises(UsageError, match="cannot migrate") as caught:
        upgrade("postgresql://keel:s3cret@127.0.0.1:1/keel")
    assert "s3cret" not in str(caught.value)
    assert "keel:***@127.0.0.1:1" in str(caught.value)
