"""Python tools and the policy applied to every call: timeout, retries, failure reporting.

`PolicyFunctionSchema` wraps the call of each Python tool. Each call gets its own timeout and
retry policy from the agent's config. When a tool keeps failing, the model is told so through
`ToolFailed` (the model can then say it could not complete that step instead of inventing a
result), unless the tool is configured `on_failure: fail`, which ends the run as `tool_error` or
`tool_timeout`.

With a circuit breaker (`circuit_breaker`), each attempt first asks the tool's breaker
(`keel.runtime.circuit`): while it is open the call is not made and takes the same failure path
(the model is told the tool is unavailable; `on_failure: fail` ends the run as `circuit_open`).
A tool's exceptions and timeouts count as failures; `ModelRetry` (bad arguments) does not.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from dbos import DBOS
from pydantic_ai import RunContext
from pydantic_ai._function_schema import FunctionSchema
from pydantic_ai.exceptions import ApprovalRequired, CallDeferred, ModelRetry, ToolFailed
from pydantic_ai.tools import Tool
from pydantic_core import to_jsonable_python

from keel.config.approvals import AgentApprovals
from keel.config.project import ResolvedTool
from keel.config.schema import CircuitBreakerConfig, RetryOptions, ToolConfig
from keel.errors import ErrorCategory, ToolFailure
from keel.gateway.keys import Scope
from keel.gateway.principal import DEFAULT_TENANT, Principal
from keel.guardrails.injection import mark_untrusted
from keel.runtime.approval import APPROVAL_REASON, Gate, gate_for
from keel.runtime.circuit import CircuitRegistry, Outcome, Permit, Refusal
from keel.runtime.circuit_guard import ToolCircuit
from keel.runtime.escalation import RunEscalated
from keel.runtime.events import ToolFinished, ToolStarted
from keel.runtime.recorder import RunRecorder, current_recorder, tracing_of
from keel.runtime.result import ToolCall
from keel.runtime.retry import backoff_delay
from keel.tracing import ToolSpan, tool_span

# Exceptions a tool raises on purpose to talk to the loop; they pass through untouched.
_SIGNALS = (ModelRetry, ToolFailed, CallDeferred, ApprovalRequired)


@dataclass(frozen=True)
class RunDeps:
    """What a tool can learn about its run, as `ctx.deps` when it takes `ctx: RunContext[RunDeps]`."""

    run_id: str
    agent: str
    session_id: str | None = None
    user_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    tenant_id: str | None = None
    # The agent's own identity (agent config `identity`): tools act as the agent, with its scopes,
    # on behalf of `user_id`, never with that user's rights.
    principal: Principal | None = None
    # The run's instructions when they come from the prompt registry (rendered for this run).
    instructions: str | None = None

    def idempotency_key(self, ctx: RunContext[Any]) -> str:
        """A key unique to this tool call in this run, for deduplicating external side effects."""
        return f"{self.run_id}:{ctx.tool_call_id}"


def agent_principal(agent: str, scopes: Iterable[Scope], tenant_id: str | None) -> Principal:
    """The agent's own principal for one run: kind `agent`, in the run's tenant, with exactly the
    scopes of its `identity` (none by default)."""
    return Principal(
        kind="agent",
        id=agent,
        tenant_id=tenant_id or DEFAULT_TENANT,
        scopes=frozenset(scopes),
        credential="internal",
    )


@dataclass(frozen=True)
class ToolPolicy:
    timeout: float | None
    attempts: int
    backoff: RetryOptions
    on_failure: str
    circuit: ToolCircuit | None = None
    gate: Gate | None = None  # every call needs a person's approval
    mark_result: bool = False  # the result reaches the model marked as untrusted data


def policy_for(
    tool: ToolConfig,
    default_timeout: float | None,
    circuit: ToolCircuit | None = None,
    approvals: AgentApprovals | None = None,
    mark_results: bool = False,
) -> ToolPolicy:
    retry = tool.retry
    backoff = RetryOptions(
        attempts=retry.attempts,
        initial_delay=retry.initial_delay,
        max_delay=retry.max_delay,
        jitter=retry.jitter,
    )
    return ToolPolicy(
        timeout=tool.timeout if tool.timeout is not None else default_timeout,
        attempts=retry.attempts,
        backoff=backoff,
        on_failure=tool.on_failure,
        circuit=circuit,
        gate=gate_for(tool.approval, approvals or AgentApprovals()),
        mark_result=mark_results and not tool.trusted,
    )


def build_tools(
    tools: tuple[ResolvedTool, ...],
    default_timeout: float | None,
    *,
    circuits: CircuitRegistry | None = None,
    circuit_breaker: CircuitBreakerConfig | None = None,
    approvals: AgentApprovals | None = None,
    mark_results: bool = False,
) -> list[Tool[RunDeps]]:
    """pydantic-ai tools whose every call goes through the tool's `ToolPolicy`. With `circuits`,
    a tool whose breaker is enabled (the agent's `circuit_breaker`, with the tool's own keys
    over it) gets its breaker from the registry, keyed by the tool's name."""
    built: list[Tool[RunDeps]] = []
    for resolved in tools:
        tool: Tool[RunDeps] = Tool(
            resolved.function, name=resolved.name, description=resolved.description, max_retries=2
        )
        circuit = None
        settings = (circuit_breaker or CircuitBreakerConfig()).merged(resolved.config.circuit_breaker)
        if circuits is not None and settings.enabled:
            circuit = ToolCircuit(circuits.breaker("tool", resolved.name, settings))
        tool.function_schema = PolicyFunctionSchema.around(
            tool.function_schema,
            policy_for(resolved.config, default_timeout, circuit, approvals, mark_results),
        )
        built.append(tool)
    return built


@dataclass
class PolicyFunctionSchema(FunctionSchema):
    """pydantic-ai's function schema with Keel's call policy around the call itself.

    The policy wraps the one method pydantic-ai's `FunctionToolset` invokes for a call, so the
    tools stay in the agent's own toolset: an extra wrapper toolset would make pydantic-ai fan
    out over two toolsets (spawning tasks) at every step of every run.
    """

    policy: ToolPolicy | None = None

    @classmethod
    def around(cls, schema: FunctionSchema, policy: ToolPolicy) -> PolicyFunctionSchema:
        values = {f.name: getattr(schema, f.name) for f in fields(schema) if f.init}
        return cls(**values, policy=policy)

    async def call(self, args_dict: dict[str, Any], ctx: RunContext[Any]) -> Any:
        policy = self.policy
        if policy is None:  # pragma: no cover - `around` always sets one
            return await super().call(args_dict, ctx)
        recorder = current_recorder()
        if (
            recorder is not None
            and recorder.durable
            and DBOS.workflow_id is not None
            and DBOS.step_id is None
        ):
            return await self._durable_call(args_dict, ctx, policy, recorder)
        record = self._new_record(args_dict, ctx)
        if recorder is not None:
            recorder.tool_calls.append(record)
        return await self._traced_call(args_dict, ctx, policy, record, recorder)

    def _new_record(self, args_dict: dict[str, Any], ctx: RunContext[Any]) -> ToolCall:
        return ToolCall(
            call_id=ctx.tool_call_id or "", name=self.name, args=dict(args_dict), started_at=datetime.now(UTC)
        )

    async def _durable_call(
        self, args_dict: dict[str, Any], ctx: RunContext[Any], policy: ToolPolicy, recorder: RunRecorder
    ) -> Any:
        """The call as one checkpointed step: a completed call is never executed again, and on
        replay its recorded outcome (result or failure, and its `ToolCall`) is returned as it was.

        Nothing may be awaited before `run_step_async`: DBOS numbers steps when they are started,
        and parallel tool calls must draw their numbers in call order, live and on replay.
        """

        async def step() -> dict[str, Any]:
            record = self._new_record(args_dict, ctx)
            try:
                value = await self._traced_call(args_dict, ctx, policy, record, recorder)
            except ModelRetry as exc:
                return {"kind": "retry", "message": exc.message, "record": record}
            except ToolFailed as exc:
                return {"kind": "failed", "message": exc.message, "record": record}
            except ApprovalRequired as exc:
                return {"kind": "approval", "metadata": exc.metadata or {}, "record": record}
            except RunEscalated as exc:
                return {"kind": "escalate", "trigger": exc.trigger, "message": exc.reason, "record": record}
            except ToolFailure as exc:
                return {
                    "kind": "failure",
                    "message": exc.message,
                    "category": exc.category.value,
                    "record": record,
                }
            return {"kind": "ok", "value": to_jsonable_python(value), "record": record}

        outcome = await DBOS.run_step_async({"name": f"keel.tool.{self.name}"}, step)
        recorder.tool_calls.append(outcome["record"])
        kind, message = outcome["kind"], outcome.get("message", "")
        if kind == "retry":
            raise ModelRetry(message)
        if kind == "failed":
            raise ToolFailed(message)
        if kind == "approval":
            raise ApprovalRequired(metadata=outcome.get("metadata") or None)
        if kind == "escalate":
            raise RunEscalated(outcome["trigger"], message)
        if kind == "failure":
            raise ToolFailure(message, category=ErrorCategory(outcome["category"]))
        return outcome["value"]

    async def _traced_call(
        self,
        args_dict: dict[str, Any],
        ctx: RunContext[Any],
        policy: ToolPolicy,
        record: ToolCall,
        recorder: RunRecorder | None,
    ) -> Any:
        name = self.name
        if recorder is not None:
            await recorder.emit(ToolStarted(record.call_id, name, record.args))
        t0 = time.perf_counter()
        with tool_span(tracing_of(recorder), name=name, call_id=record.call_id, args=args_dict) as span:
            try:
                args_dict = await self._guarded(args_dict, ctx, policy, record, span, recorder)
                result = await self._call_with_policy(args_dict, ctx, policy, record, span, recorder)
                record.status = "ok"
                span.ok(result, record.attempts)
                if policy.mark_result:  # inside the durable step: the marking is checkpointed too
                    return mark_untrusted(_as_text(result), f"tool {name}")
                return result
            except (ApprovalRequired, RunEscalated) as exc:
                span.failed(
                    "waiting_approval" if isinstance(exc, ApprovalRequired) else "escalated",
                    record.error or "",
                    0,
                )
                raise
            except BaseException as exc:
                span.failed(
                    "timeout" if record.status == "timeout" else "error",
                    record.error or str(exc),
                    record.attempts,
                )
                raise
            finally:
                record.duration_ms = (time.perf_counter() - t0) * 1000
                if recorder is not None:
                    await recorder.emit(
                        ToolFinished(record.call_id, name, record.status, record.duration_ms, record.error)
                    )

    async def _call_with_policy(
        self,
        args_dict: dict[str, Any],
        ctx: RunContext[Any],
        policy: ToolPolicy,
        record: ToolCall,
        span: ToolSpan | None = None,
        recorder: RunRecorder | None = None,
    ) -> Any:
        circuit = policy.circuit
        while True:
            permit = circuit.admit(recorder) if circuit is not None else None
            if isinstance(permit, Refusal):
                raise self._refused(permit, policy, record)
            record.attempts += 1
            timed_out = False
            outcome = Outcome.FAILURE
            try:
                async with asyncio.timeout(policy.timeout):
                    result = await super().call(args_dict, ctx)
                outcome = Outcome.SUCCESS
                return result
            except _SIGNALS as signal:
                # Bad arguments (ModelRetry) show the tool works; a deferral says nothing.
                outcome = _signal_outcome(signal)
                record.status = "retry" if isinstance(signal, ModelRetry) else "error"
                record.error = str(signal)
                raise
            except TimeoutError:
                timed_out = True
                record.error = f"timed out after {policy.timeout:g}s"
            except Exception as exc:  # a tool's own failure, of any kind, is data for the policy
                record.error = f"{type(exc).__name__}: {exc}"
            except BaseException:  # cancelled: the outcome is unknown
                outcome = Outcome.IGNORED
                raise
            finally:
                if circuit is not None and isinstance(permit, Permit):
                    circuit.settle(permit, outcome, span, recorder)
            record.status = "timeout" if timed_out else "error"
            if record.attempts < policy.attempts and not (circuit is not None and circuit.refuses()):
                await asyncio.sleep(backoff_delay(policy.backoff, record.attempts))
                continue
            message = (
                f"Tool {self.name!r} failed after {record.attempts} attempt{'s' if record.attempts != 1 else ''}: "
                f"{record.error}. The tool could not complete this step; do not invent its result."
            )
            if policy.on_failure == "fail":
                category = ErrorCategory.TOOL_TIMEOUT if timed_out else ErrorCategory.TOOL_ERROR
                raise ToolFailure(message, category=category)
            raise ToolFailed(message)

    async def _guarded(
        self,
        args_dict: dict[str, Any],
        ctx: RunContext[Any],
        policy: ToolPolicy,
        record: ToolCall,
        span: Any,
        recorder: RunRecorder | None,
    ) -> dict[str, Any]:
        """The arguments after the agent's action guardrails (redacted), or:
        - ToolFailed when a guardrail blocks: the model is told the call was refused and why;
        - ApprovalRequired when the call needs a person's approval (the tool's `approval:`, or a
          guardrail's `require_approval`) and this very call has not been approved yet;
        - RunEscalated when an escalation trigger fires (a high-stakes tool, too many failures).
        An approved call still passes the guardrails that block (edited arguments included)."""
        if recorder is None:
            return args_dict
        escalation = recorder.escalation
        if escalation is not None:
            escalate = escalation.check_action(self.name, [c for c in recorder.tool_calls if c is not record])
            if escalate is not None:
                record.status, record.error = "escalated", escalate.reason
                raise escalate
        needs = policy.gate.reason if policy.gate is not None else None
        guardrails = recorder.guardrails
        if guardrails is not None and guardrails.at("action"):
            from keel.runtime.guarded import action_check, record_decisions

            outcome = await guardrails.run(action_check(recorder, self.name, args_dict, record))
            record_decisions(recorder, "action", outcome, span)
            if outcome.verdict == "block":
                record.status = "error"
                record.error = f"blocked by a guardrail: {outcome.reason}"
                raise ToolFailed(
                    f"Tool {self.name!r} was not run: a guardrail refused this call ({outcome.reason}). "
                    "Do not try to get around it; answer without this call or explain that it is not allowed."
                )
            if outcome.verdict == "require_approval":
                needs = outcome.reason
            elif outcome.args is not None and outcome.verdict == "redact":
                args_dict = dict(outcome.args)
        if needs is not None and not ctx.tool_call_approved:
            record.status, record.error = "waiting_approval", f"waiting for approval: {needs}"
            raise ApprovalRequired(metadata={APPROVAL_REASON: needs})
        if ctx.tool_call_approved:
            decision = recorder.decisions.get(ctx.tool_call_id or "")
            span.event(
                "approval",
                reviewer=(decision.by if decision is not None else "") or "unknown",
                edited=decision is not None and decision.args is not None,
                reason=decision.reason if decision is not None else "",
            )
        return args_dict

    def _refused(self, refusal: Refusal, policy: ToolPolicy, record: ToolCall) -> ToolFailed | ToolFailure:
        """The failure of a call its open circuit refused: the tool-error path, without a call."""
        record.status = "error"
        record.error = f"circuit open: {refusal.describe()}"
        message = (
            f"Tool {self.name!r} is unavailable right now: it kept failing, so it is not being called "
            "for a while. The tool could not complete this step; do not invent its result."
        )
        if policy.on_failure == "fail":
            return ToolFailure(f"{message} ({refusal.describe()})", category=ErrorCategory.CIRCUIT_OPEN)
        return ToolFailed(message)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(to_jsonable_python(value), ensure_ascii=False)


def _signal_outcome(signal: BaseException) -> Outcome:
    if isinstance(signal, ModelRetry):
        return Outcome.SUCCESS
    if isinstance(signal, ToolFailed):
        return Outcome.FAILURE  # the tool says it failed
    return Outcome.IGNORED  # a deferral or an approval request
