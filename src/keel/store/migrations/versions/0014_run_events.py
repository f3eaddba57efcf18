"""Durable runs' step events (tool calls, model retries and fallbacks, text deltas) in a table of
Keel's own, written in batches, instead of one DBOS stream transaction per event.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

See `keel.durable.event_log`. Types are spelled out, as in 0001.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = 128


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "run_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("workflow_id", sa.String(_ID), nullable=False),
        sa.Column("event", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_run_events"),
    )
    op.create_index("ix_run_events_workflow_id_id", "run_events", ["workflow_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_run_events_workflow_id_id", table_name="run_events")
    op.drop_table("run_events")
