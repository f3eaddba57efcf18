"""Records to rows and back: the only place that knows how a record maps onto the tables.

Conversion checks what the databases would otherwise check differently (string lengths, which
SQLite ignores), so a bad record is refused the same way on both backends, and before it can
poison a whole batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from keel.store.records import JsonValue, ModelUsageRecord, RunRecord, SpanEvent, SpanRecord
from keel.store.tables import ID_LENGTH, NAME_LENGTH, SHORT_LENGTH
from keel.store.types import as_utc

Row = dict[str, Any]

_RUN_LIMITS = {
    "id": ID_LENGTH,
    "agent": NAME_LENGTH,
    "config_hash": NAME_LENGTH,
    "status": SHORT_LENGTH,
    "trigger": SHORT_LENGTH,
    "error_category": SHORT_LENGTH * 2,
    "prompt_version": NAME_LENGTH,
    "session_id": NAME_LENGTH,
    "user_id": NAME_LENGTH,
    "tenant_id": NAME_LENGTH,
    "parent_run_id": ID_LENGTH,
    "trace_id": SHORT_LENGTH * 2,
}
_SPAN_LIMITS = {
    "trace_id": SHORT_LENGTH * 2,
    "span_id": SHORT_LENGTH,
    "parent_span_id": SHORT_LENGTH,
    "run_id": ID_LENGTH,
    "kind": SHORT_LENGTH,
    "status": SHORT_LENGTH,
}


class RecordRejected(ValueError):
    """A record no database will accept as it is (too long a key, not a record, ...)."""


def _check_lengths(row: Mapping[str, Any], limits: Mapping[str, int], what: str) -> None:
    for name, limit in limits.items():
        value = row.get(name)
        if value is not None and len(value) > limit:
            raise RecordRejected(f"{what}.{name} is {len(value)} characters long; at most {limit} are stored")


def _text(value: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL; replace it on both backends so they store the same thing.
    return value.replace("\x00", "\ufffd") if value is not None and "\x00" in value else value


@dataclass
class RowSet:
    """The rows of a batch of records, table by table, ready for executemany."""

    runs: list[Row] = field(default_factory=list)
    run_usage: list[Row] = field(default_factory=list)
    run_tags: list[Row] = field(default_factory=list)
    run_tools: list[Row] = field(default_factory=list)
    spans: list[Row] = field(default_factory=list)

    def add(self, record: RunRecord | SpanRecord) -> None:
        """Add one record's rows; raises RecordRejected (or any conversion error) for a bad record."""
        if isinstance(record, RunRecord):
            run, usage, tags, tools = run_rows(record)
            self.runs.append(run)
            self.run_usage.extend(usage)
            self.run_tags.extend(tags)
            self.run_tools.extend(tools)
        elif isinstance(record, SpanRecord):
            self.spans.append(span_row(record))
        else:
            raise RecordRejected(f"not a RunRecord or SpanRecord: {type(record).__name__}")


def run_rows(record: RunRecord) -> tuple[Row, list[Row], list[Row], list[Row]]:
    """The `runs` row and the `run_usage`, `run_tags` and `run_tools` rows of one run."""
    run: Row = {
        "id": record.id,
        "agent": record.agent,
        "config_hash": record.config_hash,
        "status": record.status,
        "trigger": record.trigger,
        "started_at": as_utc(record.started_at),
        "ended_at": as_utc(record.ended_at),
        "duration_ms": float(record.duration_ms),
        "input": record.input,
        "output": record.output,
        "error_category": record.error_category,
        "error_message": _text(record.error_message),
        "model_requests": record.model_requests,
        "tool_calls": record.tool_calls,
        "retries": record.retries,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "cost_usd": record.cost_usd,
        "tools_called": list(record.tools_called),
        "tool_failures": list(record.tool_failures),
        "prompt_version": record.prompt_version,
        "release": record.release,
        "session_id": record.session_id,
        "user_id": record.user_id,
        "tenant_id": record.tenant_id,
        "parent_run_id": record.parent_run_id,
        "trace_id": record.trace_id,
        "metadata": dict(record.metadata),
    }
    _check_lengths(run, _RUN_LIMITS, "run")
    usage: list[Row] = [
        {
            "run_id": record.id,
            "position": position,
            "model": item.model,
            "requests": item.requests,
            "input_tokens": item.input_tokens,
            "output_tokens": item.output_tokens,
            "cost_usd": item.cost_usd,
        }
        for position, item in enumerate(record.usage)
    ]
    tags = [
        {"run_id": record.id, "position": position, "tag": tag} for position, tag in enumerate(record.tags)
    ]
    for row in usage:
        _check_lengths(row, {"model": NAME_LENGTH}, "usage")
    for row in tags:
        _check_lengths(row, {"tag": NAME_LENGTH}, "tags")
    return run, usage, tags, _tool_rows(record.id, record.tools_called, record.tool_failures)


def _tool_rows(run_id: str, called: Iterable[str], failed: Iterable[str]) -> list[Row]:
    calls = Counter(called)
    failures = Counter(failed)
    rows = []
    for tool in sorted(calls.keys() | failures.keys()):
        if len(tool) > NAME_LENGTH:
            raise RecordRejected(
                f"tool name is {len(tool)} characters long; at most {NAME_LENGTH} are stored"
            )
        # A failed call is a call, even if the runtime listed it only among the failures.
        rows.append(
            {
                "run_id": run_id,
                "tool": tool,
                "calls": max(calls[tool], failures[tool]),
                "failures": failures[tool],
            }
        )
    return rows


def span_row(record: SpanRecord) -> Row:
    """The `spans` row of one span; events become a JSON list with ISO 8601 times."""
    row: Row = {
        "trace_id": record.trace_id,
        "span_id": record.span_id,
        "parent_span_id": record.parent_span_id,
        "run_id": record.run_id,
        "name": _text(record.name),
        "kind": record.kind,
        "start_time": as_utc(record.start_time),
        "end_time": as_utc(record.end_time),
        "status": record.status,
        "status_message": _text(record.status_message),
        "attributes": dict(record.attributes),
        "events": [
            {"name": event.name, "time": as_utc(event.time).isoformat(), "attributes": dict(event.attributes)}
            for event in record.events
        ],
    }
    _check_lengths(row, _SPAN_LIMITS, "span")
    return row


def run_from_row(
    row: Mapping[str, Any], usage: Sequence[Mapping[str, Any]], tags: Sequence[str]
) -> RunRecord:
    """A RunRecord from its `runs` row, its `run_usage` rows (in position order) and its tags."""
    return RunRecord(
        id=row["id"],
        agent=row["agent"],
        config_hash=row["config_hash"],
        status=row["status"],
        trigger=row["trigger"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        duration_ms=row["duration_ms"],
        input=row["input"],
        output=row["output"],
        error_category=row["error_category"],
        error_message=row["error_message"],
        model_requests=row["model_requests"],
        tool_calls=row["tool_calls"],
        retries=row["retries"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cost_usd=row["cost_usd"],
        usage=tuple(
            ModelUsageRecord(
                model=item["model"],
                requests=item["requests"],
                input_tokens=item["input_tokens"],
                output_tokens=item["output_tokens"],
                cost_usd=item["cost_usd"],
            )
            for item in usage
        ),
        tool_failures=tuple(row["tool_failures"]),
        tools_called=tuple(row["tools_called"]),
        prompt_version=row["prompt_version"],
        release=row.get("release"),
        session_id=row["session_id"],
        user_id=row["user_id"],
        tenant_id=row["tenant_id"],
        parent_run_id=row["parent_run_id"],
        trace_id=row["trace_id"],
        tags=tuple(tags),
        metadata=dict(row["metadata"] or {}),
    )


def _event(raw: Mapping[str, JsonValue]) -> SpanEvent:
    return SpanEvent(
        name=raw["name"],
        time=as_utc(datetime.fromisoformat(raw["time"])),
        attributes=dict(raw.get("attributes") or {}),
    )


def span_from_row(row: Mapping[Any, Any]) -> SpanRecord:
    """A SpanRecord from its `spans` row."""
    return SpanRecord(
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        parent_span_id=row["parent_span_id"],
        name=row["name"],
        kind=row["kind"],
        start_time=row["start_time"],
        end_time=row["end_time"],
        status=row["status"],
        status_message=row["status_message"],
        run_id=row["run_id"],
        attributes=dict(row["attributes"] or {}),
        events=tuple(_event(raw) for raw in row["events"] or ()),
    )
