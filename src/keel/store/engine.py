"""Engines for one configured URL: a blocking one for the writer, an asyncio one for queries.

SQLite is tuned on every new connection (an event listener, since PRAGMAs are per connection):
WAL so readers never block the writer, `synchronous=NORMAL` (durable across process crashes, a
power loss may lose the last commits; fsync per batch would cap the writer), a busy timeout so a
briefly locked file is waited for rather than failing, and foreign keys on (off by default in
SQLite). The busy timeout is 5 s unless the URL says `?timeout=<seconds>`.

PostgreSQL connections are checked before use (`pool_pre_ping`), so a connection killed by the
server or a restart is replaced instead of failing the next batch. The session time zone is UTC,
and connecting gives up after a few seconds so an unreachable server cannot hang the writer.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from keel.store.urls import async_url, backend_of, parse_url, sync_url

DEFAULT_BUSY_TIMEOUT = 5.0
CONNECT_TIMEOUT_SECONDS = 5

# JSON has no \u0000 in PostgreSQL's jsonb; an escaped backslash before "u0000" is not a NUL.
_ESCAPED_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _json_default(value: object) -> object:
    """Values json cannot encode natively: keep the run rather than fail the write."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    return str(value)


def _finite(value: object) -> object:
    """`value` with NaN and infinities replaced by None: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def dumps_json(value: object) -> str:
    """The one JSON encoder of the store, identical in effect on both backends.

    UTF-8 is kept as is; NUL characters become U+FFFD and NaN or infinite numbers become null,
    since PostgreSQL's jsonb refuses both and a run must not be lost over one value.
    """
    try:
        text = json.dumps(
            value, ensure_ascii=False, separators=(",", ":"), default=_json_default, allow_nan=False
        )
    except ValueError:  # NaN or infinity somewhere: the rare path pays for the walk
        text = json.dumps(_finite(value), ensure_ascii=False, separators=(",", ":"), default=_json_default)
    return _ESCAPED_NUL.sub(r"\1\\ufffd", text) if "\\u0000" in text else text


def _sqlite_busy_timeout(url: str) -> float:
    raw = parse_url(url).query.get("timeout")
    value = raw[0] if isinstance(raw, tuple) else raw
    try:
        return float(value) if value is not None else DEFAULT_BUSY_TIMEOUT
    except ValueError:
        return DEFAULT_BUSY_TIMEOUT


def _install_sqlite_pragmas(engine: Engine, busy_timeout: float, *, begin_immediate: bool) -> None:
    busy_ms = int(busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        if begin_immediate:
            # SQLAlchemy emits BEGIN itself (below), so the driver must not.
            dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching to WAL needs a lock that another process may hold.
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    if begin_immediate:

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def _postgres_connect_args() -> dict[str, Any]:
    return {
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "options": "-c timezone=UTC",
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }


def sync_engine(url: str, *, sqlite_begin_immediate: bool = False) -> Engine:
    """A blocking engine for `url` (a Keel URL, see `resolve_database_url`).

    `sqlite_begin_immediate` makes every SQLite transaction take the write lock at BEGIN, so two
    processes running migrations serialize instead of interleaving DDL.
    """
    if backend_of(parse_url(url)) == "sqlite":
        engine = create_engine(sync_url(url), json_serializer=dumps_json)
        _install_sqlite_pragmas(engine, _sqlite_busy_timeout(url), begin_immediate=sqlite_begin_immediate)
        return engine
    return create_engine(
        sync_url(url),
        json_serializer=dumps_json,
        pool_pre_ping=True,
        pool_size=2,
        max_overflow=2,
        connect_args=_postgres_connect_args(),
    )


def async_engine(url: str) -> AsyncEngine:
    """An asyncio engine for `url`, tuned like `sync_engine`."""
    if backend_of(parse_url(url)) == "sqlite":
        engine = create_async_engine(async_url(url), json_serializer=dumps_json)
        _install_sqlite_pragmas(engine.sync_engine, _sqlite_busy_timeout(url), begin_immediate=False)
        return engine
    return create_async_engine(
        async_url(url),
        json_serializer=dumps_json,
        pool_pre_ping=True,
        connect_args=_postgres_connect_args(),
    )


class AsyncDatabase:
    """Owns an asyncio engine on `url` (checked now, connected lazily); `close()` or `async with`."""

    def __init__(self, url: str) -> None:
        parse_url(url)
        self._url = url
        self._engine = async_engine(url)

    async def close(self) -> None:
        """Close the connections."""
        await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
