"""Circuit breakers: stop calling a model or a tool that keeps failing, and try it again later.

    closed ──(failure_threshold consecutive failures, or too many slow calls)──► open
    open ──(cool_down elapsed; the next call is a trial)──► half_open
    half_open ──(half_open_max_calls trials all succeeded)──► closed
    half_open ──(a trial failed or was slow)──► open (a new cool-down)

A `CircuitBreaker` holds the state of one model (keyed by its label, `provider:model`) or one tool
(keyed by its name). The breakers live in a `CircuitRegistry` owned by the `Runner`, so every run
of the process shares them: one run's failures spare the next runs the wait. The state machine
knows nothing of pydantic-ai; the wrappers (`keel.runtime.retry.RetryingModel` for models,
`keel.runtime.tools.PolicyFunctionSchema` for tools, through `keel.runtime.circuit_guard`) ask
for a `Permit` before each attempt and settle it with its `Outcome`.

Each admitted call carries the breaker's generation: a call admitted before a transition (say a
slow call still running when the circuit opened) is counted in the totals but decides nothing,
so only trial calls decide a half-open circuit. The breaker is guarded by a `threading.Lock` that
is never held across an `await`, so it is safe for asyncio tasks and threads alike. Time comes
from an injectable clock (seconds, monotonic), so tests drive cool-downs and durations.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import TracebackType
from typing import Any, Literal

from pydantic_ai.exceptions import ModelAPIError

from keel.config.schema import CircuitBreakerConfig

log = logging.getLogger("keel.circuit")

Kind = Literal["model", "tool"]
Clock = Callable[[], float]
WallClock = Callable[[], datetime]


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Outcome(StrEnum):
    """How an admitted call ended, for the breaker."""

    SUCCESS = "success"  # the dependency answered (a refusal of bad input included)
    FAILURE = "failure"  # a transient error or a timeout: the dependency is in trouble
    IGNORED = "ignored"  # says nothing about the dependency (cancelled, deferred)


class CircuitOpenError(ModelAPIError):
    """A model's circuit is open: the request was not sent. A `ModelAPIError`, so pydantic-ai's
    `FallbackModel` moves on to the next model at once; a run that no model could serve ends with
    the error category `circuit_open`."""


@dataclass(frozen=True)
class Transition:
    """A change of a breaker's state, and why."""

    kind: Kind
    name: str
    from_state: CircuitState
    to_state: CircuitState
    reason: str
    at: datetime

    def attributes(self) -> dict[str, object]:
        """As span event attributes."""
        return {
            "keel.circuit.kind": self.kind,
            "keel.circuit.name": self.name,
            "keel.circuit.from": self.from_state.value,
            "keel.circuit.to": self.to_state.value,
            "keel.circuit.reason": self.reason,
        }


@dataclass(frozen=True)
class Refusal:
    """A call the breaker did not let through."""

    kind: Kind
    name: str
    state: CircuitState
    retry_in: float | None  # seconds until trial calls are let through; None: trials in progress

    def describe(self) -> str:
        if self.retry_in is None:
            return f"{self.kind} {self.name!r} is unavailable: its circuit is half-open and its trial calls are in progress"
        return (
            f"{self.kind} {self.name!r} is unavailable: its circuit is open after repeated failures "
            f"(next trial in {self.retry_in:.1f}s)"
        )

    def attributes(self) -> dict[str, object]:
        return {
            "keel.circuit.kind": self.kind,
            "keel.circuit.name": self.name,
            "keel.circuit.state": self.state.value,
            "keel.circuit.retry_in_s": self.retry_in,
        }


@dataclass(frozen=True)
class Admission:
    """The answer to `CircuitBreaker.acquire`: a permit, or a refusal; and the transition the
    request caused (open → half-open when the cool-down had passed), if any."""

    permit: Permit | None
    refusal: Refusal | None
    transition: Transition | None


@dataclass(frozen=True)
class CircuitSnapshot:
    """A breaker's state and counters at one moment (`GET /v1/circuits`)."""

    kind: Kind
    name: str
    state: CircuitState
    consecutive_failures: int
    calls: int
    failures: int
    slow_calls: int
    refused: int
    times_opened: int
    last_transition_at: datetime | None
    last_transition_reason: str | None
    half_open_at: datetime | None  # when an open circuit lets trial calls through
    settings: CircuitBreakerConfig

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "state": self.state.value,
            "consecutive_failures": self.consecutive_failures,
            "calls": self.calls,
            "failures": self.failures,
            "slow_calls": self.slow_calls,
            "refused": self.refused,
            "times_opened": self.times_opened,
            "last_transition_at": _iso(self.last_transition_at),
            "last_transition_reason": self.last_transition_reason,
            "half_open_at": _iso(self.half_open_at),
            "settings": self.settings.model_dump(exclude={"enabled"}),
        }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


class Permit:
    """One admitted call. Settle it once with `done`; leaving it as a context manager without
    having settled it counts as `Outcome.IGNORED` (the call was cancelled), which frees its
    half-open trial slot."""

    __slots__ = ("_breaker", "_generation", "_latency", "_settled", "_started", "trial")

    def __init__(self, breaker: CircuitBreaker | None, generation: int, trial: bool, started: float) -> None:
        self._breaker = breaker
        self._generation = generation
        self.trial = trial
        self._started = started
        self._latency: float | None = None
        self._settled = False

    def responded(self) -> None:
        """The dependency started answering (a stream opened): its latency is measured up to now."""
        breaker = self._breaker
        if breaker is not None and self._latency is None:
            self._latency = breaker.clock() - self._started

    def done(self, outcome: Outcome) -> Transition | None:
        """Record how the call ended; returns the transition it caused, if any. Later calls do nothing."""
        breaker = self._breaker
        if self._settled or breaker is None:
            return None
        self._settled = True
        latency = self._latency if self._latency is not None else breaker.clock() - self._started
        return breaker._record(self._generation, self.trial, outcome, latency)

    def __enter__(self) -> Permit:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.done(Outcome.IGNORED)


NO_PERMIT = Permit(None, 0, False, 0.0)
"""The permit of a call without a breaker: settling it does nothing."""


class CircuitBreaker:
    """The state of one model or tool, shared by every run of the process."""

    def __init__(
        self,
        kind: Kind,
        name: str,
        settings: CircuitBreakerConfig,
        *,
        clock: Clock = time.monotonic,
        wall: WallClock | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.settings = settings
        self.clock = clock
        self._wall = wall or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._generation = 0
        self._consecutive = 0
        self._recent: deque[bool] = deque(maxlen=settings.window)  # slow or not, closed state only
        self._opened_at = 0.0  # clock() when the circuit last opened
        self._trials_admitted = 0
        self._trial_successes = 0
        self._calls = self._failures = self._slow = self._refused = self._times_opened = 0
        self._last_at: datetime | None = None
        self._last_reason: str | None = None

    @property
    def state(self) -> CircuitState:
        """The state now (an open circuit whose cool-down has passed is still `open` until a call
        asks: that call is the first trial)."""
        return self._state

    def is_open(self) -> bool:
        return self._state is CircuitState.OPEN

    def configure(self, settings: CircuitBreakerConfig) -> None:
        """New thresholds (a reloaded or another agent's configuration); the state is kept."""
        with self._lock:
            if settings == self.settings:
                return
            self.settings = settings
            self._recent = deque(self._recent, maxlen=settings.window)

    def acquire(self) -> Admission:
        """Ask to make a call now: a permit, or a refusal while the circuit is open (or half-open
        with all its trial calls taken)."""
        with self._lock:
            now = self.clock()
            transition = None
            if self._state is CircuitState.OPEN:
                remaining = self._opened_at + self.settings.cool_down - now
                if remaining > 0:
                    self._refused += 1
                    return Admission(None, Refusal(self.kind, self.name, self._state, remaining), None)
                transition = self._move(
                    CircuitState.HALF_OPEN, f"cool-down of {self.settings.cool_down:g}s over"
                )
            if self._state is CircuitState.HALF_OPEN:
                if self._trials_admitted >= self.settings.half_open_max_calls:
                    self._refused += 1
                    return Admission(None, Refusal(self.kind, self.name, self._state, None), transition)
                self._trials_admitted += 1
                return Admission(Permit(self, self._generation, True, now), None, transition)
            return Admission(Permit(self, self._generation, False, now), None, None)

    def _record(self, generation: int, trial: bool, outcome: Outcome, latency: float) -> Transition | None:
        settings = self.settings
        slow = settings.slow_call_ms is not None and latency * 1000 >= settings.slow_call_ms
        with self._lock:
            if outcome is not Outcome.IGNORED:
                self._calls += 1
                self._failures += outcome is Outcome.FAILURE
                self._slow += slow
            if generation != self._generation:
                return None  # admitted before the last transition: it decides nothing now
            if self._state is CircuitState.HALF_OPEN:
                return self._record_trial(outcome, slow, latency)
            if self._state is not CircuitState.CLOSED or outcome is Outcome.IGNORED:
                return None
            self._consecutive = self._consecutive + 1 if outcome is Outcome.FAILURE else 0
            self._recent.append(slow)
            if self._consecutive >= settings.failure_threshold:
                count = self._consecutive
                return self._move(
                    CircuitState.OPEN, f"{count} consecutive failure{'s' if count != 1 else ''}"
                )
            if settings.slow_call_ms is not None and len(self._recent) >= settings.window:
                share = sum(self._recent) / len(self._recent)
                if share >= settings.slow_call_rate:
                    return self._move(
                        CircuitState.OPEN,
                        f"{sum(self._recent)} of the last {len(self._recent)} calls took "
                        f"{settings.slow_call_ms:g}ms or more",
                    )
            return None

    def _record_trial(self, outcome: Outcome, slow: bool, latency: float) -> Transition | None:
        if outcome is Outcome.IGNORED:
            self._trials_admitted -= 1  # the slot goes to the next call
            return None
        if outcome is Outcome.FAILURE:
            return self._move(CircuitState.OPEN, "a trial call failed")
        if slow:
            return self._move(CircuitState.OPEN, f"a trial call took {latency * 1000:.0f}ms")
        self._trial_successes += 1
        if self._trial_successes >= self.settings.half_open_max_calls:
            count = self._trial_successes
            return self._move(CircuitState.CLOSED, f"{count} trial call{'s' if count != 1 else ''} succeeded")
        return None

    def _move(self, to: CircuitState, reason: str) -> Transition:
        """Change state (the lock is held)."""
        transition = Transition(self.kind, self.name, self._state, to, reason, self._wall())
        self._state = to
        self._generation += 1
        self._consecutive = 0
        self._recent.clear()
        self._trials_admitted = self._trial_successes = 0
        if to is CircuitState.OPEN:
            self._opened_at = self.clock()
            self._times_opened += 1
        self._last_at, self._last_reason = transition.at, reason
        level = logging.WARNING if to is CircuitState.OPEN else logging.INFO
        log.log(
            level, "circuit of %s %r: %s → %s (%s)", self.kind, self.name, transition.from_state, to, reason
        )
        return transition

    def snapshot(self) -> CircuitSnapshot:
        with self._lock:
            half_open_at = None
            if self._state is CircuitState.OPEN:
                remaining = max(0.0, self._opened_at + self.settings.cool_down - self.clock())
                half_open_at = self._wall() + timedelta(seconds=remaining)
            return CircuitSnapshot(
                kind=self.kind,
                name=self.name,
                state=self._state,
                consecutive_failures=self._consecutive,
                calls=self._calls,
                failures=self._failures,
                slow_calls=self._slow,
                refused=self._refused,
                times_opened=self._times_opened,
                last_transition_at=self._last_at,
                last_transition_reason=self._last_reason,
                half_open_at=half_open_at,
                settings=self.settings,
            )


class CircuitRegistry:
    """The breakers of one process (one per `Runner`), keyed by kind and name: a model's label
    (`provider:model`) or a tool's name. Agents that use the same model or a tool of the same name
    share its breaker; its thresholds are those of the agent compiled last."""

    def __init__(self, *, clock: Clock = time.monotonic, wall: WallClock | None = None) -> None:
        self.clock = clock
        self.wall = wall
        self._lock = threading.Lock()
        self._breakers: dict[tuple[Kind, str], CircuitBreaker] = {}

    def breaker(self, kind: Kind, name: str, settings: CircuitBreakerConfig) -> CircuitBreaker:
        """The breaker of `kind` `name`, made on first use, with `settings`."""
        with self._lock:
            breaker = self._breakers.get((kind, name))
            if breaker is None:
                breaker = CircuitBreaker(kind, name, settings, clock=self.clock, wall=self.wall)
                self._breakers[(kind, name)] = breaker
                return breaker
        breaker.configure(settings)
        return breaker

    def get(self, kind: Kind, name: str) -> CircuitBreaker | None:
        with self._lock:
            return self._breakers.get((kind, name))

    def snapshot(self) -> list[CircuitSnapshot]:
        """Every breaker's state, models first, then tools, by name."""
        with self._lock:
            breakers = sorted(self._breakers.values(), key=lambda b: (b.kind, b.name))
        return [b.snapshot() for b in breakers]
