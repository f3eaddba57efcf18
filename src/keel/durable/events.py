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

Runs accepted since `"events": 3` (keel.durable.event_log.EVENTS_V3) write the events of their
steps to Keel's `run_events` table instead, in batches, each stored before its step completes;
only what workflow code writes (`waiting_approval`) still goes to the DBOS stream. Readers number
the table's events after `running` and the stream's after those (`_read_segment_v3`), so ids and
resuming are as before.

Status events that the workflow's own status already says are not written (runs submitted with
`"events": EVENTS_V2` in their request; each stream write is a database transaction): readers
make the `running` event (id 0 of each stretch) when the workflow has left the queue, and the
final status event from the run's status once the workflow has ended; stream offset k is then
event id k + 1. A `waiting_approval` event is still written (it carries the calls waiting). Runs
accepted before that change wrote both events and keep their ids (offset k is id k).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from dbos import DBOS
from dbos._error import DBOSStreamTimeoutError

from keel.durable.event_log import EVENTS_V3, PAGE
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
    from keel.durable.event_log import EventLog
    from keel.durable.service import DurableRuns

log = logging.getLogger("keel.durable")

STREAM = "events"
KEEPALIVE_S = 15.0
EVENTS_V2 = 2
"""The request's `events` value for runs whose `running` and final status events readers make."""
START_POLL_S = 0.1
EVENT_POLL_S = 0.1
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
    """The `on_event` handler of a durable run. With `log` (runs accepted since EVENTS_V3), the
    events of its steps go to Keel's `run_events` table instead of the DBOS stream (see
    `keel.durable.event_log`); `write` (workflow code: `waiting_approval`) still writes the stream."""

    def __init__(self, *, stream: bool, log: EventLog | None = None) -> None:
        self.stream = stream
        self.log = log

    async def emit(self, event: RunEvent) -> None:
        if DBOS.step_id is None:
            return  # workflow code outside a fixed point: see the module docstring
        if isinstance(event, TextDelta) and not self.stream:
            return
        if self.log is None:
            await self.write(event_dict(event))
            return
        workflow = DBOS.workflow_id
        assert workflow is not None
        if isinstance(event, ToolStarted):  # its step's `tool_finished` waits for it, in order
            self.log.add(workflow, event_dict(event), soon=True)
            return
        await self.log.add(workflow, event_dict(event))

    async def write(self, value: dict[str, Any]) -> None:
        try:
            await DBOS.write_stream_async(STREAM, value)
        except Exception as exc:  # an event lost must not fail the run
            log.warning("could not store an event of run %s: %s", DBOS.workflow_id, exc)


SEGMENT = 1_000_000
"""Event ids of a run that went on after approvals: stretch k (its k-th continuation) numbers its
events from k * SEGMENT, so ids keep growing across stretches and `Last-Event-ID` resumes anywhere."""
WAITING_POLL_S = 0.5


async def read_events(
    service: DurableRuns, run_id: str, after: int = -1
) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """(id, event) from id `after + 1` until the run ends. Keep-alives come as (-1, {}) every
    `KEEPALIVE_S` without events. If the run ended without a final status event (cancelled, or
    failed in Keel itself), one is made from its status, so every stream ends with one.

    A run that waits for approval says so (`waiting_approval`, with the calls waiting) and the
    stream stays open: once people decide, the continuation's events follow."""
    segment, offset = divmod(after + 1, SEGMENT)
    next_id = after + 1
    while True:
        workflow = run_id if segment == 0 else f"{run_id}.p{segment}"
        status: str | None = None
        version = await _events_version(workflow)
        if version == EVENTS_V3:
            items = _read_segment_v3(service, workflow, segment * SEGMENT, offset)
        elif version == EVENTS_V2:
            items = _read_segment_v2(workflow, segment * SEGMENT, offset)
        else:
            items = _read_segment(workflow, segment * SEGMENT, offset)
        async for item in items:
            yield item
            if item[0] >= 0:
                next_id = item[0] + 1
                if item[1].get("type") == "status":
                    status = item[1].get("status")
        if status == "waiting_approval":
            next_segment = None
            async for keepalive in _until_resumed(service, run_id, segment + 1):
                if keepalive is None:
                    break
                if keepalive:
                    next_segment = segment + 1
                    break
                yield -1, {}
            if next_segment is not None:
                segment, offset = next_segment, 0
                next_id = segment * SEGMENT
                continue
        elif status is not None and status not in ("queued", "running"):
            return
        break
    view = await service.get(run_id)
    if view is not None:
        yield (
            next_id,
            {
                "type": "status",
                "status": view["status"],
                "error": view.get("error"),
                "output": view.get("output"),
            },
        )


async def _read_segment(workflow: str, base: int, offset: int) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """One workflow's events, until its final status event or the end of its stream."""
    while True:
        try:
            async for value in DBOS.read_stream_async(
                workflow, STREAM, offset=offset, polling_interval_sec=0.1, timeout_seconds=KEEPALIVE_S
            ):
                event = value if isinstance(value, dict) else {"type": "unknown", "value": value}
                yield base + offset, event
                offset += 1
                if event.get("type") == "status" and event.get("status") not in ("queued", "running"):
                    return
            return
        except DBOSStreamTimeoutError:
            yield -1, {}


async def _events_version(workflow: str) -> int | None:
    """How the workflow writes its events (its request's `events`; None: the first way)."""
    found = await DBOS.list_workflows_async(workflow_ids=[workflow], load_input=True, load_output=False)
    if not found:
        return None
    from keel.durable.service import _request_of

    version = _request_of(found[0]).get("events")
    return version if isinstance(version, int) else None


async def _read_segment_v2(
    workflow: str, base: int, offset: int
) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """One stretch of a run that does not write its `running` and final status events: `running`
    (id `base`) once the workflow has left the queue, then its stream (offset k is id base + k + 1)
    until the workflow ends; the caller makes the final status event."""
    if offset == 0:
        started = False
        async for item in _running(workflow, base):
            started = item[0] >= 0
            yield item
        if not started:
            return  # ended (cancelled) before it started: only the final status follows
        offset = 1
    async for item in _read_segment(workflow, base + 1, offset - 1):
        yield item


async def _read_segment_v3(
    service: DurableRuns, workflow: str, base: int, offset: int
) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """One stretch of a run whose step events are in `run_events` (EVENTS_V3): `running` (id
    `base`), then its table events (the k-th is id base + 1 + k) until the workflow has ended (its
    steps stored their events before they completed), then what its workflow code wrote to the DBOS
    stream (`waiting_approval`), numbered on; the caller makes the final status event."""
    if offset == 0:
        started = False
        async for item in _running(workflow, base):
            started = item[0] >= 0
            yield item
        if not started:
            return  # ended (cancelled) before it started: only the final status follows
        offset = 1
    skip, read, last_id, ended = offset - 1, 0, None, False
    quiet = time.monotonic()
    while True:
        rows = await service.event_log.page(workflow, after_id=last_id, skip=skip)
        for _, event in rows:
            yield base + 1 + skip + read, event
            read += 1
        if rows:
            last_id = rows[-1][0]
            quiet = time.monotonic()
            if len(rows) == PAGE:
                continue
        if ended:
            break
        status = await DBOS.get_workflow_status_async(workflow)
        if status is None or status.status not in ("ENQUEUED", "DELAYED", "PENDING"):
            ended = True  # one more read: what its last step stored
            continue
        await asyncio.sleep(EVENT_POLL_S)
        if time.monotonic() - quiet >= KEEPALIVE_S:
            quiet = time.monotonic()
            yield -1, {}
    stored = skip + read if read else await service.event_log.count(workflow)
    async for item in _read_segment(workflow, base + 1 + stored, max(0, offset - 1 - stored)):
        yield item


async def _running(workflow: str, base: int) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """Keep-alives (id -1) while the workflow waits in its queue, then `running` (id `base`) once
    it has left it; nothing more if it ended without starting."""
    async for ready in _until_started(workflow):
        if ready is None:
            return
        if ready:
            yield base, status_event("running")
            return
        yield -1, {}


async def _until_started(workflow: str) -> AsyncIterator[bool | None]:
    """True once the workflow has left the queue; None if it ended without starting; False now
    and then while it waits (time for a keep-alive)."""
    last = time.monotonic()
    while True:
        status = await DBOS.get_workflow_status_async(workflow)
        if status is not None and status.status not in ("ENQUEUED", "DELAYED"):
            never_ran = status.status == "CANCELLED" and status.dequeued_at is None
            yield None if never_ran else True
            return
        await asyncio.sleep(START_POLL_S)
        if time.monotonic() - last >= KEEPALIVE_S:
            last = time.monotonic()
            yield False


async def _until_resumed(service: DurableRuns, run_id: str, pause: int) -> AsyncIterator[bool | None]:
    """While stop `pause` of the run waits: False now and then (time for a keep-alive); True once
    it went on; None if it never will (cancelled)."""
    last = time.monotonic()
    while True:
        stop = await service.approvals.store.pause_row(run_id, pause)
        if stop is not None and stop["status"] == "resumed":
            yield True
            return
        if stop is None or stop["status"] != "waiting":
            yield None
            return
        await asyncio.sleep(WAITING_POLL_S)
        if time.monotonic() - last >= KEEPALIVE_S:
            last = time.monotonic()
            yield False
