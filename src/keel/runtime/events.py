"""Events a run emits while it runs, for streaming to the CLI and (later) to HTTP clients."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from keel.errors import ErrorCategory


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ModelRetrying:
    model: str
    attempt: int
    category: ErrorCategory
    delay_s: float
    error: str


@dataclass(frozen=True)
class ModelFallback:
    from_model: str
    to_model: str
    category: ErrorCategory


@dataclass(frozen=True)
class ToolStarted:
    call_id: str
    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class ToolFinished:
    call_id: str
    name: str
    status: str
    duration_ms: float
    error: str | None


@dataclass(frozen=True)
class BudgetThreshold:
    """A settled model request took a budget's spend across a threshold: its soft threshold
    (`limit * soft_threshold`), or, when `hard`, the limit itself (actual usage above the estimate).
    Emitted once per budget, window and threshold, by the run whose request crossed it.

    `budget` is `Budget.as_dict()` (scope, scope_id, tenant_id, unit, period, limit,
    soft_threshold); amounts are decimal strings in the budget's unit (USD or tokens).
    """

    budget: dict[str, Any]
    threshold: str
    spent: str
    hard: bool
    window_start: str


RunEvent = TextDelta | ModelRetrying | ModelFallback | ToolStarted | ToolFinished | BudgetThreshold

EventHandler = Callable[[RunEvent], Awaitable[None] | None]
