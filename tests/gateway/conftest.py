"""Fixtures of the gateway tests: a key store on each backend, with a clock the test moves; and
databases a whole test module shares, for the tests that share `keel serve` processes per module."""

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
def module_backend(request: pytest.FixtureRequest) -> str:
    """Each backend in turn for the tests sharing `module_databases` (test ids `[sqlite]` and
    `[postgres]`, as `database_url`); `postgres` is skipped, or fails with CI=true, when PostgreSQL
    does not answer (tests/conftest.py)."""
    if request.param == "postgres":
        request.getfixturevalue("postgres_server")
    backend: str = request.param
    return backend


def _backends_selected(request: pytest.FixtureRequest) -> set[str]:
    """The backends of this module's tests that are to run (all of them, unless deselected)."""
    selected: set[str] = set()
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if getattr(item, "module", None) is request.module and "module_backend" in params:
            selected.add(str(params["module_backend"]))
    return selected


@pytest.fixture(scope="module")
def module_databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """Empty databases for the tests of one module to share, by backend: `sqlite`, and `postgres`
    when PostgreSQL answers. Typically each is behind one `keel serve` the module starts once (for
    both backends at the same time: tests/gateway/servers.py); its tests keep apart by using their
    own tenants, keys and users, not by emptying the database.

    The PostgreSQL one is a database of its own on the test server (created here, dropped
    afterwards), never the session's test database, which function-scoped fixtures empty between
    tests while a module's server would still be using it."""
    wanted = _backends_selected(request)
    urls: dict[str, str] = {}
    if "sqlite" in wanted:
        urls["sqlite"] = f"sqlite:///{tmp_path_factory.mktemp('module-db') / 'keel.db'}"
    postgres: PostgresServer | None = None
    if "postgres" in wanted:
        try:
            postgres = request.getfixturevalue("postgres_server")
        except pytest.skip.Exception:  # not there: the module's [postgres] tests are skipped
            postgres = None
    if postgres is None:
        yield urls
        return
    name = f"{postgres.database}_m{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres.admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        urls["postgres"] = make_url(postgres.url).set(database=name).render_as_string(hide_password=False)
        yield urls
    finally:
        with psycopg.connect(postgres.admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def module_database_url(module_backend: str, module_databases: dict[str, str]) -> str:
    """The module's shared database on each backend in turn (see `module_databases`)."""
    return module_databases[module_backend]
