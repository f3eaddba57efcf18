"""Run history records in the shape of the API's run JSON (money as decimal strings), and the
result recorded for a run cancelled before it started."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_jsonable_python

from keel.errors import ErrorCategory
from keel.runtime.result import RunError, RunResult, RunStatus, money_text
from keel.store import RunRecord


def record_view(record: RunRecord) -> dict[str, Any]:
    data = asdict(record)
    data["run_id"] = data.pop("id")
    error = None
    if record.error_category is not None:
        error = {"category": record.error_category, "message": record.error_message or ""}
    data.pop("error_category")
    data.pop("error_message")
    data["error"] = error
    data["cost_usd"] = money_text(record.cost_usd)
    data["usage"] = {u.model: {**asdict(u), "cost_usd": money_text(u.cost_usd)} for u in record.usage}
    result: dict[str, Any] = to_jsonable_python(data)
    return result


def cancelled_result(run_id: str, request: dict[str, Any]) -> RunResult:
    now = datetime.now(UTC)
    return RunResult(
        run_id=run_id,
        agent=str(request.get("agent", "")),
        status=RunStatus.CANCELLED,
        output=None,
        error=RunError(ErrorCategory.CANCELLED, "the run was cancelled before it started"),
        started_at=now,
        ended_at=now,
        input=request.get("input"),
        trigger=str(request.get("trigger", "api")),
        session_id=request.get("session_id"),
        user_id=request.get("user_id"),
        tenant_id=request.get("tenant_id"),
        tags=tuple(request.get("tags", ())),
        metadata=dict(request.get("metadata") or {}),
    )
