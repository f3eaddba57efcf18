"""Audit log: audit_log, append-only by database triggers.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

Types are spelled out, as in 0001: timestamps are timestamptz on PostgreSQL and fixed-width UTC
text on SQLite; JSON is jsonb on PostgreSQL.

Append-only, enforced by the database whatever the client (see docs/audit-log.md):
- PostgreSQL: one statement-level trigger, BEFORE UPDATE OR DELETE OR TRUNCATE, runs
  `keel_audit_log_append_only()`, which raises (SQLSTATE 23001, restrict_violation). Being
  statement-level, it refuses even an UPDATE or DELETE that matches no row.
- SQLite: BEFORE UPDATE and BEFORE DELETE triggers that `RAISE(ABORT, ...)`, and a BEFORE INSERT
  trigger refusing an id that already exists: `INSERT OR REPLACE` deletes the old row without
  firing delete triggers (unless recursive triggers are on), so it would otherwise overwrite an
  entry. SQLite has no TRUNCATE; `DELETE FROM audit_log` is refused by the delete trigger (a table
  with triggers never takes SQLite's truncate shortcut).
Both backends report the refusal as an integrity error (IntegrityError in SQLAlchemy).
Dropping the table drops its triggers; the downgrade also drops the PostgreSQL function.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = 128
_NAME = 256
_SHORT = 32

POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION keel_audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$
"""

POSTGRES_TRIGGER = """
CREATE TRIGGER audit_log_append_only
BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION keel_audit_log_append_only()
"""

SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE is not allowed'); END
    """,
    """
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE is not allowed'); END
    """,
    """
    CREATE TRIGGER audit_log_no_replace BEFORE INSERT ON audit_log
    WHEN EXISTS (SELECT 1 FROM audit_log WHERE id = NEW.id)
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: an entry with this id exists'); END
    """,
)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.String(_ID), nullable=False),
        sa.Column("recorded_at", _time(), nullable=False),
        sa.Column("tenant_id", sa.String(_NAME), nullable=True),
        sa.Column("principal", sa.String(_NAME), nullable=False),
        sa.Column("action", sa.String(_SHORT), nullable=False),
        sa.Column("outcome", sa.String(_SHORT), nullable=False),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("trace_id", sa.String(_SHORT * 2), nullable=True),
        sa.Column("ip", sa.String(_SHORT * 2), nullable=True),
        sa.Column("detail", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_tenant_id_recorded_at", "audit_log", ["tenant_id", "recorded_at"])
    op.create_index("ix_audit_log_action_recorded_at", "audit_log", ["action", "recorded_at"])
    op.create_index("ix_audit_log_principal_recorded_at", "audit_log", ["principal", "recorded_at"])
    op.create_index("ix_audit_log_recorded_at_id", "audit_log", ["recorded_at", "id"])

    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        op.execute(POSTGRES_TRIGGER)
    else:
        for trigger in SQLITE_TRIGGERS:
            op.execute(trigger)


def downgrade() -> None:
    op.drop_table("audit_log")  # its triggers go with it
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS keel_audit_log_append_only()")
