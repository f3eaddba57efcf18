"""`keel users create`, `keel users list`, `keel users disable`: the people who sign in (the dashboard,
and the built-in issuer's authorization code flow). See docs/oauth.md.

The commands work on the project's database (`storage.url`, or `KEEL_DATABASE_URL`), migrating it
first as `keel keys` does. Exit codes: 2 for bad arguments (each error names its option), 3 when the
project's configuration is invalid or its database cannot be reached. Errors are one line, never a
traceback. `with_identity` is shared with `keel clients` and `keel oauth`.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from keel.cli.common import EXIT_CONFIG, EXIT_USAGE, ProjectOpt, err, load, out
from keel.config.project import Project
from keel.errors import UsageError
from keel.store import resolve_database_url, upgrade
from keel.store.identity import IdentityStore, User, validate_roles
from keel.store.urls import describe_error

users_app = typer.Typer(
    help="Users who sign in: create, list, disable, and passkey enrolment links (enroll).",
    no_args_is_help=True,
)

T = TypeVar("T")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def fail(message: str, code: int) -> typer.Exit:
    err.print(f"[red]error[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def with_identity(project: Path, work: Callable[[IdentityStore, Project], Awaitable[T]]) -> T:
    """Run `work` on the project's identity store; every failure is a one-line error and an exit code."""
    loaded = load(project)
    storage = loaded.config.storage
    if not storage.enabled:
        raise fail("storage.enabled: users, sessions and OAuth clients need storage", EXIT_CONFIG)
    try:
        url = resolve_database_url(storage.url, loaded.root, os.environ)
        upgrade(url)
    except UsageError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None

    async def go() -> T:
        async with IdentityStore(url) as store:
            return await work(store, loaded)

    try:
        return asyncio.run(go())
    except UsageError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except SQLAlchemyError as exc:
        raise fail(f"database error: {describe_error(exc, url)}", EXIT_CONFIG) from None


def when(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


@users_app.command("create")
def create_user(
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant the user belongs to.")],
    name: Annotated[str, typer.Option("--name", help="The user's display name.")],
    role: Annotated[
        list[str] | None,
        typer.Option("--role", help="A role (see gateway.roles); repeat for several."),
    ] = None,
    email: Annotated[str | None, typer.Option("--email", help="Optional; unique within the tenant.")] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Create a user; prints its id."""
    try:
        roles = validate_roles(role or [])
    except UsageError as exc:
        raise fail(str(exc), EXIT_USAGE) from None

    async def work(store: IdentityStore, loaded: Project) -> User:
        unknown = [r for r in roles if r not in loaded.config.gateway.roles]
        if unknown:
            err.print(
                f"[yellow]warning[/] --role: {', '.join(unknown)} not defined in gateway.roles: "
                "grants no scopes until it is",
                highlight=False,
            )
        return await store.create_user(tenant, name, email=email, roles=roles)

    user = with_identity(project, work)
    if as_json:
        out.print_json(json.dumps(user.as_dict()))
        return
    out.print(user.id, highlight=False, markup=False)
    err.print(
        f"created user {user.name} in tenant {user.tenant_id}"
        + (f" with roles {', '.join(user.roles)}" if user.roles else " without roles"),
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@users_app.command("list")
def list_users(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's users.")] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """List users, newest first, disabled ones included."""

    async def work(store: IdentityStore, loaded: Project) -> list[User]:
        return await store.list_users(tenant_id=tenant)

    users = with_identity(project, work)
    if as_json:
        out.print_json(json.dumps([user.as_dict() for user in users]))
        return
    table = Table()
    table.add_column("id", no_wrap=True)
    for header in ("name", "tenant", "email", "roles", "state", "created (UTC)"):
        table.add_column(header, overflow="fold")
    for user in users:
        table.add_row(
            user.id,
            user.name,
            user.tenant_id,
            user.email or "-",
            " ".join(user.roles) or "-",
            "active" if user.active else "disabled",
            when(user.created_at),
        )
    out.print(table)


@users_app.command("disable")
def disable_user(
    user: Annotated[str, typer.Argument(metavar="USER_ID", help="The user's id (or email, with --tenant).")],
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only a user of this tenant.")] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Disable a user: their sessions end and their refresh tokens are revoked at once."""

    async def work(store: IdentityStore, loaded: Project) -> User:
        return await store.disable_user(user, tenant_id=tenant)

    disabled = with_identity(project, work)
    if as_json:
        out.print_json(json.dumps(disabled.as_dict()))
        return
    out.print(
        f"disabled user {disabled.id} ({disabled.name}, tenant {disabled.tenant_id}) at {when(disabled.disabled_at)} UTC",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def _include_passkey_commands() -> None:
    """`keel users enroll` (keel.cli.passkeys) belongs to this group too."""
    from keel.cli.passkeys import users_app as passkey_commands

    users_app.registered_commands.extend(passkey_commands.registered_commands)


_include_passkey_commands()
