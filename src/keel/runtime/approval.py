"""Approval gates in the run loop: a gated tool call stops the run; people decide; the run goes on.

A call needs approval when its tool has `approval:` in the agent's config, or when an action
guardrail decides `require_approval` (e.g. an amount above a ceiling). Until a person has approved
that very call, the tool is not run: the wrapper (`keel.runtime.tools`) raises pydantic-ai's
`ApprovalRequired`, pydantic-ai ends the run with `DeferredToolRequests`, and the runner returns a
result with status `waiting_approval`: the calls waiting (`RunResult.approvals`) and what the run
needs to go on (`RunResult.paused`: its messages so far and its record so far, as JSON).

Going on is another `Runner.run` with `resume=Resume(...)`: the same run id, the messages, and a
decision per waiting call (approve, approve with edited arguments, or reject with a reason). An
approved call runs then (once: in durable runs it is a checkpointed step); a rejected one is
answered to the model as refused, with the reviewer's reason. The model may then try again: every
attempt is a new call that needs its own approval.

Durable runs (`keel.durable.approvals`) store the paused state, notify reviewers and start the
continuation as a new workflow when the decisions are in, so a waiting run holds no worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic_ai import DeferredToolRequests, DeferredToolResults, ToolApproved, ToolDenied
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter
from pydantic_ai.usage import RunUsage
from pydantic_core import to_jsonable_python

from keel.config.approvals import AgentApprovals, ToolApproval
from keel.errors import ErrorCategory
from keel.runtime.result import ModelCall, ToolCall

APPROVAL_REASON = "approval_reason"  # the key of a waiting call's reason in pydantic-ai's metadata


@dataclass(frozen=True)
class Gate:
    """A tool's approval settings, resolved against the agent's defaults."""

    timeout: float
    on_timeout: str
    reason: str


def gate_for(tool: ToolApproval | None, defaults: AgentApprovals) -> Gate | None:
    if tool is None or not tool.required:
        return None
    return Gate(
        timeout=tool.timeout if tool.timeout is not None else defaults.timeout,
        on_timeout=tool.on_timeout or defaults.on_timeout,
        reason=tool.reason or "this tool needs a person's approval",
    )


@dataclass(frozen=True)
class Decision:
    """A person's (or a timeout policy's) answer to one waiting call."""

    approved: bool
    args: Mapping[str, Any] | None = None  # edited arguments (approve only)
    reason: str = ""
    by: str = ""

    def as_result(self) -> ToolApproved | ToolDenied:
        if self.approved:
            return ToolApproved(override_args=dict(self.args) if self.args is not None else None)
        why = f": {self.reason}" if self.reason else ""
        return ToolDenied(
            f"A reviewer rejected this call{why}. It was not run. Do not try to get around the "
            "decision; answer without it, or explain that it was not approved."
        )


@dataclass
class PausedState:
    """What a run waiting for approval needs to go on, as JSON (stored by durable runs)."""

    messages: list[Any]
    model_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    started_at: str = ""
    pauses: int = 1  # how many times this run has stopped for approval, this stop included
    # pydantic-ai's count so far (requests, tool calls, tokens): the agent's `limits` hold for the
    # whole run, so the next stretch goes on counting from here instead of from zero.
    usage: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PausedState:
        state = cls(
            messages=list(data.get("messages") or []),
            model_calls=list(data.get("model_calls") or []),
            tool_calls=list(data.get("tool_calls") or []),
            started_at=str(data.get("started_at") or ""),
            pauses=int(data.get("pauses") or 1),
            usage=dict(data.get("usage") or {}),
        )
        if not state.usage:  # stored before the usage was kept: count it from the record
            state.usage = state._usage_from_record()
        return state

    def history(self) -> list[ModelMessage]:
        return ModelMessagesTypeAdapter.validate_python(self.messages)

    def run_usage(self) -> RunUsage:
        known = {f.name for f in fields(RunUsage)}
        return RunUsage(**{k: v for k, v in self.usage.items() if k in known and k != "cost"})

    def _usage_from_record(self) -> dict[str, Any]:
        answered = [c for c in self.model_calls if c.get("status") == "ok"]
        ran = [c for c in self.tool_calls if c.get("status") not in ("rejected", "running")]
        return {
            "requests": len(answered),
            "input_tokens": sum(int(c.get("input_tokens") or 0) for c in answered),
            "output_tokens": sum(int(c.get("output_tokens") or 0) for c in answered),
            "tool_calls": len(ran),
        }


@dataclass(frozen=True)
class Resume:
    """How `Runner.run` goes on with a paused run: its state and the decisions, by call id.
    With `escalate`, the run does not go on: it ends escalated with that reason."""

    state: PausedState
    decisions: Mapping[str, Decision] = field(default_factory=dict)
    escalate: str | None = None

    def deferred_results(self) -> DeferredToolResults:
        return DeferredToolResults(approvals={cid: d.as_result() for cid, d in self.decisions.items()})


def waiting_calls(
    requests: DeferredToolRequests, gates: Mapping[str, Gate | None], defaults: AgentApprovals
) -> list[dict[str, Any]]:
    """The calls a run stopped on, as stored and shown to reviewers."""
    calls = []
    for part in requests.approvals:
        meta = requests.metadata.get(part.tool_call_id, {})
        gate = gates.get(part.tool_name)
        calls.append(
            {
                "call_id": part.tool_call_id,
                "tool": part.tool_name,
                "args": part.args_as_dict(),
                "reason": str(meta.get(APPROVAL_REASON) or (gate.reason if gate else "")),
                "timeout_s": gate.timeout if gate else defaults.timeout,
                "on_timeout": gate.on_timeout if gate else defaults.on_timeout,
            }
        )
    return calls


def paused_state(
    messages: list[ModelMessage],
    model_calls: list[ModelCall],
    tool_calls: list[ToolCall],
    started_at: datetime,
    pauses: int,
    usage: RunUsage,
) -> PausedState:
    return PausedState(
        messages=to_jsonable_python(messages, bytes_mode="base64"),
        model_calls=[_call_json(c) for c in model_calls],
        tool_calls=[_call_json(c) for c in tool_calls],
        started_at=started_at.isoformat(),
        pauses=pauses,
        usage=to_jsonable_python(asdict(usage)),
    )


def _call_json(call: ModelCall | ToolCall) -> dict[str, Any]:
    data: dict[str, Any] = to_jsonable_python(asdict(call))
    return data


def model_call_from(data: Mapping[str, Any]) -> ModelCall:
    values = dict(data)
    values["started_at"] = datetime.fromisoformat(values["started_at"])
    if values.get("error_category") is not None:
        values["error_category"] = ErrorCategory(values["error_category"])
    if values.get("cost_usd") is not None:
        values["cost_usd"] = Decimal(str(values["cost_usd"]))
    return ModelCall(**values)


def tool_call_from(data: Mapping[str, Any]) -> ToolCall:
    values = dict(data)
    values["started_at"] = datetime.fromisoformat(values["started_at"])
    return ToolCall(**values)
