"""Fixtures of the gateway tests: a key store on each backend, with a clock the test moves; and a
database a whole test module shares, for the tests that share one `keel serve` per module."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from keel.store import KeyStore
from tests.databases import PostgresServer
from tests.gateway.clock import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def keys(store_url: str, clock: Clock) -> AsyncIterator[KeyStore]:
    """A KeyStore on a migrated database (each backend in turn), on the test's clock."""
    async with KeyStore(store_url, environ={}, clock=clock) as store:
        yield store


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ],
)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An empty database for the tests of one module to share (test ids `[sqlite]` and
    `[postgres]`, as `database_url`), typically behind one `keel serve`: its tests keep apart by
    using their own tenants, keys and users, not by emptying the database.

    On PostgreSQL it is a database of its own on the test server (created here, dropped
    afterwards), never the session's test database, which function-scoped fixtures empty between
    tests while a module's server would still be using it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('module-db') / 'keel.db'}"
        return
    postgres: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"{postgres.database}_m{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres.admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(postgres.url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(postgres.admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
