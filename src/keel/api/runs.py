"""The runs API under /v1: create (accept, queue, optionally wait), get, list, cancel, events
(server-sent, resumable), callback attempts, and queue statistics. Routes stay thin: the work is
in `keel.durable.DurableRuns`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from keel.api.problems import Problem
from keel.api.security import RequestHooks, requires
from keel.durable.callbacks import CallbackRefused
from keel.durable.scoped import TenantRuns
from keel.durable.service import TERMINAL, DurableRuns, Submission, SubmitRefused
from keel.gateway.principal import Principal
from keel.store.repository import MAX_PAGE

router = APIRouter(prefix="/v1", tags=["runs"])


class CreateRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Annotated[
        str | dict[str, Any] | list[Any],
        Field(description="Text, or JSON matching the agent's input schema."),
    ]
    session_id: Annotated[str | None, Field(max_length=200, description="One active run per session.")] = None
    user_id: Annotated[str | None, Field(max_length=200)] = None
    metadata: dict[str, Any] = {}
    tags: Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=20)] = []
    wait: Annotated[
        float,
        Field(
            ge=0,
            le=3600,
            description="Seconds to wait for the result: 200 with the run if it ends in time, else 202.",
        ),
    ] = 0
    callback_url: Annotated[
        str | None, Field(max_length=2000, description="POST the finished run here (signed, retried).")
    ] = None
    priority: Annotated[int | None, Field(ge=1, le=1_000_000, description="Lower runs first.")] = None
    stream: Annotated[bool, Field(description="Stream model text deltas as events.")] = False
    variables: Annotated[
        dict[str, Any],
        Field(description="Values of the agent's prompt variables (agents whose instructions are a prompt)."),
    ] = {}


def _durable(request: Request) -> DurableRuns:
    durable: DurableRuns | None = request.app.state.durable
    if durable is None:
        raise Problem(
            503, "durable_runs_unavailable", "Durable runs are off", "storage is disabled for this project"
        )
    return durable


def _runs(request: Request, principal: Principal) -> TenantRuns:
    """The caller's tenant's runs: every route reads and writes runs through this."""
    return TenantRuns(_durable(request), principal.tenant_id)


def _not_found(run_id: str) -> Problem:
    return Problem(404, "run_not_found", "Unknown run", f"no run with id {run_id!r}")


def user_of(principal: Principal, requested: str | None) -> str | None:
    """The run's user: a user principal is always its own user; a service may name its end user."""
    if principal.kind == "user":
        if requested is not None and requested != principal.id:
            raise Problem(
                403, "user_mismatch", "Forbidden", "user_id: a user may only submit runs as themselves"
            )
        return principal.id
    return requested


def _urls(run_id: str) -> dict[str, str]:
    base = f"/v1/runs/{run_id}"
    return {
        "self": base,
        "events": f"{base}/events",
        "cancel": f"{base}/cancel",
        "callbacks": f"{base}/callbacks",
    }


@router.post(
    "/agents/{agent}/runs",
    status_code=202,
    responses={
        200: {"description": "The run ended within `wait` seconds."},
        202: {"description": "Accepted."},
    },
)
async def create_run(
    request: Request,
    principal: Annotated[Principal, requires("runs:write")],
    agent: str,
    body: Annotated[CreateRun, Body()],
    idempotency_key: Annotated[str | None, Header(max_length=255, alias="Idempotency-Key")] = None,
) -> Response:
    durable = _durable(request)
    runs = _runs(request, principal)
    if agent not in durable.project.agents:
        raise Problem(404, "agent_not_found", "Unknown agent", f"no agent named {agent!r}")
    if body.wait > durable.settings.max_wait:
        raise Problem(
            422,
            "invalid_request",
            "Invalid request",
            f"wait: at most {durable.settings.max_wait:g} seconds here",
        )
    hooks: RequestHooks = request.app.state.request_hooks
    user_id = user_of(principal, body.user_id)
    limits = await hooks.take_run_slot(principal, agent, user_id)
    submission = Submission(
        agent=agent,
        input=body.input,
        session_id=body.session_id,
        user_id=user_id,
        tenant_id=principal.tenant_id,
        metadata=body.metadata,
        tags=tuple(body.tags),
        priority=body.priority,
        callback_url=body.callback_url,
        stream=body.stream,
        idempotency_key=idempotency_key,
        limits=limits,
        variables=body.variables,
        principal=principal.label,
        roles=tuple(principal.roles),
    )
    try:
        submitted = await runs.submit(submission, hold=body.wait > 0)
    except CallbackRefused as exc:
        await hooks.give_back(limits)
        raise Problem(
            422, "callback_url_not_allowed", "Callback URL not allowed", exc.message, field="callback_url"
        ) from None
    except SubmitRefused as exc:
        await hooks.give_back(limits)
        raise Problem(exc.status, exc.code, "Run not accepted", exc.message) from None
    except BaseException:
        await hooks.give_back(limits)
        raise
    if not submitted.created:
        await hooks.give_back(limits)  # the run made earlier with this key holds its own slot
    view = await runs.wait(submitted.run_id, body.wait)
    headers = {"Location": f"/v1/runs/{submitted.run_id}"}
    if not submitted.created:
        headers["Idempotent-Replayed"] = "true"
    if view is not None and view["status"] in TERMINAL:
        if view.get("error") and view["error"].get("category") == "bad_input":
            raise Problem(
                422, "bad_input", "Input does not match the agent's input schema", view["error"]["message"]
            )
        return JSONResponse({**view, "urls": _urls(submitted.run_id)}, status_code=200, headers=headers)
    status = view["status"] if view is not None else "queued"
    accepted: dict[str, Any] = {"run_id": submitted.run_id, "status": status, "urls": _urls(submitted.run_id)}
    if view is not None and status == "waiting_approval":  # what it waits for, to decide at once
        accepted["approvals"] = view.get("approvals", [])
    return JSONResponse(accepted, status_code=202, headers=headers)


@router.get("/runs/{run_id}")
async def get_run(
    request: Request,
    principal: Annotated[Principal, requires("runs:read")],
    run_id: Annotated[str, Field(max_length=128)],
) -> dict[str, Any]:
    view = await _runs(request, principal).get(run_id)
    if view is None:
        raise _not_found(run_id)
    return {**view, "urls": _urls(run_id)}


@router.get("/runs")
async def list_runs(
    request: Request,
    principal: Annotated[Principal, requires("runs:read")],
    agent: str | None = None,
    status: str | None = None,
    session_id: str | None = None,
    user_id: str | None = None,
    tag: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Ended runs from the run history, newest first (pass `next_cursor` back for the next page);
    `status=queued`, `status=running` or `status=waiting_approval` lists the runs not ended yet
    instead (oldest first)."""
    runs = _runs(request, principal)
    if status == "waiting_approval":  # not in the history until they end
        desk = runs.durable.approvals
        stops = await desk.store.waiting_runs(tenant_id=principal.tenant_id, agent=agent, limit=limit)
        views = []
        for stop in stops:
            view = dict(stop["view"])
            view["approvals"] = await desk.store.approvals_of(stop["run_id"], stop["pause"])
            views.append(view)
        return {"runs": views, "next_cursor": None}
    if status in ("queued", "running"):
        agents = [agent] if agent else list(runs.durable.project.agents)
        views = await runs.active(agents, status, limit, session_id)
        return {"runs": views, "next_cursor": None}
    from keel.durable.views import record_view
    from keel.errors import UsageError

    try:
        page = await runs.history(
            agent=agent,
            status=status,
            session_id=session_id,
            user_id=user_id,
            tag=tag,
            limit=limit,
            cursor=cursor,
        )
    except UsageError as exc:
        raise Problem(422, "invalid_request", "Invalid request", str(exc)) from None
    return {"runs": [record_view(r) for r in page.runs], "next_cursor": page.next_cursor}


@router.post("/runs/{run_id}/cancel")
async def cancel_run(
    request: Request, principal: Annotated[Principal, requires("runs:write")], run_id: str
) -> dict[str, Any]:
    view = await _runs(request, principal).cancel(run_id)
    if view is None:
        raise _not_found(run_id)
    return {**view, "urls": _urls(run_id)}


@router.get("/runs/{run_id}/events", response_class=StreamingResponse)
async def run_events(
    request: Request,
    principal: Annotated[Principal, requires("runs:read")],
    run_id: str,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after: Annotated[int | None, Query(ge=-1, description="Resume after this event id.")] = None,
) -> StreamingResponse:
    """Server-sent events: `status`, `tool_started`, `tool_finished`, `model_retrying`,
    `model_fallback`, `budget_threshold` and (streaming runs) `text`. Each event's id is its position; reconnect with
    `Last-Event-ID` to continue after it. The stream ends after the final `status` event."""
    start = after if after is not None else -1
    if last_event_id is not None:
        try:
            start = int(last_event_id)
        except ValueError:
            raise Problem(
                422, "invalid_request", "Invalid request", "Last-Event-ID must be an event id"
            ) from None
    events = await _runs(request, principal).events(run_id, start)
    if events is None:
        raise _not_found(run_id)

    async def stream() -> AsyncIterator[bytes]:
        yield b"retry: 1000\n\n"
        async for offset, event in events:
            if offset < 0:
                yield b": keep-alive\n\n"
                continue
            data = json.dumps(event, ensure_ascii=False, default=str)
            yield f"id: {offset}\nevent: {event.get('type', 'message')}\ndata: {data}\n\n".encode()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/runs/{run_id}/callbacks")
async def callback_attempts(
    request: Request, principal: Annotated[Principal, requires("runs:read")], run_id: str
) -> dict[str, Any]:
    """Every delivery attempt of the run's callback, in order."""
    attempts = await _runs(request, principal).callback_attempts(run_id)
    if attempts is None:
        raise _not_found(run_id)
    return {
        "run_id": run_id,
        "attempts": [
            {
                "attempt": a.attempt,
                "url": a.url,
                "attempted_at": a.attempted_at.isoformat(),
                "duration_ms": a.duration_ms,
                "status_code": a.status_code,
                "outcome": a.outcome,
                "error": a.error,
                "next_attempt_at": a.next_attempt_at.isoformat() if a.next_attempt_at else None,
            }
            for a in attempts
        ],
    }


@router.get("/queues", tags=["queues"])
async def queues(request: Request, principal: Annotated[Principal, requires("admin")]) -> dict[str, Any]:
    """Per agent: runs queued, waiting for their session, running, the oldest queued run's age,
    and queue wait (p50, p95) over the last five minutes, over all tenants (hence `admin`)."""
    return {"queues": await _durable(request).queue_stats()}
