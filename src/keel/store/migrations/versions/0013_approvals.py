"""Human in the loop: runs paused for approval, the calls waiting, and escalations.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

See `keel.store.approvals` and docs/approvals.md. Types are spelled out, as in 0001.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = 128
_NAME = 256
_SHORT = 32


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "run_pauses",
        sa.Column("run_id", sa.String(_ID), nullable=False),
        sa.Column("pause", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(_NAME), nullable=True),
        sa.Column("agent", sa.String(_NAME), nullable=False),
        sa.Column("status", sa.String(_SHORT), nullable=False),
        sa.Column("request", _json(), nullable=False),
        sa.Column("state", _json(), nullable=False),
        sa.Column("view", _json(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("resumed_at", _time(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "pause"),
    )
    op.create_index("ix_run_pauses_status", "run_pauses", ["status"])
    op.create_table(
        "approvals",
        sa.Column("id", sa.String(_ID), nullable=False),
        sa.Column("run_id", sa.String(_ID), nullable=False),
        sa.Column("pause", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(_NAME), nullable=False),
        sa.Column("tenant_id", sa.String(_NAME), nullable=True),
        sa.Column("agent", sa.String(_NAME), nullable=False),
        sa.Column("tool", sa.String(_NAME), nullable=False),
        sa.Column("args", _json(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(_SHORT), nullable=False),
        sa.Column("on_timeout", sa.String(_SHORT), nullable=False),
        sa.Column("expires_at", _time(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("decided_at", _time(), nullable=True),
        sa.Column("decided_by", sa.String(_NAME), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("edited_args", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "pause", "call_id", name="uq_approvals_run_pause_call"),
    )
    op.create_index("ix_approvals_tenant_status", "approvals", ["tenant_id", "status", "created_at"])
    op.create_index("ix_approvals_status_expires", "approvals", ["status", "expires_at"])
    op.create_table(
        "escalations",
        sa.Column("id", sa.String(_ID), nullable=False),
        sa.Column("run_id", sa.String(_ID), nullable=False),
        sa.Column("tenant_id", sa.String(_NAME), nullable=True),
        sa.Column("agent", sa.String(_NAME), nullable=False),
        sa.Column("trigger", sa.String(_SHORT), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("status", sa.String(_SHORT), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("resolved_at", _time(), nullable=True),
        sa.Column("resolved_by", sa.String(_NAME), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", name="uq_escalations_run_id"),
    )
    op.create_index("ix_escalations_tenant_status", "escalations", ["tenant_id", "status", "created_at"])


def downgrade() -> None:
    op.drop_table("escalations")
    op.drop_table("approvals")
    op.drop_table("run_pauses")
