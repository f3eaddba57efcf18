"""Gateway: hard budgets: budget_counters, budget_holds, budget_entries.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

Types are spelled out, as in 0001: timestamps are timestamptz on PostgreSQL and fixed-width UTC
text on SQLite; money is numeric(20, 10) on PostgreSQL and integer units of 1e-10 USD on SQLite;
JSON is jsonb on PostgreSQL. `budget_holds` has a partial index on open holds
(`WHERE state = 'open'`), which both backends support.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = 128
_NAME = 256
_SHORT = 32


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _money() -> sa.types.TypeEngine[Any]:
    return sa.Numeric(20, 10).with_variant(sa.BigInteger(), "sqlite")


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "budget_counters",
        sa.Column("key", sa.String(_SHORT * 2), nullable=False),
        sa.Column("tenant_id", sa.String(_NAME), nullable=True),
        sa.Column("scope", sa.String(_SHORT), nullable=False),
        sa.Column("scope_id", sa.String(_NAME), nullable=False),
        sa.Column("period", sa.String(_SHORT), nullable=False),
        sa.Column("window_start", _time(), nullable=False),
        sa.Column("window_end", _time(), nullable=True),
        sa.Column("settled_usd", _money(), nullable=False),
        sa.Column("settled_tokens", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_budget_counters"),
    )
    op.create_index(
        "ix_budget_counters_tenant_id_window_start", "budget_counters", ["tenant_id", "window_start"]
    )

    op.create_table(
        "budget_holds",
        sa.Column("reservation_id", sa.String(_ID), nullable=False),
        sa.Column("counter_key", sa.String(_SHORT * 2), nullable=False),
        sa.Column("amount_usd", _money(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(_SHORT), nullable=False),
        sa.Column("expires_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("reservation_id", "counter_key", name="pk_budget_holds"),
    )
    open_hold = sa.text("state = 'open'")
    op.create_index(
        "ix_budget_holds_open_counter_key_expires_at",
        "budget_holds",
        ["counter_key", "expires_at"],
        sqlite_where=open_hold,
        postgresql_where=open_hold,
    )

    op.create_table(
        "budget_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("reservation_id", sa.String(_ID), nullable=False),
        sa.Column("tenant_id", sa.String(_NAME), nullable=True),
        sa.Column("run_id", sa.String(_ID), nullable=True),
        sa.Column("kind", sa.String(_SHORT), nullable=False),
        sa.Column("recorded_at", _time(), nullable=False),
        sa.Column("amount_usd", _money(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("budgets", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_budget_entries"),
    )
    op.create_index("ix_budget_entries_tenant_id_recorded_at", "budget_entries", ["tenant_id", "recorded_at"])
    op.create_index("ix_budget_entries_reservation_id", "budget_entries", ["reservation_id"])


def downgrade() -> None:
    op.drop_table("budget_entries")
    op.drop_table("budget_holds")
    op.drop_table("budget_counters")
