"""What a run returns: output, status, error category, and an account of every step."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from keel.errors import ErrorCategory


class RunStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    # Stopped at a tool call that needs a person's approval (see keel.runtime.approval); the run
    # goes on when every pending call is decided.
    WAITING_APPROVAL = "waiting_approval"
    # Handed to a person (keel.runtime.escalation): the agent stops, the human queue has a summary.
    ESCALATED = "escalated"


@dataclass
class RunError:
    category: ErrorCategory
    message: str


@dataclass
class ModelCall:
    """One HTTP request to a provider: a first attempt, a retry, or a fallback."""

    model: str
    attempt: int
    started_at: datetime
    duration_ms: float
    status: str  # "ok" or "error"
    input_tokens: int = 0
    output_tokens: int = 0
    error_category: ErrorCategory | None = None
    error: str | None = None
    retry_delay_s: float | None = None  # set when this failure was followed by a retry after that delay
    streamed: bool = False
    cost_usd: Decimal | None = None  # None for an unpriced model; 0 for a failed attempt


@dataclass
class ToolCall:
    call_id: str
    name: str
    args: dict[str, Any]
    started_at: datetime
    duration_ms: float = 0.0
    status: str = "running"  # "ok", "error", "timeout", or "retry" (the model was asked to fix its arguments)
    attempts: int = 0
    error: str | None = None


@dataclass
class TokenUsage:
    requests: int = 0  # provider requests, failed attempts included
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal | None = Decimal(0)  # None once any request to the model was unpriced

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass
class RunResult:
    run_id: str
    agent: str
    status: RunStatus
    output: str | dict[str, Any] | list[Any] | None
    error: RunError | None
    started_at: datetime
    ended_at: datetime
    model_calls: list[ModelCall] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: dict[str, TokenUsage] = field(default_factory=dict)
    config_hash: str = ""
    input: Any = None
    trigger: str = "api"
    session_id: str | None = None
    user_id: str | None = None
    tenant_id: str | None = None
    parent_run_id: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    prompt_version: str | None = None
    release: int | None = None
    trace_id: str | None = None
    # A run waiting for approval: the calls waiting (call_id, tool, args, reason, timeout...).
    approvals: list[dict[str, Any]] = field(default_factory=list)
    # An escalated run: why, and the summary for the person who takes it over.
    escalation: dict[str, Any] | None = None
    # A run waiting for approval: what it needs to go on (keel.runtime.approval.PausedState as
    # JSON). Not part of the run's public view.
    paused: dict[str, Any] | None = None

    @property
    def succeeded(self) -> bool:
        return self.status is RunStatus.SUCCEEDED

    @property
    def duration_ms(self) -> float:
        return (self.ended_at - self.started_at).total_seconds() * 1000

    @property
    def model_requests(self) -> int:
        """Requests sent to providers, failed attempts and retries included."""
        return len(self.model_calls)

    @property
    def retries(self) -> int:
        return sum(1 for call in self.model_calls if call.retry_delay_s is not None)

    @property
    def input_tokens(self) -> int:
        return sum(u.input_tokens for u in self.usage.values())

    @property
    def output_tokens(self) -> int:
        return sum(u.output_tokens for u in self.usage.values())

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def cost_usd(self) -> Decimal | None:
        """Total cost in USD, or None when a model used has no known price."""
        total = Decimal(0)
        for usage in self.usage.values():
            if usage.cost_usd is None:
                return None
            total += usage.cost_usd
        return total

    def summary(self) -> str:
        """The one-line summary the CLI prints."""
        parts = [
            self.status.value if self.error is None else f"{self.status.value} ({self.error.category.value})",
            f"{self.duration_ms:.0f} ms",
            f"{self.model_requests} model request{'s' if self.model_requests != 1 else ''}",
            f"{len(self.tool_calls)} tool call{'s' if len(self.tool_calls) != 1 else ''}",
            f"{self.input_tokens} in / {self.output_tokens} out tokens",
        ]
        if self.retries:
            parts.append(f"{self.retries} retr{'ies' if self.retries != 1 else 'y'}")
        cost = self.cost_usd
        if cost is not None and self.usage:
            parts.append(f"${cost:.6f}")
        return " · ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable view (for `keel run --json` and the HTTP API)."""
        data = asdict(self)
        data.pop("paused", None)
        if not data["approvals"]:
            data.pop("approvals")
        if data["escalation"] is None:
            data.pop("escalation")
        data["status"] = self.status.value
        data["started_at"] = self.started_at.isoformat()
        data["ended_at"] = self.ended_at.isoformat()
        data["duration_ms"] = round(self.duration_ms, 3)
        data["model_requests"] = self.model_requests
        data["retries"] = self.retries
        data["input_tokens"] = self.input_tokens
        data["output_tokens"] = self.output_tokens
        data["cost_usd"] = money_text(self.cost_usd)
        data["tags"] = list(self.tags)
        for usage in data["usage"].values():
            usage["cost_usd"] = money_text(usage["cost_usd"])
        for call in data["model_calls"]:
            call["started_at"] = call["started_at"].isoformat()
            call["cost_usd"] = money_text(call["cost_usd"])
        for call in data["tool_calls"]:
            call["started_at"] = call["started_at"].isoformat()
        return data


def money_text(value: Decimal | None) -> str | None:
    """Money goes out as a decimal string: floats would lose cents over many runs."""
    return None if value is None else format(value, "f")
