"""Shared fixtures: Keel's two database backends, SQLite and PostgreSQL, for any test suite.

Fixtures (request them by name; tests/store shows every use):
- `database_url`: an empty database, parametrized over both backends (test ids `[sqlite]` and
  `[postgres]`). A fresh SQLite file in tmp_path, or the session's PostgreSQL database with its
  `public` schema dropped and recreated (other connections to it are terminated first).
- `store_url`: the same, migrated to Keel's latest schema.
- `sqlite_url` / `postgres_url`: an empty database on one backend only.
- `postgres_server`: the session's PostgreSQL test database, with helpers for fault injection
  (terminate connections, refuse new ones).
Tests on PostgreSQL carry the `postgres` marker, so `pytest -m "not postgres"` leaves them out.

PostgreSQL: the server at KEEL_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test)
gets one uniquely named database per session (`keel_test_<hex>`, so concurrent sessions never
collide), dropped at the end. If the server does not answer, Postgres tests FAIL when CI=true
(CI must never pass without them) and are skipped otherwise, with the reason repeated in the
terminal summary so a local green run cannot hide it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from keel.store import upgrade
from keel.store.urls import mask_url
from tests.databases import PostgresServer

POSTGRES_ENV = "KEEL_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"

_POSTGRES_SKIPPED = pytest.StashKey[str]()


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: runs against PostgreSQL (see tests/conftest.py)")


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    reason = config.stash.get(_POSTGRES_SKIPPED, None)
    if reason is not None:
        terminalreporter.write_sep("-", "PostgreSQL tests skipped", yellow=True)
        terminalreporter.write_line(f"{reason}")
        terminalreporter.write_line(
            "Start PostgreSQL or set KEEL_TEST_POSTGRES_URL; with CI=true these tests fail instead."
        )


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    admin_url = os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES_URL)
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        reason = f"PostgreSQL is not reachable at {mask_url(admin_url)}: {str(exc).strip().splitlines()[0]}"
        if _in_ci():
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run, not skip)", pytrace=False)
        request.config.stash[_POSTGRES_SKIPPED] = reason
        pytest.skip(reason)
    name = f"keel_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = (
        make_url(admin_url).set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    )
    server = PostgresServer(admin_url=admin_url, url=url, database=name)
    try:
        yield server
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh, empty SQLite database file."""
    return f"sqlite:///{tmp_path / 'keel.db'}"


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The session's PostgreSQL database, emptied for this test."""
    postgres_server.reset()
    return postgres_server.url


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each backend in turn."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def store_url(database_url: str) -> str:
    """A database on each backend in turn, with Keel's tables created."""
    upgrade(database_url)
    return database_url
