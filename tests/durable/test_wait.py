"""Waiting for a run must not turn into a query storm: a process that executes the run is woken
by the run itself and checks the status only now and then (a bug once polled it every 0.25 s per
waiting request, which made many waiting requests the server's main cost)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from keel.config import load_project
from keel.durable.service import DurableRuns, Submission
from keel.runtime.runner import Runner
from keel.testing.fake_llm import FakeLLMThread
from tests.server.harness import CountingScript, write_project


class CountingRuns(DurableRuns):
    """The real service, counting its status reads."""

    status_reads = 0

    async def get(self, run_id: str) -> dict[str, Any] | None:
        self.status_reads += 1
        return await super().get(run_id)


@pytest.fixture
async def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[CountingRuns]:
    with FakeLLMThread(CountingScript()) as fake:
        fake.set_latency(1500)  # two model requests: a run takes about 3 s
        project_dir = write_project(tmp_path / "p", fake.base_url)
        monkeypatch.setenv("SIDE_FILE", str(tmp_path / "side"))
        monkeypatch.setenv("KEEL_DATABASE_URL", f"sqlite:///{tmp_path / 'keel.db'}")
        project = load_project(project_dir, environ={"FAKE_KEY": "x"})
        runner = Runner(project)
        runs = CountingRuns(runner, worker_id="wait-test")
        await runs.start()
        try:
            yield runs
        finally:
            await runs.stop()
            await runner.aclose()


async def test_a_waiter_is_woken_by_the_run_and_reads_the_status_rarely(service: CountingRuns) -> None:
    submitted = await service.submit(Submission(agent="worker", input="slow"))
    service.status_reads = 0
    view = await asyncio.wait_for(service.wait(submitted.run_id, 30), timeout=40)
    assert view is not None and view["status"] == "succeeded"
    # About 3 s of waiting: one read at the start, then at 1 s and 3 s at most (was about 15).
    assert 1 <= service.status_reads <= 4, service.status_reads


async def test_a_held_waiter_gets_the_run_even_if_it_ended_before_the_wait(service: CountingRuns) -> None:
    from dbos import DBOS

    submitted = await service.submit(Submission(agent="worker", input="held"), hold=True)
    for _ in range(400):  # the run ends before anyone waits for it
        [status] = await DBOS.list_workflows_async(workflow_ids=[submitted.run_id])
        if status.status == "SUCCESS":
            break
        await asyncio.sleep(0.05)
    service.status_reads = 0
    view = await asyncio.wait_for(service.wait(submitted.run_id, 30), timeout=40)
    assert view is not None and view["status"] == "succeeded" and view["run_id"] == submitted.run_id
    assert service.status_reads == 0  # its end was handed over, not read
    assert submitted.run_id not in service._waiters and submitted.run_id not in service._held
