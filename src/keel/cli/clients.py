"""`keel clients create`, `keel clients list`, `keel clients revoke`: OAuth2 clients of the built-in
issuer (docs/oauth.md).

A confidential client's secret is printed once, when it is created (only its HMAC is stored, like an
API key's); a public client (authorization code with PKCE, the default for that grant) has none.
Text output puts `client_id` and `client_secret` lines on standard output and a warning on standard
error; `--json` prints everything as one object. Exit codes as in `keel users`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from keel.cli.common import EXIT_USAGE, ProjectOpt, err, out
from keel.cli.users import JsonOpt, fail, when, with_identity
from keel.config.project import Project
from keel.gateway.keys import SCOPES
from keel.store.identity import IdentityStore
from keel.store.oauth import GRANT_TYPES, CreatedClient, OAuthClient

clients_app = typer.Typer(
    help="OAuth2 clients of the built-in issuer: create, list, revoke.", no_args_is_help=True
)

ONCE_WARNING = "the client secret is shown only now: it cannot be shown again. Store it somewhere safe."


@clients_app.command("create")
def create_client(
    name: Annotated[str, typer.Option("--name", help="What the client is, shown in listings.")],
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant the client acts in.")],
    grant: Annotated[str, typer.Option("--grant", help=f"One of: {', '.join(GRANT_TYPES)}.")],
    redirect_uri: Annotated[
        list[str] | None,
        typer.Option(
            "--redirect-uri", help="authorization_code: an allowed redirect URI (exact match); repeat."
        ),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help=f"A scope the client may get; repeat. Required for client_credentials. One of: {', '.join(SCOPES)}.",
        ),
    ] = None,
    confidential: Annotated[
        bool,
        typer.Option(
            "--confidential",
            help="authorization_code: give the client a secret (a server-side web app). Default: public, PKCE only.",
        ),
    ] = False,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Register a client; prints its client_id, and its secret once (confidential clients)."""
    if grant not in GRANT_TYPES:
        raise fail(f"--grant: expected one of {', '.join(GRANT_TYPES)}, got {grant!r}", EXIT_USAGE)

    async def work(store: IdentityStore, loaded: Project) -> CreatedClient:
        if not loaded.config.gateway.issuer.enabled:
            err.print("[yellow]warning[/] gateway.issuer.enabled is false: this server issues no tokens yet")
        return await store.create_client(
            name,
            tenant_id=tenant,
            grant_type=grant,
            redirect_uris=redirect_uri or [],
            scopes=scope or [],
            confidential=True if confidential else None,
            created_by="operator:cli",
        )

    created = with_identity(project, work)
    client = created.client
    if as_json:
        document = {**client.as_dict(), "client_secret": created.secret}
        if created.secret:
            document["warning"] = ONCE_WARNING
        out.print_json(json.dumps(document))
        return
    out.print(f"client_id: {client.id}", highlight=False, markup=False)
    if created.secret:
        out.print(f"client_secret: {created.secret}", highlight=False, markup=False)
        err.print(f"[yellow]warning[/] {ONCE_WARNING}", highlight=False)
    err.print(
        f"created {'confidential' if client.confidential else 'public'} {client.grant_type} client "
        f"{client.name!r} in tenant {client.tenant_id}"
        + (f" with scopes {', '.join(client.scopes)}" if client.scopes else " (scopes: its users' roles)"),
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@clients_app.command("list")
def list_clients(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's clients.")] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """List clients, newest first, revoked ones included (never their secrets)."""

    async def work(store: IdentityStore, loaded: Project) -> list[OAuthClient]:
        return await store.list_clients(tenant_id=tenant)

    clients = with_identity(project, work)
    if as_json:
        out.print_json(json.dumps([client.as_dict() for client in clients]))
        return
    table = Table()
    table.add_column("client_id", no_wrap=True)
    for header in ("name", "tenant", "grant", "type", "scopes", "redirect URIs", "state", "created (UTC)"):
        table.add_column(header, overflow="fold")
    for client in clients:
        table.add_row(
            client.id,
            client.name,
            client.tenant_id,
            client.grant_type,
            "confidential" if client.confidential else "public",
            " ".join(client.scopes) or "-",
            " ".join(client.redirect_uris) or "-",
            client.state,
            when(client.created_at),
        )
    out.print(table)


@clients_app.command("revoke")
def revoke_client(
    client_id: Annotated[str, typer.Argument(metavar="CLIENT_ID", help="The client's id.")],
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only a client of this tenant.")] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Revoke a client: it gets no more tokens and its refresh tokens stop working at once; access
    tokens already issued run until they expire."""

    async def work(store: IdentityStore, loaded: Project) -> OAuthClient:
        return await store.revoke_client(client_id, tenant_id=tenant)

    client = with_identity(project, work)
    if as_json:
        out.print_json(json.dumps(client.as_dict()))
        return
    out.print(
        f"revoked client {client.id} ({client.name}, tenant {client.tenant_id}) at {when(client.revoked_at)} UTC",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
