"""Records for the store tests, with every field settable and sensible defaults."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from keel.store.batch import insert_records
from keel.store.engine import sync_engine
from keel.store.records import ModelUsageRecord, RunRecord, SpanEvent, SpanRecord

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
_ids = itertools.count(1)


def make_run(
    run_id: str | None = None,
    *,
    agent: str = "inbox",
    started_at: datetime = T0,
    duration_ms: float = 100.0,
    status: str = "succeeded",
    **fields: Any,
) -> RunRecord:
    """A run; `fields` overrides any other RunRecord field."""
    values: dict[str, Any] = {
        "id": run_id or f"run-{next(_ids):06d}",
        "agent": agent,
        "config_hash": "cfg-1",
        "status": status,
        "trigger": "test",
        "started_at": started_at,
        "ended_at": started_at + timedelta(milliseconds=duration_ms),
        "duration_ms": duration_ms,
        "input": {"text": "hello"},
        "output": {"answer": "hi"},
    }
    values.update(fields)
    return RunRecord(**values)


def usage(
    model: str, requests: int = 1, tokens: tuple[int, int] = (10, 5), cost: str | None = "0.001"
) -> ModelUsageRecord:
    return ModelUsageRecord(
        model=model,
        requests=requests,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cost_usd=None if cost is None else Decimal(cost),
    )


def make_span(
    trace_id: str,
    span_id: str,
    *,
    run_id: str | None = None,
    parent_span_id: str | None = None,
    start: datetime = T0,
    name: str = "invoke_agent inbox",
    **fields: Any,
) -> SpanRecord:
    values: dict[str, Any] = {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent_span_id,
        "name": name,
        "kind": "internal",
        "start_time": start,
        "end_time": start + timedelta(milliseconds=5),
        "status": "ok",
        "status_message": None,
        "run_id": run_id,
    }
    values.update(fields)
    return SpanRecord(**values)


def event(name: str, at: datetime, **attributes: Any) -> SpanEvent:
    return SpanEvent(name=name, time=at, attributes=attributes)


def seed(url: str, records: Iterable[RunRecord | SpanRecord]) -> None:
    """Insert records directly, in one transaction (the writer has its own tests)."""
    engine = sync_engine(url)
    try:
        with engine.begin() as connection:
            insert_records(connection, records)
    finally:
        engine.dispose()


def count_rows(url: str, table: str) -> int:
    engine = sync_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds (never a timing assert)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)
