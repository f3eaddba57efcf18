"""Hard budgets, enforced by the run loop: reserve before every model request, settle after it.

    keel.yaml gateway.budgets.limits ──> BudgetGuard        one per Runner; owns one BudgetLedger
    Runner.run(tenant_id, user_id) ────> RunBudget          the budgets this run is charged to,
                                                            on the run's RunRecorder
    every model request ───────────────> BudgetedModel      reserve -> provider -> settle/release

`BudgetedModel` is the outermost wrapper of a compiled agent's model, around the whole fallback
chain of `RetryingModel`s, so one model request (all its retries and fallbacks included) is one
reservation, and in a durable run it lies inside the request's DBOS step: a replayed step returns
its recorded response (or its recorded refusal) without reserving again.

Before a request it reserves an estimate against every applicable budget:

- tokens: the request's input, estimated from its characters (`estimate_input_tokens`: about 4
  characters a token, plus a few tokens per message part and per tool definition), plus its
  output: the request's `max_tokens`, or `gateway.budgets.estimate_output_tokens`;
- USD: those tokens at the price of the dearest model of the chain (`keel.pricing`).

The reservation is usually taken in memory, from the room the ledger leases per process (see
`keel.store.ledger`); when a run starts, the guard asks the ledger to open its leases in the
background (`BudgetGuard.prepare`, sized by the agent's latest request), so even a run's first
request seldom waits for the database.

If a budget refuses, `BudgetExceeded` (category `budget_exceeded`) ends the run before the
provider is called; the run keeps what it produced. After the request the reservation is settled
with the actual usage and cost of its successful attempt (failed attempts cost nothing); if the
request failed, or was cancelled, with nothing spent, it is released. Thresholds crossed by a
settlement become a `BudgetThreshold` run event, a log line and an event on the run's span.

Without budgets in the project no guard exists and agents are compiled without the wrapper: no
database access, no added cost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic_ai.messages import (
    BaseToolCallPart,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    ToolReturnPart,
)
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext

from keel.config.project import ResolvedModel
from keel.errors import ErrorCategory, RunFailure, UsageError
from keel.gateway.budgets import Budget, BudgetExceeded, Reservation, Settlement, ThresholdCrossing
from keel.gateway.principal import DEFAULT_TENANT
from keel.runtime.events import BudgetThreshold
from keel.runtime.recorder import RunRecorder, current_recorder

if TYPE_CHECKING:
    from keel.config.gateway import BudgetsConfig
    from keel.store.ledger import BudgetLedger

log = logging.getLogger("keel.budgets")

CHARS_PER_TOKEN = 4
PART_OVERHEAD_TOKENS = 5  # role and framing of a message part (and its rounding up)
TOOL_OVERHEAD_TOKENS = 11  # framing of a tool definition (and the rounding up of its three fields)
PRIMING_TOKENS = 3
NON_TEXT_TOKENS = 85  # an image, audio or file part of a prompt

PriceFn = Callable[[ResolvedModel, int, int], Decimal | None]
T = TypeVar("T")


def estimate_input_tokens(messages: Sequence[ModelMessage], parameters: ModelRequestParameters) -> int:
    """A cheap estimate of a request's input tokens, without a tokenizer (none may be downloaded).

    About 4 characters a token over every part's text (prompts, instructions, tool calls and their
    results, retry prompts), 85 tokens for a non-text part, plus `PART_OVERHEAD_TOKENS` per part
    and, per tool definition offered, its name, description and JSON schema plus
    `TOOL_OVERHEAD_TOKENS`. Real tokenizers differ (code and JSON take more tokens per
    character); the reservation is settled with the provider's count afterwards.
    """
    chars = 0
    tokens = PRIMING_TOKENS
    last_instructions: str | None = None
    for message in messages:
        if isinstance(message, ModelRequest):
            last_instructions = message.instructions
        for part in message.parts:
            tokens += PART_OVERHEAD_TOKENS
            text, non_text = _part_size(part)
            chars += text
            tokens += non_text * NON_TEXT_TOKENS
    instruction_parts = parameters.instruction_parts
    if instruction_parts:
        chars += sum(len(part.content) for part in instruction_parts)
        tokens += PART_OVERHEAD_TOKENS
    elif last_instructions:
        chars += len(last_instructions)
        tokens += PART_OVERHEAD_TOKENS
    for tool in (*parameters.function_tools, *parameters.output_tools):
        tokens += TOOL_OVERHEAD_TOKENS
        chars += len(tool.name) + len(tool.description or "") + len(_compact(tool.parameters_json_schema))
    if parameters.output_object is not None:
        chars += len(_compact(parameters.output_object.json_schema))
    return tokens + (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def _part_size(part: Any) -> tuple[int, int]:
    """(characters of text, non-text items) of one message part."""
    if isinstance(part, BaseToolCallPart):
        return len(part.tool_name) + len(part.args_as_json_str()), 0
    if isinstance(part, ToolReturnPart):
        return len(part.tool_name) + len(part.model_response_str()), 0
    if isinstance(part, RetryPromptPart):
        return len(part.model_response()), 0
    content = getattr(part, "content", None)
    if content is None:
        return 0, 0
    if isinstance(content, str):
        return len(content), 0
    if isinstance(content, Sequence):
        text = sum(len(item) for item in content if isinstance(item, str))
        return text, sum(1 for item in content if not isinstance(item, str))
    return len(str(content)), 0


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True)
class RunBudget:
    """The budgets one run is charged to, and where to charge them (set on its `RunRecorder`)."""

    guard: BudgetGuard
    budgets: tuple[Budget, ...]
    run_id: str
    tenant_id: str
    agent: str = ""


class BudgetGuard:
    """The project's hard budgets (`gateway.budgets`), enforced on one `BudgetLedger`.

    One per `Runner`: `start()` opens the ledger on the runner's database (migrated by the
    runner), `aclose()` closes it. A ledger can be given instead (tests: a clock of their own).
    """

    def __init__(
        self, config: BudgetsConfig, database_url: str, *, ledger: BudgetLedger | None = None
    ) -> None:
        if not config.limits:
            raise UsageError("a BudgetGuard needs at least one budget in gateway.budgets.limits")
        self.config = config
        self.database_url = database_url
        self.uses_usd = any(limit.unit == "usd" for limit in config.limits)
        self._ledger = ledger
        self._pending: set[asyncio.Task[Any]] = set()
        self._estimates: dict[str, tuple[Decimal, int]] = {}  # per agent: its last request's estimate

    @property
    def ledger(self) -> BudgetLedger:
        if self._ledger is None:
            from keel.store.ledger import BudgetLedger

            self._ledger = BudgetLedger(self.database_url)
        return self._ledger

    def start(self) -> None:
        """Open the ledger (connections are made on first use)."""
        _ = self.ledger

    def background(self, call: Coroutine[Any, Any, T], what: str) -> asyncio.Task[T]:
        """`call` (a settle or release) as a task the guard keeps until it ends, so a run
        cancelled while it runs cannot lose it, and `aclose` waits for it. A failure is logged
        (the request did happen; an unsettled hold stops counting when it expires)."""
        task = asyncio.ensure_future(call)
        self._pending.add(task)

        def done(task: asyncio.Task[T]) -> None:
            self._pending.discard(task)
            if not task.cancelled() and (error := task.exception()) is not None:
                log.error("could not %s: %s: %s", what, type(error).__name__, error)

        task.add_done_callback(done)
        return task

    async def aclose(self, within: float = 10.0) -> None:
        """Wait (up to `within` seconds) for settlements still running, then close the ledger."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=within)
        ledger, self._ledger = self._ledger, None
        if ledger is not None:
            await ledger.close()

    def budgets_for(
        self, *, run_id: str, agent: str, tenant_id: str | None, user_id: str | None
    ) -> tuple[Budget, ...]:
        """The configured budgets that apply to one run, made concrete.

        A limit without `id` applies to every run, user, tenant or agent, each with its own
        budget of that size; with an `id`, only to that one. A run without a tenant counts as
        the `default` tenant; a run without a user has no user budget. Run and user budgets
        belong to the run's tenant; agent budgets are the agent's across all tenants.
        """
        tenant = tenant_id or DEFAULT_TENANT
        found: list[Budget] = []
        for limit in self.config.limits:
            scope_id: str | None
            if limit.scope == "run":
                scope_id = run_id
            elif limit.scope == "tenant":
                scope_id = tenant
            elif limit.scope == "user":
                scope_id = user_id
            else:
                scope_id = agent
            if scope_id is None or (limit.id is not None and limit.id != scope_id):
                continue
            amount = Decimal(str(limit.limit)) if limit.unit == "usd" else int(limit.limit)
            found.append(
                Budget(
                    limit.scope,
                    scope_id,
                    limit.unit,
                    limit.period,
                    amount,
                    soft_threshold=limit.soft_threshold,
                    tenant_id=None if limit.scope == "agent" else tenant,
                )
            )
        return tuple(found)

    def for_run(
        self, *, run_id: str, agent: str, tenant_id: str | None, user_id: str | None
    ) -> RunBudget | None:
        """What to set on the run's recorder: None when no budget applies to the run."""
        budgets = self.budgets_for(run_id=run_id, agent=agent, tenant_id=tenant_id, user_id=user_id)
        if not budgets:
            return None
        self.prepare(agent, budgets)
        return RunBudget(self, budgets, run_id, tenant_id or DEFAULT_TENANT, agent)

    def estimated(self, agent: str, usd: Decimal, tokens: int) -> None:
        """Remember the estimate of `agent`'s latest model request (`prepare` sizes leases by it)."""
        self._estimates[agent] = (usd, tokens)

    def prepare(self, agent: str, budgets: Sequence[Budget]) -> None:
        """A run is starting: have the ledger open leases on its budgets' counters in the
        background (its run budget's, at least), sized by `agent`'s latest request, so that the
        run's first model request does not wait for the database. Nothing before the agent's
        first request; never an error (the request itself reserves, and fails closed)."""
        estimate = self._estimates.get(agent)
        if estimate is None:
            return
        try:
            self.ledger.prepare(budgets, amount_usd=estimate[0], tokens=estimate[1])
        except Exception as exc:  # no running loop, or a bad estimate: the request reserves anyway
            log.debug("could not prepare budget leases for agent %s: %s", agent, exc)

    def check_priced(self, models: Sequence[ResolvedModel], price: PriceFn) -> None:
        """USD budgets need every model's price: a UsageError names the first model without one."""
        if not self.uses_usd:
            return
        for model in models:
            if price(model, 0, 0) is None:
                raise UsageError(
                    f"model {model.label!r} has no known price, so USD budgets (gateway.budgets) cannot "
                    f"be enforced for it: set models.{model.ref}.price in keel.yaml"
                )


class BudgetedModel(WrapperModel):
    """Reserves before each request of the wrapped model (a fallback chain), settles after it.

    Shared by every run of the agent: the run's budgets come from its recorder (`RunBudget`);
    a run without one passes straight through.
    """

    def __init__(
        self, wrapped: Model, *, models: Sequence[ResolvedModel], price: PriceFn, output_tokens: int
    ) -> None:
        super().__init__(wrapped)
        self.keel_models = tuple(models)
        self.price = price
        self.output_tokens = output_tokens

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        recorder = current_recorder()
        run = recorder.budget if recorder is not None else None
        if recorder is None or run is None:
            return await self.wrapped.request(messages, model_settings, model_request_parameters)
        hold = await self._reserve(recorder, run, messages, model_settings, model_request_parameters)
        try:
            response = await self.wrapped.request(messages, model_settings, model_request_parameters)
        except BaseException:
            await hold.close(failed=True)
            raise
        await hold.close(failed=False)
        return response

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse]:
        recorder = current_recorder()
        run = recorder.budget if recorder is not None else None
        if recorder is None or run is None:
            async with self.wrapped.request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as stream:
                yield stream
            return
        hold = await self._reserve(recorder, run, messages, model_settings, model_request_parameters)
        try:
            async with self.wrapped.request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as stream:
                yield stream
        except BaseException:
            await hold.close(failed=True)
            raise
        await hold.close(failed=False)

    async def _reserve(
        self,
        recorder: RunRecorder,
        run: RunBudget,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        parameters: ModelRequestParameters,
    ) -> _Hold:
        input_tokens = estimate_input_tokens(messages, parameters)
        max_tokens = (model_settings or {}).get("max_tokens")
        output_tokens = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else self.output_tokens
        usd = Decimal(0)
        if run.guard.uses_usd:
            prices = [self.price(model, input_tokens, output_tokens) for model in self.keel_models]
            usd = max((p for p in prices if p is not None), default=Decimal(0))
        tokens = input_tokens + output_tokens
        run.guard.estimated(run.agent, usd, tokens)
        try:
            reservation = await run.guard.ledger.reserve(
                run.budgets, amount_usd=usd, tokens=tokens, run_id=run.run_id, tenant_id=run.tenant_id
            )
        except BudgetExceeded as refused:
            _refused(recorder, refused)
            raise
        except Exception as exc:  # the ledger is unreachable: a hard budget fails closed
            raise RunFailure(
                f"the budget ledger could not be reached, so the model request was not made: "
                f"{type(exc).__name__}: {exc}",
                category=ErrorCategory.INTERNAL,
            ) from exc
        return _Hold(recorder, run, reservation, recorder.metered_usd, recorder.metered_tokens)


@dataclass
class _Hold:
    """A reservation in flight, and the run's meters when it was made."""

    recorder: RunRecorder
    run: RunBudget
    reservation: Reservation
    usd_before: Decimal | None
    tokens_before: int

    async def close(self, *, failed: bool) -> None:
        """Settle with what the request's attempts used; release if it failed having used nothing.

        The ledger call is awaited to its end. A run cancelled or timed out meanwhile still
        settles (or releases) before the cancellation goes on, within `CLOSE_WAIT_S`; past it,
        the call finishes in the background (`BudgetGuard.aclose` waits for it). A ledger error
        is logged, not raised: the request did happen, and an unsettled hold stops counting
        when it expires.
        """
        recorder, reservation = self.recorder, self.reservation
        tokens = recorder.metered_tokens - self.tokens_before
        usd_after = recorder.metered_usd
        if self.usd_before is None or usd_after is None:
            usd = reservation.amount_usd  # an unpriced attempt: count the estimate
        else:
            usd = max(Decimal(0), usd_after - self.usd_before)
        guard = self.run.guard
        release = failed and tokens == 0
        what = f"{'release' if release else 'settle'} reservation {reservation.id} of run {self.run.run_id}"
        work: asyncio.Task[Any]
        if release:
            work = guard.background(guard.ledger.release(reservation), what)
        else:
            settle = guard.ledger.settle(reservation, actual_usd=usd, actual_tokens=tokens)
            work = guard.background(settle, what)
        cancelled = await _wait_through_cancellation(work)
        if not release and work.done() and not work.cancelled() and work.exception() is None:
            settlement: Settlement = work.result()
            for crossing in settlement.crossed:
                await _crossed(recorder, self.run, crossing)
        if cancelled:
            raise asyncio.CancelledError()


CLOSE_WAIT_S = 5.0


async def _wait_through_cancellation(work: asyncio.Future[Any]) -> bool:
    """Wait for `work` to end; if this task is cancelled meanwhile, go on waiting, for at most
    `CLOSE_WAIT_S` more (asyncio cancels once; anyio's cancel scopes, which pydantic-ai uses,
    cancel again at every await). True if it was cancelled: the caller re-raises."""
    deadline: float | None = None
    while not work.done():
        timeout = None if deadline is None else deadline - time.monotonic()
        if timeout is not None and timeout <= 0:
            break
        try:
            await asyncio.wait({work}, timeout=timeout)
        except asyncio.CancelledError:
            if deadline is None:
                deadline = time.monotonic() + CLOSE_WAIT_S
    return deadline is not None


def _refused(recorder: RunRecorder, refused: BudgetExceeded) -> None:
    budget = refused.budget
    log.info("run %s: model request refused: %s", recorder.run_id, refused.message)
    if recorder.span is not None:
        recorder.span.event(
            "budget_exceeded",
            **_attributes(budget),
            **{
                "keel.budget.spent": _amount(refused.spent),
                "keel.budget.reserved": _amount(refused.reserved),
                "keel.budget.requested": _amount(refused.requested),
            },
        )


async def _crossed(recorder: RunRecorder, run: RunBudget, crossing: ThresholdCrossing) -> None:
    budget = crossing.budget
    what = "limit" if crossing.hard else "soft threshold"
    log.warning(
        "budget %s: %s %s reached (spent %s) by run %s",
        budget.describe(),
        what,
        _amount(crossing.threshold),
        _amount(crossing.spent_after),
        run.run_id,
    )
    event = BudgetThreshold(
        budget=budget.as_dict(),
        threshold=_amount(crossing.threshold),
        spent=_amount(crossing.spent_after),
        hard=crossing.hard,
        window_start=crossing.window.start.isoformat(),
    )
    if recorder.span is not None:
        recorder.span.event(
            "budget_threshold",
            **_attributes(budget),
            **{
                "keel.budget.threshold": event.threshold,
                "keel.budget.spent": event.spent,
                "keel.budget.hard": event.hard,
            },
        )
    await recorder.emit(event)


def _attributes(budget: Budget) -> dict[str, object]:
    return {
        "keel.budget.scope": budget.scope,
        "keel.budget.scope_id": budget.scope_id,
        "keel.budget.unit": budget.unit,
        "keel.budget.period": budget.period,
        "keel.budget.limit": _amount(budget.limit),
    }


def _amount(value: Decimal | int) -> str:
    """`0.8`, not `0.8000000000`; token counts as they are."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)
