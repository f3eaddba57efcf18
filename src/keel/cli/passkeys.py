"""`keel users enroll USER_ID`: a one-time link with which a user creates a passkey.

The link is `<origin>/auth/enroll?token=...`, with the first of `gateway.passkeys.origins` (or
`--origin`, which must be one of them). It works once, for 24 hours (`--expires`); only the
SHA-256 of its token is stored. It is printed alone on standard output (so `URL=$(keel users
enroll ...)` works), with who it is for and until when on standard error. Whoever opens the link
first can add a passkey to the account: send it to the user only, over a channel you trust.

Exit codes: 2 for bad arguments (unknown or disabled user, an origin not configured, a bad
duration), 3 when the project's configuration is invalid or its database cannot be reached.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from keel.cli.common import EXIT_CONFIG, EXIT_USAGE, ProjectOpt, err, load, out
from keel.config.gateway import duration_seconds
from keel.errors import UsageError
from keel.store import resolve_database_url, upgrade
from keel.store.urls import describe_error

users_app = typer.Typer(help="Users of the dashboard: passkey enrolment links.", no_args_is_help=True)

ENROLL_WARNING = "whoever opens this link first can add a passkey to this account: send it to the user only"


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[red]error[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _creator() -> str:
    import getpass

    try:
        return f"operator:cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (containers)
        return "operator:cli"


@users_app.command("enroll")
def enroll(
    user_id: Annotated[str, typer.Argument(metavar="USER_ID", help="The user's id (usr_...).")],
    origin: Annotated[
        str | None,
        typer.Option(help="The link's origin: one of gateway.passkeys.origins (default: the first)."),
    ] = None,
    expires: Annotated[str, typer.Option(help="How long the link works: 30m, 12h, 1d...")] = "24h",
    project: ProjectOpt = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of the URL alone.")] = False,
) -> None:
    """Print a one-time enrolment link (24 h) with which the user creates a passkey."""
    loaded = load(project)
    passkeys = loaded.config.gateway.passkeys
    if not passkeys.origins:
        raise _fail("gateway.passkeys.origins is empty: the link needs the site's origin", EXIT_USAGE)
    if origin is not None and origin not in passkeys.origins:
        raise _fail(f"--origin: {origin!r} is not one of gateway.passkeys.origins", EXIT_USAGE)
    try:
        ttl = timedelta(seconds=duration_seconds(expires))
    except ValueError as exc:
        raise _fail(f"--expires: {exc}", EXIT_USAGE) from None
    if not passkeys.enabled:
        err.print("[yellow]warning[/] gateway.passkeys.enabled is false: the server will not serve the link")
    url = resolve_database_url(loaded.config.storage.url, loaded.root, os.environ)
    try:
        upgrade(url)
    except UsageError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None

    from keel.store.identity import IdentityStore  # imported here: `keel --help` stays fast
    from keel.store.passkeys import PasskeyStore

    async def go() -> tuple[str, str, datetime, str]:
        async with IdentityStore(url) as identity, PasskeyStore(url) as store:
            user = await identity.get_user(user_id)
            if user is None:
                raise UsageError(f"no user {user_id!r}")
            if not user.active:
                raise UsageError(f"user {user_id!r} is disabled")
            link = await store.create_enrollment(user.id, user.tenant_id, ttl=ttl, created_by=_creator())
            return link.token, user.tenant_id, link.record.expires_at, user.email or user.name

    try:
        token, tenant_id, expires_at, who = asyncio.run(go())
    except UsageError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    except SQLAlchemyError as exc:
        raise _fail(f"database error: {describe_error(exc, url)}", EXIT_CONFIG) from None
    link_url = f"{origin or passkeys.origins[0]}/auth/enroll?token={token}"
    if as_json:
        body = {
            "url": link_url,
            "user_id": user_id,
            "tenant_id": tenant_id,
            "expires_at": expires_at.isoformat(),
            "warning": ENROLL_WARNING,
        }
        out.print_json(json.dumps(body))
        return
    out.print(link_url, highlight=False, markup=False, soft_wrap=True)
    until = expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    err.print(
        f"enrolment link for {escape(who)} ({escape(user_id)}, tenant {escape(tenant_id)}): "
        f"single use, valid until {until} UTC",
        highlight=False,
        soft_wrap=True,
    )
    err.print(f"[yellow]warning[/] {ENROLL_WARNING}", highlight=False, soft_wrap=True)
