"""Prompt registry and releases: prompt versions, labels and their moves, links, releases.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

See `keel.prompts.registry`, `keel.releases.store` and docs/prompts.md. Types are spelled out, as
in 0001: timestamps are timestamptz on PostgreSQL and fixed-width UTC text on SQLite; JSON is jsonb
on PostgreSQL.

Immutable by the database whatever the client: a prompt version, a label move, a release, a stored
file and a release activation can never change or disappear. On PostgreSQL one statement-level
trigger per table, BEFORE UPDATE OR DELETE OR TRUNCATE, runs `keel_refuse_change()` (SQLSTATE
23001, restrict_violation); on SQLite, BEFORE UPDATE and BEFORE DELETE triggers `RAISE(ABORT)`,
and a BEFORE INSERT trigger refuses a key that exists (`INSERT OR REPLACE` would otherwise replace
the row without firing the delete trigger). Only `prompt_labels` (the movable pointers) changes in
place; every move of one is also recorded in `prompt_label_moves`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = 128
_NAME = 256
_SHORT = 32
_HASH = 64

# table -> its key columns (for SQLite's no-replace trigger)
IMMUTABLE = {
    "prompt_versions": ("id",),
    "prompt_label_moves": ("id",),
    "prompt_links": ("id",),
    "releases": ("number",),
    "release_files": ("hash",),
    "release_activations": ("id",),
}

POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION keel_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is immutable: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$
"""


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "prompt_versions",
        sa.Column("id", sa.String(_ID), nullable=False),
        sa.Column("tenant_id", sa.String(_NAME), nullable=False),
        sa.Column("name", sa.String(_NAME), nullable=False),
        sa.Column("version", sa.String(_SHORT * 2), nullable=False),
        sa.Column("major", sa.Integer(), nullable=False),
        sa.Column("minor", sa.Integer(), nullable=False),
        sa.Column("patch", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(_HASH), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("variables", _json(), nullable=False),
        sa.Column("model_settings", _json(), nullable=False),
        sa.Column("owner", sa.String(_NAME), nullable=True),
        sa.Column("author", sa.String(_NAME), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("source", sa.String(_NAME), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_versions"),
        sa.UniqueConstraint("tenant_id", "name", "version", name="uq_prompt_versions_tenant_id_name_version"),
    )
    op.create_index(
        "ix_prompt_versions_tenant_id_name_created_at", "prompt_versions", ["tenant_id", "name", "created_at"]
    )
    op.create_table(
        "prompt_labels",
        sa.Column("tenant_id", sa.String(_NAME), nullable=False),
        sa.Column("name", sa.String(_NAME), nullable=False),
        sa.Column("label", sa.String(_SHORT * 2), nullable=False),
        sa.Column("rollout", _json(), nullable=False),
        sa.Column("sticky", sa.String(_SHORT), nullable=False),
        sa.Column("moved_at", _time(), nullable=False),
        sa.Column("moved_by", sa.String(_NAME), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "name", "label", name="pk_prompt_labels"),
    )
    op.create_table(
        "prompt_label_moves",
        sa.Column("id", sa.String(_ID), nullable=False),
        sa.Column("tenant_id", sa.String(_NAME), nullable=False),
        sa.Column("name", sa.String(_NAME), nullable=False),
        sa.Column("label", sa.String(_SHORT * 2), nullable=False),
        sa.Column("rollout", _json(), nullable=False),
        sa.Column("previous", _json(), nullable=True),
        sa.Column("sticky", sa.String(_SHORT), nullable=False),
        sa.Column("moved_at", _time(), nullable=False),
        sa.Column("moved_by", sa.String(_NAME), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_label_moves"),
    )
    op.create_index(
        "ix_prompt_label_moves_tenant_id_name_moved_at",
        "prompt_label_moves",
        ["tenant_id", "name", "moved_at"],
    )
    op.create_table(
        "prompt_links",
        sa.Column("id", sa.String(_ID), nullable=False),
        sa.Column("version_id", sa.String(_ID), nullable=False),
        sa.Column("kind", sa.String(_SHORT), nullable=False),
        sa.Column("ref", sa.String(_NAME), nullable=False),
        sa.Column("detail", _json(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("created_by", sa.String(_NAME), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_links"),
        sa.ForeignKeyConstraint(
            ["version_id"], ["prompt_versions.id"], name="fk_prompt_links_version_id_prompt_versions"
        ),
    )
    op.create_index("ix_prompt_links_version_id", "prompt_links", ["version_id"])
    op.create_table(
        "release_files",
        sa.Column("hash", sa.String(_HASH), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("hash", name="pk_release_files"),
    )
    op.create_table(
        "releases",
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("content_hash", sa.String(_HASH), nullable=False),
        sa.Column("manifest", _json(), nullable=False),
        sa.Column("prompts", _json(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("author", sa.String(_NAME), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("number", name="pk_releases"),
    )
    op.create_index("ix_releases_content_hash", "releases", ["content_hash"])
    op.create_table(
        "release_activations",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("activated_at", _time(), nullable=False),
        sa.Column("activated_by", sa.String(_NAME), nullable=False),
        sa.Column("reason", sa.String(_SHORT), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_release_activations"),
        sa.ForeignKeyConstraint(
            ["number"], ["releases.number"], name="fk_release_activations_number_releases"
        ),
    )

    op.add_column("runs", sa.Column("release", sa.Integer(), nullable=True))

    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute(POSTGRES_FUNCTION)
    for table, key in IMMUTABLE.items():
        if postgres:
            op.execute(
                f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION keel_refuse_change()"
            )
            continue
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is immutable: {verb} is not allowed'); END"
            )
        same = " AND ".join(f"{column} = NEW.{column}" for column in key)
        op.execute(
            f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
            f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {same}) "
            f"BEGIN SELECT RAISE(ABORT, '{table} is immutable: this row exists'); END"
        )


def downgrade() -> None:
    for table in (
        "release_activations",
        "releases",
        "release_files",
        "prompt_links",
        "prompt_label_moves",
        "prompt_labels",
        "prompt_versions",
    ):
        op.drop_table(table)  # triggers go with their table
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("release")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS keel_refuse_change()")
