"""The injection judge is a checkpointed step of a durable run, like the grounding judge: a run
replayed after a crash (here with DBOS's own fork, which copies the recorded steps and executes
the workflow's code again) reuses the verdict instead of asking (and paying) again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from dbos import DBOS

from keel.config import load_project
from keel.durable.service import DurableRuns, Submission
from keel.runtime.runner import Runner
from keel.testing.fake_llm import FakeLLMThread, FunctionScript
from tests.guardrails.test_injection_judge import BENIGN, JUDGED, make_project, script


@pytest.fixture
async def service(
    tmp_path: Path, fake_llm: FakeLLMThread
) -> AsyncIterator[tuple[DurableRuns, FakeLLMThread]]:
    fake_llm.set_script(FunctionScript(script))
    root = make_project(tmp_path / "p", fake_llm, JUDGED, storage=True)
    runner = Runner(load_project(root))
    runs = DurableRuns(runner, worker_id="injection-judge-test")
    await runs.start()
    try:
        yield runs, fake_llm
    finally:
        await runs.stop()
        await runner.aclose()


def judge_requests(fake: FakeLLMThread) -> int:
    return sum(1 for r in fake.requests() if r.model == "judge")


async def test_a_replayed_run_does_not_ask_the_injection_judge_again(
    service: tuple[DurableRuns, FakeLLMThread],
) -> None:
    runs, fake = service
    submitted = await runs.submit(Submission(agent="banker", input=BENIGN))
    view = await asyncio.wait_for(runs.wait(submitted.run_id, 30), timeout=40)
    assert view is not None and view["status"] == "succeeded", view
    assert judge_requests(fake) == 1
    main_requests = len(fake.requests()) - 1
    steps = await DBOS.list_workflow_steps_async(submitted.run_id)
    assert "keel.guardrail.injection_judge" in [s["function_name"] for s in steps]
    replay = await DBOS.fork_workflow_async(submitted.run_id, max(s["function_id"] for s in steps) + 1)
    await asyncio.wait_for(replay.get_result(), timeout=30)
    assert judge_requests(fake) == 1  # the verdict came from the checkpoint
    assert len(fake.requests()) - 1 == main_requests  # and so did the agent's model requests
