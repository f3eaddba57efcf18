"""What the query API returns, besides records: pages, usage totals, per-agent statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from keel.store.records import RunRecord

UsageGroup = Literal["agent", "user", "tenant", "day", "model"]
USAGE_GROUPS: tuple[UsageGroup, ...] = ("agent", "user", "tenant", "day", "model")


@dataclass(frozen=True)
class RunPage:
    """One page of runs, newest first. `next_cursor` is None on the last page."""

    runs: list[RunRecord]
    next_cursor: str | None


@dataclass(frozen=True)
class UsageTotal:
    """Usage summed over one group.

    `key` is the agent, user id, tenant id, model (`provider:model`) or UTC day (`YYYY-MM-DD`);
    None for runs without a user or tenant. `cost_usd` sums the known costs only; `unpriced_runs`
    counts the runs (for 'model': the runs on that model) whose cost is unknown, so a total is
    never silently understated.
    """

    key: str | None
    runs: int
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    unpriced_runs: int


@dataclass(frozen=True)
class ToolStats:
    """Calls of one tool by one agent's runs; a failed call counts in both numbers."""

    tool: str
    calls: int
    failures: int
    failure_rate: float  # failures / calls


@dataclass(frozen=True)
class AgentStats:
    """How one agent's runs went over a period.

    Latency percentiles are nearest-rank over `duration_ms` of all runs, whatever their status.
    `mean_cost_usd` is over priced runs only (None if none is priced); `unpriced_runs` says how
    many were left out.
    """

    agent: str
    runs: int
    succeeded: int
    success_rate: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    mean_cost_usd: Decimal | None
    unpriced_runs: int
    error_categories: dict[str, int] = field(default_factory=dict)  # most frequent first
    tools: list[ToolStats] = field(default_factory=list)  # by tool name
