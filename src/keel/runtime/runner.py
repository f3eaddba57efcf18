"""The one entry point that runs an agent: `Runner.run(agent, input) -> RunResult`.

A `Runner` belongs to one loaded `Project`. It compiles each agent once (on first use) into a
pydantic-ai `Agent` whose model is a chain of `RetryingModel`s (the primary, then each fallback)
and whose tools go through `PolicyFunctionSchema`; with hard budgets in the project, a
`BudgetedModel` around that chain reserves before each model request and settles after it
(`keel.runtime.budget_guard`). Each run gets its own `RunRecorder`; nothing a
run does is kept on the runner or at module level, so runs are isolated from each other.

Every run returns a `RunResult`, whatever happened: success, a failure with its error category,
a timeout or a cancellation. Only a developer mistake (an unknown agent, a missing API key) raises.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jsonschema import Draft202012Validator
from pydantic_ai import Agent, AgentRetries, DeferredToolRequests, DeferredToolResults, RunContext
from pydantic_ai.messages import (
    AgentStreamEvent,
    ModelMessage,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
)
from pydantic_ai.models import Model
from pydantic_ai.models.fallback import FallbackModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import RunUsage, UsageLimits

from keel.config.project import AgentSpec, Project, ResolvedModel
from keel.config.validation import storage_issues
from keel.errors import BadInput, ConfigError, ErrorCategory, UsageError
from keel.guardrails.builtin import as_text
from keel.guardrails.injection import mark_untrusted
from keel.guardrails.policy import Check, Guardrails, Point
from keel.guardrails.setup import aclose as close_guardrails
from keel.guardrails.setup import agent_guardrails
from keel.guardrails.setup import capabilities as guardrail_capabilities
from keel.pricing import Pricer
from keel.prompts.errors import PromptError
from keel.prompts.registry import PromptRegistry
from keel.prompts.resolve import PromptResolver, ResolvedPrompt
from keel.runtime.approval import (
    Gate,
    Resume,
    gate_for,
    model_call_from,
    paused_state,
    tool_call_from,
    waiting_calls,
)
from keel.runtime.budget_guard import BudgetedModel, BudgetGuard
from keel.runtime.circuit import CircuitRegistry
from keel.runtime.circuit_guard import ModelCircuit
from keel.runtime.escalation import Escalation, RunEscalated, summarize
from keel.runtime.events import EventHandler, TextDelta
from keel.runtime.guarded import GuardrailBlocked, record_decisions
from keel.runtime.history import run_record
from keel.runtime.output import OutputValidator, expand_unclear, output_spec
from keel.runtime.providers import ModelFactory
from keel.runtime.recorder import RunRecorder, reset_recorder, set_recorder
from keel.runtime.result import RunError, RunResult, RunStatus, ToolCall
from keel.runtime.retry import RetryingModel, categorize
from keel.runtime.tools import RunDeps, agent_principal, build_tools
from keel.store import RecordWriter, SpanRecord, resolve_database_url, upgrade
from keel.tracing import Tracing, agent_span

RunInput = str | Mapping[str, Any] | list[Any]
RunObserver = Callable[[RunResult], None]
"""Told of every run that ended in this runner (`Runner.after_run`). It must return at once (schedule
any work, never await it on the run's path); what it raises is logged, never the run's failure."""

log = logging.getLogger("keel.runtime")


@dataclass(frozen=True)
class CompiledAgent:
    spec: AgentSpec
    agent: Agent[RunDeps, Any]
    usage_limits: UsageLimits
    input_validator: Draft202012Validator | None
    guardrails: Guardrails | None = None
    gates: Mapping[str, Gate | None] | None = None  # tools whose calls need approval
    escalation: Escalation | None = None


class Runner:
    """Runs the agents of one project."""

    def __init__(
        self,
        project: Project,
        *,
        environ: Mapping[str, str] | None = None,
        model_factory: Callable[[ResolvedModel], Model] | None = None,
        database_url: str | None = None,
    ) -> None:
        """`database_url` overrides the project's storage URL (and KEEL_DATABASE_URL)."""
        self.project = project
        # The live release (None: the project's files) and every project this runner has run: runs
        # accepted on one release finish on it, even after another became live.
        self.release: int | None = None
        # With a release follower: the activation that made `release` live (labels are checked
        # against it); False without one (a library Runner reads labels as they are).
        self.activation: int | bool | None = False
        self._projects: dict[int | None, Project] = {None: project}
        env = os.environ if environ is None else environ
        self._own_factory = ModelFactory(environ) if model_factory is None else None
        self._model_factory: Callable[[ResolvedModel], Model] = model_factory or self._own_factory  # type: ignore[assignment]
        self._compiled: dict[tuple[int | None, str, bool, bool], CompiledAgent] = {}
        self.pricer = Pricer()
        storage = project.config.storage
        self.database_url: str | None = None
        if storage.enabled:
            self.database_url = database_url or resolve_database_url(storage.url, project.root, env)
        self.writer: RecordWriter | None = None
        self.prompts = PromptResolver(
            PromptRegistry(self.database_url, label_ttl=project.config.prompts.refresh_interval)
            if self.database_url is not None
            else None
        )
        issues = storage_issues(project.config)
        if issues:
            raise ConfigError(issues)
        budgets = project.config.gateway.budgets
        # Hard budgets: one guard (and one ledger) for the runner's lifetime; none without budgets.
        self.budget_guard: BudgetGuard | None = None
        if budgets.limits and self.database_url is not None:
            self.budget_guard = BudgetGuard(budgets, self.database_url)
        key_vars = {m.api_key_env for a in project.agents.values() for m in (a.model, *a.fallback_models)}
        self.tracing = Tracing.create(
            project.config.tracing,
            sink=self._store_span if self.database_url else None,
            environ=env,
            secret_env_vars=sorted(v for v in key_vars if v),
        )
        self._started = False
        self._start_lock = asyncio.Lock()
        # Circuit breakers of models and tools, shared by all runs (and releases) of this runner.
        self.circuits = CircuitRegistry()
        self.after_run: list[RunObserver] = []  # e.g. online evaluation (keel.evals.online)

    async def start(self) -> None:
        """Create or migrate the database and start the background writer. Idempotent; `run`
        calls it on first use."""
        async with self._start_lock:
            if self._started:
                return
            if self.database_url is not None:
                storage = self.project.config.storage
                await asyncio.to_thread(upgrade, self.database_url)
                writer = RecordWriter(
                    self.database_url, capacity=storage.buffer_size, flush_interval=storage.flush_interval
                )
                writer.start()
                self.writer = writer
            if self.budget_guard is not None:
                self.budget_guard.start()
            self._started = True

    def _store_span(self, record: SpanRecord) -> bool:
        writer = self.writer
        return writer.submit(record) if writer is not None else False

    async def flush(self, within: float = 10.0) -> bool:
        """Wait until the runs and spans so far are written (or `within` seconds pass)."""
        self.tracing.force_flush(within)
        writer = self.writer
        return True if writer is None else await asyncio.to_thread(writer.flush, within)

    async def aclose(self, within: float = 10.0) -> None:
        """Flush and stop: traces to their exporters, runs and spans to the database."""
        await asyncio.to_thread(self.tracing.shutdown, within)
        writer, self.writer = self.writer, None
        if writer is not None:
            await asyncio.to_thread(writer.close, within)
        if self.budget_guard is not None:
            await self.budget_guard.aclose()
        if self.prompts.registry is not None:
            await self.prompts.registry.close()
        await close_guardrails(self)
        if self._own_factory is not None:
            await self._own_factory.aclose()

    async def __aenter__(self) -> Runner:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def use_release(self, release: int | None, project: Project) -> None:
        """Make `project` (release `release`) the live one: new runs use it, runs in flight keep theirs."""
        if self._projects.get(release) is not project:  # reloaded files: compile the agents afresh
            for key in [k for k in self._compiled if k[0] == release]:
                del self._compiled[key]
        self._projects[release] = project
        self.project, self.release = project, release

    def add_release(self, release: int | None, project: Project) -> None:
        """Know `project` as release `release` without making it live (runs accepted on it)."""
        self._projects.setdefault(release, project)

    def project_for(self, release: int | None) -> Project | None:
        return self._projects.get(release)

    def compiled(
        self, name: str, *, durable: bool = False, stream: bool = False, release: int | str | None = "live"
    ) -> CompiledAgent:
        """The agent `name`, compiled once. `durable` variants checkpoint every model request and
        tool call when run inside a DBOS workflow (see `keel.durable`); streaming ones deliver
        text deltas from inside the model step. `release` picks a known release (default the live one)."""
        number = self.release if release == "live" else release
        assert not isinstance(number, str)
        key = (number, name, durable, durable and stream)
        compiled = self._compiled.get(key)
        if compiled is None:
            project = self._projects.get(number)
            if project is None:
                raise UsageError(f"release {number} is not loaded in this process")
            compiled = self._compiled[key] = self._compile(project.agent(name), durable, durable and stream)
        return compiled

    def _compile(self, spec: AgentSpec, durable: bool = False, stream: bool = False) -> CompiledAgent:
        cfg = spec.config
        refs = (spec.model, *spec.fallback_models)
        breakers = cfg.circuit_breaker
        labels: list[str | None] = [None, *(m.label for m in refs), None]

        def circuit(i: int, m: ResolvedModel) -> ModelCircuit | None:
            if not breakers.enabled:
                return None
            breaker = self.circuits.breaker("model", m.label, breakers)
            return ModelCircuit(breaker, m.label, next_label=labels[i + 2], previous_label=labels[i])

        chain: list[Model] = [
            RetryingModel(
                self._model_factory(m),
                model=m,
                options=cfg.retry_options,
                price=functools.partial(self.pricer.cost, m),
                circuit=circuit(i, m),
            )
            for i, m in enumerate(refs)
        ]
        model: Model = chain[0] if len(chain) == 1 else FallbackModel(*chain)
        guard = self.budget_guard
        if guard is not None:  # outermost: one reservation per model request, fallbacks included
            models = (spec.model, *spec.fallback_models)
            guard.check_priced(models, self.pricer.cost)
            model = BudgetedModel(
                model,
                models=models,
                price=self.pricer.cost,
                output_tokens=guard.config.estimate_output_tokens,
            )
        settings: dict[str, Any] = {
            key: value for key, value in cfg.model_settings.model_dump().items() if value is not None
        }
        if cfg.timeouts.model_request is not None:
            settings["timeout"] = cfg.timeouts.model_request
        output_schema = expand_unclear(spec.output_schema) if spec.output_schema is not None else None
        output_type: Any = output_spec(output_schema, cfg.output_mode, spec.name) if output_schema else str
        gates = {t.name: gate_for(t.config.approval, cfg.approvals) for t in spec.tools}
        tenant_guardrails = any(t.guardrails for t in self.project.config.tenants.values())
        if spec.tools and (any(gates.values()) or cfg.guardrails or tenant_guardrails):
            # A call may stop the run for approval (a gated tool, or a guardrail's require_approval).
            output_type = [output_type, DeferredToolRequests]
        # The agent's guardrails, with every tenant's extra ones (chosen per run by its tenant).
        guardrails = agent_guardrails(self, self.project, spec.name, cfg.guardrails)
        capabilities: list[Any] = []
        if durable:
            from keel.durable.replay import durable_capabilities  # imports DBOS: only when durable

            capabilities = durable_capabilities(spec.name, stream=stream)
        capabilities = [*capabilities, *guardrail_capabilities(guardrails)]
        instructions: Any = spec.instructions or None
        if spec.prompt is not None:  # from the registry: rendered per run, carried by the deps
            instructions = _registry_instructions
        agent: Agent[RunDeps, Any] = Agent(
            model,
            capabilities=capabilities or None,
            output_type=output_type,
            instructions=instructions,
            deps_type=RunDeps,
            name=spec.name,
            tools=build_tools(
                spec.tools,
                cfg.timeouts.tool_call,
                circuits=self.circuits,
                circuit_breaker=breakers,
                approvals=cfg.approvals,
                mark_results=cfg.untrusted.tool_results,
            ),
            retries=AgentRetries(tools=2, output=cfg.output_retries),
            model_settings=ModelSettings(**settings),  # type: ignore[typeddict-item]
        )
        if output_schema is not None:
            validator = OutputValidator(output_schema)

            @agent.output_validator
            def _validate(ctx: RunContext[RunDeps], output: Any) -> Any:
                if isinstance(output, DeferredToolRequests):
                    return output
                return validator(ctx, output)

        limits = cfg.limits
        usage_limits = UsageLimits(
            request_limit=limits.max_model_requests,
            tool_calls_limit=limits.max_tool_calls,
            total_tokens_limit=limits.max_tokens,
        )
        input_validator = Draft202012Validator(spec.input_schema) if spec.input_schema is not None else None
        escalation = Escalation(cfg.escalation) if cfg.escalation.enabled else None
        return CompiledAgent(spec, agent, usage_limits, input_validator, guardrails, gates, escalation)

    async def run(
        self,
        agent: str,
        input: RunInput,
        *,
        run_id: str | None = None,
        stream: bool = False,
        on_event: EventHandler | None = None,
        cancel: asyncio.Event | None = None,
        trigger: str = "api",
        session_id: str | None = None,
        user_id: str | None = None,
        tenant_id: str | None = None,
        parent_run_id: str | None = None,
        tags: tuple[str, ...] | list[str] = (),
        metadata: Mapping[str, Any] | None = None,
        durable_start: datetime | None = None,
        release: int | str | None = "live",
        prompt: ResolvedPrompt | None = None,
        variables: Mapping[str, Any] | None = None,
        resume: Resume | None = None,
        principal: str | None = None,
        roles: tuple[str, ...] | list[str] = (),
    ) -> RunResult:
        """Run `agent` on `input` and return its result. Raises only for developer mistakes.

        `durable_start` is for `keel.durable` only: the run executes inside a DBOS workflow
        (checkpointed model requests and tool calls) and started at that recorded time, so a
        resumed run keeps its original timeout budget.

        `release` is the release to run on (default the live one); `prompt` the prompt already
        resolved for this run (durable runs resolve when accepted), else it is resolved here, with
        `variables` (BadInput when they do not fit the prompt).

        `resume` goes on with a run that stopped for approval (same `run_id`, the decisions made;
        see `keel.runtime.approval`); the result then accounts for the whole run.

        `principal` and `roles`: who asked for the run (a label such as `user:ann`), for guardrails
        that decide per principal (the `tools` guardrail's `principals`).
        """
        if not self._started:
            await self.start()
        durable = durable_start is not None
        number = self.release if release == "live" else release
        assert not isinstance(number, str)
        compiled = self.compiled(agent, durable=durable, stream=stream, release=number)
        spec = compiled.spec
        run_id = run_id or uuid.uuid4().hex
        prompt_problem: BadInput | None = None
        if prompt is None and (spec.prompt is not None or variables):
            try:
                prompt = await self.resolve_prompt(
                    agent,
                    run_id=run_id,
                    tenant_id=tenant_id,
                    user_id=user_id,
                    session_id=session_id,
                    variables=variables,
                    release=number,
                )
            except PromptError as exc:  # the run fails with bad_input, as for input off its schema
                prompt_problem = BadInput(exc.message)
        run_timeout = spec.config.timeouts.run
        started_at = durable_start or datetime.now(UTC)  # this stretch of the run: its timeout
        first_started = datetime.fromisoformat(resume.state.started_at) if resume else started_at
        if run_timeout is not None and durable:
            run_timeout = max(0.001, run_timeout - (datetime.now(UTC) - started_at).total_seconds())
        recorder = RunRecorder(
            run_id=run_id,
            agent=spec.name,
            deadline=time.monotonic() + run_timeout if run_timeout is not None else None,
            on_event=on_event,
            tracing=self.tracing,
            durable=durable,
        )
        recorder.escalation = compiled.escalation
        recorder.principal, recorder.roles = principal, tuple(roles)
        if resume is not None:  # the run so far: its calls count, and are reported, once
            recorder.decisions = resume.decisions
            for data in resume.state.model_calls:
                recorder.record_model_call(model_call_from(data))
            recorder.tool_calls.extend(tool_call_from(data) for data in resume.state.tool_calls)
            recorder.tool_calls.extend(_rejected_calls(resume, started_at))
        deps = RunDeps(
            run_id,
            spec.name,
            session_id,
            user_id,
            dict(metadata or {}),
            tenant_id=tenant_id,
            principal=agent_principal(spec.name, spec.config.identity.scopes, tenant_id),
            instructions=prompt.text if prompt is not None else None,
        )
        status, output, error = RunStatus.SUCCEEDED, None, None
        escalated: RunEscalated | None = None
        deferred: tuple[DeferredToolRequests, list[ModelMessage], RunUsage] | None = None
        interrupted: BaseException | None = None
        token = set_recorder(recorder)
        with agent_span(
            self.tracing,
            agent=spec.name,
            run_id=run_id,
            model=spec.model.label,
            conversation_id=session_id,
            input=input,
        ) as span:
            recorder.span = span
            try:
                if self.budget_guard is not None:
                    recorder.budget = self.budget_guard.for_run(
                        run_id=run_id, agent=spec.name, tenant_id=tenant_id, user_id=user_id
                    )
                if prompt_problem is not None:
                    raise prompt_problem
                user_prompt: str | None = _prompt(compiled, input)
                guardrails = compiled.guardrails
                if guardrails is not None:
                    recorder.guardrails, recorder.tenant_id = guardrails, tenant_id
                if resume is not None:
                    user_prompt = None  # the run goes on from its messages
                    if resume.escalate is not None:
                        raise RunEscalated("approval_timeout", resume.escalate)
                elif guardrails is not None:
                    assert user_prompt is not None
                    user_prompt = await _guard_text(
                        guardrails,
                        "input",
                        user_prompt,
                        recorder,
                        spec.name,
                        run_id,
                        tenant_id,
                        deps.instructions,
                    )
                if resume is None and spec.config.untrusted.input and user_prompt is not None:
                    user_prompt = mark_untrusted(user_prompt, "run input")
                if resume is None and compiled.escalation is not None and user_prompt is not None:
                    escalate = compiled.escalation.check_input(user_prompt)
                    if escalate is not None:
                        raise escalate
                done = await self._execute(
                    compiled,
                    user_prompt,
                    deps,
                    recorder,
                    stream and not durable,
                    run_timeout,
                    cancel,
                    prompt.model_settings if prompt is not None else None,
                    history=resume.state.history() if resume is not None else None,
                    deferred=resume.deferred_results() if resume is not None else None,
                    usage=resume.state.run_usage() if resume is not None else None,
                )
                output = done.output
                if isinstance(output, DeferredToolRequests):
                    pauses = (resume.state.pauses if resume is not None else 0) + 1
                    if pauses > spec.config.approvals.max_pauses:
                        raise RunEscalated(
                            "max_pauses",
                            f"the run stopped for approval {pauses} times (approvals.max_pauses)",
                        )
                    deferred, output = (output, done.all_messages(), done.usage), None
                    status = RunStatus.WAITING_APPROVAL
                if deferred is None and guardrails is not None and guardrails.at("output"):
                    output = await _guard_output(
                        guardrails,
                        output,
                        recorder,
                        spec.name,
                        run_id,
                        tenant_id,
                        deps.instructions or spec.instructions,
                    )
                if deferred is None and compiled.escalation is not None:
                    escalate = compiled.escalation.check_output(output)
                    if escalate is not None:
                        raise escalate
            except _RunTimedOut:
                status, error = (
                    RunStatus.TIMED_OUT,
                    RunError(ErrorCategory.TIMED_OUT, _timed_out(run_timeout)),
                )
            except _RunCancelled:
                status, error = (
                    RunStatus.CANCELLED,
                    RunError(ErrorCategory.CANCELLED, "the run was cancelled"),
                )
            except Exception as exc:  # every failure of a run becomes its result, with a category
                escalated = _escalation_in(exc)
                if escalated is not None:
                    status = RunStatus.ESCALATED
                else:
                    category, message = categorize(exc)
                    status, error = RunStatus.FAILED, RunError(category, message)
            except BaseException as exc:
                if not durable or not _is_durable_cancel(exc):
                    raise
                # DBOS stopped the workflow (a cancel, or another process took it over): record
                # what the run did, then let DBOS end it.
                status, error = (
                    RunStatus.CANCELLED,
                    RunError(ErrorCategory.CANCELLED, "the run was cancelled"),
                )
                interrupted = exc
            finally:
                reset_recorder(token)
            for call in recorder.take_pending_calls():  # attempts of a model request that failed
                recorder.record_model_call(call)
            if error is not None and error.category is ErrorCategory.GUARDRAIL_BLOCKED:
                output = None  # what a guardrail blocked never leaves
            elif status is RunStatus.ESCALATED:
                output = None  # a person answers instead
            elif status not in (RunStatus.SUCCEEDED, RunStatus.WAITING_APPROVAL):
                output = recorder.last_text or None  # keep what was produced so far
            approvals: list[dict[str, Any]] = []
            paused: dict[str, Any] | None = None
            if deferred is not None and status is RunStatus.WAITING_APPROVAL:
                approvals = waiting_calls(deferred[0], compiled.gates or {}, spec.config.approvals)
                paused = paused_state(
                    deferred[1],
                    recorder.model_calls,
                    recorder.tool_calls,
                    first_started,
                    (resume.state.pauses if resume is not None else 0) + 1,
                    deferred[2],
                ).as_dict()
            escalation: dict[str, Any] | None = None
            if escalated is not None:
                escalation = {
                    "trigger": escalated.trigger,
                    "reason": escalated.reason,
                    "summary": summarize(
                        agent=spec.name,
                        input=input,
                        reason=escalated.reason,
                        tool_calls=recorder.tool_calls,
                        last_text=recorder.last_text,
                    ),
                }
            result = RunResult(
                run_id=run_id,
                agent=spec.name,
                status=status,
                output=output,
                error=error,
                started_at=first_started,
                ended_at=datetime.now(UTC),
                model_calls=recorder.model_calls,
                tool_calls=recorder.tool_calls,
                usage=recorder.usage,
                config_hash=spec.config_hash,
                input=input,
                trigger=trigger,
                session_id=session_id,
                user_id=user_id,
                tenant_id=tenant_id,
                parent_run_id=parent_run_id,
                tags=tuple(tags),
                metadata=dict(metadata or {}),
                trace_id=span.trace_id,
                prompt_version=prompt.ref if prompt is not None else None,
                release=number,
                approvals=approvals,
                escalation=escalation,
                paused=paused,
            )
            span.finish(
                status.value,
                error.category.value if error else None,
                error.message if error else None,
                output=output,
                input_tokens=result.input_tokens,
                output_tokens=result.output_tokens,
                cost_usd=float(cost) if (cost := result.cost_usd) is not None else None,
            )
        if interrupted is not None:
            # Not recorded here: DBOS may have handed the run to another process, which will
            # finish and record it. `keel.durable` records it only if the run was cancelled.
            raise RunInterrupted(result) from interrupted
        if result.status is RunStatus.WAITING_APPROVAL:
            return result  # not ended: recorded (and observed) once it ends
        if self.writer is not None:
            self.writer.submit(run_record(result))
        for observer in self.after_run:
            try:
                observer(result)
            except Exception:
                log.exception("an after-run observer failed for run %s", run_id)
        return result

    def check_input(self, agent: str, input: RunInput) -> None:
        """Raise `BadInput` if `input` does not match the agent's input schema (for accepting a
        queued run: bad input is refused at once, not after waiting in the queue)."""
        _prompt(self.compiled(agent), input)

    async def resolve_prompt(
        self,
        agent: str,
        *,
        run_id: str,
        tenant_id: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        variables: Mapping[str, Any] | None = None,
        release: int | str | None = "live",
    ) -> ResolvedPrompt | None:
        """The prompt a run of `agent` gets now (None for plain instructions); VariableError when
        the variables do not fit it (see `keel.prompts.resolve`)."""
        number = self.release if release == "live" else release
        assert not isinstance(number, str)
        project = self._projects.get(number, self.project)
        return await self.prompts.resolve(
            project.agent(agent),
            run_id=run_id,
            tenant_id=tenant_id,
            user_id=user_id,
            session_id=session_id,
            variables=variables,
            activation=self.activation if number == self.release else False,
        )

    def record(self, result: RunResult) -> None:
        """Store `result` in the run history (background writer; a no-op without storage)."""
        if self.writer is not None:
            self.writer.submit(run_record(result))

    async def _execute(
        self,
        compiled: CompiledAgent,
        prompt: str | None,
        deps: RunDeps,
        recorder: RunRecorder,
        stream: bool,
        run_timeout: float | None,
        cancel: asyncio.Event | None,
        model_settings: Mapping[str, Any] | None = None,
        *,
        history: list[ModelMessage] | None = None,
        deferred: DeferredToolResults | None = None,
        usage: RunUsage | None = None,
    ) -> Any:
        handler = _stream_handler(recorder) if stream else None
        work = compiled.agent.run(
            prompt,
            message_history=history,
            deferred_tool_results=deferred,
            deps=deps,
            usage_limits=compiled.usage_limits,
            usage=usage,
            event_stream_handler=handler,
            model_settings=ModelSettings(**model_settings) if model_settings else None,  # type: ignore[typeddict-item]
        )
        timer = asyncio.timeout(run_timeout)
        try:
            async with timer:
                if cancel is None:
                    result = await work
                else:
                    result = await _cancellable(work, cancel)
        except TimeoutError:
            if timer.expired():
                raise _RunTimedOut() from None
            raise
        return result


def _escalation_in(exc: BaseException) -> RunEscalated | None:
    """The escalation that ended a run, also when it comes out of a task group of tool calls."""
    if isinstance(exc, RunEscalated):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _escalation_in(inner)
            if found is not None:
                return found
    cause = exc.__cause__
    return _escalation_in(cause) if cause is not None and cause is not exc else None


def _rejected_calls(resume: Resume, at: datetime) -> list[ToolCall]:
    """The calls reviewers rejected, as the record shows them (the tool never ran)."""
    tools = {c.get("call_id"): c.get("name", "") for c in resume.state.tool_calls}
    return [
        ToolCall(
            call_id=call_id,
            name=str(tools.get(call_id, "")),
            args=dict(decision.args or {}),
            started_at=at,
            status="rejected",
            error=f"rejected by {decision.by or 'a reviewer'}"
            + (f": {decision.reason}" if decision.reason else ""),
        )
        for call_id, decision in resume.decisions.items()
        if not decision.approved
    ]


async def _guard_text(
    guardrails: Guardrails,
    point: Point,
    text: str,
    recorder: RunRecorder,
    agent: str,
    run_id: str,
    tenant_id: str | None,
    instructions: str | None,
) -> str:
    """The text after the `point` guardrails: redacted, or GuardrailBlocked (the run fails)."""
    if not guardrails.at(point, tenant_id):
        return text
    outcome = await guardrails.run(
        Check(
            point=point,
            agent=agent,
            text=text,
            run_id=run_id,
            tenant_id=tenant_id,
            instructions=instructions,
            user_id=recorder.user_id,
            context=tuple(recorder.retrieved) if point == "output" else (),
        )
    )
    record_decisions(recorder, point, outcome)
    if outcome.verdict in ("block", "require_approval"):
        raise GuardrailBlocked(f"the {point} was blocked by a guardrail: {outcome.reason}")
    return outcome.text if outcome.text is not None else text


async def _guard_output(
    guardrails: Guardrails,
    output: Any,
    recorder: RunRecorder,
    agent: str,
    run_id: str,
    tenant_id: str | None,
    instructions: str | None,
) -> Any:
    text = as_text(output)
    guarded = await _guard_text(guardrails, "output", text, recorder, agent, run_id, tenant_id, instructions)
    if guarded == text:
        return output
    if isinstance(output, str):
        return guarded
    try:  # a structured answer stays structured when its redacted text is still JSON
        return json.loads(guarded)
    except json.JSONDecodeError:
        return guarded


def _registry_instructions(ctx: RunContext[RunDeps]) -> str:
    return ctx.deps.instructions or ""


class RunInterrupted(BaseException):
    """A durable run stopped by DBOS before it ended (cancelled, or taken over by another
    process). Carries what the run had done; `__cause__` is DBOS's own exception."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(f"run {result.run_id} was interrupted")
        self.result = result


def _is_durable_cancel(exc: BaseException) -> bool:
    from dbos._error import DBOSWorkflowCancelledError, DBOSWorkflowConflictIDError

    return isinstance(exc, DBOSWorkflowCancelledError | DBOSWorkflowConflictIDError)


class _RunTimedOut(Exception):
    pass


class _RunCancelled(Exception):
    pass


async def _cancellable(work: Any, cancel: asyncio.Event) -> Any:
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(cancel.wait())
    try:
        done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task in done:
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise _RunCancelled()


def _timed_out(run_timeout: float | None) -> str:
    return f"the run did not finish within its {run_timeout:g}s timeout"


def _prompt(compiled: CompiledAgent, input: RunInput) -> str:
    """Check the input against the agent's input schema and render it as the user prompt."""
    validator = compiled.input_validator
    if validator is None:
        return input if isinstance(input, str) else json.dumps(input, ensure_ascii=False)
    data: Any = input
    if isinstance(input, str):
        try:
            data = json.loads(input)
        except json.JSONDecodeError as exc:
            raise BadInput(f"input must be JSON matching the agent's input schema: {exc}") from None
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        details = "; ".join(
            f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors[:5]
        )
        raise BadInput(f"input does not match the agent's input schema: {details}")
    return json.dumps(data, ensure_ascii=False)


def _stream_handler(
    recorder: RunRecorder,
) -> Callable[[RunContext[RunDeps], AsyncIterable[AgentStreamEvent]], Any]:
    async def handle(ctx: RunContext[RunDeps], events: AsyncIterable[AgentStreamEvent]) -> None:
        async for event in events:
            if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart) and event.part.content:
                await recorder.emit(TextDelta(event.part.content))
            elif (
                isinstance(event, PartDeltaEvent)
                and isinstance(event.delta, TextPartDelta)
                and event.delta.content_delta
            ):
                await recorder.emit(TextDelta(event.delta.content_delta))

    return handle
