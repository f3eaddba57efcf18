"""The evaluation model: a case, what a run of it did (an `Observation`), and a `Score`.

Evaluators are small objects with one method, `async evaluate(case, observation) -> Score`; the
built-in ones are configured in YAML (`keel.evals.evaluators`), custom ones are plain Python.
A score is a number in [0, 1] and a verdict (`passed`); `reason` says why, for people.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol


@dataclass(frozen=True)
class ToolCallSeen:
    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Case:
    """One evaluation case.

    `expected` is the expected output (text, or a JSON value for structured agents) when there is
    one; `expect` holds the case's own evaluator settings (added to the dataset's); `repeat` runs
    the case N times and `threshold` is the share of attempts that must pass."""

    id: str
    input: Any
    expected: Any = None
    expect: tuple[dict[str, Any], ...] = ()
    tags: tuple[str, ...] = ()
    repeat: int = 1
    threshold: float = 1.0
    variables: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    line: int | None = None  # where it was written (for messages)


@dataclass(frozen=True)
class Observation:
    """What one run of a case did, as evaluators see it."""

    output: Any
    status: str  # the run's status: succeeded, failed, timed_out, cancelled
    error: str | None = None
    tool_calls: tuple[ToolCallSeen, ...] = ()
    latency_ms: float = 0.0
    cost_usd: Decimal | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    run_id: str | None = None
    prompt_version: str | None = None
    tenant_id: str | None = (
        None  # the run's tenant: a judge's run is that tenant's too (its budget, its history)
    )


@dataclass(frozen=True)
class Score:
    evaluator: str
    score: float
    passed: bool
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "evaluator": self.evaluator,
            "score": self.score,
            "passed": self.passed,
            "reason": self.reason,
        }


class Evaluator(Protocol):
    """Scores one observation of one case."""

    name: str

    async def evaluate(self, case: Case, observation: Observation) -> Score: ...
