"""Routers that plug into the app beside the runs API (sign-in, OAuth2, ...): `create_app`
includes every router listed by `extra_routers()`. Every route must still declare its access
policy (`keel.api.security`): the app refuses to start otherwise."""

from __future__ import annotations

from fastapi import APIRouter


def extra_routers() -> list[APIRouter]:
    routers: list[APIRouter] = []
    return routers
