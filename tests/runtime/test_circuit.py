"""The circuit breaker's state machine, on a fake clock: thresholds, cool-down, half-open trials,
slow calls, stale calls, and the registry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from keel.config.schema import AgentConfig, CircuitBreakerConfig
from keel.runtime.circuit import (
    CircuitBreaker,
    CircuitRegistry,
    CircuitState,
    Outcome,
    Permit,
)


def state(breaker: CircuitBreaker) -> CircuitState:
    """The state, read anew (no type narrowing from an earlier assert)."""
    return breaker.state


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def breaker(clock: FakeClock, **settings: object) -> CircuitBreaker:
    config = CircuitBreakerConfig.model_validate({"enabled": True, **settings})
    return CircuitBreaker(
        "model", "openai:m", config, clock=clock, wall=lambda: datetime(2025, 1, 1, tzinfo=UTC)
    )


def call(b: CircuitBreaker, outcome: Outcome, clock: FakeClock | None = None, takes: float = 0.0) -> Permit:
    admission = b.acquire()
    assert admission.permit is not None, admission.refusal
    if clock is not None:
        clock.advance(takes)
    admission.permit.done(outcome)
    return admission.permit


def refused(b: CircuitBreaker) -> bool:
    return b.acquire().permit is None


def test_opens_after_the_threshold_of_consecutive_failures() -> None:
    clock = FakeClock()
    b = breaker(clock, failure_threshold=3)
    call(b, Outcome.FAILURE)
    call(b, Outcome.FAILURE)
    call(b, Outcome.SUCCESS)  # resets the count
    call(b, Outcome.FAILURE)
    call(b, Outcome.FAILURE)
    assert state(b) is CircuitState.CLOSED
    assert b.snapshot().consecutive_failures == 2
    admission = b.acquire()
    assert admission.permit is not None
    transition = admission.permit.done(Outcome.FAILURE)
    assert transition is not None
    assert (transition.from_state, transition.to_state) == (CircuitState.CLOSED, CircuitState.OPEN)
    assert transition.reason == "3 consecutive failures"
    assert state(b) is CircuitState.OPEN
    refusal = b.acquire().refusal
    assert refusal is not None and refusal.retry_in == pytest.approx(30.0)
    assert "circuit is open" in refusal.describe()


def test_ignored_calls_neither_fail_nor_reset() -> None:
    b = breaker(FakeClock(), failure_threshold=2)
    call(b, Outcome.FAILURE)
    call(b, Outcome.IGNORED)
    call(b, Outcome.FAILURE)
    assert state(b) is CircuitState.OPEN
    snapshot = b.snapshot()
    assert (snapshot.calls, snapshot.failures) == (2, 2)


def test_cool_down_then_a_successful_trial_closes() -> None:
    clock = FakeClock()
    b = breaker(clock, failure_threshold=1, cool_down=30)
    call(b, Outcome.FAILURE)
    clock.advance(29.9)
    assert refused(b)
    assert b.acquire().refusal.retry_in == pytest.approx(0.1)  # type: ignore[union-attr]
    clock.advance(0.1)
    admission = b.acquire()
    assert admission.permit is not None and admission.permit.trial
    assert admission.transition is not None
    assert admission.transition.to_state is CircuitState.HALF_OPEN
    assert admission.transition.reason == "cool-down of 30s over"
    # One trial at a time (half_open_max_calls: 1): the others are still refused meanwhile.
    other = b.acquire()
    assert other.permit is None and other.refusal is not None and other.refusal.retry_in is None
    assert "trial calls are in progress" in other.refusal.describe()
    closed = admission.permit.done(Outcome.SUCCESS)
    assert closed is not None and closed.to_state is CircuitState.CLOSED
    assert closed.reason == "1 trial call succeeded"
    assert not refused(b)
    snapshot = b.snapshot()
    assert snapshot.state is CircuitState.CLOSED and snapshot.times_opened == 1
    assert snapshot.refused == 3


def test_a_failed_trial_opens_again_for_a_new_cool_down() -> None:
    clock = FakeClock()
    b = breaker(clock, failure_threshold=1, cool_down=10)
    call(b, Outcome.FAILURE)
    clock.advance(10)
    admission = b.acquire()
    assert admission.permit is not None
    clock.advance(4)
    reopened = admission.permit.done(Outcome.FAILURE)
    assert reopened is not None
    assert (reopened.from_state, reopened.to_state) == (CircuitState.HALF_OPEN, CircuitState.OPEN)
    assert reopened.reason == "a trial call failed"
    clock.advance(9.9)  # the cool-down starts over from the failed trial
    assert refused(b)
    clock.advance(0.1)
    assert not refused(b)
    assert b.snapshot().times_opened == 2


def test_every_trial_must_succeed_when_several_are_allowed() -> None:
    clock = FakeClock()
    b = breaker(clock, failure_threshold=1, cool_down=5, half_open_max_calls=3)
    call(b, Outcome.FAILURE)
    clock.advance(5)
    trials = [b.acquire().permit for _ in range(3)]
    assert all(t is not None and t.trial for t in trials)
    assert refused(b)  # a fourth waits
    assert trials[0] is not None and trials[1] is not None and trials[2] is not None
    assert trials[0].done(Outcome.SUCCESS) is None
    assert trials[1].done(Outcome.SUCCESS) is None
    assert state(b) is CircuitState.HALF_OPEN
    closed = trials[2].done(Outcome.SUCCESS)
    assert closed is not None and closed.reason == "3 trial calls succeeded"


def test_a_cancelled_trial_frees_its_slot() -> None:
    clock = FakeClock()
    b = breaker(clock, failure_threshold=1, cool_down=5)
    call(b, Outcome.FAILURE)
    clock.advance(5)
    first = b.acquire().permit
    assert first is not None
    assert refused(b)
    with first:  # left without an outcome: a cancelled call
        pass
    assert state(b) is CircuitState.HALF_OPEN
    second = b.acquire().permit
    assert second is not None and second.trial
    assert second.done(Outcome.SUCCESS) is not None
    assert state(b) is CircuitState.CLOSED


def test_a_permit_counts_once() -> None:
    b = breaker(FakeClock(), failure_threshold=2)
    permit = b.acquire().permit
    assert permit is not None
    permit.done(Outcome.FAILURE)
    permit.done(Outcome.FAILURE)
    with permit:
        pass
    assert state(b) is CircuitState.CLOSED and b.snapshot().calls == 1


def test_calls_admitted_before_a_transition_decide_nothing() -> None:
    clock = FakeClock()
    b = breaker(clock, failure_threshold=2, cool_down=5)
    slow_old = b.acquire().permit  # admitted while closed, still running
    assert slow_old is not None
    call(b, Outcome.FAILURE)
    call(b, Outcome.FAILURE)
    assert state(b) is CircuitState.OPEN
    clock.advance(5)
    trial = b.acquire().permit
    assert trial is not None and trial.trial
    assert slow_old.done(Outcome.SUCCESS) is None  # cannot close the half-open circuit
    assert state(b) is CircuitState.HALF_OPEN
    assert b.snapshot().calls == 3  # but it is counted
    assert trial.done(Outcome.SUCCESS) is not None
    assert state(b) is CircuitState.CLOSED


def test_slow_calls_open_the_circuit_over_a_full_window() -> None:
    clock = FakeClock()
    b = breaker(clock, failure_threshold=100, slow_call_ms=500, slow_call_rate=0.5, window=4)
    call(b, Outcome.SUCCESS, clock, 0.6)
    call(b, Outcome.SUCCESS, clock, 0.7)
    call(b, Outcome.SUCCESS, clock, 0.1)
    assert state(b) is CircuitState.CLOSED  # 2 of 3 slow, but the window is not full yet
    admission = b.acquire()
    assert admission.permit is not None
    clock.advance(0.2)
    transition = admission.permit.done(Outcome.SUCCESS)
    assert transition is not None and transition.to_state is CircuitState.OPEN
    assert transition.reason == "2 of the last 4 calls took 500ms or more"
    assert b.snapshot().slow_calls == 2


def test_a_window_under_the_slow_share_stays_closed() -> None:
    clock = FakeClock()
    b = breaker(clock, slow_call_ms=500, slow_call_rate=0.5, window=4)
    for takes in (0.6, 0.1, 0.1, 0.1, 0.6, 0.1, 0.1, 0.1):
        call(b, Outcome.SUCCESS, clock, takes)
    assert state(b) is CircuitState.CLOSED


def test_without_slow_call_ms_latency_never_opens() -> None:
    clock = FakeClock()
    b = breaker(clock, window=2)
    for _ in range(5):
        call(b, Outcome.SUCCESS, clock, 120.0)
    assert state(b) is CircuitState.CLOSED and b.snapshot().slow_calls == 0


def test_a_slow_trial_opens_again() -> None:
    clock = FakeClock()
    b = breaker(clock, failure_threshold=1, cool_down=5, slow_call_ms=100)
    call(b, Outcome.FAILURE)
    clock.advance(5)
    trial = b.acquire().permit
    assert trial is not None
    clock.advance(0.25)
    reopened = trial.done(Outcome.SUCCESS)
    assert reopened is not None and reopened.to_state is CircuitState.OPEN
    assert reopened.reason == "a trial call took 250ms"


def test_a_stream_is_timed_until_it_opened() -> None:
    clock = FakeClock()
    b = breaker(clock, slow_call_ms=100, slow_call_rate=1, window=1)
    permit = b.acquire().permit
    assert permit is not None
    clock.advance(0.05)
    permit.responded()
    clock.advance(10)  # generating the rest of the stream
    assert permit.done(Outcome.SUCCESS) is None
    assert state(b) is CircuitState.CLOSED


def test_snapshot_says_when_trials_start() -> None:
    clock = FakeClock()
    b = breaker(clock, failure_threshold=1, cool_down=30)
    assert b.snapshot().as_dict()["state"] == "closed"
    call(b, Outcome.FAILURE)
    clock.advance(10)
    data = b.snapshot().as_dict()
    assert data["state"] == "open"
    assert data["half_open_at"] == "2025-01-01T00:00:20+00:00"
    assert data["last_transition_at"] == "2025-01-01T00:00:00+00:00"
    assert data["last_transition_reason"] == "1 consecutive failure"
    assert data["settings"]["cool_down"] == 30.0 and "enabled" not in data["settings"]


def test_the_registry_shares_one_breaker_per_name_and_takes_new_settings() -> None:
    clock = FakeClock()
    registry = CircuitRegistry(clock=clock)
    first = CircuitBreakerConfig(enabled=True, failure_threshold=2)
    model = registry.breaker("model", "openai:m", first)
    assert registry.breaker("model", "openai:m", first) is model
    tool = registry.breaker("tool", "openai:m", first)  # another kind: another breaker
    assert tool is not model
    call(model, Outcome.FAILURE)
    again = registry.breaker("model", "openai:m", CircuitBreakerConfig(enabled=True, failure_threshold=1))
    assert again is model and model.settings.failure_threshold == 1
    assert model.snapshot().calls == 1  # the state was kept
    call(model, Outcome.FAILURE)
    assert state(model) is CircuitState.OPEN
    assert [(s.kind, s.name, s.state) for s in registry.snapshot()] == [
        ("model", "openai:m", CircuitState.OPEN),
        ("tool", "openai:m", CircuitState.CLOSED),
    ]
    assert registry.get("tool", "nope") is None


async def test_concurrent_tasks_get_exactly_the_allowed_trials() -> None:
    clock = FakeClock()
    b = breaker(clock, failure_threshold=1, cool_down=1, half_open_max_calls=2)
    call(b, Outcome.FAILURE)
    clock.advance(1)
    admitted: list[Permit] = []

    async def one() -> None:
        await asyncio.sleep(0)
        permit = b.acquire().permit
        if permit is not None:
            admitted.append(permit)

    await asyncio.gather(*(one() for _ in range(50)))
    assert len(admitted) == 2
    assert b.snapshot().refused == 48


def test_settings_are_validated() -> None:
    with pytest.raises(ValidationError):
        CircuitBreakerConfig.model_validate({"failure_threshold": 0})
    with pytest.raises(ValidationError):
        CircuitBreakerConfig.model_validate({"slow_call_rate": 0})
    with pytest.raises(ValidationError):
        CircuitBreakerConfig.model_validate({"cool_down": -1})
    with pytest.raises(ValidationError):
        CircuitBreakerConfig.model_validate({"failure_treshold": 3})  # a typo is an error


def test_a_tool_overrides_only_the_keys_it_gives() -> None:
    config = AgentConfig.model_validate(
        {
            "name": "a",
            "model": "openai:m",
            "circuit_breaker": {"enabled": True, "failure_threshold": 4, "cool_down": 12},
            "tools": [
                {"function": "m:f", "circuit_breaker": {"failure_threshold": 2}},
                {"function": "m:g", "circuit_breaker": {"enabled": False}},
                "m:h",
            ],
        }
    )
    agent = config.circuit_breaker
    merged = [agent.merged(tool.circuit_breaker) for tool in config.tools]
    assert [(m.enabled, m.failure_threshold, m.cool_down) for m in merged] == [
        (True, 2, 12),
        (False, 4, 12),
        (True, 4, 12),
    ]
    assert not AgentConfig.model_validate({"name": "a", "model": "openai:m"}).circuit_breaker.enabled
