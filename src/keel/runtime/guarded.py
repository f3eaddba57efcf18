"""Guardrails in the run loop: the failure a block causes, and decisions recorded in the trace.

The runner checks a run's input before the model sees it and its output before it leaves
(`keel.runtime.runner`); `PolicyFunctionSchema` checks each tool call before the tool runs
(`keel.runtime.tools`). Every decision other than `allow` becomes a `keel.guardrail` event on the
run's span, with the point, the guardrail, the verdict and the reason (masked like any span text).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from keel.errors import ErrorCategory, RunFailure
from keel.guardrails.policy import Check, Outcome
from keel.runtime.recorder import RunRecorder


class GuardrailBlocked(RunFailure):
    """An input or output guardrail blocked the run."""

    def __init__(self, message: str) -> None:
        super().__init__(message, category=ErrorCategory.GUARDRAIL_BLOCKED)


def record_decisions(recorder: RunRecorder | None, point: str, outcome: Outcome, span: Any = None) -> None:
    target = span if span is not None else (recorder.span if recorder is not None else None)
    if target is None:
        return
    for decision in outcome.decisions:
        if decision.verdict != "allow":
            target.event(
                "keel.guardrail",
                point=point,
                guardrail=decision.guardrail,
                verdict=decision.verdict,
                reason=decision.reason,
            )


def action_check(recorder: RunRecorder, tool: str, args: dict[str, Any], current: Any) -> Check:
    """The check of a tool call: what the run has called so far (this call excluded)."""
    earlier = tuple(c for c in recorder.tool_calls if c is not current)
    counts = Counter(c.name for c in earlier if c.status != "retry")
    return Check(
        point="action",
        agent=recorder.agent,
        tool=tool,
        args=args,
        run_id=recorder.run_id,
        tenant_id=recorder.tenant_id,
        tool_calls=dict(counts),
        user_id=recorder.user_id,
        calls=earlier,
        principal=recorder.principal,
        roles=recorder.roles,
    )
