"""Schema migrations, run programmatically: `upgrade(url)` brings a database to the latest schema.

Safe to run at every start and from several processes at once. The whole upgrade is one
transaction that first takes a lock: a transaction-scoped advisory lock on PostgreSQL, the
database write lock (`BEGIN IMMEDIATE`) on SQLite. A second process waits, then finds the schema
current and does nothing. Both backends have transactional DDL, so a failed upgrade leaves the
database as it was.

Keel's version table is `keel_schema_version`, not Alembic's default, so a project that uses
Alembic for its own tables in the same database does not collide with Keel.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from keel.errors import UsageError
from keel.store.engine import sync_engine
from keel.store.urls import describe_error, mask_url, parse_url

if TYPE_CHECKING:
    from alembic.config import Config

VERSION_TABLE = "keel_schema_version"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# pg_advisory_xact_lock key: "keelmigr" as a big-endian int64, unlikely to clash with an app's.
ADVISORY_LOCK_KEY = int.from_bytes(b"keelmigr", "big")


def alembic_config(url: str | None = None) -> Config:
    """An Alembic Config for the shipped migrations, built in code (no alembic.ini needed)."""
    from alembic.config import Config  # Alembic is imported only when migrating: it is slow to import

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision this version of Keel ships."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "keel.store ships at least one migration"
    return head


def upgrade(url: str, *, lock_wait: float = 60.0) -> None:
    """Create or upgrade Keel's tables in the database at `url`. Idempotent; concurrency-safe.

    Several processes may start at once: on Postgres they queue on an advisory lock; on SQLite
    they take `BEGIN IMMEDIATE`, and since SQLite can answer "database is locked" at once (without
    waiting its busy timeout, e.g. while another connection switches the file to WAL), a locked
    upgrade is tried again, with backoff, for up to `lock_wait` seconds. Migrations are idempotent,
    so a retry is safe.

    Raises UsageError (with the password masked) if the database cannot be reached or migrated.
    """
    deadline = time.monotonic() + lock_wait
    delay = 0.05
    while True:
        try:
            _upgrade_once(url)
            return
        except _Locked as locked:
            if time.monotonic() + delay > deadline:
                raise UsageError(
                    f"cannot migrate the database at {mask_url(url)}: still locked after {lock_wait:g}s: {locked}"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


class _Locked(Exception):
    """SQLite said the database is locked: another process is writing or migrating it."""


def _upgrade_once(url: str) -> None:
    from alembic import command

    parse_url(url)
    engine = sync_engine(url, sqlite_begin_immediate=True)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except DBAPIError as exc:
        message = describe_error(exc, url)
        if engine.dialect.name == "sqlite" and "database is locked" in str(exc.orig):
            raise _Locked(message) from None
        raise UsageError(f"cannot migrate the database at {mask_url(url)}: {message}") from None
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """The database's schema revision, or None if Keel's tables were never created there."""
    from alembic.runtime.migration import MigrationContext

    engine = sync_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
            return context.get_current_revision()
    except DBAPIError as exc:
        raise UsageError(
            f"cannot read the schema version at {mask_url(url)}: {describe_error(exc, url)}"
        ) from None
    finally:
        engine.dispose()
