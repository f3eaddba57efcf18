"""Run history and spans: runs, run_usage, run_tags, run_tools, spans.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Types are spelled out here rather than imported from keel.store.types, so this revision keeps
creating the same schema whatever later code does: timestamps are timestamptz on PostgreSQL and
fixed-width UTC text on SQLite; money is numeric(20, 10) on PostgreSQL and an integer count of
1e-10 USD on SQLite; JSON is jsonb on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
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
        "runs",
        sa.Column("id", sa.String(_ID), nullable=False),
        sa.Column("agent", sa.String(_NAME), nullable=False),
        sa.Column("config_hash", sa.String(_NAME), nullable=False),
        sa.Column("status", sa.String(_SHORT), nullable=False),
        sa.Column("trigger", sa.String(_SHORT), nullable=False),
        sa.Column("started_at", _time(), nullable=False),
        sa.Column("ended_at", _time(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("input", _json(), nullable=True),
        sa.Column("output", _json(), nullable=True),
        sa.Column("error_category", sa.String(_SHORT * 2), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("model_requests", sa.Integer(), nullable=False),
        sa.Column("tool_calls", sa.Integer(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", _money(), nullable=True),
        sa.Column("tools_called", _json(), nullable=False),
        sa.Column("tool_failures", _json(), nullable=False),
        sa.Column("prompt_version", sa.String(_NAME), nullable=True),
        sa.Column("session_id", sa.String(_NAME), nullable=True),
        sa.Column("user_id", sa.String(_NAME), nullable=True),
        sa.Column("tenant_id", sa.String(_NAME), nullable=True),
        sa.Column("parent_run_id", sa.String(_ID), nullable=True),
        sa.Column("trace_id", sa.String(_SHORT * 2), nullable=True),
        sa.Column("metadata", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_started_at_id", "runs", ["started_at", "id"])
    op.create_index("ix_runs_agent_started_at", "runs", ["agent", "started_at"])
    op.create_index("ix_runs_tenant_id_started_at", "runs", ["tenant_id", "started_at"])
    op.create_index("ix_runs_user_id_started_at", "runs", ["user_id", "started_at"])
    op.create_index("ix_runs_session_id_started_at", "runs", ["session_id", "started_at"])
    op.create_index("ix_runs_error_category_started_at", "runs", ["error_category", "started_at"])
    op.create_index("ix_runs_trace_id", "runs", ["trace_id"])

    op.create_table(
        "run_usage",
        sa.Column("run_id", sa.String(_ID), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(_NAME), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", _money(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_run_usage_run_id_runs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "position", name="pk_run_usage"),
    )
    op.create_index("ix_run_usage_model", "run_usage", ["model"])

    op.create_table(
        "run_tags",
        sa.Column("run_id", sa.String(_ID), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(_NAME), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_run_tags_run_id_runs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "position", name="pk_run_tags"),
    )
    op.create_index("ix_run_tags_tag_run_id", "run_tags", ["tag", "run_id"])

    op.create_table(
        "run_tools",
        sa.Column("run_id", sa.String(_ID), nullable=False),
        sa.Column("tool", sa.String(_NAME), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_run_tools_run_id_runs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "tool", name="pk_run_tools"),
    )

    op.create_table(
        "spans",
        sa.Column("trace_id", sa.String(_SHORT * 2), nullable=False),
        sa.Column("span_id", sa.String(_SHORT), nullable=False),
        sa.Column("parent_span_id", sa.String(_SHORT), nullable=True),
        sa.Column("run_id", sa.String(_ID), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(_SHORT), nullable=False),
        sa.Column("start_time", _time(), nullable=False),
        sa.Column("end_time", _time(), nullable=False),
        sa.Column("status", sa.String(_SHORT), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("attributes", _json(), nullable=False),
        sa.Column("events", _json(), nullable=False),
        sa.PrimaryKeyConstraint("trace_id", "span_id", name="pk_spans"),
    )
    op.create_index("ix_spans_run_id_start_time", "spans", ["run_id", "start_time"])
    op.create_index("ix_spans_trace_id_start_time", "spans", ["trace_id", "start_time"])


def downgrade() -> None:
    op.drop_table("spans")
    op.drop_table("run_tools")
    op.drop_table("run_tags")
    op.drop_table("run_usage")
    op.drop_table("runs")
