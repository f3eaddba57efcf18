"""The query side of the store: `RunStore`, async, for the API, the CLI and dashboards.

Reads use their own asyncio engine and never share a connection with the background writer, so
a slow query cannot delay writes (on SQLite, WAL lets readers run while the writer commits).
Records read back are the records written: same fields, tz-aware UTC times, exact Decimal costs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from types import TracebackType
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from keel.errors import UsageError
from keel.store import analytics
from keel.store.codec import run_from_row, span_from_row
from keel.store.cursor import decode_cursor, encode_cursor
from keel.store.engine import AsyncDatabase
from keel.store.records import RunRecord, SpanRecord
from keel.store.results import AgentStats, RunPage, UsageGroup, UsageTotal
from keel.store.tables import run_tags, run_usage, runs, spans
from keel.store.tenancy import scope_to_tenant
from keel.store.urls import describe_error, mask_url

MAX_PAGE = 500


class RunStore(AsyncDatabase):
    """Run history and spans, queried. `RunStore(url)` or `await RunStore.open(url)` (connects
    lazily, on the first query); close when done."""

    @classmethod
    async def open(cls, url: str) -> RunStore:
        """A store on `url` (see `resolve_database_url`)."""
        return cls(url)

    # -- runs -------------------------------------------------------------------------------------

    async def get_run(self, run_id: str, *, tenant_id: str | None = None) -> RunRecord | None:
        """The run with this id (with its usage and tags), or None; another tenant's run is None."""
        statement = scope_to_tenant(select(runs).where(runs.c.id == run_id), runs, tenant_id)
        async with self._connect() as connection:
            row = (await connection.execute(statement)).mappings().first()
            if row is None:
                return None
            return (await self._with_children(connection, [row]))[0]

    async def list_runs(
        self,
        *,
        agent: str | None = None,
        status: str | None = None,
        error_category: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        tag: str | None = None,
        user_id: str | None = None,
        tenant_id: str | None = None,
        session_id: str | None = None,
        trigger: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """Runs newest first (by start time), filtered; pass `next_cursor` back for the next page.

        `since` is inclusive and `until` exclusive, both on the start time. Pages are stable:
        runs written between two calls never cause a duplicate or a gap.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise UsageError(f"limit must be an integer from 1 to {MAX_PAGE}, got {limit!r}")
        conditions = analytics.run_window(since=since, until=until, agent=agent)
        for column, value in (
            (runs.c.status, status),
            (runs.c.error_category, error_category),
            (runs.c.user_id, user_id),
            (runs.c.session_id, session_id),
            (runs.c.trigger, trigger),
        ):
            if value is not None:
                conditions.append(column == value)
        if tag is not None:
            conditions.append(exists().where(run_tags.c.run_id == runs.c.id, run_tags.c.tag == tag))
        if cursor is not None:
            conditions.append(_after(cursor))
        statement = (
            select(runs)
            .where(*conditions)
            .order_by(runs.c.started_at.desc(), runs.c.id.desc())
            .limit(limit + 1)
        )
        statement = scope_to_tenant(statement, runs, tenant_id)
        async with self._connect() as connection:
            rows = list((await connection.execute(statement)).mappings())
            page = await self._with_children(connection, rows[:limit])
        next_cursor = encode_cursor(page[-1].started_at, page[-1].id) if len(rows) > limit else None
        return RunPage(runs=page, next_cursor=next_cursor)

    async def _with_children(self, connection: AsyncConnection, rows: Sequence[Any]) -> list[RunRecord]:
        """RunRecords for `runs` rows, with usage and tags loaded in one query each."""
        ids = [row["id"] for row in rows]
        usage: dict[str, list[Any]] = defaultdict(list)
        tags: dict[str, list[str]] = defaultdict(list)
        if ids:
            usage_rows = await connection.execute(
                select(run_usage)
                .where(run_usage.c.run_id.in_(ids))
                .order_by(run_usage.c.run_id, run_usage.c.position)
            )
            for item in usage_rows.mappings():
                usage[item["run_id"]].append(item)
            tag_rows = await connection.execute(
                select(run_tags.c.run_id, run_tags.c.tag)
                .where(run_tags.c.run_id.in_(ids))
                .order_by(run_tags.c.run_id, run_tags.c.position)
            )
            for run_id, tag in tag_rows:
                tags[run_id].append(tag)
        return [run_from_row(row, usage[row["id"]], tags[row["id"]]) for row in rows]

    # -- spans ------------------------------------------------------------------------------------

    async def spans_for_run(self, run_id: str, *, tenant_id: str | None = None) -> list[SpanRecord]:
        """The spans recorded with this run id, by start time."""
        return await self._spans(spans.c.run_id == run_id, tenant_id)

    async def spans_for_trace(self, trace_id: str, *, tenant_id: str | None = None) -> list[SpanRecord]:
        """Every span of the trace, by start time."""
        return await self._spans(spans.c.trace_id == trace_id, tenant_id)

    async def _spans(self, condition: ColumnElement[bool], tenant_id: str | None) -> list[SpanRecord]:
        statement = select(spans).where(condition).order_by(spans.c.start_time, spans.c.span_id)
        statement = scope_to_tenant(statement, spans, tenant_id)
        async with self._connect() as connection:
            return [span_from_row(row) for row in (await connection.execute(statement)).mappings()]

    # -- aggregates -------------------------------------------------------------------------------

    async def usage_totals(
        self,
        group_by: UsageGroup,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        tenant_id: str | None = None,
        agent: str | None = None,
    ) -> list[UsageTotal]:
        """Runs, requests, tokens and cost grouped by agent, user, tenant, UTC day or model."""
        async with self._connect() as connection:
            return await analytics.usage_totals(
                connection, group_by, since=since, until=until, tenant_id=tenant_id, agent=agent
            )

    async def run_stats(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        agent: str | None = None,
        tenant_id: str | None = None,
    ) -> list[AgentStats]:
        """Per agent: runs, success rate, latency p50/p95/p99, mean cost, errors, tool failure rates."""
        async with self._connect() as connection:
            return await analytics.run_stats(
                connection, since=since, until=until, agent=agent, tenant_id=tenant_id
            )

    # -- plumbing ---------------------------------------------------------------------------------

    def _connect(self) -> _Connection:
        return _Connection(self._engine, self._url)


def _after(cursor: str) -> ColumnElement[bool]:
    """Rows strictly after the cursor in (started_at DESC, id DESC) order."""
    position = decode_cursor(cursor)
    return or_(
        runs.c.started_at < position.started_at,
        and_(runs.c.started_at == position.started_at, runs.c.id < position.run_id),
    )


class _Connection:
    """A read connection that turns "no such table" into a UsageError saying what to do.

    Other database errors (server down, connection lost) propagate as SQLAlchemy's
    OperationalError: they are outages, not mistakes, and the caller decides how to report them.
    """

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self._engine = engine
        self._url = url
        self._connection: AsyncConnection | None = None

    async def __aenter__(self) -> AsyncConnection:
        self._connection = await self._engine.connect()
        return self._connection

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._connection is not None
        await self._connection.close()
        if isinstance(exc, DBAPIError) and _is_missing_table(describe_error(exc, self._url)):
            raise UsageError(
                f"the database at {mask_url(self._url)} has no Keel tables yet; run `keel db upgrade`"
            ) from None


def read_connection(engine: AsyncEngine, url: str) -> _Connection:
    """A connection for queries on `engine` (at `url`) that reports missing tables as RunStore does.

    For the store's other async classes (callback log, coordination), so every reader says
    "run `keel db upgrade`" the same way.
    """
    return _Connection(engine, url)


@asynccontextmanager
async def write_transaction(engine: AsyncEngine, url: str) -> AsyncIterator[AsyncConnection]:
    """`engine.begin()`: commit on success, roll back on error; missing tables become a UsageError."""
    try:
        async with engine.begin() as connection:
            yield connection
    except DBAPIError as exc:
        if _is_missing_table(describe_error(exc, url)):
            raise UsageError(
                f"the database at {mask_url(url)} has no Keel tables yet; run `keel db upgrade`"
            ) from None
        raise


def _is_missing_table(message: str) -> bool:
    lowered = message.lower()
    return "no such table" in lowered or "undefinedtable" in lowered
