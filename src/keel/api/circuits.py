"""The circuit breakers of this process over HTTP: `GET /v1/circuits` (scope `admin`).

Breakers belong to the serving process's `Runner` (`keel.runtime.circuit`): each model (by label)
and tool (by name) whose agent has `circuit_breaker` on, with its state and counters. They hold
no tenant's data: a provider's health is the same for every tenant's runs.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request

from keel.api.security import requires
from keel.gateway.principal import Principal
from keel.runtime.runner import Runner

router = APIRouter(prefix="/v1", tags=["circuits"])


@router.get("/circuits")
async def list_circuits(
    request: Request, principal: Annotated[Principal, requires("admin")]
) -> dict[str, Any]:
    """Every circuit breaker of this process: models first, then tools, by name."""
    runner: Runner = request.app.state.runner
    return {"circuits": [snapshot.as_dict() for snapshot in runner.circuits.snapshot()]}
