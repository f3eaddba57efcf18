"""`keel audit list`: the audit log from the CLI, and the helper CLI commands use to write to it.

`keel audit list` reads the project's database (`storage.url`, or `KEEL_DATABASE_URL`), migrating
it first as `keel keys` does, and prints entries newest first: every tenant's and the operator's
unless `--tenant` is given: one aligned line per entry (who did what, when, to what), never folded,
so it can be grepped; `--json` adds ids, detail, trace ids and IP addresses. Options are checked before the database is touched; a bad one is a
one-line error naming it (exit 2). Exit 3 when the project's configuration is invalid or its
database cannot be reached.

`record_operator_action` is how CLI commands (`keel keys create` and `revoke`) leave an entry: it
writes at once and, if that fails, warns on standard error without failing the command (the
action itself has already happened).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from keel.cli.common import EXIT_CONFIG, EXIT_USAGE, ProjectOpt, err, out
from keel.cli.runs import database_url, parse_time
from keel.errors import UsageError
from keel.store import upgrade
from keel.store.audit import (
    AUDIT_ACTIONS,
    AUDIT_OUTCOMES,
    AuditEntry,
    AuditLog,
    AuditPage,
    validate_action,
    validate_outcome,
)
from keel.store.cursor import decode_cursor
from keel.store.repository import MAX_PAGE
from keel.store.urls import describe_error

OPERATOR_CLI = "operator:cli"
"""The principal of actions taken with the `keel` command line."""

audit_app = typer.Typer(help="The audit log: security-relevant actions, append-only.", no_args_is_help=True)


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[red]error[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@audit_app.command("list")
def list_entries(
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant", help="Only this tenant's entries. Default: every tenant's and the operator's."
        ),
    ] = None,
    action: Annotated[
        str | None, typer.Option("--action", help=f"Only this action: one of {', '.join(AUDIT_ACTIONS)}.")
    ] = None,
    principal: Annotated[
        str | None, typer.Option("--principal", help="Only this principal, e.g. user:alice or operator:cli.")
    ] = None,
    outcome: Annotated[
        str | None, typer.Option("--outcome", help=f"Only this outcome: {', '.join(AUDIT_OUTCOMES)}.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only entries since: a duration (30m, 24h, 7d) or an ISO 8601 time."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Only entries before: a duration ago or an ISO 8601 time.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help=f"Entries per page (1-{MAX_PAGE}).")] = 50,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="The cursor printed after the previous page.")
    ] = None,
    project: ProjectOpt = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List audit entries, newest first."""
    try:
        if tenant is not None and not tenant.strip():
            raise UsageError("--tenant: expected a tenant id, got an empty string")
        if action is not None:
            _named("--action", lambda: validate_action(action))
        if outcome is not None:
            _named("--outcome", lambda: validate_outcome(outcome))
        if not 1 <= limit <= MAX_PAGE:
            raise UsageError(f"--limit: expected a number from 1 to {MAX_PAGE}, got {limit}")
        if cursor is not None:
            _named("--cursor", lambda: decode_cursor(cursor))
        since_at, until_at = parse_time(since, "--since"), parse_time(until, "--until")
    except UsageError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None

    url = database_url(project)
    try:
        upgrade(url)
    except UsageError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None

    async def go() -> AuditPage:
        async with AuditLog(url) as audit:
            return await audit.list(
                tenant_id=tenant,
                action=action,
                principal=principal,
                outcome=outcome,
                since=since_at,
                until=until_at,
                limit=limit,
                cursor=cursor,
            )

    try:
        page = asyncio.run(go())
    except UsageError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    except SQLAlchemyError as exc:
        raise _fail(f"database error: {describe_error(exc, url)}", EXIT_CONFIG) from None

    if as_json:
        out.print_json(
            json.dumps({"entries": [jsonable(e) for e in page.entries], "next_cursor": page.next_cursor})
        )
        return
    # One aligned line per entry, never folded, so it can be grepped and copied whole. Ids,
    # detail, trace ids and IP addresses are in --json.
    headers = ("time (UTC)", "action", "outcome", "principal", "tenant", "target")
    rows = [
        (
            entry.recorded_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            entry.action,
            entry.outcome,
            printable(entry.principal),
            printable(entry.tenant_id or "-"),
            printable(entry.target or "-"),
        )
        for entry in page.entries
    ]
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    for number, row in enumerate([headers, *rows]):
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        out.print(line, style="bold" if number == 0 else None, highlight=False, markup=False, soft_wrap=True)
    if page.next_cursor:
        out.print(
            f"more: keel audit list --cursor {page.next_cursor}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def printable(text: str) -> str:
    """`text` with control and other invisible characters shown escaped (`\\x1b`), so a value
    written by a client (a target, a principal) cannot move the cursor or hide lines."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _named(option: str, check: Callable[[], object]) -> None:
    """Run `check`; a UsageError it raises is reported as being about `option`."""
    try:
        check()
    except UsageError as exc:
        raise UsageError(f"{option}: {exc}") from None


def jsonable(entry: AuditEntry) -> dict[str, Any]:
    """An entry as JSON-ready data: times in ISO 8601 UTC."""
    data = dataclasses.asdict(entry)
    return {name: value.isoformat() if isinstance(value, datetime) else value for name, value in data.items()}


async def record_operator_action(url: str, entry: AuditEntry) -> None:
    """Append `entry` to the audit log at `url` now; on failure warn on stderr, never raise."""
    try:
        async with AuditLog(url) as audit:
            await audit.append(entry)
    except Exception as exc:
        reason = str(exc) if isinstance(exc, UsageError) else describe_error(exc, url)
        err.print(
            f"[yellow]warning[/] the audit entry for {entry.action} could not be written: {escape(reason)}",
            highlight=False,
            soft_wrap=True,
        )
