"""A run's events, stored durably so any API process can stream them, and resume a stream.

Each durable run writes its events to its DBOS stream `events`: status changes (`running`, then
the final status with the result), tool calls (started, finished), model retries and fallbacks,
budget thresholds crossed (`budget_threshold`), and, for streaming runs, text deltas (batched every 50 ms). An event's id is its offset in the
stream, so an SSE client that reconnects with `Last-Event-ID: N` continues at N + 1, from any API
process.

Events are written only from inside checkpointed steps, or from workflow code at fixed points of
the run: DBOS numbers every write made in workflow code, and replay must find them in the same
order. An event raised elsewhere in workflow code is dropped rather than risk a replay mismatch.
A step re-executed after a crash writes its events again: each tool event carries its
`call_id`, so a client can ignore a repeat.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from dbos import DBOS
from dbos._error import DBOSStreamTimeoutError

from keel.runtime.events import (
    BudgetThreshold,
    ModelFallback,
    ModelRetrying,
    RunEvent,
    TextDelta,
    ToolFinished,
    ToolStarted,
)
from keel.runtime.result import RunResult

if TYPE_CHECKING:
    from keel.durable.service import DurableRuns

log = logging.getLogger("keel.durable")

STREAM = "events"
KEEPALIVE_S = 15.0
_TYPES: dict[type[Any], str] = {
    TextDelta: "text",
    ModelRetrying: "model_retrying",
    ModelFallback: "model_fallback",
    ToolStarted: "tool_started",
    ToolFinished: "tool_finished",
    BudgetThreshold: "budget_threshold",
}


def status_event(status: str, result: RunResult | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "status", "status": status}
    if result is not None:
        event["error"] = (
            None
            if result.error is None
            else {"category": result.error.category.value, "message": result.error.message}
        )
        event["output"] = result.output
    return event


def event_dict(event: RunEvent) -> dict[str, Any]:
    data = asdict(event)
    for key, value in list(data.items()):
        if hasattr(value, "value"):  # enums
            data[key] = value.value
    return {"type": _TYPES[type(event)], **data}


class EventSink:
    """The `on_event` handler of a durable run."""

    def __init__(self, *, stream: bool) -> None:
        self.stream = stream

    async def emit(self, event: RunEvent) -> None:
        if DBOS.step_id is None:
            return  # workflow code outside a fixed point: see the module docstring
        if isinstance(event, TextDelta) and not self.stream:
            return
        await self.write(event_dict(event))

    async def write(self, value: dict[str, Any]) -> None:
        try:
            await DBOS.write_stream_async(STREAM, value)
        except Exception as exc:  # an event lost must not fail the run
            log.warning("could not store an event of run %s: %s", DBOS.workflow_id, exc)


async def read_events(
    service: DurableRuns, run_id: str, after: int = -1
) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """(offset, event) from `after + 1` until the run ends. Keep-alives come as (-1, {}) every
    `KEEPALIVE_S` without events. If the run ended without a final status event (cancelled, or
    failed in Keel itself), one is made from its status, so every stream ends with one."""
    offset = after + 1
    final = False
    while not final:
        try:
            async for value in DBOS.read_stream_async(
                run_id, STREAM, offset=offset, polling_interval_sec=0.1, timeout_seconds=KEEPALIVE_S
            ):
                event = value if isinstance(value, dict) else {"type": "unknown", "value": value}
                yield offset, event
                offset += 1
                if event.get("type") == "status" and event.get("status") not in ("queued", "running"):
                    return
            final = True
        except DBOSStreamTimeoutError:
            yield -1, {}
    view = await service.get(run_id)
    if view is not None:
        yield (
            offset,
            {
                "type": "status",
                "status": view["status"],
                "error": view.get("error"),
                "output": view.get("output"),
            },
        )
