"""A durable run's step events in Keel's `run_events` table (runs accepted since `"events": 3`).

Tool events used to be two DBOS stream transactions per tool call, from inside the tool step; they
are now written by Keel's batched writer, stored before the step completes. Readers number them
after the `running` event, so SSE ids and `Last-Event-ID` resume are unchanged, and runs accepted
before (`"events": 2`, events in the DBOS stream) still read as they did."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from dbos import DBOS, SetEnqueueOptions, SetWorkflowID
from sqlalchemy.exc import OperationalError

from keel.config import load_project
from keel.durable.event_log import EVENTS_V3, EventLog
from keel.durable.events import EVENTS_V2, STREAM
from keel.durable.queues import partition_key, queue_name
from keel.durable.service import DurableRuns, Submission, _request_of
from keel.durable.workflows import keel_run
from keel.runtime.runner import Runner
from keel.testing.fake_llm import FakeLLMThread
from tests.server.harness import CountingScript, write_project


@pytest.fixture
async def service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> AsyncIterator[tuple[DurableRuns, CountingScript, FakeLLMThread]]:
    script = CountingScript()
    with FakeLLMThread(script) as fake:
        project_dir = write_project(tmp_path / "p", fake.base_url)
        monkeypatch.setenv("SIDE_FILE", str(tmp_path / "side"))
        monkeypatch.setenv("KEEL_DATABASE_URL", database_url)
        runner = Runner(load_project(project_dir, environ={"FAKE_KEY": "x"}))
        runs = DurableRuns(runner, worker_id="events-test")
        await runs.start()
        try:
            yield runs, script, fake
        finally:
            await runs.stop()
            await runner.aclose()


async def _events(runs: DurableRuns, run_id: str, after: int = -1) -> list[tuple[int, dict[str, Any]]]:
    async def collect() -> list[tuple[int, dict[str, Any]]]:
        return [item async for item in runs.events(run_id, after) if item[0] >= 0]

    return await asyncio.wait_for(collect(), timeout=30)


async def _stream(workflow_id: str) -> list[Any]:
    return [value async for value in DBOS.read_stream_async(workflow_id, STREAM, timeout_seconds=5)]


def _kinds(events: list[tuple[int, dict[str, Any]]]) -> list[str]:
    return [event["type"] if event["type"] != "status" else event["status"] for _, event in events]


async def test_tool_events_are_in_keels_table_not_the_dbos_stream(
    service: tuple[DurableRuns, CountingScript, FakeLLMThread],
) -> None:
    runs, _, _ = service
    submitted = await runs.submit(Submission(agent="worker", input="table"))
    view = await asyncio.wait_for(runs.wait(submitted.run_id, 30), timeout=40)
    assert view is not None and view["status"] == "succeeded", view
    [status] = await DBOS.list_workflows_async(workflow_ids=[submitted.run_id], load_input=True)
    assert _request_of(status)["events"] == EVENTS_V3
    assert await _stream(submitted.run_id) == []  # no DBOS transaction per event
    stored = await runs.event_log.page(submitted.run_id)
    assert [event["type"] for _, event in stored] == ["tool_started", "tool_finished"]
    events = await _events(runs, submitted.run_id)
    assert [i for i, _ in events] == [0, 1, 2, 3]
    assert _kinds(events) == ["running", "tool_started", "tool_finished", "succeeded"]
    assert events[1][1]["call_id"] == events[2][1]["call_id"] != ""
    assert events[3][1]["output"] == view["output"]
    for after in range(-1, 3):  # Last-Event-ID resume: the same ids and events from there on
        assert await _events(runs, submitted.run_id, after) == events[after + 1 :]


async def test_a_run_accepted_with_events_2_still_reads_from_its_dbos_stream(
    service: tuple[DurableRuns, CountingScript, FakeLLMThread],
) -> None:
    runs, script, _ = service
    first = await runs.submit(Submission(agent="worker", input="template"))
    assert await asyncio.wait_for(runs.wait(first.run_id, 30), timeout=40) is not None
    [status] = await DBOS.list_workflows_async(workflow_ids=[first.run_id], load_input=True)
    request = {**_request_of(status), "events": EVENTS_V2, "input": "old"}  # as queued before
    queue = runs.project.agent("worker").config.queue
    old_id = "old-" + first.run_id
    group = partition_key(queue, request.get("tenant_id"), request.get("user_id"))
    with SetWorkflowID(old_id), SetEnqueueOptions(priority=queue.priority, queue_partition_key=group):
        await DBOS.enqueue_workflow_async(queue_name("worker"), keel_run, request)
    view = await asyncio.wait_for(runs.wait(old_id, 30), timeout=40)
    assert view is not None and view["status"] == "succeeded", view
    assert [v["type"] for v in await _stream(old_id)] == ["tool_started", "tool_finished"]
    assert await runs.event_log.page(old_id) == []
    events = await _events(runs, old_id)
    assert [i for i, _ in events] == [0, 1, 2, 3]
    assert _kinds(events) == ["running", "tool_started", "tool_finished", "succeeded"]
    assert await _events(runs, old_id, 1) == events[2:]
    # Replayed (DBOS's fork, the recovery path), it repeats no provider request.
    requests = sum(script.snapshot().values())
    steps = await DBOS.list_workflow_steps_async(old_id)
    handle = await DBOS.fork_workflow_async(old_id, max(s["function_id"] for s in steps) + 1)
    replayed = await asyncio.wait_for(handle.get_result(), timeout=30)
    assert replayed["status"] == "succeeded" and sum(script.snapshot().values()) == requests


async def test_readers_that_start_before_the_run_see_its_events_live_with_the_same_ids(
    service: tuple[DurableRuns, CountingScript, FakeLLMThread],
) -> None:
    runs, _, fake = service
    fake.set_latency(300)  # the run is under way for a while after the readers start
    submitted = await runs.submit(Submission(agent="worker", input="live"))
    live = [asyncio.create_task(_events(runs, submitted.run_id, after)) for after in (-1, 0, 1)]
    view = await asyncio.wait_for(runs.wait(submitted.run_id, 30), timeout=40)
    assert view is not None and view["status"] == "succeeded", view
    seen = await asyncio.gather(*live)
    events = await _events(runs, submitted.run_id)
    assert _kinds(events) == ["running", "tool_started", "tool_finished", "succeeded"]
    assert seen == [events, events[1:], events[2:]]


async def test_an_event_nobody_waits_for_is_written_with_the_next_or_soon_after(database_url: str) -> None:
    from keel.store import upgrade

    upgrade(database_url)
    log = EventLog(database_url)
    try:
        alone = log.add("w1", {"type": "tool_started", "n": 1}, soon=True)
        await asyncio.wait_for(alone, timeout=5)  # within LINGER_S, though nothing followed it
        log.add("w2", {"type": "tool_started", "n": 1}, soon=True)
        await log.add("w2", {"type": "tool_finished", "n": 2})  # written together, in order
        assert [e["n"] for _, e in await log.page("w2")] == [1, 2]
        assert [e["n"] for _, e in await log.page("w2", skip=1)] == [2]
        assert await log.count("w1") == 1
    finally:
        await log.close()


class _Flaky(EventLog):
    """Fails its first `failures` inserts the way a locked SQLite database does."""

    def __init__(self, url: str, failures: int) -> None:
        super().__init__(url)
        self.failures = failures

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        if self.failures:
            self.failures -= 1
            raise OperationalError("INSERT INTO run_events", {}, Exception("database is locked"))
        super()._insert(rows)


async def test_a_batch_that_meets_a_locked_database_is_written_on_a_later_try(database_url: str) -> None:
    """At 1,000 runs in flight on SQLite, writers meet `database is locked`; the batch's events
    were dropped (logged) on the first failure."""
    from keel.store import upgrade

    upgrade(database_url)
    log = _Flaky(database_url, failures=3)
    try:
        await asyncio.wait_for(log.add("w3", {"type": "tool_finished", "n": 1}), timeout=10)
        assert [e["n"] for _, e in await log.page("w3")] == [1]
    finally:
        await log.close()
    hopeless = _Flaky(database_url, failures=100)
    try:
        await asyncio.wait_for(hopeless.add("w4", {"type": "tool_finished", "n": 1}), timeout=10)
        assert await hopeless.count("w4") == 0  # given up (logged), and the writer goes on
        hopeless.failures = 0
        await hopeless.add("w4", {"type": "tool_finished", "n": 2})
        assert [e["n"] for _, e in await hopeless.page("w4")] == [2]
    finally:
        await hopeless.close()
