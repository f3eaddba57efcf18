"""Alembic environment: runs on the connection `keel.store.migrate` hands over.

Keel runs migrations programmatically (no alembic.ini): `upgrade()` opens the connection, takes
the migration lock and begins the transaction, and this script only runs the revisions on it.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from keel.store.migrate import VERSION_TABLE
from keel.store.tables import metadata

config = context.config


def _run_online() -> None:
    connection = config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "keel.store migrations run through keel.store.upgrade(url), which provides a connection"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode recreates tables in future migrations.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
else:
    _run_online()
