"""The foundation's acceptance criteria: the example agent under injected provider faults."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.config import load_project
from keel.errors import ErrorCategory
from keel.runtime.result import RunResult, RunStatus
from keel.runtime.runner import Runner
from keel.testing.fake_llm import FakeLLMThread, Faults
from keel.testing.project_fake import project_script
from tests.runtime.helpers import make_project

INBOX = Path(__file__).resolve().parents[2] / "examples" / "inbox"
EMAILS = [
    {
        "from": "ada@example.com",
        "subject": "Refund please",
        "body": "I was charged twice, refund the 120 USD.",
    },
    {"from": "grace@example.com", "subject": "Where is my order?", "body": "Order 5602 has not arrived."},
    {"from": "alan@example.org", "subject": "Cancel", "body": "Please cancel my subscription."},
    {"from": "x@unknown.com", "subject": "Question", "body": "How do I export my data?"},
    {"from": "barbara@example.com", "subject": "URGENT", "body": "Refund 900 USD now or I call my lawyer."},
]
FAULT_MIX = {"429": 1, "500": 1, "503": 1, "reset": 1}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLMThread]:
    with FakeLLMThread(project_script(INBOX), seed=1234) as server:
        yield server


@pytest.fixture(autouse=True)
def _crm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOX_CRM_PATH", str(tmp_path / "crm.sqlite"))
    monkeypatch.setenv("KEEL_DATABASE_URL", f"sqlite:///{tmp_path}/keel.db")


async def run_many(runner: Runner, count: int, concurrency: int) -> list[RunResult]:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> RunResult:
        async with gate:
            return await runner.run("inbox", EMAILS[i % len(EMAILS)])

    return await asyncio.gather(*(one(i) for i in range(count)))


@pytest.mark.slow
async def test_500_runs_with_30_percent_faults_all_succeed(fake: FakeLLMThread) -> None:
    fake.reset()
    fake.set_faults(Faults(rate=0.3, kinds=FAULT_MIX, retry_after=0.05))
    project = load_project(INBOX, environ={"KEEL_LLM_BASE_URL": fake.base_url})
    assert project.agents["inbox"].config.retry_options.attempts == 5
    async with Runner(project) as runner:
        results = await run_many(runner, 500, concurrency=25)
    failures = [(r.error.category, r.error.message) for r in results if r.error is not None]
    assert failures == []
    stats = fake.stats()
    faults = stats.requests - stats.ok
    assert 0.25 < faults / stats.requests < 0.35
    assert sum(r.model_requests for r in results) == stats.requests
    failed_attempts = [c for r in results for c in r.model_calls if c.status == "error"]
    assert len(failed_attempts) == faults
    # every failure is followed by a retry on the same model, or (budget spent) by the fallback model
    fallbacks = [c for c in failed_attempts if c.retry_delay_s is None]
    assert sum(r.retries for r in results) == faults - len(fallbacks)
    assert all(c.attempt == 5 for c in fallbacks)
    assert sum(r.total_tokens for r in results) == stats.total_tokens
    assert all(r.output is not None and isinstance(r.output, dict) for r in results)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "category"),
    [
        ("429", ErrorCategory.MODEL_RATE_LIMITED),
        ("500", ErrorCategory.MODEL_UNAVAILABLE),
        ("503", ErrorCategory.MODEL_UNAVAILABLE),
        ("reset", ErrorCategory.MODEL_UNAVAILABLE),
    ],
)
async def test_with_every_request_failing_runs_end_in_the_right_category(
    fake: FakeLLMThread, kind: str, category: ErrorCategory
) -> None:
    fake.reset()
    fake.set_faults(Faults(rate=1.0, kinds={kind: 1}, retry_after=0.05))
    project = load_project(INBOX, environ={"KEEL_LLM_BASE_URL": fake.base_url})
    agent = project.agents["inbox"].config
    budget = agent.retry_options.attempts * 2  # the primary and one fallback model
    async with Runner(project) as runner:
        results = await run_many(runner, 40, concurrency=40)
    for result in results:
        assert result.status is RunStatus.FAILED
        assert result.error is not None
        assert result.error.category is category
        assert result.model_requests == budget
        assert result.duration_ms / 1000 < agent.timeouts.run  # type: ignore[operator]
    assert fake.stats().requests == budget * len(results)


@pytest.mark.slow
async def test_hanging_provider_never_outlives_the_run_timeout(fake: FakeLLMThread) -> None:
    fake.reset()
    fake.set_faults(Faults(rate=1.0, kinds={"hang": 1}, hang_seconds=30))
    project = make_project(
        base_url=fake.base_url,
        fallbacks=1,
        retry_options={"attempts": 5, "initial_delay": 0.05},
        timeouts={"run": 1.5, "model_request": 0.4},
    )
    t0 = time.monotonic()
    async with Runner(project) as runner:
        results = await asyncio.gather(*(runner.run("agent", f"hello {i}") for i in range(20)))
    assert time.monotonic() - t0 < 1.5 + 1.0
    for result in results:
        assert result.error is not None
        assert result.error.category in (ErrorCategory.TIMED_OUT, ErrorCategory.MODEL_TIMEOUT)
        assert result.duration_ms < 1500 + 500
