"""Online scores: one row per run and evaluator, enforced by a unique index.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08

A durable run replayed after a crash finishes again in the process that resumes it, and online
evaluation (`keel.evals.online`) samples it again (the decision is a hash of the run id). Scores
are inserted with ON CONFLICT DO NOTHING on (run_id, evaluator), so the replay never writes a
second score. The unique index replaces the plain index on run_id (its first column serves the
same lookups).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_online_scores_run_id", table_name="online_scores")
    op.create_index(
        "uq_online_scores_run_id_evaluator", "online_scores", ["run_id", "evaluator"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_online_scores_run_id_evaluator", table_name="online_scores")
    op.create_index("ix_online_scores_run_id", "online_scores", ["run_id"])
