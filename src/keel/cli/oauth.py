"""`keel oauth rotate-key`, `keel oauth keys`: the built-in issuer's signing keys (docs/oauth.md).

`rotate-key` adds a new signing key at once (a suspected leak, or a changed key secret): it signs
from now on (other server processes follow within a minute), and the previous keys stay published
until every token they signed has expired. It needs the key secret (`gateway.issuer.key_secret_env`)
in the environment, as the server does. `keys` lists the keys, newest first, and whether each is
published in the JWKS.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from keel.cli.common import EXIT_CONFIG, ProjectOpt, out
from keel.cli.users import JsonOpt, fail, when, with_identity
from keel.config.gateway import duration_seconds
from keel.config.project import Project
from keel.errors import UsageError
from keel.gateway.oauth.crypto import signing_secret
from keel.gateway.oauth.keys import SigningKey, SigningKeys, published
from keel.store.identity import IdentityStore

oauth_app = typer.Typer(help="The built-in OAuth2 issuer: signing keys.", no_args_is_help=True)


def _signing_keys(store: IdentityStore, loaded: Project, *, with_secret: bool) -> SigningKeys:
    issuer = loaded.config.gateway.issuer
    secret = signing_secret(issuer, os.environ) if with_secret else None
    return SigningKeys(
        store,
        rotation=duration_seconds(issuer.key_rotation),
        access_token_ttl=duration_seconds(issuer.access_token_ttl),
        secret=secret,
    )


@oauth_app.command("rotate-key")
def rotate_key(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Make a new signing key now; older keys stay published until their tokens have expired."""

    async def work(store: IdentityStore, loaded: Project) -> SigningKey:
        try:
            keys = _signing_keys(store, loaded, with_secret=True)
        except UsageError as exc:
            raise fail(str(exc), EXIT_CONFIG) from None
        return await keys.rotate()

    key = with_identity(project, work)
    if as_json:
        out.print_json(
            json.dumps(
                {"kid": key.kid, "generation": key.generation, "created_at": key.created_at.isoformat()}
            )
        )
        return
    out.print(
        f"new signing key {key.kid} (generation {key.generation}); server processes sign with it within a minute",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@oauth_app.command("keys")
def list_keys(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """List the signing keys, newest first: which signs, which are published."""

    async def work(store: IdentityStore, loaded: Project) -> list[dict[str, Any]]:
        rows = await store.signing_keys()
        ttl = duration_seconds(loaded.config.gateway.issuer.access_token_ttl)
        live = {row.kid for row in published(rows, store.clock(), ttl)}
        return [
            {
                "kid": row.kid,
                "generation": row.generation,
                "alg": row.alg,
                "created_at": row.created_at.isoformat(),
                "signing": index == 0,
                "published": row.kid in live,
            }
            for index, row in enumerate(rows)
        ]

    keys = with_identity(project, work)
    if as_json:
        out.print_json(json.dumps(keys))
        return
    table = Table()
    for header in ("kid", "generation", "alg", "created (UTC)", "state"):
        table.add_column(header, no_wrap=header == "kid")
    from datetime import datetime

    for key in keys:
        state = "signing" if key["signing"] else "published" if key["published"] else "retired"
        table.add_row(
            key["kid"],
            str(key["generation"]),
            key["alg"],
            when(datetime.fromisoformat(key["created_at"])),
            state,
        )
    out.print(table)
