"""Aggregates over run history: usage totals and per-agent run statistics.

Everything is computed in SQL that means the same on SQLite and PostgreSQL, so both backends give
identical answers: percentiles are nearest-rank, taken with `row_number()` and integer arithmetic
(`rank = (n * p + 99) // 100`, i.e. ceil(p% of n)) rather than PostgreSQL's `percentile_disc`,
which SQLite lacks; costs are summed exactly (see `keel.store.types.Money`); days are UTC dates;
rates and means are divided in Python. Results are sorted in Python, since the two backends
collate strings differently.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, case, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.errors import UsageError
from keel.store.results import USAGE_GROUPS, AgentStats, ToolStats, UsageGroup, UsageTotal
from keel.store.tables import run_tools, run_usage, runs
from keel.store.tenancy import scope_to_tenant
from keel.store.types import quantize_usd

SUCCEEDED = "succeeded"
PERCENTILES = (50, 95, 99)


def check_aware(name: str, value: datetime | None) -> None:
    if value is not None and value.tzinfo is None:
        raise UsageError(f"{name} must be timezone-aware (e.g. datetime(..., tzinfo=UTC)), got {value!r}")


def run_window(
    *, since: datetime | None, until: datetime | None, agent: str | None = None
) -> list[ColumnElement[bool]]:
    """Conditions on `runs` for a half-open period [since, until) of start times, and one agent."""
    check_aware("since", since)
    check_aware("until", until)
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions.append(runs.c.started_at >= since)
    if until is not None:
        conditions.append(runs.c.started_at < until)
    if agent is not None:
        conditions.append(runs.c.agent == agent)
    return conditions


def _utc_day(dialect: str) -> ColumnElement[Any]:
    # Literal format strings, not bound parameters: the same expression appears in SELECT and
    # GROUP BY, and PostgreSQL only matches them if they are textually identical.
    if dialect == "postgresql":
        return func.to_char(
            func.timezone(literal_column("'UTC'"), runs.c.started_at), literal_column("'YYYY-MM-DD'")
        )
    return func.strftime(literal_column("'%Y-%m-%d'"), runs.c.started_at)


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


def _sort_key(total: UsageTotal) -> tuple[bool, str]:
    return (total.key is None, total.key or "")


async def usage_totals(
    connection: AsyncConnection,
    group_by: UsageGroup,
    *,
    since: datetime | None,
    until: datetime | None,
    tenant_id: str | None,
    agent: str | None,
) -> list[UsageTotal]:
    """Runs, requests, tokens and cost per group, sorted by key (None last)."""
    if group_by not in USAGE_GROUPS:
        raise UsageError(f"cannot group usage by {group_by!r}; choose one of {', '.join(USAGE_GROUPS)}")
    conditions = run_window(since=since, until=until, agent=agent)
    if group_by == "model":
        key: ColumnElement[Any] = run_usage.c.model
        unpriced = case((run_usage.c.cost_usd.is_(None), run_usage.c.run_id)).distinct()
        statement = (
            select(
                key,
                func.count(run_usage.c.run_id.distinct()),
                func.sum(run_usage.c.requests),
                func.sum(run_usage.c.input_tokens),
                func.sum(run_usage.c.output_tokens),
                func.sum(run_usage.c.cost_usd),
                func.count(unpriced),
            )
            .select_from(run_usage.join(runs, runs.c.id == run_usage.c.run_id))
            .where(*conditions)
            .group_by(key)
        )
    else:
        columns = {"agent": runs.c.agent, "user": runs.c.user_id, "tenant": runs.c.tenant_id}
        key = columns[group_by] if group_by in columns else _utc_day(connection.dialect.name)
        statement = (
            select(
                key,
                func.count(),
                func.sum(runs.c.model_requests),
                func.sum(runs.c.input_tokens),
                func.sum(runs.c.output_tokens),
                func.sum(runs.c.cost_usd),
                func.sum(case((runs.c.cost_usd.is_(None), 1), else_=0)),
            )
            .where(*conditions)
            .group_by(key)
        )
    statement = scope_to_tenant(statement, runs, tenant_id)
    totals = [
        UsageTotal(
            key=row[0],
            runs=_int(row[1]),
            requests=_int(row[2]),
            input_tokens=_int(row[3]),
            output_tokens=_int(row[4]),
            cost_usd=row[5] if row[5] is not None else quantize_usd(Decimal(0)),
            unpriced_runs=_int(row[6]),
        )
        for row in await connection.execute(statement)
    ]
    return sorted(totals, key=_sort_key)


async def run_stats(
    connection: AsyncConnection,
    *,
    since: datetime | None,
    until: datetime | None,
    agent: str | None,
    tenant_id: str | None,
) -> list[AgentStats]:
    """Per-agent outcomes, latency percentiles, cost, error categories and tool failure rates."""
    conditions = run_window(since=since, until=until, agent=agent)
    ranked_select = select(
        runs.c.agent,
        runs.c.duration_ms,
        runs.c.status,
        runs.c.cost_usd,
        func.row_number()
        .over(partition_by=runs.c.agent, order_by=(runs.c.duration_ms, runs.c.id))
        .label("rank"),
        func.count().over(partition_by=runs.c.agent).label("n"),
    ).where(*conditions)
    ranked = scope_to_tenant(ranked_select, runs, tenant_id).subquery("ranked")

    def nearest_rank(pct: int) -> ColumnElement[Any]:
        return func.max(case((ranked.c.rank == (ranked.c.n * pct + 99) // 100, ranked.c.duration_ms)))

    summary = select(
        ranked.c.agent,
        func.count(),
        func.sum(case((ranked.c.status == SUCCEEDED, 1), else_=0)),
        func.sum(ranked.c.cost_usd),
        func.count(ranked.c.cost_usd),
        *(nearest_rank(pct) for pct in PERCENTILES),
    ).group_by(ranked.c.agent)

    errors_select = (
        select(runs.c.agent, runs.c.error_category, func.count())
        .where(*conditions, runs.c.error_category.is_not(None))
        .group_by(runs.c.agent, runs.c.error_category)
    )
    errors: dict[str, dict[str, int]] = defaultdict(dict)
    for agent_name, category, count in await connection.execute(
        scope_to_tenant(errors_select, runs, tenant_id)
    ):
        errors[agent_name][category] = _int(count)

    tools_select = (
        select(runs.c.agent, run_tools.c.tool, func.sum(run_tools.c.calls), func.sum(run_tools.c.failures))
        .select_from(run_tools.join(runs, runs.c.id == run_tools.c.run_id))
        .where(*conditions)
        .group_by(runs.c.agent, run_tools.c.tool)
    )
    tools: dict[str, list[ToolStats]] = defaultdict(list)
    for agent_name, tool, calls, failures in await connection.execute(
        scope_to_tenant(tools_select, runs, tenant_id)
    ):
        calls, failures = _int(calls), _int(failures)
        tools[agent_name].append(ToolStats(tool, calls, failures, failures / calls if calls else 0.0))

    stats = []
    for agent_name, count, succeeded, cost, priced, p50, p95, p99 in await connection.execute(summary):
        count, succeeded, priced = _int(count), _int(succeeded), _int(priced)
        stats.append(
            AgentStats(
                agent=agent_name,
                runs=count,
                succeeded=succeeded,
                success_rate=succeeded / count,
                latency_p50_ms=float(p50),
                latency_p95_ms=float(p95),
                latency_p99_ms=float(p99),
                mean_cost_usd=quantize_usd(cost / priced) if priced else None,
                unpriced_runs=count - priced,
                error_categories=dict(
                    sorted(errors[agent_name].items(), key=lambda item: (-item[1], item[0]))
                ),
                tools=sorted(tools[agent_name], key=lambda tool_stats: tool_stats.tool),
            )
        )
    return sorted(stats, key=lambda agent_stats: agent_stats.agent)
