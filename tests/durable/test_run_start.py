"""A run's start time, which its timeout budget counts from, without a `keel.run_start` step.

Runs queued since `"start": 2` (START_V2) read their start from the deadline DBOS sets at their
first dequeue (they are queued with a far workflow timeout); runs queued before recorded it in a
`keel.run_start` step, and must keep taking that step when they are replayed, or their recorded
steps would no longer line up. Replays are made with DBOS's fork, which copies a run's recorded
steps and executes the workflow's code again (the same code path as recovery after a crash)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dbos import DBOS, SetEnqueueOptions, SetWorkflowID

from keel.config import load_project
from keel.durable.queues import partition_key, queue_name
from keel.durable.service import START_HORIZON_S, START_V2, DurableRuns, Submission, _request_of
from keel.durable.workflows import keel_run
from keel.runtime.runner import Runner
from keel.testing.fake_llm import FakeLLMThread
from tests.server.harness import CountingScript, write_project


@pytest.fixture
async def service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> AsyncIterator[tuple[DurableRuns, CountingScript, Path]]:
    script = CountingScript()
    side = tmp_path / "side"
    with FakeLLMThread(script) as fake:
        project_dir = write_project(tmp_path / "p", fake.base_url)
        monkeypatch.setenv("SIDE_FILE", str(side))
        monkeypatch.setenv("KEEL_DATABASE_URL", database_url)
        runner = Runner(load_project(project_dir, environ={"FAKE_KEY": "x"}))
        runs = DurableRuns(runner, worker_id="start-test")
        await runs.start()
        try:
            yield runs, script, side
        finally:
            await runs.stop()
            await runner.aclose()


async def _steps(workflow_id: str) -> list[str]:
    return [s["function_name"] for s in await DBOS.list_workflow_steps_async(workflow_id)]


async def _replay(workflow_id: str) -> dict[str, Any]:
    """Execute the finished workflow again from a copy of all its recorded steps."""
    steps = await DBOS.list_workflow_steps_async(workflow_id)
    handle = await DBOS.fork_workflow_async(workflow_id, max(s["function_id"] for s in steps) + 1)
    result: dict[str, Any] = await asyncio.wait_for(handle.get_result(), timeout=30)
    return result


def _side_lines(side: Path) -> int:
    return len(side.read_text().splitlines()) if side.exists() else 0


async def test_a_new_run_takes_its_start_from_the_dequeue_and_replays_without_a_start_step(
    service: tuple[DurableRuns, CountingScript, Path],
) -> None:
    runs, script, side = service
    submitted = await runs.submit(Submission(agent="worker", input="new"))
    view = await asyncio.wait_for(runs.wait(submitted.run_id, 30), timeout=40)
    assert view is not None and view["status"] == "succeeded", view
    steps = await _steps(submitted.run_id)
    assert "keel.run_start" not in steps
    assert steps[0].endswith("__model.request"), steps
    [status] = await DBOS.list_workflows_async(workflow_ids=[submitted.run_id], load_input=True)
    assert _request_of(status)["start"] == START_V2
    assert status.workflow_deadline_epoch_ms is not None
    started = datetime.fromtimestamp((status.workflow_deadline_epoch_ms - START_HORIZON_S * 1000) / 1000, UTC)
    assert datetime.fromisoformat(view["started_at"]) == started
    requests, tools = sum(script.snapshot().values()), _side_lines(side)
    replayed = await _replay(submitted.run_id)
    assert replayed["status"] == "succeeded" and replayed["output"] == view["output"]
    assert sum(script.snapshot().values()) == requests  # every step came from its checkpoint
    assert _side_lines(side) == tools


async def test_a_run_queued_before_start_v2_keeps_its_start_step_on_replay(
    service: tuple[DurableRuns, CountingScript, Path],
) -> None:
    runs, script, side = service
    first = await runs.submit(Submission(agent="worker", input="template"))
    assert await asyncio.wait_for(runs.wait(first.run_id, 30), timeout=40) is not None
    [status] = await DBOS.list_workflows_async(workflow_ids=[first.run_id], load_input=True)
    # The request as code before START_V2 queued it: no `start`, no workflow timeout.
    request = {k: v for k, v in _request_of(status).items() if k != "start"}
    request["input"] = "old"
    queue = runs.project.agent("worker").config.queue
    old_id = "old-" + first.run_id
    group = partition_key(queue, request.get("tenant_id"), request.get("user_id"))
    options = SetEnqueueOptions(priority=queue.priority, queue_partition_key=group)
    with SetWorkflowID(old_id), options:
        await DBOS.enqueue_workflow_async(queue_name("worker"), keel_run, request)
    view = await asyncio.wait_for(runs.wait(old_id, 30), timeout=40)
    assert view is not None and view["status"] == "succeeded", view
    steps = await _steps(old_id)
    assert steps[0] == "keel.run_start", steps
    requests, tools = sum(script.snapshot().values()), _side_lines(side)
    replayed = await _replay(old_id)
    assert replayed["status"] == "succeeded" and replayed["output"] == view["output"]
    assert replayed["started_at"] == view["started_at"]  # the recorded start, replayed
    assert sum(script.snapshot().values()) == requests
    assert _side_lines(side) == tools
