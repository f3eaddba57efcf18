"""Routers that plug into the app beside the runs API (sign-in, OAuth2, ...): `create_app`
includes every router listed by `extra_routers(project)`. Every route must still declare its access
policy (`keel.api.security`): the app refuses to start otherwise.

- The built-in OAuth2 authorization server (`keel.api.oauth`), when `gateway.issuer.enabled`. Its
  configuration is checked here, so a server that could not issue tokens (no storage, no key
  secret) refuses to start with a `UsageError` naming the setting.
"""

from __future__ import annotations

from fastapi import APIRouter

from keel.config.project import Project


def extra_routers(project: Project, database_url: str | None = None) -> list[APIRouter]:
    """The optional routers `project` enables. `database_url` is the server's database (the
    project's storage URL when not given)."""
    routers: list[APIRouter] = []
    if project.config.gateway.issuer.enabled:
        from keel.api.oauth import oauth_router

        routers.append(oauth_router(project, database_url))
    if project.config.gateway.passkeys.enabled:  # passkey sign-in: keel.api.passkeys, docs/passkeys.md
        from keel.api.passkeys import passkeys_router

        routers.append(passkeys_router(project))
    return routers
