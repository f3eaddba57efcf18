"""Passkeys: passkeys, webauthn_challenges, passkey_enrollments.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

Types are spelled out, as in 0001: timestamps are timestamptz on PostgreSQL and fixed-width UTC
text on SQLite; JSON is jsonb on PostgreSQL; the COSE public key is bytea on PostgreSQL and a BLOB
on SQLite.

- `passkeys`: WebAuthn credentials, unique by credential id (base64url, up to 1364 characters: a
  credential id is at most 1023 bytes). Deleted with their user (foreign key, ON DELETE CASCADE).
- `webauthn_challenges`: challenges by SHA-256 (hex), single use (`used_at`), 5-minute expiry;
  indexed by expiry for the purge of old rows.
- `passkey_enrollments`: one-time enrolment links by SHA-256 of their token (hex), single use;
  deleted with their user.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = 128
_NAME = 256
_SHORT = 32
_CREDENTIAL_ID = 1364
_SHA256_HEX = 64


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "passkeys",
        sa.Column("id", sa.String(_ID), nullable=False),
        sa.Column("credential_id", sa.String(_CREDENTIAL_ID), nullable=False),
        sa.Column("user_id", sa.String(_ID), nullable=False),
        sa.Column("tenant_id", sa.String(_NAME), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("transports", _json(), nullable=False),
        sa.Column("aaguid", sa.String(_SHORT + 4), nullable=False),
        sa.Column("name", sa.String(_NAME), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("last_used_at", _time(), nullable=True),
        sa.Column("clone_suspected_at", _time(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_passkeys_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_passkeys"),
        sa.UniqueConstraint("credential_id", name="uq_passkeys_credential_id"),
    )
    op.create_index("ix_passkeys_tenant_id_user_id", "passkeys", ["tenant_id", "user_id"])

    op.create_table(
        "webauthn_challenges",
        sa.Column("id", sa.String(_ID), nullable=False),
        sa.Column("challenge_hash", sa.String(_SHA256_HEX), nullable=False),
        sa.Column("purpose", sa.String(_SHORT), nullable=False),
        sa.Column("user_id", sa.String(_ID), nullable=True),
        sa.Column("tenant_id", sa.String(_NAME), nullable=True),
        sa.Column("enrollment_id", sa.String(_ID), nullable=True),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("expires_at", _time(), nullable=False),
        sa.Column("used_at", _time(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webauthn_challenges"),
        sa.UniqueConstraint("challenge_hash", name="uq_webauthn_challenges_challenge_hash"),
    )
    op.create_index("ix_webauthn_challenges_expires_at", "webauthn_challenges", ["expires_at"])

    op.create_table(
        "passkey_enrollments",
        sa.Column("id", sa.String(_ID), nullable=False),
        sa.Column("token_hash", sa.String(_SHA256_HEX), nullable=False),
        sa.Column("user_id", sa.String(_ID), nullable=False),
        sa.Column("tenant_id", sa.String(_NAME), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("expires_at", _time(), nullable=False),
        sa.Column("used_at", _time(), nullable=True),
        sa.Column("created_by", sa.String(_NAME), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_passkey_enrollments_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_passkey_enrollments"),
        sa.UniqueConstraint("token_hash", name="uq_passkey_enrollments_token_hash"),
    )
    op.create_index(
        "ix_passkey_enrollments_tenant_id_user_id", "passkey_enrollments", ["tenant_id", "user_id"]
    )


def downgrade() -> None:
    for table in ("passkey_enrollments", "webauthn_challenges", "passkeys"):
        op.drop_table(table)
