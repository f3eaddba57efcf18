"""Per-run bookkeeping, reached by the model and tool wrappers through a context variable.

The wrappers (retries, tool policies) are built once per agent and shared by every run, so they
must keep no state of their own: everything a run accumulates lives in its `RunRecorder`, which
the runner creates for the run and sets in a `ContextVar`. Tasks that pydantic-ai starts for
tool calls copy the context, so they see the same recorder. Nothing carries from one run to the
next.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from keel.runtime.events import EventHandler, RunEvent
from keel.runtime.result import ModelCall, TokenUsage, ToolCall
from keel.tracing import AgentSpan, Tracing

if TYPE_CHECKING:
    from keel.runtime.budget_guard import RunBudget


@dataclass
class RunRecorder:
    run_id: str
    agent: str
    deadline: float | None = None  # time.monotonic() by which the run must end
    on_event: EventHandler | None = None
    model_calls: list[ModelCall] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: dict[str, TokenUsage] = field(default_factory=dict)
    last_text: str = ""
    tracing: Tracing | None = None  # the runner's tracing; spans of this run go there
    span: AgentSpan | None = None  # the run's own span, parent of its chat and tool spans
    # Durable runs: model calls made inside a checkpointed model step wait here and travel with the
    # step's response (see `keel.durable.replay`), so a replayed step restores them exactly once.
    durable: bool = False
    pending_calls: list[ModelCall] = field(default_factory=list)
    # Hard budgets (`keel.runtime.budget_guard`): the budgets this run is charged to, or None, and
    # (only with budgets) what its successful attempts have cost so far, live (replayed steps are
    # not counted again: they reserve and settle nothing). `metered_usd` is None once an attempt
    # was unpriced.
    budget: RunBudget | None = None
    # The agent's guardrails (keel.guardrails.policy.Guardrails), for tool calls; None without any.
    guardrails: Any = None
    tenant_id: str | None = None
    # For guardrails (keel.guardrails.capture.RunCapture): the run's user, and what its tool calls
    # returned (keel.guardrails.policy.ContextItem), when a guardrail reads the retrieved context.
    user_id: str | None = None
    retrieved: list[Any] = field(default_factory=list)
    # Who asked for the run (label, e.g. `user:ann`) and their roles: per-principal guardrails.
    principal: str | None = None
    roles: tuple[str, ...] = ()
    # The agent's escalation triggers (keel.runtime.escalation.Escalation), or None.
    escalation: Any = None
    # A resumed run: the reviewers' decisions (keel.runtime.approval.Decision) by call id, so an
    # approved call's span says who approved it.
    decisions: Mapping[str, Any] = field(default_factory=dict)
    metered_usd: Decimal | None = Decimal(0)
    metered_tokens: int = 0

    def remaining(self) -> float | None:
        """Seconds left before the run's deadline, or None without one."""
        if self.deadline is None:
            return None
        return self.deadline - time.monotonic()

    def note_model_call(self, call: ModelCall) -> None:
        """A model call made now: recorded at once, or held for the step's response when durable."""
        if self.budget is not None and call.status == "ok":
            self.metered_tokens += call.input_tokens + call.output_tokens
            if self.metered_usd is not None:
                self.metered_usd = None if call.cost_usd is None else self.metered_usd + call.cost_usd
        if self.durable:
            self.pending_calls.append(call)
        else:
            self.record_model_call(call)

    def take_pending_calls(self) -> list[ModelCall]:
        calls, self.pending_calls = self.pending_calls, []
        return calls

    def last_model_call(self) -> ModelCall | None:
        if self.pending_calls:
            return self.pending_calls[-1]
        return self.model_calls[-1] if self.model_calls else None

    def record_model_call(self, call: ModelCall) -> None:
        self.model_calls.append(call)
        usage = self.usage.setdefault(call.model, TokenUsage())
        usage.requests += 1
        if call.status == "ok":
            usage.input_tokens += call.input_tokens
            usage.output_tokens += call.output_tokens
            if usage.cost_usd is not None:
                usage.cost_usd = None if call.cost_usd is None else usage.cost_usd + call.cost_usd

    async def emit(self, event: RunEvent) -> None:
        if self.on_event is None:
            return
        outcome: Any = self.on_event(event)
        if inspect.isawaitable(outcome):
            await outcome


_current: ContextVar[RunRecorder | None] = ContextVar("keel_run_recorder", default=None)


_NO_TRACING = Tracing.disabled()


def tracing_of(recorder: RunRecorder | None) -> Tracing:
    """The tracing a run's spans go to; outside a run (or without tracing) a no-op one."""
    tracing = recorder.tracing if recorder is not None else None
    return tracing or _NO_TRACING


def current_recorder() -> RunRecorder | None:
    return _current.get()


def set_recorder(recorder: RunRecorder | None) -> object:
    return _current.set(recorder)


def reset_recorder(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
