"""The audit log over HTTP: `GET /v1/audit` (scope `admin`), the caller's tenant's entries only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from keel.api.problems import Problem
from keel.api.security import requires
from keel.errors import UsageError
from keel.gateway.principal import Principal
from keel.store.audit import AuditLog
from keel.store.repository import MAX_PAGE

router = APIRouter(prefix="/v1", tags=["audit"])


@router.get("/audit")
async def list_audit(
    request: Request,
    principal: Annotated[Principal, requires("admin")],
    action: Annotated[str | None, Query(max_length=64)] = None,
    outcome: Annotated[str | None, Query(max_length=16)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    """Audit entries of the caller's tenant, newest first; pass `next_cursor` back for more."""
    audit: AuditLog | None = getattr(request.app.state.request_hooks, "audit_log", None)
    if audit is None:
        raise Problem(
            503, "audit_unavailable", "Audit log is off", "the audit log needs storage (storage.enabled)"
        )
    try:
        page = await audit.list(
            tenant_id=principal.tenant_id,
            action=action,
            outcome=outcome,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
    except UsageError as exc:
        raise Problem(422, "invalid_request", "Invalid request", str(exc)) from None
    return {
        "entries": [
            {
                "id": e.id,
                "recorded_at": e.recorded_at.isoformat(),
                "action": e.action,
                "outcome": e.outcome,
                "principal": e.principal,
                "tenant_id": e.tenant_id,
                "target": e.target,
                "trace_id": e.trace_id,
                "ip": e.ip,
                "detail": e.detail,
            }
            for e in page.entries
        ],
        "next_cursor": page.next_cursor,
    }
