"""Revision 0003 creates `api_keys` on both backends, and downgrading removes it."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from keel.store import current_revision, head_revision, upgrade
from keel.store.engine import sync_engine
from keel.store.migrate import alembic_config

COLUMNS = {
    "id",
    "tenant_id",
    "prefix",
    "secret_hash",
    "name",
    "scopes",
    "created_at",
    "expires_at",
    "revoked_at",
    "last_used_at",
    "created_by",
}


def test_upgrade_creates_the_api_keys_table(database_url: str) -> None:
    upgrade(database_url)
    assert current_revision(database_url) == head_revision()
    engine = sync_engine(database_url)
    try:
        inspector = inspect(engine)
        assert {column["name"] for column in inspector.get_columns("api_keys")} == COLUMNS
        assert inspector.get_pk_constraint("api_keys")["constrained_columns"] == ["id"]
        uniques = [u["column_names"] for u in inspector.get_unique_constraints("api_keys")]
        assert ["prefix"] in uniques
        indexes = {index["name"]: index["column_names"] for index in inspector.get_indexes("api_keys")}
        assert indexes["ix_api_keys_tenant_id_created_at"] == ["tenant_id", "created_at"]
    finally:
        engine.dispose()


def test_downgrade_to_0002_drops_it_and_upgrade_brings_it_back(database_url: str) -> None:
    upgrade(database_url)
    engine = sync_engine(database_url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "0002")
        assert "api_keys" not in inspect(engine).get_table_names()
        assert current_revision(database_url) == "0002"
        upgrade(database_url)
        assert "api_keys" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
