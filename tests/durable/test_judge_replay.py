"""A guardrail's judge (`grounding`, `injection_judge`) is a checkpointed step of a durable run: a
run replayed after a crash reuses the judge's verdict instead of asking (and paying) again. Replay
is made with DBOS's own fork, which copies the run's recorded steps and executes the workflow's
code again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dbos import DBOS

from keel.config import load_project
from keel.durable.service import DurableRuns, Submission
from keel.runtime.runner import Runner
from keel.testing.fake_llm import FakeLLMThread, FunctionScript
from tests.guardrails import test_answer_checks as answers
from tests.guardrails import test_injection_judge as injection


@dataclass(frozen=True)
class Case:
    step: str
    make_project: Callable[..., Path]
    guardrails: str
    script: Callable[..., Any]
    agent: str
    input: str


CASES = {
    "grounding": Case(
        "keel.guardrail.grounding",
        answers.make_project,
        answers.GROUNDING,
        answers.script,
        "support",
        "grounded: lookup order 42",
    ),
    "injection_judge": Case(
        "keel.guardrail.injection_judge",
        injection.make_project,
        injection.JUDGED,
        injection.script,
        "banker",
        injection.BENIGN,
    ),
}


@pytest.fixture(params=sorted(CASES))
async def service(
    request: pytest.FixtureRequest, tmp_path: Path, fake_llm: FakeLLMThread
) -> AsyncIterator[tuple[DurableRuns, FakeLLMThread, Case]]:
    case = CASES[request.param]
    fake_llm.set_script(FunctionScript(case.script))
    root = case.make_project(tmp_path / "p", fake_llm, case.guardrails, storage=True)
    runner = Runner(load_project(root))
    runs = DurableRuns(runner, worker_id="judge-replay-test")
    await runs.start()
    try:
        yield runs, fake_llm, case
    finally:
        await runs.stop()
        await runner.aclose()


def judge_requests(fake: FakeLLMThread) -> int:
    return sum(1 for r in fake.requests() if r.model == "judge")


async def test_a_replayed_run_does_not_ask_the_judge_again(
    service: tuple[DurableRuns, FakeLLMThread, Case],
) -> None:
    runs, fake, case = service
    submitted = await runs.submit(Submission(agent=case.agent, input=case.input))
    view = await asyncio.wait_for(runs.wait(submitted.run_id, 30), timeout=40)
    assert view is not None and view["status"] == "succeeded", view
    assert judge_requests(fake) == 1
    main_requests = len(fake.requests()) - 1
    steps = await DBOS.list_workflow_steps_async(submitted.run_id)
    assert case.step in [s["function_name"] for s in steps]
    replay = await DBOS.fork_workflow_async(submitted.run_id, max(s["function_id"] for s in steps) + 1)
    await asyncio.wait_for(replay.get_result(), timeout=30)
    assert judge_requests(fake) == 1  # the verdict came from the checkpoint
    assert len(fake.requests()) - 1 == main_requests  # and so did the agent's model requests
