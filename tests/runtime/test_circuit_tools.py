"""A tool's circuit breaker: a tool that keeps failing is not called while its circuit is open;
the model is told it is unavailable (or the run fails as `circuit_open` with `on_failure: fail`);
after the cool-down a trial call goes through. The model is the fake provider over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic_ai import ModelRetry

from keel.errors import ErrorCategory
from keel.runtime.circuit import CircuitBreaker, CircuitRegistry, CircuitState
from keel.runtime.runner import Runner
from keel.testing.fake_llm import FakeLLMThread, Reply, Rule, RuleScript, ToolCallReply, When
from tests.runtime.helpers import make_project
from tests.tracing.helpers import make_tracing


def state(breaker: CircuitBreaker) -> CircuitState:
    """The state, read anew (no type narrowing from an earlier assert)."""
    return breaker.state


# The model calls `lookup`, then repeats what the tool returned (or what it was told of a failure).
SCRIPT = RuleScript(
    [
        Rule(when=When(last_is_tool_result=True), reply=Reply(text="told: {last_tool_result}")),
        Rule(reply=Reply(tool_calls=[ToolCallReply("lookup", {"city": "Paris"})])),
    ]
)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


class Weather:
    """A tool whose health the test switches; counts the calls it gets."""

    def __init__(self) -> None:
        self.calls = 0
        self.healthy = False
        self.bad_arguments = False

    def __call__(self, city: str) -> str:
        self.calls += 1
        if self.bad_arguments:
            raise ModelRetry("unknown city")
        if not self.healthy:
            raise ConnectionError("weather service down")
        return f"sunny in {city}"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLMThread]:
    with FakeLLMThread() as server:
        yield server


@pytest.fixture(autouse=True)
def _script(fake: FakeLLMThread) -> None:
    fake.restore_defaults()
    fake.reset()
    fake.set_script(SCRIPT)


def runner_for(fake: FakeLLMThread, tool: Weather, clock: Clock, **config: Any) -> Runner:
    def lookup(city: str) -> str:
        """Weather for a city."""
        return tool(city)

    runner = Runner(make_project(base_url=fake.base_url, tools={"lookup": lookup}, **config))
    runner.circuits = CircuitRegistry(clock=clock)
    return runner


async def test_an_open_tool_circuit_takes_the_tool_error_path_then_recovers(fake: FakeLLMThread) -> None:
    tool, clock = Weather(), Clock()
    runner = runner_for(
        fake, tool, clock, circuit_breaker={"enabled": True, "failure_threshold": 2, "cool_down": 60}
    )
    tracing, collector = make_tracing()
    runner.tracing = tracing
    async with runner:
        for _ in range(2):
            failed = await runner.run("agent", "weather?")
            assert failed.succeeded and "weather service down" in str(failed.output)
        assert tool.calls == 2
        breaker = runner.circuits.get("tool", "lookup")
        assert breaker is not None and state(breaker) is CircuitState.OPEN

        refused = await runner.run("agent", "weather?")
        assert tool.calls == 2  # not called
        assert refused.succeeded
        assert "Tool 'lookup' is unavailable right now" in str(refused.output)
        assert "do not invent its result" in str(refused.output)
        [call] = refused.tool_calls
        assert call.status == "error" and call.attempts == 0
        assert call.error is not None and call.error.startswith("circuit open: tool 'lookup' is unavailable")

        tool.healthy = True
        clock.now += 60
        recovered = await runner.run("agent", "weather?")
        assert recovered.output == "told: sunny in Paris"
        assert tool.calls == 3
        assert state(breaker) is CircuitState.CLOSED
        assert (await runner.run("agent", "weather?")).output == "told: sunny in Paris"
        assert breaker.snapshot().refused == 1

    [refusal] = [e for r in collector.records for e in r.events if e.name == "circuit_open"]
    assert refusal.attributes["keel.circuit.kind"] == "tool"
    assert refusal.attributes["keel.circuit.name"] == "lookup"
    states = [
        (r.name, e.attributes["keel.circuit.to"])
        for r in collector.records
        for e in r.events
        if e.name == "circuit_state"
    ]
    assert sorted(states) == sorted(
        [
            ("execute_tool lookup", "open"),
            ("invoke_agent agent", "half_open"),
            ("execute_tool lookup", "closed"),
        ]
    )


async def test_a_circuit_that_opens_during_retries_stops_them(fake: FakeLLMThread) -> None:
    tool, clock = Weather(), Clock()
    runner = runner_for(
        fake,
        tool,
        clock,
        tool_config={"lookup": {"retry": {"attempts": 5, "initial_delay": 0.01}}},
        circuit_breaker={"enabled": True, "failure_threshold": 2},
    )
    async with runner:
        result = await runner.run("agent", "weather?")
    assert tool.calls == 2  # not 5: the circuit opened after the second attempt
    assert "failed after 2 attempts: ConnectionError: weather service down" in str(result.output)


async def test_on_failure_fail_ends_the_run_as_circuit_open(fake: FakeLLMThread) -> None:
    tool, clock = Weather(), Clock()
    runner = runner_for(
        fake,
        tool,
        clock,
        tool_config={"lookup": {"on_failure": "fail"}},
        circuit_breaker={"enabled": True, "failure_threshold": 1},
    )
    async with runner:
        first = await runner.run("agent", "weather?")
        assert first.error is not None and first.error.category is ErrorCategory.TOOL_ERROR
        second = await runner.run("agent", "weather?")
    assert second.error is not None and second.error.category is ErrorCategory.CIRCUIT_OPEN
    assert "is unavailable right now" in second.error.message
    assert tool.calls == 1


async def test_a_tool_turns_its_own_breaker_on_or_off(fake: FakeLLMThread) -> None:
    """The agent's breakers off, `lookup`'s on (its keys over the agent's); and the reverse."""
    tool, clock = Weather(), Clock()
    only_the_tool = runner_for(
        fake,
        tool,
        clock,
        tool_config={"lookup": {"circuit_breaker": {"enabled": True, "failure_threshold": 1}}},
    )
    async with only_the_tool:
        await only_the_tool.run("agent", "weather?")
        await only_the_tool.run("agent", "weather?")
        assert [(s.kind, s.name, s.state) for s in only_the_tool.circuits.snapshot()] == [
            ("tool", "lookup", CircuitState.OPEN)
        ]
    assert tool.calls == 1

    tool = Weather()
    all_but_the_tool = runner_for(
        fake,
        tool,
        clock,
        circuit_breaker={"enabled": True, "failure_threshold": 1},
        tool_config={"lookup": {"circuit_breaker": {"enabled": False}}},
    )
    async with all_but_the_tool:
        for _ in range(3):
            await all_but_the_tool.run("agent", "weather?")
        assert [s.kind for s in all_but_the_tool.circuits.snapshot()] == ["model"]
    assert tool.calls == 3


async def test_bad_arguments_do_not_count_as_failures(fake: FakeLLMThread) -> None:
    tool, clock = Weather(), Clock()
    tool.bad_arguments = True
    runner = runner_for(fake, tool, clock, circuit_breaker={"enabled": True, "failure_threshold": 1})
    async with runner:
        await runner.run("agent", "weather?")
        breaker = runner.circuits.get("tool", "lookup")
        assert breaker is not None and state(breaker) is CircuitState.CLOSED
        assert breaker.snapshot().calls >= 1 and breaker.snapshot().failures == 0
