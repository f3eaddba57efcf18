"""`keel runs`, `keel runs show`, `keel runs stats`, `keel usage` and `keel db upgrade`: run history from the CLI."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table
from rich.tree import Tree

from keel.cli.common import EXIT_USAGE, ProjectOpt, err, load, out
from keel.errors import UsageError
from keel.store import RunRecord, RunStore, SpanRecord, mask_url, resolve_database_url, upgrade

runs_app = typer.Typer(help="Run history: list, show a run's trace, statistics.", no_args_is_help=False)
db_app = typer.Typer(help="The database: migrations.", no_args_is_help=True)

T = TypeVar("T")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

SinceOpt = Annotated[
    str | None, typer.Option(help="Only runs started since: a duration (30m, 24h, 7d) or an ISO 8601 time.")
]
UntilOpt = Annotated[
    str | None, typer.Option(help="Only runs started before this ISO 8601 time or duration ago.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def parse_time(value: str | None, option: str) -> datetime | None:
    """`24h`, `7d`, `30m` (ago), or an ISO 8601 time (UTC when it has no offset)."""
    if value is None:
        return None
    if match := _DURATION.match(value.strip()):
        amount, unit = float(match.group(1)), match.group(2)
        return datetime.now(UTC) - timedelta(**{_UNITS[unit]: amount})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{option}: expected a duration like 24h or an ISO 8601 time, got {value!r}"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def database_url(project: Path) -> str:
    loaded = load(project)
    return resolve_database_url(loaded.config.storage.url, loaded.root, os.environ)


def with_store(project: Path, work: Callable[[RunStore], Awaitable[T]]) -> T:
    url = database_url(project)

    async def go() -> T:
        async with await RunStore.open(url) as store:
            return await work(store)

    try:
        return asyncio.run(go())
    except UsageError as exc:
        err.print(f"[red]error[/] {exc}")
        raise typer.Exit(EXIT_USAGE) from None


def _money(value: Decimal | None) -> str:
    return "-" if value is None else f"${value:.6f}"


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@runs_app.callback(invoke_without_command=True)
def list_runs(
    ctx: typer.Context,
    project: ProjectOpt = Path("."),
    agent: Annotated[str | None, typer.Option(help="Only this agent's runs.")] = None,
    status: Annotated[str | None, typer.Option(help="succeeded, failed, timed_out or cancelled.")] = None,
    error: Annotated[str | None, typer.Option(help="Only runs that failed with this error category.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only runs with this tag.")] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[int, typer.Option(help="Runs per page (1-500).")] = 20,
    cursor: Annotated[str | None, typer.Option(help="The cursor printed after the previous page.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List runs, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        since_at, until_at = parse_time(since, "--since"), parse_time(until, "--until")
    except UsageError as exc:
        err.print(f"[red]error[/] {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    page = with_store(
        project,
        lambda store: store.list_runs(
            agent=agent,
            status=status,
            error_category=error,
            tag=tag,
            since=since_at,
            until=until_at,
            limit=limit,
            cursor=cursor,
        ),
    )
    if as_json:
        out.print_json(
            json.dumps({"runs": [_jsonable(r) for r in page.runs], "next_cursor": page.next_cursor})
        )
        return
    table = Table("run", "agent", "status", "started (UTC)", "ms", "requests", "tokens in/out", "cost")
    for run in page.runs:
        status_text = run.status if run.error_category is None else f"{run.status} ({run.error_category})"
        table.add_row(
            run.id,
            run.agent,
            status_text,
            _when(run.started_at),
            f"{run.duration_ms:.0f}",
            str(run.model_requests),
            f"{run.input_tokens}/{run.output_tokens}",
            _money(run.cost_usd),
        )
    out.print(table)
    if page.next_cursor:
        out.print(f"more: keel runs --cursor {page.next_cursor}", highlight=False)


@runs_app.command("show")
def show_run(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Show a run and its trace as a tree: each span with timing, tokens, cost, retries and errors."""

    async def fetch(store: RunStore) -> tuple[RunRecord | None, list[SpanRecord]]:
        return await store.get_run(run_id), await store.spans_for_run(run_id)

    run, spans = with_store(project, fetch)
    if run is None:
        err.print(f"[red]error[/] no run with id {run_id!r}")
        raise typer.Exit(EXIT_USAGE)
    if as_json:
        out.print_json(json.dumps({"run": _jsonable(run), "spans": [_jsonable(s) for s in spans]}))
        return
    out.print(
        f"[bold]{run.id}[/]  {run.agent}  {run.status}"
        + (f" ({run.error_category})" if run.error_category else "")
    )
    out.print(
        f"started {_when(run.started_at)} UTC · {run.duration_ms:.0f} ms · {run.model_requests} model requests "
        f"({run.retries} retries) · {run.tool_calls} tool calls · {run.input_tokens} in / {run.output_tokens} out "
        f"tokens · {_money(run.cost_usd)} · trigger {run.trigger}",
        highlight=False,
    )
    if run.error_message:
        out.print(f"[red]{run.error_message}[/]", highlight=False)
    out.print(trace_tree(spans))


def trace_tree(spans: list[SpanRecord]) -> Tree:
    by_parent: dict[str | None, list[SpanRecord]] = {}
    ids = {s.span_id for s in spans}
    for span in sorted(spans, key=lambda s: s.start_time):
        parent = span.parent_span_id if span.parent_span_id in ids else None
        by_parent.setdefault(parent, []).append(span)
    root = Tree("[bold]trace[/]" if spans else "[dim]no spans stored for this run[/]")

    def add(node: Tree, parent: str | None) -> None:
        for span in by_parent.get(parent, []):
            child = node.add(_span_label(span))
            for event in span.events:
                details = ", ".join(
                    f"{k}={v}" for k, v in event.attributes.items() if not k.startswith("exception.")
                )
                child.add(f"[yellow]{event.name}[/] {details}".rstrip())
            add(child, span.span_id)

    add(root, None)
    return root


def _span_label(span: SpanRecord) -> str:
    ms = (span.end_time - span.start_time).total_seconds() * 1000
    attrs = span.attributes
    parts = [f"[bold]{span.name}[/]", f"{ms:.1f} ms"]
    tokens_in, tokens_out = attrs.get("gen_ai.usage.input_tokens"), attrs.get("gen_ai.usage.output_tokens")
    if tokens_in is not None or tokens_out is not None:
        parts.append(f"{tokens_in or 0} in / {tokens_out or 0} out")
    if (cost := attrs.get("keel.cost.usd")) is not None:
        parts.append(f"${float(cost):.6f}")
    if (attempt := attrs.get("keel.attempt")) is not None:
        parts.append(f"attempt {attempt}")
    if span.status == "error":
        parts.append(f"[red]{attrs.get('error.type', 'error')}: {span.status_message or ''}[/]")
    return " · ".join(parts)


@runs_app.command("stats")
def run_stats(
    project: ProjectOpt = Path("."),
    since: SinceOpt = "24h",
    until: UntilOpt = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Success rate, latency p50/p95/p99, cost per run and failure rate per tool, per agent."""
    since_at, until_at = parse_time(since, "--since"), parse_time(until, "--until")
    stats = with_store(project, lambda store: store.run_stats(since=since_at, until=until_at, agent=agent))
    if as_json:
        out.print_json(json.dumps([_jsonable(s) for s in stats]))
        return
    table = Table("agent", "runs", "success", "p50 ms", "p95 ms", "p99 ms", "cost/run", "errors")
    tools = Table("agent", "tool", "calls", "failures", "failure rate")
    for s in stats:
        errors = ", ".join(f"{k} {v}" for k, v in s.error_categories.items()) or "-"
        table.add_row(
            s.agent,
            str(s.runs),
            f"{s.success_rate:.1%}",
            f"{s.latency_p50_ms:.0f}",
            f"{s.latency_p95_ms:.0f}",
            f"{s.latency_p99_ms:.0f}",
            _money(s.mean_cost_usd),
            errors,
        )
        for tool in s.tools:
            tools.add_row(s.agent, tool.tool, str(tool.calls), str(tool.failures), f"{tool.failure_rate:.1%}")
    out.print(table)
    if tools.row_count:
        out.print(tools)


@runs_app.command("usage")
def usage(
    project: ProjectOpt = Path("."),
    by: Annotated[str, typer.Option(help="Group by agent, user, tenant, day (UTC) or model.")] = "agent",
    since: SinceOpt = "30d",
    until: UntilOpt = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Runs, requests, tokens and cost, totalled per agent, user, tenant, day or model."""
    if by not in ("agent", "user", "tenant", "day", "model"):
        err.print(f"[red]error[/] --by: expected agent, user, tenant, day or model, got {by!r}")
        raise typer.Exit(EXIT_USAGE)
    since_at, until_at = parse_time(since, "--since"), parse_time(until, "--until")
    totals = with_store(
        project,
        lambda store: store.usage_totals(
            by,  # type: ignore[arg-type]
            since=since_at,
            until=until_at,
            agent=agent,
            tenant_id=tenant,
        ),
    )
    if as_json:
        out.print_json(json.dumps([_jsonable(t) for t in totals]))
        return
    table = Table(by, "runs", "requests", "tokens in", "tokens out", "cost", "unpriced runs")
    for total in totals:
        table.add_row(
            total.key or "-",
            str(total.runs),
            str(total.requests),
            str(total.input_tokens),
            str(total.output_tokens),
            _money(total.cost_usd),
            str(total.unpriced_runs),
        )
    out.print(table)


@db_app.command("upgrade")
def db_upgrade(project: ProjectOpt = Path(".")) -> None:
    """Create or migrate Keel's tables (also done automatically when Keel starts)."""
    url = database_url(project)
    upgrade(url)
    out.print(f"[green]ok[/] database at {mask_url(url)} is up to date")


def _jsonable(record: Any) -> Any:
    """A record as plain JSON data: dates as ISO strings, money as decimal strings."""
    return json.loads(json.dumps(dataclasses.asdict(record), default=_plain))


def _plain(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
