"""API keys over HTTP, under /v1/keys (scope `keys:admin`), always within the caller's tenant.

A caller can only grant scopes it holds itself: `keys:admin` alone cannot mint an `admin` key.
The new key's secret is in the creation answer only; listings never show it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, ConfigDict, Field

from keel.api.problems import Problem
from keel.api.security import requires
from keel.errors import UsageError
from keel.gateway.auth import Gateway
from keel.gateway.keys import Scope
from keel.gateway.principal import Principal
from keel.store.keys import ApiKeyRecord, KeyStore, UnknownKey

router = APIRouter(prefix="/v1/keys", tags=["keys"])


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    scopes: Annotated[list[Scope], Field(min_length=1)]
    expires: Annotated[
        str | None,
        Field(max_length=40, description="A duration (30d, 12h) or an ISO 8601 time; none: never."),
    ] = None


def _store(request: Request) -> KeyStore:
    gateway: Gateway = request.app.state.gateway
    if gateway.keys is None:
        raise Problem(503, "keys_unavailable", "API keys are off", "API keys need storage (storage.enabled)")
    return gateway.keys


def _view(record: ApiKeyRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "prefix": record.prefix,
        "name": record.name,
        "tenant_id": record.tenant_id,
        "scopes": list(record.scopes),
        "state": record.state,
        "created_at": record.created_at.isoformat(),
        "expires_at": record.expires_at.isoformat() if record.expires_at else None,
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
        "last_used_at": record.last_used_at.isoformat() if record.last_used_at else None,
        "created_by": record.created_by,
    }


@router.post("", status_code=201)
async def create_key(
    request: Request,
    principal: Annotated[Principal, requires("keys:admin")],
    body: Annotated[CreateKey, Body()],
) -> dict[str, Any]:
    """A new key for the caller's tenant. Its `key` is shown in this answer only."""
    beyond = sorted(set(body.scopes) - principal.scopes)
    if beyond:
        raise Problem(
            403,
            "scope_escalation",
            "Forbidden",
            f"scopes: cannot grant scopes these credentials lack: {', '.join(beyond)}",
        )
    try:
        created = await _store(request).create(
            body.name,
            body.scopes,
            tenant_id=principal.tenant_id,
            expires=body.expires,
            created_by=principal.label,
        )
    except UsageError as exc:
        field = "expires" if "expir" in str(exc) else "scopes"
        raise Problem(422, "invalid_request", "Invalid request", f"{field}: {exc}", field=field) from None
    await request.app.state.request_hooks.audit(
        request, principal, "key.created", target=created.record.prefix
    )
    return {**_view(created.record), "key": created.key}


@router.get("")
async def list_keys(
    request: Request, principal: Annotated[Principal, requires("keys:admin")]
) -> dict[str, Any]:
    """The tenant's keys, newest first, revoked and expired ones included."""
    records = await _store(request).list_keys(tenant_id=principal.tenant_id)
    return {"keys": [_view(r) for r in records]}


@router.post("/{key_id}/revoke")
async def revoke_key(
    request: Request, principal: Annotated[Principal, requires("keys:admin")], key_id: str
) -> dict[str, Any]:
    """Revoke a key (by id or prefix). It stops working at once in this process and within
    `gateway.key_cache` seconds in the others."""
    try:
        record = await _store(request).revoke(key_id, tenant_id=principal.tenant_id)
    except UnknownKey:
        raise Problem(404, "key_not_found", "Unknown key", f"no API key {key_id!r}") from None
    gateway: Gateway = request.app.state.gateway
    gateway.forget_key(record.id)
    await request.app.state.request_hooks.audit(request, principal, "key.revoked", target=record.prefix)
    return _view(record)
