"""Run history records in the shape of the API's run JSON (money as decimal strings)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic_core import to_jsonable_python

from keel.runtime.result import money_text
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
