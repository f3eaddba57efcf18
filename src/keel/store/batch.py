"""Idempotent batch inserts: one executemany per table, conflicts ignored.

The writer retries a batch whose commit outcome it could not learn (the connection died during
COMMIT), so inserting a record that is already stored must be a no-op, never an error or a
duplicate: every insert is `INSERT ... ON CONFLICT DO NOTHING` on the table's primary key. The
first write of a run or span wins; records are immutable, so a second write carries the same data.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, Insert, Table
from sqlalchemy.dialects import postgresql, sqlite

from keel.store.codec import RowSet
from keel.store.records import RunRecord, SpanRecord
from keel.store.tables import run_tags, run_tools, run_usage, runs, spans


def insert_ignoring_duplicates(table: Table, dialect_name: str) -> Insert:
    """`INSERT INTO table ... ON CONFLICT DO NOTHING` for the connection's dialect."""
    if dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect_name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise ValueError(f"unsupported dialect {dialect_name!r}")


def insert_rows(connection: Connection, rows: RowSet) -> None:
    """Insert converted rows in the caller's transaction; runs before their child rows."""
    dialect = connection.dialect.name
    for table, table_rows in (
        (runs, rows.runs),
        (run_usage, rows.run_usage),
        (run_tags, rows.run_tags),
        (run_tools, rows.run_tools),
        (spans, rows.spans),
    ):
        if table_rows:
            connection.execute(insert_ignoring_duplicates(table, dialect), table_rows)


def insert_records(connection: Connection, records: Iterable[RunRecord | SpanRecord]) -> None:
    """Convert and insert records in the caller's transaction (a convenience for tools and tests).

    Raises on the first record that cannot be converted; the writer converts record by record
    instead, so one bad record never blocks the others.
    """
    rows = RowSet()
    for record in records:
        rows.add(record)
    insert_rows(connection, rows)
