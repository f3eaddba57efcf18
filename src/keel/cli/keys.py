"""`keel keys create`, `keel keys list`, `keel keys revoke`: API keys of the gateway, from the CLI.

The commands work on the project's database (`storage.url`, or `KEEL_DATABASE_URL`), migrating it
first as `keel run` does. A new key is printed once, alone on standard output (so
`KEY=$(keel keys create ...)` works), with a warning on standard error; it cannot be shown again.
Exit codes: 2 for bad arguments (unknown scope, bad expiry, unknown key), 3 when the project's
configuration is invalid or its database cannot be reached.

Audit. Creating a key appends a `key.created` entry, revoking one `key.revoked` (outcome `failure`
for an unknown key), with principal `operator:cli` and the OS user in the detail; never the key.
An entry that cannot be written is a warning: the key was created or revoked all the same.
"""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from keel.cli.audit import OPERATOR_CLI, record_operator_action
from keel.cli.common import EXIT_CONFIG, EXIT_USAGE, ProjectOpt, err, out
from keel.cli.runs import database_url
from keel.errors import UsageError
from keel.gateway.keys import SCOPES, parse_expiry, validate_scopes
from keel.store import upgrade
from keel.store.audit import AuditEntry
from keel.store.keys import ApiKeyRecord, KeyStore, UnknownKey
from keel.store.urls import describe_error

keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)

T = TypeVar("T")

ONCE_WARNING = "this key is shown only now: it cannot be shown again. Store it somewhere safe."

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", help="The tenant the key belongs to.")]


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[red]error[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _with_keys(
    project: Path,
    work: Callable[[KeyStore], Awaitable[T]],
    *,
    audited: Callable[[T], AuditEntry] | None = None,
    refused: Callable[[UsageError], AuditEntry | None] | None = None,
) -> T:
    """Run `work` on the project's key store; every failure is a one-line error and an exit code.

    `audited` makes the audit entry of a done `work`; `refused`, that of a UsageError it raised.
    """
    url = database_url(project)
    try:
        upgrade(url)
    except UsageError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None

    async def go() -> T:
        async with KeyStore(url) as store:
            try:
                result = await work(store)
            except UsageError as exc:
                entry = refused(exc) if refused is not None else None
                if entry is not None:
                    await record_operator_action(url, entry)
                raise
        if audited is not None:
            await record_operator_action(url, audited(result))
        return result

    try:
        return asyncio.run(go())
    except UsageError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    except SQLAlchemyError as exc:
        raise _fail(f"database error: {describe_error(exc, url)}", EXIT_CONFIG) from None


def _creator() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (containers)
        return "cli"


@keys_app.command("create")
def create_key(
    name: Annotated[str, typer.Option("--name", help="What the key is for, shown in listings.")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", help=f"A scope to grant; repeat for several. One of: {', '.join(SCOPES)}."),
    ],
    tenant: TenantOpt = None,
    expires: Annotated[
        str | None,
        typer.Option(
            help="Expire after a duration (30d, 12h, 90m, 2w) or at an ISO 8601 time. Default: never."
        ),
    ] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Create an API key and print it once: only its hash is stored."""
    try:
        scopes = validate_scopes(scope)
        expires_at = parse_expiry(expires, now=datetime.now(UTC))
    except UsageError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    created = _with_keys(
        project,
        lambda store: store.create(name, scopes, tenant_id=tenant, expires=expires_at, created_by=_creator()),
        audited=lambda created: AuditEntry(
            action="key.created",
            principal=OPERATOR_CLI,
            tenant_id=created.record.tenant_id,
            target=created.record.id,
            detail={
                "prefix": created.record.prefix,
                "name": created.record.name,
                "scopes": list(created.record.scopes),
                "expires_at": created.record.expires_at,
                "os_user": _creator(),
            },
        ),
    )
    if as_json:
        out.print_json(json.dumps({"key": created.key, "warning": ONCE_WARNING, **_jsonable(created.record)}))
        return
    out.print(created.key, highlight=False, markup=False, soft_wrap=True)
    record = created.record
    err.print(f"[yellow]warning[/] {ONCE_WARNING}", highlight=False)
    err.print(
        f"created key {record.id} (prefix {record.prefix}) with scopes {', '.join(record.scopes)}"
        + (f" for tenant {record.tenant_id}" if record.tenant_id else "")
        + (f", expires {_when(record.expires_at)} UTC" if record.expires_at else ", never expires"),
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@keys_app.command("list")
def list_keys(tenant: TenantOpt = None, project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """List API keys, newest first, revoked and expired ones included (never their secrets).

    The table shows prefixes; --json adds ids and creation times."""
    records = _with_keys(project, lambda store: store.list_keys(tenant_id=tenant))
    if as_json:
        out.print_json(json.dumps([_jsonable(record) for record in records]))
        return
    # The prefix identifies a key (revoke takes it): never truncated. Ids and creation times: --json.
    table = Table()
    table.add_column("prefix", no_wrap=True, min_width=12)
    for header in ("name", "tenant", "scopes", "state", "expires (UTC)", "last used (UTC)"):
        table.add_column(header, overflow="fold")
    for record in records:
        table.add_row(
            record.prefix,
            record.name,
            record.tenant_id or "-",
            " ".join(record.scopes),
            record.state,
            _when(record.expires_at, minutes=True),
            _when(record.last_used_at, minutes=True),
        )
    out.print(table)


@keys_app.command("revoke")
def revoke_key(
    key: Annotated[str, typer.Argument(metavar="KEY_ID_OR_PREFIX", help="The key's id or its prefix.")],
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only a key of this tenant.")] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Revoke an API key: it is refused from now on. Revoking it again changes nothing."""
    started = datetime.now(UTC)
    record = _with_keys(
        project,
        lambda store: store.revoke(key, tenant_id=tenant),
        audited=lambda record: AuditEntry(
            action="key.revoked",
            principal=OPERATOR_CLI,
            tenant_id=record.tenant_id,
            target=record.id,
            detail={
                "prefix": record.prefix,
                "name": record.name,
                "already_revoked": record.revoked_at is not None and record.revoked_at < started,
                "os_user": _creator(),
            },
        ),
        refused=lambda exc: (
            AuditEntry(
                action="key.revoked",
                principal=OPERATOR_CLI,
                outcome="failure",
                tenant_id=tenant or None,
                target=key,
                detail={"reason": "unknown key", "os_user": _creator()},
            )
            if isinstance(exc, UnknownKey)
            else None
        ),
    )
    if as_json:
        out.print_json(json.dumps(_jsonable(record)))
        return
    out.print(
        f"revoked key {record.id} (prefix {record.prefix}) at {_when(record.revoked_at)} UTC",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def _when(value: datetime | None, *, minutes: bool = False) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M" if minutes else "%Y-%m-%d %H:%M:%S")


def _jsonable(record: ApiKeyRecord) -> dict[str, Any]:
    data = dataclasses.asdict(record)
    return {
        name: value.isoformat() if isinstance(value, datetime) else list(value) if name == "scopes" else value
        for name, value in data.items()
    }
