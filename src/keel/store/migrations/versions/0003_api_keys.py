"""Gateway: api_keys.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

Types are spelled out, as in 0001: timestamps are timestamptz on PostgreSQL and fixed-width UTC
text on SQLite; JSON is jsonb on PostgreSQL. Only the HMAC of a key's secret is stored
(`secret_hash`); `prefix` is the key's public lookup id, unique.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
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
        "api_keys",
        sa.Column("id", sa.String(_ID), nullable=False),
        sa.Column("tenant_id", sa.String(_NAME), nullable=True),
        sa.Column("prefix", sa.String(_SHORT), nullable=False),
        sa.Column("secret_hash", sa.String(_SHORT * 4), nullable=False),
        sa.Column("name", sa.String(_NAME), nullable=False),
        sa.Column("scopes", _json(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("expires_at", _time(), nullable=True),
        sa.Column("revoked_at", _time(), nullable=True),
        sa.Column("last_used_at", _time(), nullable=True),
        sa.Column("created_by", sa.String(_NAME), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("prefix", name="uq_api_keys_prefix"),
    )
    op.create_index("ix_api_keys_tenant_id_created_at", "api_keys", ["tenant_id", "created_at"])


def downgrade() -> None:
    op.drop_table("api_keys")
