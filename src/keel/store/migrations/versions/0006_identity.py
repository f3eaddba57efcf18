"""Identity: users, browser sessions, and the built-in OAuth2 authorization server.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

Types are spelled out, as in 0001: timestamps are timestamptz on PostgreSQL and fixed-width UTC
text on SQLite; JSON is jsonb on PostgreSQL.

- `users`: people who sign in (the dashboard, the authorization code flow). `roles` is a JSON list
  of role names (`gateway.roles` maps them to scopes). Disabled by setting `disabled_at`; rows are
  kept. An email, when given, is unique within its tenant.
- `user_sessions`: browser sessions. The id is the SHA-256 (hex) of the random cookie value: the
  cookie itself is never stored.
- `oauth_clients`: registered OAuth2 clients. `secret_hash` is the HMAC of a confidential
  client's secret (NULL for a public client, which uses PKCE).
- `oauth_codes`: authorization codes, by SHA-256 of the code; single use (`used_at`).
- `oauth_refresh_tokens`: refresh tokens, by SHA-256 of the token; single use, grouped in
  families (`family_id`) so the reuse of a used token revokes every token of its family.
- `oauth_revoked_tokens`: the deny list of revoked access tokens, by `jti`, kept until they expire.
- `oauth_signing_keys`: the issuer's signing keys; the private key encrypted (JWE, A256GCM) with a
  key derived from the server secret. `generation` is unique: two processes that both decide to
  rotate cannot both add a key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
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
        "users",
        sa.Column("id", sa.String(_ID), nullable=False),
        sa.Column("tenant_id", sa.String(_NAME), nullable=False),
        sa.Column("name", sa.String(_NAME), nullable=False),
        sa.Column("email", sa.String(_NAME), nullable=True),
        sa.Column("roles", _json(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("disabled_at", _time(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("tenant_id", "email", name="uq_users_tenant_id_email"),
    )
    op.create_index("ix_users_tenant_id_created_at", "users", ["tenant_id", "created_at"])

    op.create_table(
        "user_sessions",
        sa.Column("id", sa.String(_SHORT * 2), nullable=False),
        sa.Column("user_id", sa.String(_ID), nullable=False),
        sa.Column("tenant_id", sa.String(_NAME), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("expires_at", _time(), nullable=False),
        sa.Column("revoked_at", _time(), nullable=True),
        sa.Column("last_seen_at", _time(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_user_sessions_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_user_sessions"),
    )
    op.create_index("ix_user_sessions_user_id", "user_sessions", ["user_id"])
    op.create_index("ix_user_sessions_expires_at", "user_sessions", ["expires_at"])

    op.create_table(
        "oauth_clients",
        sa.Column("id", sa.String(_ID), nullable=False),
        sa.Column("tenant_id", sa.String(_NAME), nullable=False),
        sa.Column("name", sa.String(_NAME), nullable=False),
        sa.Column("grant_type", sa.String(_SHORT), nullable=False),
        sa.Column("redirect_uris", _json(), nullable=False),
        sa.Column("scopes", _json(), nullable=False),
        sa.Column("secret_hash", sa.String(_SHORT * 4), nullable=True),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("revoked_at", _time(), nullable=True),
        sa.Column("created_by", sa.String(_NAME), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_oauth_clients"),
    )
    op.create_index("ix_oauth_clients_tenant_id_created_at", "oauth_clients", ["tenant_id", "created_at"])

    op.create_table(
        "oauth_codes",
        sa.Column("id", sa.String(_SHORT * 2), nullable=False),
        sa.Column("client_id", sa.String(_ID), nullable=False),
        sa.Column("user_id", sa.String(_ID), nullable=False),
        sa.Column("tenant_id", sa.String(_NAME), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scopes", _json(), nullable=False),
        sa.Column("code_challenge", sa.String(_SHORT * 4), nullable=False),
        sa.Column("code_challenge_method", sa.String(_SHORT), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("expires_at", _time(), nullable=False),
        sa.Column("used_at", _time(), nullable=True),
        sa.Column("family_id", sa.String(_ID), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_oauth_codes"),
    )
    op.create_index("ix_oauth_codes_expires_at", "oauth_codes", ["expires_at"])

    op.create_table(
        "oauth_refresh_tokens",
        sa.Column("id", sa.String(_SHORT * 2), nullable=False),
        sa.Column("family_id", sa.String(_ID), nullable=False),
        sa.Column("client_id", sa.String(_ID), nullable=False),
        sa.Column("user_id", sa.String(_ID), nullable=False),
        sa.Column("tenant_id", sa.String(_NAME), nullable=False),
        sa.Column("scopes", _json(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("expires_at", _time(), nullable=False),
        sa.Column("used_at", _time(), nullable=True),
        sa.Column("revoked_at", _time(), nullable=True),
        sa.Column("access_jti", sa.String(_SHORT * 2), nullable=True),
        sa.Column("access_expires_at", _time(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_oauth_refresh_tokens"),
    )
    op.create_index("ix_oauth_refresh_tokens_family_id", "oauth_refresh_tokens", ["family_id"])
    op.create_index(
        "ix_oauth_refresh_tokens_tenant_id_created_at", "oauth_refresh_tokens", ["tenant_id", "created_at"]
    )

    op.create_table(
        "oauth_revoked_tokens",
        sa.Column("jti", sa.String(_SHORT * 2), nullable=False),
        sa.Column("tenant_id", sa.String(_NAME), nullable=False),
        sa.Column("revoked_at", _time(), nullable=False),
        sa.Column("expires_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("jti", name="pk_oauth_revoked_tokens"),
    )
    op.create_index("ix_oauth_revoked_tokens_expires_at", "oauth_revoked_tokens", ["expires_at"])

    op.create_table(
        "oauth_signing_keys",
        sa.Column("kid", sa.String(_SHORT * 2), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("alg", sa.String(_SHORT), nullable=False),
        sa.Column("public_jwk", _json(), nullable=False),
        sa.Column("private_jwe", sa.Text(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("kid", name="pk_oauth_signing_keys"),
        sa.UniqueConstraint("generation", name="uq_oauth_signing_keys_generation"),
    )


def downgrade() -> None:
    for table in (
        "oauth_signing_keys",
        "oauth_revoked_tokens",
        "oauth_refresh_tokens",
        "oauth_codes",
        "oauth_clients",
        "user_sessions",
        "users",
    ):
        op.drop_table(table)
