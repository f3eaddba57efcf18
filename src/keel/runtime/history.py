"""A finished run as the record the store keeps (`keel.store.records.RunRecord`)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from keel.runtime.result import RunResult
from keel.store.records import ModelUsageRecord, RunRecord


def run_record(result: RunResult) -> RunRecord:
    return RunRecord(
        id=result.run_id,
        agent=result.agent,
        config_hash=result.config_hash,
        status=result.status.value,
        trigger=result.trigger,
        started_at=result.started_at,
        ended_at=result.ended_at,
        duration_ms=result.duration_ms,
        input=_json_safe(result.input),
        output=_json_safe(result.output),
        error_category=result.error.category.value if result.error else None,
        error_message=result.error.message if result.error else None,
        model_requests=result.model_requests,
        tool_calls=len(result.tool_calls),
        retries=result.retries,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        cost_usd=result.cost_usd,
        usage=tuple(
            ModelUsageRecord(model, u.requests, u.input_tokens, u.output_tokens, u.cost_usd)
            for model, u in result.usage.items()
        ),
        tools_called=tuple(call.name for call in result.tool_calls),
        tool_failures=tuple(call.name for call in result.tool_calls if call.status in ("error", "timeout")),
        prompt_version=result.prompt_version,
        release=result.release,
        session_id=result.session_id,
        user_id=result.user_id,
        tenant_id=result.tenant_id,
        parent_run_id=result.parent_run_id,
        trace_id=result.trace_id,
        tags=result.tags,
        metadata=_json_safe(result.metadata),
    )


def _json_safe(value: Any) -> Any:
    """Plain JSON data: what JSON cannot hold (dataclasses, dates, sets) becomes its JSON rendering."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.loads(json.dumps(value, default=str))
