"""Guardrails: spend caps' totals per tenant and day.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

See `keel.guardrails.spend_store` and docs/guardrails.md (`spend_cap`). Types are spelled out, as
in 0001.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = 256


def _money() -> sa.types.TypeEngine[Any]:
    return sa.Numeric(20, 10).with_variant(sa.BigInteger(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "guardrail_spend",
        sa.Column("tenant_id", sa.String(_NAME), nullable=False),
        sa.Column("guardrail", sa.String(_NAME), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("total", _money(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "guardrail", "day"),
    )


def downgrade() -> None:
    op.drop_table("guardrail_spend")
