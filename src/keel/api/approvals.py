"""The human queue, under /v1 (see docs/approvals.md): calls waiting for approval, escalated runs.

Approvals (`approvals:decide`):
- `GET /v1/approvals?status=pending&agent=...&limit=50`: the inbox, oldest first.
- `GET /v1/approvals/{approval_id}`: one call: tool, arguments, why it is gated, its deadline.
- `POST /v1/approvals/{approval_id}/approve` `{"args": {...}?, "comment": "..."?}`: approve, with
  edited arguments if given (checked against the tool's parameters: 422 `invalid_arguments`).
- `POST /v1/approvals/{approval_id}/reject` `{"reason": "..."}`: reject; the model is told why.
A decision is made once: repeating the same decision answers 200 with the stored one; another
decision answers 409 `approval_already_decided` (with who decided what). When the last waiting
call of a run is decided, the run goes on.

Escalations (`approvals:decide`):
- `GET /v1/escalations?status=open`, `GET /v1/escalations/{escalation_id}`: runs handed to a
  person, with the summary of what was tried.
- `POST /v1/escalations/{escalation_id}/resolve` `{"resolution": "..."}`: mark it handled.

Everything is the caller's tenant's: another tenant's ids answer 404 like unknown ones. Decisions
are written to the audit log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ConfigDict, Field

from keel.api.problems import Problem
from keel.api.security import requires
from keel.durable.approvals import ApprovalDesk
from keel.durable.service import DurableRuns
from keel.gateway.principal import Principal

router = APIRouter(prefix="/v1", tags=["approvals"])

ApprovalStatus = Literal["pending", "approved", "rejected", "cancelled", "all"]
EscalationStatus = Literal["open", "resolved", "all"]
_ID = Path(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    args: dict[str, Any] | None = Field(
        default=None, description="Edited arguments: the tool gets these instead of the model's."
    )
    comment: Annotated[str | None, Field(max_length=2000)] = None


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=2000, description="Told to the model and kept.")]


class ResolveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolution: Annotated[str, Field(min_length=1, max_length=10_000, description="What the person did.")]


def _desk(request: Request) -> ApprovalDesk:
    durable: DurableRuns | None = request.app.state.durable
    if durable is None:
        raise Problem(503, "approvals_unavailable", "Approvals are off", "they need durable runs (storage)")
    return durable.approvals


def _not_found(kind: str, id: str) -> Problem:
    return Problem(404, f"{kind}_not_found", f"Unknown {kind}", f"no {kind} with id {id!r}")


@router.get("/approvals")
async def list_approvals(
    request: Request,
    principal: Annotated[Principal, requires("approvals:decide")],
    status: ApprovalStatus = "pending",
    agent: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Calls waiting for a person (or decided ones), oldest first."""
    desk = _desk(request)
    items = await desk.store.inbox(
        tenant_id=principal.tenant_id, status=None if status == "all" else status, agent=agent, limit=limit
    )
    return {"approvals": items}


@router.get("/approvals/{approval_id}")
async def get_approval(
    request: Request,
    principal: Annotated[Principal, requires("approvals:decide")],
    approval_id: Annotated[str, _ID],
) -> dict[str, Any]:
    found = await _desk(request).store.get(approval_id, tenant_id=principal.tenant_id)
    if found is None:
        raise _not_found("approval", approval_id)
    return found


@router.post("/approvals/{approval_id}/approve")
async def approve(
    request: Request,
    principal: Annotated[Principal, requires("approvals:decide")],
    approval_id: Annotated[str, _ID],
    body: Annotated[ApproveBody, Body()] = ApproveBody(),  # noqa: B008 - pydantic model default
) -> dict[str, Any]:
    """Approve the call (with edited arguments, if given); the run goes on once all are decided."""
    desk = _desk(request)
    found = await desk.store.get(approval_id, tenant_id=principal.tenant_id)
    if found is None:
        raise _not_found("approval", approval_id)
    if body.args is not None:
        _check_args(request, found, body.args)
    return await _decide(request, principal, found, approved=True, reason=body.comment, args=body.args)


@router.post("/approvals/{approval_id}/reject")
async def reject(
    request: Request,
    principal: Annotated[Principal, requires("approvals:decide")],
    approval_id: Annotated[str, _ID],
    body: RejectBody,
) -> dict[str, Any]:
    """Reject the call: it is not run, and the model is told the reason."""
    found = await _desk(request).store.get(approval_id, tenant_id=principal.tenant_id)
    if found is None:
        raise _not_found("approval", approval_id)
    return await _decide(request, principal, found, approved=False, reason=body.reason, args=None)


async def _decide(
    request: Request,
    principal: Principal,
    found: dict[str, Any],
    *,
    approved: bool,
    reason: str | None,
    args: dict[str, Any] | None,
) -> dict[str, Any]:
    wanted = "approved" if approved else "rejected"
    if found["status"] != "pending":
        return _already(found, wanted)
    decided = await _desk(request).decide(
        found["id"],
        tenant_id=principal.tenant_id,
        approved=approved,
        by=principal.label,
        reason=reason,
        args=args,
    )
    if decided is None:
        raise _not_found("approval", found["id"])
    if not decided.changed:
        return _already(decided.approval, wanted)
    await request.app.state.request_hooks.audit(
        request,
        principal,
        f"approval.{wanted}",
        target=found["id"],
        detail={"run_id": found["run_id"], "tool": found["tool"], "edited": args is not None},
    )
    return decided.approval


def _already(stored: dict[str, Any], wanted: str) -> dict[str, Any]:
    if stored["status"] == wanted:
        return stored  # the same decision again (a double click, a retried request)
    raise Problem(
        409,
        "approval_already_decided",
        "Already decided",
        f"this call is already {stored['status']} (by {stored.get('decided_by') or 'nobody'}); "
        "a decision cannot be changed",
    )


def _check_args(request: Request, found: dict[str, Any], args: dict[str, Any]) -> None:
    """Edited arguments must fit the tool's parameters (the tool would refuse them otherwise)."""
    schema = _tool_schema(request, found["agent"], found["tool"])
    if schema is None:
        return
    errors = sorted(Draft202012Validator(schema).iter_errors(args), key=lambda e: list(e.absolute_path))
    if errors:
        details = "; ".join(
            f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors[:5]
        )
        raise Problem(
            422,
            "invalid_arguments",
            "Invalid arguments",
            f"the edited arguments do not fit {found['tool']!r}: {details}",
        )


def _tool_schema(request: Request, agent: str, tool: str) -> dict[str, Any] | None:
    durable: DurableRuns = request.app.state.durable
    try:
        compiled = durable.runner.compiled(agent)
    except Exception:
        return None  # the agent is gone from the live release: the tool checks when it runs
    for toolset in compiled.agent.toolsets:
        tools = getattr(toolset, "tools", None)
        if isinstance(tools, dict) and tool in tools:
            schema = tools[tool].function_schema.json_schema
            return dict(schema) if isinstance(schema, dict) else None
    return None


@router.get("/escalations")
async def list_escalations(
    request: Request,
    principal: Annotated[Principal, requires("approvals:decide")],
    status: EscalationStatus = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Runs handed to a person, oldest first, each with its summary."""
    items = await _desk(request).store.escalations(
        tenant_id=principal.tenant_id, status=None if status == "all" else status, limit=limit
    )
    return {"escalations": items}


@router.get("/escalations/{escalation_id}")
async def get_escalation(
    request: Request,
    principal: Annotated[Principal, requires("approvals:decide")],
    escalation_id: Annotated[str, _ID],
) -> dict[str, Any]:
    found = await _desk(request).store.escalation(escalation_id, tenant_id=principal.tenant_id)
    if found is None:
        raise _not_found("escalation", escalation_id)
    return found


@router.post("/escalations/{escalation_id}/resolve")
async def resolve_escalation(
    request: Request,
    principal: Annotated[Principal, requires("approvals:decide")],
    escalation_id: Annotated[str, _ID],
    body: ResolveBody,
) -> dict[str, Any]:
    """Mark an escalated run as handled by a person, with what they did."""
    resolved = await _desk(request).store.resolve_escalation(
        escalation_id,
        tenant_id=principal.tenant_id,
        by=principal.label,
        resolution=body.resolution,
        now=datetime.now(UTC),
    )
    if resolved is None:
        raise _not_found("escalation", escalation_id)
    if not resolved.changed:
        raise Problem(
            409,
            "escalation_already_resolved",
            "Already resolved",
            f"resolved by {resolved.approval.get('resolved_by')} at {resolved.approval.get('resolved_at')}",
        )
    await request.app.state.request_hooks.audit(
        request,
        principal,
        "escalation.resolved",
        target=escalation_id,
        detail={"run_id": resolved.approval["run_id"]},
    )
    return resolved.approval
