"""Server tables for durable runs: callback_attempts, keel_workers, session_runs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Types are spelled out, as in 0001: timestamps are timestamptz on PostgreSQL and fixed-width UTC
text on SQLite. `session_runs` has a partial unique index (`WHERE state = 'active'`), which both
backends support: it is what makes two active runs in one session impossible.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = 128
_NAME = 256
_SHORT = 32
_SESSION_KEY = 512


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "callback_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(_ID), nullable=False),
        sa.Column("tenant_id", sa.String(_NAME), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("attempted_at", _time(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(_SHORT), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", _time(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_callback_attempts"),
        sa.UniqueConstraint("run_id", "attempt", name="uq_callback_attempts_run_id_attempt"),
    )

    op.create_table(
        "keel_workers",
        sa.Column("worker_id", sa.String(_ID), nullable=False),
        sa.Column("role", sa.String(_SHORT), nullable=False),
        sa.Column("hostname", sa.String(_NAME), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", _time(), nullable=False),
        sa.Column("heartbeat_at", _time(), nullable=False),
        sa.Column("stopped_at", _time(), nullable=True),
        sa.Column("recovered_by", sa.String(_ID), nullable=True),
        sa.Column("recovered_at", _time(), nullable=True),
        sa.PrimaryKeyConstraint("worker_id", name="pk_keel_workers"),
    )

    op.create_table(
        "session_runs",
        sa.Column("run_id", sa.String(_ID), nullable=False),
        sa.Column("session_key", sa.String(_SESSION_KEY), nullable=False),
        sa.Column("state", sa.String(_SHORT), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_session_runs"),
    )
    op.create_index("ix_session_runs_session_key_created_at", "session_runs", ["session_key", "created_at"])
    active = sa.text("state = 'active'")
    op.create_index(
        "uq_session_runs_session_key_active",
        "session_runs",
        ["session_key"],
        unique=True,
        sqlite_where=active,
        postgresql_where=active,
    )


def downgrade() -> None:
    op.drop_table("session_runs")
    op.drop_table("keel_workers")
    op.drop_table("callback_attempts")
