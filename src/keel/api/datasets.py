"""A production run becomes an evaluation case in one call: `POST /v1/runs/{run_id}/case`.

Scope `evals:run`. The run must be the caller's tenant's (another tenant's answers 404, as a run
that does not exist). The case's expected output is, in order: `expected` from the body, the run's
latest correction (feedback of kind `correction`, unless `use_correction` is false), or what the run
answered. The case is appended to the caller's tenant's stored dataset `dataset` (made if missing),
as a new version; `keel eval db:NAME` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from keel.api.problems import Problem
from keel.api.security import requires
from keel.evals.datasets import DatasetStore, case_from_run
from keel.evals.online import OnlineScorer
from keel.evals.online_store import OnlineEvalStore
from keel.gateway.principal import Principal
from keel.runtime.runner import Runner
from keel.store import RunRecord, RunStore

router = APIRouter(prefix="/v1/runs", tags=["evals"])


class MakeCase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: Annotated[
        str, Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$", description="The stored dataset to add to.")
    ]
    expected: Annotated[
        Any, Field(description="The expected output; default: the correction, else the output.")
    ] = None
    use_correction: bool = True
    tags: Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=20)] = []


@dataclass(frozen=True)
class RecordedRun:
    principal: Principal
    record: RunRecord
    database_url: str


async def _recorded_run(
    request: Request,
    principal: Annotated[Principal, requires("evals:run")],
    run_id: Annotated[str, Path(max_length=128)],
) -> RecordedRun:
    """The caller's tenant's recorded run, before the body is looked at: another tenant's run answers
    404 `run_not_found`, exactly like a missing one, whatever the body."""
    runner: Runner = request.app.state.runner
    if runner.database_url is None:
        raise Problem(503, "evals_unavailable", "Evaluations are off", "stored datasets need storage")
    async with RunStore(runner.database_url) as runs:
        record = await runs.get_run(run_id, tenant_id=principal.tenant_id)
    if record is None:
        raise Problem(404, "run_not_found", "Run not found", f"no run with id {run_id!r} in the run history")
    return RecordedRun(principal, record, runner.database_url)


@router.post("/{run_id}/case", status_code=201)
async def run_to_case(
    request: Request,
    run: Annotated[RecordedRun, Depends(_recorded_run)],
    body: Annotated[MakeCase, Body()],
) -> dict[str, Any]:
    principal, record, url = run.principal, run.record, run.database_url
    run_id = record.id
    expected = body.expected
    if expected is None and body.use_correction:
        expected = await _correction(request, url, run_id, principal.tenant_id)
    case = case_from_run(record, expected=expected, tags=body.tags)
    async with DatasetStore(url) as store:
        version, case_id = await store.add_case(
            body.dataset, case, actor=principal.label, tenant_id=principal.tenant_id, agent=record.agent
        )
    return {"dataset": body.dataset, "version": version, "case_id": case_id, "case": {**case, "id": case_id}}


async def _correction(request: Request, url: str, run_id: str, tenant_id: str) -> Any:
    """The run's latest correction (feedback of kind `correction`), or None; read through the
    server's online-evaluation store when it has one."""
    scorer: OnlineScorer | None = getattr(request.app.state, "online_evals", None)
    if scorer is not None:
        history = await scorer.store.feedback(run_id, tenant_id=tenant_id)
    else:
        async with OnlineEvalStore(url) as store:
            history = await store.feedback(run_id, tenant_id=tenant_id)
    corrections = [item.correction for item in history if item.kind == "correction"]
    return corrections[-1] if corrections else None
