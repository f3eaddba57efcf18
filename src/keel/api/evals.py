"""Feedback on runs and the online evaluation time series, under /v1 (see docs/evals.md).

- `POST /v1/runs/{run_id}/feedback` (`runs:write`): a signal about a run of the caller's tenant,
  explicit (`thumbs_up`, `thumbs_down`, `correction`) or implicit (`accepted`, `edited`,
  `rejected`: e.g. a downstream system refused the write the run proposed). 201 with the record.
- `GET /v1/runs/{run_id}/feedback` (`runs:read`): the run's feedback and its online scores.
- `GET /v1/evals/online` (`runs:read`): per agent and prompt version, per hour or day, runs scored,
  each evaluator's count, mean score and pass rate, and feedback counts: canaries side by side.

The run is looked up through `TenantRuns` before anything else (the body included): another
tenant's run answers 404 `run_not_found`, exactly like a run that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from keel.api.problems import Problem
from keel.api.security import requires
from keel.durable.scoped import TenantRuns
from keel.durable.service import DurableRuns
from keel.evals.online import OnlineScorer, describe
from keel.evals.online_store import FeedbackKind, OnlineEvalStore
from keel.gateway.auth import Forbidden, Gateway
from keel.gateway.principal import Principal
from keel.store.engine import dumps_json

router = APIRouter(prefix="/v1", tags=["evals"])

MAX_CORRECTION_BYTES = 65_536
CORRECTION_KINDS = ("correction", "edited")


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Annotated[
        FeedbackKind,
        Field(
            description="thumbs_up, thumbs_down or correction (explicit: a person said so); accepted, "
            "edited or rejected (implicit: what happened to the result, e.g. a downstream system "
            "rejected a write)."
        ),
    ]
    value: Annotated[
        float | None,
        Field(
            allow_inf_nan=False, ge=-1e9, le=1e9, description="A number of yours: a rating, a share edited."
        ),
    ] = None
    comment: Annotated[str | None, Field(max_length=10_000)] = None
    correction: Annotated[
        Any,
        Field(
            description="What the output should have been (kind correction, required; or edited): "
            f"any JSON, at most {MAX_CORRECTION_BYTES} bytes."
        ),
    ] = None


@dataclass(frozen=True)
class OwnedRun:
    principal: Principal
    run_id: str
    view: dict[str, Any]


def _durable(request: Request) -> DurableRuns:
    durable: DurableRuns | None = request.app.state.durable
    if durable is None:
        raise Problem(503, "evals_unavailable", "Evaluations are off", "they need storage (storage.enabled)")
    return durable


def _store(request: Request) -> OnlineEvalStore:
    scorer: OnlineScorer | None = getattr(request.app.state, "online_evals", None)
    if scorer is None:
        raise Problem(503, "evals_unavailable", "Evaluations are off", "they need storage (storage.enabled)")
    return scorer.store


async def _owned(request: Request, principal: Principal, run_id: str) -> OwnedRun:
    view = await TenantRuns(_durable(request), principal.tenant_id).get(run_id)
    if view is None:
        raise Problem(404, "run_not_found", "Unknown run", f"no run with id {run_id!r}")
    return OwnedRun(principal, run_id, view)


# Dependencies (module level: their annotations are resolved in this module's namespace): the
# caller, with the scope, and the run in the path if it is the caller's tenant's; 404
# `run_not_found` otherwise, before the request's body is looked at.


async def _run_to_write(
    request: Request,
    principal: Annotated[Principal, requires("runs:write")],
    run_id: Annotated[str, Path(max_length=128)],
) -> OwnedRun:
    return await _owned(request, principal, run_id)


async def _run_to_read(
    request: Request,
    principal: Annotated[Principal, requires("runs:read")],
    run_id: Annotated[str, Path(max_length=128)],
) -> OwnedRun:
    return await _owned(request, principal, run_id)


@router.post("/runs/{run_id}/feedback", status_code=201)
async def add_feedback(
    request: Request,
    run: Annotated[OwnedRun, Depends(_run_to_write)],
    body: Annotated[FeedbackBody, Body()],
) -> dict[str, Any]:
    """Record feedback on a run: explicit (thumbs, a correction) or implicit (accepted, edited, rejected)."""
    if body.kind == "correction" and body.correction is None:
        raise _invalid("correction", "kind correction needs `correction`: what the output should have been")
    if body.correction is not None:
        if body.kind not in CORRECTION_KINDS:
            raise _invalid("correction", f"`correction` goes with kind {' or '.join(CORRECTION_KINDS)}")
        if len(dumps_json(body.correction).encode("utf-8")) > MAX_CORRECTION_BYTES:
            raise _invalid("correction", f"at most {MAX_CORRECTION_BYTES} bytes of JSON")
    feedback = await _store(request).add_feedback(
        run.run_id,
        tenant_id=run.principal.tenant_id,
        kind=body.kind,
        created_by=run.principal.label,
        value=body.value,
        comment=body.comment,
        correction=body.correction,
    )
    return feedback.as_dict()


@router.get("/runs/{run_id}/feedback")
async def list_feedback(request: Request, run: Annotated[OwnedRun, Depends(_run_to_read)]) -> dict[str, Any]:
    """The run's feedback (oldest first) and its online scores (if it was sampled)."""
    store = _store(request)
    tenant = run.principal.tenant_id
    return {
        "run_id": run.run_id,
        "feedback": [f.as_dict() for f in await store.feedback(run.run_id, tenant_id=tenant)],
        "scores": await store.scores(run.run_id, tenant_id=tenant),
    }


@router.get("/evals/online")
async def online_series(
    request: Request,
    principal: Annotated[Principal, requires("runs:read")],
    agent: Annotated[str | None, Query(max_length=64, description="One agent; default: every agent.")] = None,
    hours: Annotated[float, Query(gt=0, le=24 * 90, description="The window: the last N hours.")] = 24,
    bucket: Annotated[Literal["hour", "day"], Query(description="The size of a time bucket (UTC).")] = "hour",
) -> dict[str, Any]:
    """Online scores and feedback of the caller's tenant's runs, per agent, prompt version and
    time bucket (and totals over the window): to compare versions, e.g. a canary with production."""
    gateway: Gateway = request.app.state.gateway
    durable = _durable(request)
    if agent is not None:
        if agent not in durable.project.agents:
            raise Problem(404, "agent_not_found", "Unknown agent", f"no agent named {agent!r}")
        try:
            gateway.check_agent(principal, agent)
        except Forbidden as exc:
            raise Problem(403, exc.code, "Forbidden", str(exc)) from None
    since = datetime.now(UTC) - timedelta(hours=hours)
    series = await _store(request).series(
        tenant_id=principal.tenant_id, since=since, bucket=bucket, agent=agent
    )
    return {
        "since": since.isoformat(),
        "hours": hours,
        "bucket": bucket,
        "agent": agent,
        # What the live release samples, per agent the caller may run.
        "sampling": {
            name: describe(spec.config.evals.online)
            for name, spec in durable.project.agents.items()
            if agent in (None, name) and gateway.may_run(principal, name)
        },
        "series": [s for s in series if gateway.may_run(principal, s["agent"])],
    }


def _invalid(field: str, message: str) -> Problem:
    return Problem(
        422,
        "invalid_request",
        "Invalid request",
        f"{field}: {message}",
        errors=[{"field": field, "message": message}],
    )
