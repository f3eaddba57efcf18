"""Evaluations: datasets, evaluation runs and their results, online scores, run feedback.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

See `keel.evals` and docs/evals.md. Types are spelled out, as in 0001.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = 128
_NAME = 256
_SHORT = 32
_HASH = 64


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _money() -> sa.types.TypeEngine[Any]:
    return sa.Numeric(20, 10).with_variant(sa.BigInteger(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "eval_datasets",
        sa.Column("id", sa.String(_ID), nullable=False),
        sa.Column("tenant_id", sa.String(_NAME), nullable=False),
        sa.Column("name", sa.String(_NAME), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(_HASH), nullable=False),
        sa.Column("document", _json(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("created_by", sa.String(_NAME), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_eval_datasets"),
        sa.UniqueConstraint("tenant_id", "name", "version", name="uq_eval_datasets_tenant_id_name_version"),
    )
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.String(_ID), nullable=False),
        sa.Column("tenant_id", sa.String(_NAME), nullable=False),
        sa.Column("dataset", sa.String(_NAME), nullable=False),
        sa.Column("dataset_hash", sa.String(_HASH), nullable=False),
        sa.Column("agent", sa.String(_NAME), nullable=False),
        sa.Column("prompt_version", sa.String(_NAME), nullable=True),
        sa.Column("release", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(_SHORT), nullable=False),
        sa.Column("started_at", _time(), nullable=False),
        sa.Column("ended_at", _time(), nullable=True),
        sa.Column("summary", _json(), nullable=False),
        sa.Column("baseline_id", sa.String(_ID), nullable=True),
        sa.Column("gate", _json(), nullable=True),
        sa.Column("created_by", sa.String(_NAME), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_eval_runs"),
    )
    op.create_index("ix_eval_runs_tenant_id_started_at", "eval_runs", ["tenant_id", "started_at"])
    op.create_index("ix_eval_runs_dataset_agent_started_at", "eval_runs", ["dataset", "agent", "started_at"])
    op.create_table(
        "eval_results",
        sa.Column("id", sa.String(_ID), nullable=False),
        sa.Column("eval_run_id", sa.String(_ID), nullable=False),
        sa.Column("case_id", sa.String(_NAME), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(_ID), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("scores", _json(), nullable=False),
        sa.Column("output", _json(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("cost_usd", _money(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_eval_results"),
        sa.ForeignKeyConstraint(
            ["eval_run_id"],
            ["eval_runs.id"],
            name="fk_eval_results_eval_run_id_eval_runs",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_eval_results_eval_run_id_case_id", "eval_results", ["eval_run_id", "case_id"])
    op.create_table(
        "online_scores",
        sa.Column("id", sa.String(_ID), nullable=False),
        sa.Column("run_id", sa.String(_ID), nullable=False),
        sa.Column("tenant_id", sa.String(_NAME), nullable=True),
        sa.Column("agent", sa.String(_NAME), nullable=False),
        sa.Column("prompt_version", sa.String(_NAME), nullable=True),
        sa.Column("evaluator", sa.String(_NAME), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("scored_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_online_scores"),
    )
    op.create_index("ix_online_scores_agent_scored_at", "online_scores", ["agent", "scored_at"])
    op.create_index("ix_online_scores_run_id", "online_scores", ["run_id"])
    op.create_table(
        "run_feedback",
        sa.Column("id", sa.String(_ID), nullable=False),
        sa.Column("run_id", sa.String(_ID), nullable=False),
        sa.Column("tenant_id", sa.String(_NAME), nullable=True),
        sa.Column("kind", sa.String(_SHORT), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("correction", _json(), nullable=True),
        sa.Column("source", sa.String(_SHORT), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("created_by", sa.String(_NAME), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_run_feedback"),
    )
    op.create_index("ix_run_feedback_run_id", "run_feedback", ["run_id"])
    op.create_index("ix_run_feedback_tenant_id_created_at", "run_feedback", ["tenant_id", "created_at"])


def downgrade() -> None:
    for table in ("run_feedback", "online_scores", "eval_results", "eval_runs", "eval_datasets"):
        op.drop_table(table)
