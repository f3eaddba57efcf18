"""Circuit breakers in the run loop, against the fake provider over real HTTP.

The primary model and the fallback are two fake providers, so each one's counters say exactly
which model was called. The primary fails (its faults on), its circuit opens, later runs go
straight to the fallback without a request to the primary; the primary recovers (faults off
through its control API), and after the cool-down (a fake clock: nothing sleeps) a trial call goes
through, the circuit closes, and runs use the primary again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from keel.config.project import Project
from keel.config.schema import CircuitBreakerConfig
from keel.errors import ErrorCategory
from keel.runtime.circuit import CircuitBreaker, CircuitRegistry, CircuitState, Outcome
from keel.runtime.events import ModelFallback, RunEvent
from keel.runtime.result import RunResult
from keel.runtime.runner import Runner
from keel.testing.fake_llm import FakeLLMThread, Reply
from tests.runtime.helpers import make_project
from tests.tracing.helpers import Collector, make_tracing


def state(breaker: CircuitBreaker) -> CircuitState:
    """The state, read anew (no type narrowing from an earlier assert)."""
    return breaker.state


PRIMARY, FALLBACK = "openai-compatible:primary", "openai-compatible:fallback1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeLLMThread, FakeLLMThread]]:
    with FakeLLMThread() as primary, FakeLLMThread() as fallback:
        yield primary, fallback


@pytest.fixture
def primary(fakes: tuple[FakeLLMThread, FakeLLMThread]) -> FakeLLMThread:
    fake = fakes[0]
    fake.restore_defaults()
    fake.reset()
    fake.set_script(Reply(text="from the primary"))
    return fake


@pytest.fixture
def fallback(fakes: tuple[FakeLLMThread, FakeLLMThread]) -> FakeLLMThread:
    fake = fakes[1]
    fake.restore_defaults()
    fake.reset()
    fake.set_script(Reply(text="from the fallback"))
    return fake


def control(fake: FakeLLMThread, method: str, path: str, body: Any = None) -> Any:
    """The fake provider's control API, over HTTP."""
    response = httpx.request(method, f"{fake.url}{path}", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def requests_seen(fake: FakeLLMThread) -> int:
    count: int = control(fake, "GET", "/_fake/stats")["requests"]
    return count


def project_with(primary: FakeLLMThread, fallback: FakeLLMThread | None, **config: Any) -> Project:
    """One agent: the primary on one fake provider, its fallback (if any) on the other."""
    config.setdefault("retry_options", {"attempts": 2, "initial_delay": 0.01})
    project = make_project(base_url=primary.base_url, fallbacks=1 if fallback else 0, **config)
    if fallback is None:
        return project
    spec = project.agents["agent"]
    moved = dataclasses.replace(spec.fallback_models[0], base_url=fallback.base_url)
    return dataclasses.replace(project, agents={"agent": dataclasses.replace(spec, fallback_models=(moved,))})


def runner_on(project: Project, clock: FakeClock) -> tuple[Runner, Collector]:
    runner = Runner(project)
    runner.circuits = CircuitRegistry(clock=clock)
    tracing, collector = make_tracing()
    runner.tracing = tracing
    return runner, collector


async def run(runner: Runner, stream: bool, events: list[RunEvent] | None = None) -> RunResult:
    return await runner.run(
        "agent", "hi", stream=stream, on_event=events.append if events is not None else None
    )


def fallbacks(events: list[RunEvent]) -> list[tuple[str, str, ErrorCategory]]:
    return [(e.from_model, e.to_model, e.category) for e in events if isinstance(e, ModelFallback)]


def span_events(collector: Collector, name: str) -> list[dict[str, Any]]:
    """The attributes of every span event `name`, in the order they happened."""
    found = [e for r in collector.records for e in r.events if e.name == name]
    return [dict(e.attributes) for e in sorted(found, key=lambda e: e.time)]


@pytest.mark.parametrize("stream", [False, True], ids=["request", "stream"])
async def test_the_primary_fails_its_circuit_opens_then_it_recovers(
    primary: FakeLLMThread, fallback: FakeLLMThread, stream: bool
) -> None:
    control(primary, "POST", "/_fake/faults", {"rate": 1.0, "kinds": {"503": 1}})
    clock = FakeClock()
    project = project_with(
        primary, fallback, circuit_breaker={"enabled": True, "failure_threshold": 3, "cool_down": 30}
    )
    runner, collector = runner_on(project, clock)
    async with runner:
        assert runner.circuits.snapshot() == []  # made when the agent is compiled
        # Run 1: the primary's two attempts fail (2 of 3), the fallback answers.
        first = await run(runner, stream)
        breaker = runner.circuits.get("model", PRIMARY)
        assert first.succeeded and first.output == "from the fallback"
        assert (requests_seen(primary), requests_seen(fallback)) == (2, 1)
        assert breaker is not None and state(breaker) is CircuitState.CLOSED

        # Run 2: the third failure opens the circuit; no retry, no backoff: the fallback at once.
        events: list[RunEvent] = []
        second = await run(runner, stream, events)
        assert second.succeeded and second.output == "from the fallback"
        assert (requests_seen(primary), requests_seen(fallback)) == (3, 2)
        assert state(breaker) is CircuitState.OPEN
        assert [c.model for c in second.model_calls] == [PRIMARY, FALLBACK]
        assert second.model_calls[0].retry_delay_s is None
        assert fallbacks(events) == [(PRIMARY, FALLBACK, ErrorCategory.MODEL_UNAVAILABLE)]

        # Runs 3 to 7: straight to the fallback; the primary sees no request.
        for _ in range(5):
            events = []
            result = await run(runner, stream, events)
            assert result.succeeded and result.output == "from the fallback"
            assert [c.model for c in result.model_calls] == [FALLBACK]
            assert fallbacks(events) == [(PRIMARY, FALLBACK, ErrorCategory.CIRCUIT_OPEN)]
        assert (requests_seen(primary), requests_seen(fallback)) == (3, 7)

        # The primary recovers, but the cool-down has not passed: still the fallback.
        control(primary, "POST", "/_fake/faults", {})
        clock.now += 29.5
        assert (await run(runner, stream)).output == "from the fallback"
        assert requests_seen(primary) == 3

        # After the cool-down, the next run's request is the trial: it succeeds, the circuit closes.
        clock.now += 0.5
        trial = await run(runner, stream)
        assert trial.succeeded and trial.output == "from the primary"
        assert [(c.model, c.streamed) for c in trial.model_calls] == [(PRIMARY, stream)]
        assert state(breaker) is CircuitState.CLOSED
        for _ in range(3):
            assert (await run(runner, stream)).output == "from the primary"
        assert (requests_seen(primary), requests_seen(fallback)) == (7, 8)

        snapshot = breaker.snapshot()
        assert (snapshot.times_opened, snapshot.refused, snapshot.failures) == (1, 6, 3)
        assert snapshot.last_transition_reason == "1 trial call succeeded"
        assert runner.circuits.get("model", FALLBACK) is not None

    # The trace: each refusal on its run's span; the changes of state on the calls that made them.
    refusals = span_events(collector, "circuit_open")
    assert len(refusals) == 6
    assert refusals[0] == {
        "keel.circuit.kind": "model",
        "keel.circuit.name": PRIMARY,
        "keel.circuit.state": "open",
        "keel.circuit.retry_in_s": 30.0,
    }
    assert [
        (e["keel.circuit.from"], e["keel.circuit.to"]) for e in span_events(collector, "circuit_state")
    ] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    opened = next(r for r in collector.records for e in r.events if e.name == "circuit_state")
    assert opened.name == "chat primary" and opened.attributes["keel.run.id"] == second.run_id


async def test_a_failed_trial_opens_the_circuit_again_and_the_run_falls_back(
    primary: FakeLLMThread, fallback: FakeLLMThread
) -> None:
    control(primary, "POST", "/_fake/faults", {"rate": 1.0, "kinds": {"500": 1}})
    clock = FakeClock()
    project = project_with(
        primary,
        fallback,
        retry_options={"attempts": 3, "initial_delay": 0.01},
        circuit_breaker={"enabled": True, "failure_threshold": 2, "cool_down": 10},
    )
    runner, _ = runner_on(project, clock)
    async with runner:
        assert (await run(runner, False)).output == "from the fallback"
        assert requests_seen(primary) == 2  # the circuit opened after 2 of the 3 attempts
        clock.now += 10
        result = await run(runner, False)  # the trial fails: open again, the fallback at once
        assert result.output == "from the fallback"
        assert [c.model for c in result.model_calls] == [PRIMARY, FALLBACK]
        assert requests_seen(primary) == 3
        breaker = runner.circuits.get("model", PRIMARY)
        assert breaker is not None and state(breaker) is CircuitState.OPEN
        clock.now += 9.9
        await run(runner, False)
        assert requests_seen(primary) == 3
        assert breaker.snapshot().times_opened == 2


async def test_when_every_circuit_is_open_the_run_fails_as_circuit_open(
    primary: FakeLLMThread, fallback: FakeLLMThread
) -> None:
    for fake in (primary, fallback):
        control(fake, "POST", "/_fake/faults", {"rate": 1.0, "kinds": {"503": 1}})
    project = project_with(primary, fallback, circuit_breaker={"enabled": True, "failure_threshold": 2})
    runner, _ = runner_on(project, FakeClock())
    async with runner:
        first = await run(runner, False)
        assert first.error is not None and first.error.category is ErrorCategory.MODEL_UNAVAILABLE
        assert (requests_seen(primary), requests_seen(fallback)) == (2, 2)
        second = await run(runner, False)
        assert second.error is not None and second.error.category is ErrorCategory.CIRCUIT_OPEN
        assert second.error.message.startswith(
            "every model's circuit is open: model 'openai-compatible:primary'"
        )
        assert second.model_calls == []
        assert (requests_seen(primary), requests_seen(fallback)) == (2, 2)


async def test_a_single_model_with_an_open_circuit_fails_fast(primary: FakeLLMThread) -> None:
    control(primary, "POST", "/_fake/faults", {"rate": 1.0, "kinds": {"429": 1}, "retry_after": 0.01})
    project = project_with(primary, None, circuit_breaker={"enabled": True, "failure_threshold": 2})
    runner, _ = runner_on(project, FakeClock())
    async with runner:
        assert (await run(runner, True)).error.category is ErrorCategory.MODEL_RATE_LIMITED  # type: ignore[union-attr]
        refused = await run(runner, True)
        assert refused.error is not None and refused.error.category is ErrorCategory.CIRCUIT_OPEN
        assert "circuit is open after repeated failures" in refused.error.message
        assert requests_seen(primary) == 2


async def test_requests_the_provider_refuses_do_not_open_the_circuit(primary: FakeLLMThread) -> None:
    project = project_with(primary, None, circuit_breaker={"enabled": True, "failure_threshold": 1})
    runner, _ = runner_on(project, FakeClock())
    async with runner:
        for _ in range(3):
            assert (await run(runner, False)).succeeded
        breaker = runner.circuits.get("model", PRIMARY)
        assert breaker is not None and state(breaker) is CircuitState.CLOSED
        assert breaker.snapshot().calls == 3


async def test_breakers_are_off_by_default(primary: FakeLLMThread) -> None:
    control(primary, "POST", "/_fake/faults", {"rate": 1.0, "kinds": {"503": 1}})
    runner, _ = runner_on(project_with(primary, None), FakeClock())
    async with runner:
        for _ in range(4):
            result = await run(runner, False)
            assert result.error is not None and result.error.category is ErrorCategory.MODEL_UNAVAILABLE
        assert requests_seen(primary) == 8
        assert runner.circuits.snapshot() == []


async def test_a_refused_model_in_the_middle_of_the_chain(
    primary: FakeLLMThread, fallback: FakeLLMThread
) -> None:
    """Primary failing (its circuit still closed), fallback1 refused (its circuit open), fallback2
    answers: one fallback event per step of the chain, none skipping over the refused model."""
    control(primary, "POST", "/_fake/faults", {"rate": 1.0, "kinds": {"503": 1}})
    settings = {"enabled": True, "failure_threshold": 5}
    project = make_project(
        base_url=primary.base_url,
        fallbacks=2,
        retry_options={"attempts": 1},
        circuit_breaker=settings,
    )
    spec = project.agents["agent"]
    last = dataclasses.replace(spec.fallback_models[1], base_url=fallback.base_url)
    models = (spec.fallback_models[0], last)
    project = dataclasses.replace(
        project, agents={"agent": dataclasses.replace(spec, fallback_models=models)}
    )
    runner, _ = runner_on(project, FakeClock())
    middle = runner.circuits.breaker("model", FALLBACK, CircuitBreakerConfig.model_validate(settings))
    for _ in range(5):  # opened by other runs
        permit = middle.acquire().permit
        assert permit is not None
        permit.done(Outcome.FAILURE)
    assert state(middle) is CircuitState.OPEN
    events: list[RunEvent] = []
    async with runner:
        result = await run(runner, False, events)
    assert result.succeeded and result.output == "from the fallback"
    last_label = "openai-compatible:fallback2"
    assert [c.model for c in result.model_calls] == [PRIMARY, last_label]
    assert fallbacks(events) == [
        (PRIMARY, FALLBACK, ErrorCategory.MODEL_UNAVAILABLE),
        (FALLBACK, last_label, ErrorCategory.CIRCUIT_OPEN),
    ]
    assert (requests_seen(primary), requests_seen(fallback)) == (1, 1)
