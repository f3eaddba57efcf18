"""Retries of model requests, as a wrapper around pydantic-ai's one `Model` interface.

`RetryingModel` retries 429s, 5xx, timeouts and connection errors with exponential backoff and
jitter, honouring the provider's `Retry-After`, up to the configured attempts, and never sleeps
past the run's deadline. Each attempt is recorded on the run's recorder (model, duration, tokens,
error). When the attempts are spent it raises the last error, so pydantic-ai's `FallbackModel`
moves on to the next model in `fallback_models`.

The provider SDKs' own retries are switched off (see `keel.runtime.providers`), so every attempt
is one HTTP request and is counted once.

With a circuit breaker (`keel.runtime.circuit`), each attempt first asks the model's breaker: an
open circuit raises `CircuitOpenError` before any request (no span, no `ModelCall`), so the
`FallbackModel` moves on at once; an attempt's outcome is reported to the breaker, and once the
circuit is open no backoff is waited for.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter
from pydantic_ai.exceptions import (
    FallbackExceptionGroup,
    ModelAPIError,
    ModelConnectionError,
    ModelHTTPError,
    ModelQuotaExceededError,
    ModelRateLimitError,
    ModelRequestRejectedError,
    ModelRequestTimeout,
    ModelServerError,
    ModelTimeoutError,
    ModelUnavailableError,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
)
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext

from keel.config.project import ResolvedModel
from keel.config.schema import RetryOptions
from keel.errors import ErrorCategory, RunFailure
from keel.runtime.circuit import NO_PERMIT, CircuitOpenError, Outcome, Permit
from keel.runtime.circuit_guard import ModelCircuit
from keel.runtime.events import ModelFallback, ModelRetrying
from keel.runtime.recorder import RunRecorder, current_recorder, tracing_of
from keel.runtime.result import ModelCall
from keel.tracing import ChatSpan, chat_span

# Failures worth trying again on the same model: the provider may answer next time.
RETRYABLE: tuple[type[ModelAPIError], ...] = (
    ModelRateLimitError,
    ModelUnavailableError,
    ModelServerError,
    ModelConnectionError,
    ModelRequestTimeout,
)


_RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})


def is_retryable(exc: ModelAPIError) -> bool:
    """Whether the same request to the same model may succeed if sent again.

    Besides the categorized transient errors and retryable HTTP statuses, an uncategorized
    `ModelAPIError` (a response that could not be decoded, e.g. a garbled body from a proxy) is
    retried: nothing says the request itself was wrong.
    """
    if isinstance(exc, RETRYABLE) or type(exc) is ModelAPIError:
        return True
    return isinstance(exc, ModelHTTPError) and exc.status_code in _RETRYABLE_STATUS


def retry_after(exc: ModelAPIError) -> float | None:
    """Seconds the provider asked us to wait. Also accepts fractional seconds ("0.5"), which some
    servers send although RFC 9110 allows only whole seconds or an HTTP date."""
    if exc.retry_after is not None:
        return exc.retry_after
    headers = getattr(exc, "headers", None) or {}
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return seconds if 0 <= seconds < float("inf") else None


def categorize(exc: BaseException) -> tuple[ErrorCategory, str]:
    """Map any exception that ends a run (or a model attempt) to Keel's closed set of categories."""
    if isinstance(exc, RunFailure):
        return exc.category, exc.message
    if isinstance(exc, FallbackExceptionGroup):
        if all(isinstance(e, CircuitOpenError) for e in exc.exceptions):
            details = "; ".join(e.message for e in exc.exceptions if isinstance(e, CircuitOpenError))
            return ErrorCategory.CIRCUIT_OPEN, f"every model's circuit is open: {details}"
        # Every model in the chain failed: the last model's failure decides, the message lists all.
        category, _ = categorize(exc.exceptions[-1])
        details = "; ".join(f"{categorize(e)[1]}" for e in exc.exceptions)
        return category, f"all models failed: {details}"
    if isinstance(exc, CircuitOpenError):
        return ErrorCategory.CIRCUIT_OPEN, exc.message
    if isinstance(exc, ModelHTTPError) and exc.status_code == 429:
        return ErrorCategory.MODEL_RATE_LIMITED, _model_message(exc, "rate limited")
    if isinstance(exc, ModelHTTPError) and exc.status_code == 408:
        return ErrorCategory.MODEL_TIMEOUT, _model_message(exc, "timed out")
    if isinstance(exc, ModelRateLimitError | ModelQuotaExceededError):
        return ErrorCategory.MODEL_RATE_LIMITED, _model_message(exc, "rate limited")
    if isinstance(exc, ModelTimeoutError | ModelRequestTimeout):
        return ErrorCategory.MODEL_TIMEOUT, _model_message(exc, "timed out")
    if isinstance(exc, ModelConnectionError):
        return ErrorCategory.MODEL_UNAVAILABLE, _model_message(exc, "connection failed")
    if isinstance(exc, ModelRequestRejectedError):
        return ErrorCategory.MODEL_UNAVAILABLE, _model_message(exc, "rejected the request")
    if isinstance(exc, ModelAPIError):
        return ErrorCategory.MODEL_UNAVAILABLE, _model_message(exc, "unavailable")
    if isinstance(exc, UsageLimitExceeded):
        return ErrorCategory.LIMIT_EXCEEDED, str(exc)
    if isinstance(exc, UnexpectedModelBehavior):
        text = str(exc)
        if "output retries" in text or "output validation" in text:
            return (
                ErrorCategory.INVALID_OUTPUT,
                f"the model's output stayed invalid after corrections: {text}",
            )
        if "Tool " in text and "retries" in text:
            return ErrorCategory.TOOL_ERROR, text
        return ErrorCategory.INVALID_OUTPUT, f"the model's response could not be used: {text}"
    if isinstance(exc, TimeoutError):
        return ErrorCategory.TIMED_OUT, "the run timed out"
    return ErrorCategory.INTERNAL, f"{type(exc).__name__}: {exc}"


def circuit_outcome(exc: ModelAPIError | None) -> Outcome:
    """What an attempt tells the model's circuit breaker: transient errors and timeouts are
    failures; an answer, even a refusal of the request (4xx), shows the provider is up."""
    return Outcome.FAILURE if exc is not None and is_retryable(exc) else Outcome.SUCCESS


def _model_message(exc: ModelAPIError, what: str) -> str:
    status = getattr(exc, "status_code", None)
    detail = f"HTTP {status}" if status is not None else type(exc).__name__
    return f"model {exc.model_name!r} {what} ({detail}): {exc.message}"


def backoff_delay(options: RetryOptions, attempt: int, rng: random.Random | None = None) -> float:
    """Delay before attempt `attempt + 1`, after `attempt` failures: exponential, capped, with jitter."""
    base = min(options.max_delay, options.initial_delay * (2 ** (attempt - 1)))
    if options.jitter:
        draw = rng.random() if rng is not None else random.random()
        base *= 1 - options.jitter * draw
    return max(0.0, float(base))


class RetryingModel(WrapperModel):
    """Retries one model's requests per the agent's `retry_options`; records and traces every attempt.

    Each attempt is one `chat` span (a child of the run's `invoke_agent` span) and one `ModelCall`;
    the backoff sleep between attempts lies outside the spans, so a span's duration is the
    provider's. A fallback to this model is an event on the run's span.
    """

    def __init__(
        self,
        wrapped: Model,
        *,
        model: ResolvedModel,
        options: RetryOptions,
        price: Callable[[int, int], Decimal | None] | None = None,
        circuit: ModelCircuit | None = None,
    ) -> None:
        super().__init__(wrapped)
        self.keel_model = model
        self.keel_label = model.label
        self.options = options
        self.price = price
        self.circuit = circuit

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        recorder = current_recorder()
        await self._note_fallback(recorder)
        attempt = 0
        while True:
            attempt += 1
            permit = await self._admit(recorder, attempt)
            started, t0 = datetime.now(UTC), time.perf_counter()
            with self._span(recorder, attempt, False, messages) as span, permit:
                try:
                    response = await self.wrapped.request(messages, model_settings, model_request_parameters)
                except ModelAPIError as exc:
                    self._settle(permit, exc, span, recorder)
                    delay, retrying = self._failed(recorder, exc, attempt, started, t0, span)
                    if retrying is None:
                        raise
                else:
                    self._settle(permit, None, span, recorder)
                    self._record_ok(recorder, response, attempt, started, t0, span, streamed=False)
                    if recorder is not None and recorder.durable:
                        response.metadata = attach_calls(response.metadata, recorder.take_pending_calls())
                    return response
            await self._wait(recorder, delay, retrying)

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse]:
        # Failures before the stream opens are retried; a stream that breaks after it has started
        # delivering is not replayed (its text may already have reached the client).
        recorder = current_recorder()
        await self._note_fallback(recorder)
        attempt = 0
        while True:
            attempt += 1
            permit = await self._admit(recorder, attempt)
            started, t0 = datetime.now(UTC), time.perf_counter()
            async with AsyncExitStack() as stack:
                span = stack.enter_context(self._span(recorder, attempt, True, messages))
                stack.enter_context(permit)
                try:
                    stream = await stack.enter_async_context(
                        self.wrapped.request_stream(
                            messages, model_settings, model_request_parameters, run_context
                        )
                    )
                except ModelAPIError as exc:
                    self._settle(permit, exc, span, recorder)
                    delay, retrying = self._failed(recorder, exc, attempt, started, t0, span)
                    if retrying is None:
                        raise
                else:
                    permit.responded()  # a stream's latency is the time until it opened
                    try:
                        yield stream
                    except ModelAPIError as exc:
                        self._settle(permit, exc, span, recorder)
                        self._record_error(recorder, exc, attempt, started, t0, None, span, streamed=True)
                        raise
                    self._settle(permit, None, span, recorder)
                    self._record_ok(recorder, stream.get(), attempt, started, t0, span, streamed=True)
                    if recorder is not None and recorder.durable:
                        stream.metadata = attach_calls(stream.metadata, recorder.take_pending_calls())
                    return
            await self._wait(recorder, delay, retrying)

    async def _admit(self, recorder: RunRecorder | None, attempt: int) -> Permit:
        """The circuit breaker's permit for this attempt (CircuitOpenError when it refuses)."""
        circuit = self.circuit
        return NO_PERMIT if circuit is None else await circuit.admit(recorder, attempt)

    def _settle(
        self, permit: Permit, exc: ModelAPIError | None, span: ChatSpan, recorder: RunRecorder | None
    ) -> None:
        if self.circuit is not None:
            self.circuit.settle(permit, circuit_outcome(exc), span, recorder)

    def _span(self, recorder: RunRecorder | None, attempt: int, streamed: bool, messages: object) -> ChatSpan:
        return chat_span(
            tracing_of(recorder),
            provider=self.keel_model.provider,
            model=self.keel_model.model,
            attempt=attempt,
            streamed=streamed,
            messages=messages,
        )

    async def _note_fallback(self, recorder: RunRecorder | None) -> None:
        """Emit a fallback event when the run's previous attempt was another model's failure."""
        previous = recorder.last_model_call() if recorder is not None else None
        if recorder is None or previous is None:
            return
        if self.circuit is not None and not self.circuit.follows(previous.model):
            return  # the models in between were refused by their circuits, and said so
        if previous.status == "error" and previous.model != self.keel_label and previous.error_category:
            event = ModelFallback(previous.model, self.keel_label, previous.error_category)
            if recorder.span is not None:
                recorder.span.event(
                    "fallback", **{"keel.fallback.from": event.from_model, "keel.fallback.to": event.to_model}
                )
            await recorder.emit(event)

    def _failed(
        self,
        recorder: RunRecorder | None,
        exc: ModelAPIError,
        attempt: int,
        started: datetime,
        t0: float,
        span: ChatSpan,
    ) -> tuple[float, ModelRetrying | None]:
        """Record a failed attempt. Returns the delay before the next one and its event, or
        (0, None) when the error is not retryable or no attempt is left."""
        delay = self._next_delay(exc, attempt, recorder)
        category, message = self._record_error(recorder, exc, attempt, started, t0, delay, span)
        if delay is None:
            return 0.0, None
        return delay, ModelRetrying(self.keel_label, attempt, category, delay, message)

    async def _wait(self, recorder: RunRecorder | None, delay: float, event: ModelRetrying | None) -> None:
        if recorder is not None and event is not None:
            await recorder.emit(event)
        await asyncio.sleep(delay)

    def _next_delay(self, exc: ModelAPIError, attempt: int, recorder: RunRecorder | None) -> float | None:
        if attempt >= self.options.attempts or not is_retryable(exc):
            return None
        if self.circuit is not None and self.circuit.refuses():
            return None  # the circuit is open: the next model now, not after a backoff
        asked = retry_after(exc)
        if asked is not None:
            if asked > self.options.max_retry_after:
                return None  # the provider asks for a longer wait than we accept: fall back instead
            delay = asked
        else:
            delay = backoff_delay(self.options, attempt)
        remaining = recorder.remaining() if recorder is not None else None
        if remaining is not None and delay >= remaining:
            return None  # sleeping would outlive the run: report the model's failure now
        return delay

    def _call(self, attempt: int, started: datetime, t0: float, streamed: bool, **outcome: Any) -> ModelCall:
        """The record of one attempt, timed from `t0`."""
        return ModelCall(
            model=self.keel_label,
            attempt=attempt,
            started_at=started,
            duration_ms=(time.perf_counter() - t0) * 1000,
            streamed=streamed,
            **outcome,
        )

    def _record_error(
        self,
        recorder: RunRecorder | None,
        exc: ModelAPIError,
        attempt: int,
        started: datetime,
        t0: float,
        delay: float | None,
        span: ChatSpan,
        *,
        streamed: bool = False,
    ) -> tuple[ErrorCategory, str]:
        category, message = categorize(exc)
        span.failed(category.value, message, retry_in=delay)
        if recorder is not None:
            recorder.note_model_call(
                self._call(
                    attempt,
                    started,
                    t0,
                    streamed,
                    status="error",
                    error_category=category,
                    error=message,
                    retry_delay_s=delay,
                    cost_usd=Decimal(0),
                )
            )
        return category, message

    def _record_ok(
        self,
        recorder: RunRecorder | None,
        response: ModelResponse,
        attempt: int,
        started: datetime,
        t0: float,
        span: ChatSpan,
        *,
        streamed: bool,
    ) -> None:
        usage = response.usage
        span.ok(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            response_model=response.model_name,
            finish_reasons=[response.finish_reason] if response.finish_reason else [],
            output=response,
        )
        if recorder is None:
            return
        recorder.note_model_call(
            self._call(
                attempt,
                started,
                t0,
                streamed,
                status="ok",
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost_usd=self.price(usage.input_tokens, usage.output_tokens) if self.price else None,
            )
        )
        if not recorder.durable:  # durable runs take the text from the step's response (replay too)
            note_text(recorder, response)


def note_text(recorder: RunRecorder, response: ModelResponse) -> None:
    text = "".join(part.content for part in response.parts if isinstance(part, TextPart))
    if text:
        recorder.last_text = text


CALLS_KEY = "keel_model_calls"
_CALLS = TypeAdapter(list[ModelCall])


def attach_calls(metadata: dict[str, Any] | None, calls: list[ModelCall]) -> dict[str, Any]:
    """The response metadata with the request's attempts added. pydantic-ai never sends metadata
    to the model; a durable step stores it with the response, so replay restores the attempts."""
    return {**(metadata or {}), CALLS_KEY: _CALLS.dump_python(calls, mode="json")}


def detach_calls(response: ModelResponse) -> list[ModelCall]:
    """The attempts attached by `attach_calls` (removed from the response), or []."""
    metadata = response.metadata
    if not metadata or CALLS_KEY not in metadata:
        return []
    raw = metadata.pop(CALLS_KEY)
    if not metadata:
        response.metadata = None
    return _CALLS.validate_python(raw)
