"""Span helpers for a run, per the GenAI semantic conventions.

    invoke_agent {agent}          agent_span   INTERNAL
    ├── chat {model}              chat_span    CLIENT, one per model attempt (retries and fallbacks)
    │     events: exception, retry
    └── execute_tool {name}       tool_span    INTERNAL, one per tool call (its retries inside)

Each helper returns a handle that is a context manager: entering starts the span and makes it
current (so spans started inside, in this task or in tasks it creates, become its children);
leaving ends it. Report the outcome through the handle once (`finish`, `ok`, `failed`); later
calls are ignored. An exception that leaves the block before an outcome was reported marks the
span as an error (its type and masked message; no stack trace). Everything put on a span goes
through the tracing's `ContentCapture`: content only when capture is on, secrets always masked.

With tracing disabled, the helpers return shared handles that do nothing.
"""

from __future__ import annotations

import contextvars
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from keel.tracing import semconv as sc
from keel.tracing.content import size_of
from keel.tracing.provider import Tracing
from keel.tracing.sink import current_run_id

_OK = Status(StatusCode.OK)


class SpanHandle:
    """A span of a run; a context manager. Base of `AgentSpan`, `ChatSpan` and `ToolSpan`."""

    __slots__ = ("_attributes", "_done", "_kind", "_name", "_span", "_token", "_tracing")

    def __init__(
        self, tracing: Tracing | None, name: str, kind: SpanKind, attributes: dict[str, Any] | None
    ) -> None:
        self._tracing = tracing
        self._name = name
        self._kind = kind
        self._attributes = attributes
        self._span: Span | None = None
        self._token: object = None
        self._done = False

    def __enter__(self) -> Any:
        tracing = self._tracing
        if tracing is None or self._span is not None:
            return self
        span = tracing.tracer.start_span(self._name, kind=self._kind, attributes=self._attributes)
        self._attributes = None
        self._span = span
        self._token = otel_context.attach(trace.set_span_in_context(span))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        span, token = self._span, self._token
        if span is None or token is None:  # disabled, or already left
            return
        self._token = None
        if exc is not None and not self._done:
            self._unexpected(span, exc)
        self._done = True
        span.end()
        otel_context.detach(token)  # type: ignore[arg-type]

    @property
    def span(self) -> Span | None:
        """The OpenTelemetry span (None before `with`, or when tracing is disabled)."""
        return self._span

    @property
    def trace_id(self) -> str | None:
        """The trace's id, 32 hex characters; None before `with` or when tracing is disabled."""
        context = self._span.get_span_context() if self._span is not None else None
        return format(context.trace_id, "032x") if context is not None and context.is_valid else None

    @property
    def span_id(self) -> str | None:
        """The span's id, 16 hex characters; None before `with` or when tracing is disabled."""
        context = self._span.get_span_context() if self._span is not None else None
        return format(context.span_id, "016x") if context is not None and context.is_valid else None

    def event(self, name: str, **attributes: object) -> None:
        """Add an event (e.g. `fallback`); string values are masked like error messages."""
        span, tracing = self._span, self._tracing
        if span is None or tracing is None:
            return
        span.add_event(name, _event_attributes(tracing, attributes))

    def _claim(self) -> Span | None:
        """The span, the first time an outcome is reported; None afterwards (or when disabled)."""
        if self._done or self._span is None:
            return None
        self._done = True
        return self._span

    def _error(self, span: Span, error_type: str, message: str | None, event: bool) -> None:
        assert self._tracing is not None
        text = self._tracing.capture.text(message)
        span.set_attribute(sc.ERROR_TYPE, error_type)
        span.set_status(Status(StatusCode.ERROR, text))
        if event:
            attributes = {sc.EXCEPTION_TYPE: error_type}
            if text:
                attributes[sc.EXCEPTION_MESSAGE] = text
            span.add_event("exception", attributes)

    def _unexpected(self, span: Span, exc: BaseException) -> None:
        try:
            message = str(exc) or None
        except Exception:  # an exception whose __str__ fails still ends its span
            message = None
        self._error(span, _type_name(exc), message, event=True)


class AgentSpan(SpanHandle):
    """`invoke_agent {agent}`: the span of one run, parent of its chat and tool spans."""

    __slots__ = ("_run_id", "_run_token")

    def __init__(
        self, tracing: Tracing | None, name: str, attributes: dict[str, Any] | None, run_id: str
    ) -> None:
        super().__init__(tracing, name, SpanKind.INTERNAL, attributes)
        self._run_id = run_id
        self._run_token: contextvars.Token[str | None] | None = None

    def __enter__(self) -> AgentSpan:
        if self._tracing is not None and self._span is None:
            super().__enter__()
            self._run_token = current_run_id.set(self._run_id)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        token, self._run_token = self._run_token, None
        if token is not None:
            try:
                current_run_id.reset(token)
            except ValueError:  # left in another context than it was entered in
                current_run_id.set(None)
        super().__exit__(exc_type, exc, tb)

    def finish(
        self,
        status: str,
        error_category: str | None = None,
        error_message: str | None = None,
        output: object = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost_usd: float | None = None,
    ) -> None:
        """Record how the run ended: `status` is succeeded, failed, timed_out or cancelled; any
        status but succeeded makes the span an error with `error.type` = `error_category`."""
        span = self._claim()
        if span is None:
            return
        assert self._tracing is not None
        capture = self._tracing.capture
        attributes: dict[str, Any] = {
            sc.RUN_STATUS: status,
            sc.USAGE_INPUT_TOKENS: input_tokens,
            sc.USAGE_OUTPUT_TOKENS: output_tokens,
            sc.OUTPUT_SIZE: size_of(output),
        }
        if cost_usd is not None:
            attributes[sc.COST_USD] = float(cost_usd)
        if capture.enabled and output is not None:
            attributes[sc.OUTPUT_MESSAGES] = capture.messages(output, "assistant")
        span.set_attributes(attributes)
        if status == "succeeded":
            span.set_status(_OK)
        else:
            self._error(span, error_category or status, error_message, event=False)


class ChatSpan(SpanHandle):
    """`chat {model}`: one request to a model (one attempt)."""

    __slots__ = ()

    def __enter__(self) -> ChatSpan:
        super().__enter__()
        return self

    def ok(
        self,
        input_tokens: int = 0,
        output_tokens: int = 0,
        response_model: str | None = None,
        finish_reasons: list[str] | None = None,
        output: object | None = None,
    ) -> None:
        """The model answered. `output` (e.g. pydantic-ai's `ModelResponse`) is captured as
        `gen_ai.output.messages` when content capture is on."""
        span = self._claim()
        if span is None:
            return
        assert self._tracing is not None
        attributes: dict[str, Any] = {
            sc.USAGE_INPUT_TOKENS: input_tokens,
            sc.USAGE_OUTPUT_TOKENS: output_tokens,
        }
        if response_model:
            attributes[sc.RESPONSE_MODEL] = response_model
        if finish_reasons:
            attributes[sc.RESPONSE_FINISH_REASONS] = [str(reason) for reason in finish_reasons]
        capture = self._tracing.capture
        if capture.enabled and output is not None:
            attributes[sc.OUTPUT_MESSAGES] = capture.messages(output, "assistant")
        span.set_attributes(attributes)
        span.set_status(_OK)

    def failed(self, category: str, message: str, retry_in: float | None = None) -> None:
        """The attempt failed with error `category`; `retry_in` seconds until the next attempt,
        when there is one (recorded as a `retry` event)."""
        span = self._claim()
        if span is None:
            return
        self._error(span, category, message, event=True)
        if retry_in is not None:
            span.add_event("retry", {sc.RETRY_DELAY_S: float(retry_in)})


class ToolSpan(SpanHandle):
    """`execute_tool {name}`: one tool call, its retries included."""

    __slots__ = ()

    def __enter__(self) -> ToolSpan:
        super().__enter__()
        return self

    def ok(self, result: object | None = None, attempts: int = 1) -> None:
        """The tool returned `result` (captured as `gen_ai.tool.call.result` when capture is on)."""
        span = self._claim()
        if span is None:
            return
        assert self._tracing is not None
        attributes: dict[str, Any] = {
            sc.TOOL_STATUS: "ok",
            sc.TOOL_ATTEMPTS: attempts,
            sc.TOOL_RESULT_SIZE: size_of(result),
        }
        capture = self._tracing.capture
        if capture.enabled and result is not None:
            attributes[sc.TOOL_CALL_RESULT] = capture.json(result)
        span.set_attributes(attributes)
        span.set_status(_OK)

    def failed(self, status: str, message: str, attempts: int = 1) -> None:
        """The tool failed after `attempts`; `status` is `error` or `timeout`."""
        span = self._claim()
        if span is None:
            return
        span.set_attributes({sc.TOOL_STATUS: status, sc.TOOL_ATTEMPTS: attempts})
        self._error(span, "tool_timeout" if status == "timeout" else "tool_error", message, event=True)


_DISABLED_AGENT = AgentSpan(None, "", None, "")
_DISABLED_CHAT = ChatSpan(None, "", SpanKind.CLIENT, None)
_DISABLED_TOOL = ToolSpan(None, "", SpanKind.INTERNAL, None)


def agent_span(
    tracing: Tracing,
    *,
    agent: str,
    run_id: str,
    model: str,
    conversation_id: str | None = None,
    input: object = None,
) -> AgentSpan:
    """The span of one run of `agent`. Use as `with agent_span(...) as run: ... run.finish(...)`."""
    if not tracing.enabled:
        return _DISABLED_AGENT
    capture = tracing.capture
    attributes: dict[str, Any] = {
        sc.OPERATION_NAME: sc.OP_INVOKE_AGENT,
        sc.AGENT_NAME: agent,
        sc.RUN_ID: run_id,
        sc.REQUEST_MODEL: model,
        sc.INPUT_SIZE: size_of(input),
    }
    if conversation_id is not None:
        attributes[sc.CONVERSATION_ID] = conversation_id
    if capture.enabled and input is not None:
        attributes[sc.INPUT_MESSAGES] = capture.messages(input, "user")
    return AgentSpan(tracing, f"{sc.OP_INVOKE_AGENT} {agent}", attributes, run_id)


def chat_span(
    tracing: Tracing,
    *,
    provider: str,
    model: str,
    attempt: int = 1,
    streamed: bool = False,
    messages: object | None = None,
) -> ChatSpan:
    """The span of one model request attempt. `provider` is Keel's provider name (`openai`,
    `anthropic`, `google`, `openai-compatible`); `messages` (pydantic-ai's) are captured as
    `gen_ai.input.messages` when content capture is on, counted otherwise."""
    if not tracing.enabled:
        return _DISABLED_CHAT
    attributes: dict[str, Any] = {
        sc.OPERATION_NAME: sc.OP_CHAT,
        sc.PROVIDER_NAME: sc.PROVIDER_NAMES.get(provider, provider),
        sc.REQUEST_MODEL: model,
        sc.REQUEST_STREAM: streamed,
        sc.ATTEMPT: attempt,
    }
    run_id = current_run_id.get()
    if run_id is not None:
        attributes[sc.RUN_ID] = run_id
    if messages is not None:
        if isinstance(messages, list | tuple):
            attributes[sc.CHAT_MESSAGES] = len(messages)
        capture = tracing.capture
        if capture.enabled:
            attributes[sc.INPUT_MESSAGES] = capture.messages(messages, "user")
    return ChatSpan(tracing, f"{sc.OP_CHAT} {model}", SpanKind.CLIENT, attributes)


def tool_span(tracing: Tracing, *, name: str, call_id: str, args: object | None = None) -> ToolSpan:
    """The span of one tool call; `args` captured as `gen_ai.tool.call.arguments` when content
    capture is on, their size otherwise."""
    if not tracing.enabled:
        return _DISABLED_TOOL
    attributes: dict[str, Any] = {
        sc.OPERATION_NAME: sc.OP_EXECUTE_TOOL,
        sc.TOOL_NAME: name,
        sc.TOOL_TYPE: "function",
        sc.TOOL_CALL_ID: call_id,
        sc.TOOL_ARGS_SIZE: size_of(args),
    }
    run_id = current_run_id.get()
    if run_id is not None:
        attributes[sc.RUN_ID] = run_id
    capture = tracing.capture
    if capture.enabled and args is not None:
        attributes[sc.TOOL_CALL_ARGUMENTS] = capture.json(args)
    return ToolSpan(tracing, f"{sc.OP_EXECUTE_TOOL} {name}", SpanKind.INTERNAL, attributes)


def _event_attributes(tracing: Tracing, attributes: dict[str, object]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, str):
            out[key] = tracing.capture.text(value)
        elif isinstance(value, bool | int | float):
            out[key] = value
        elif isinstance(value, list | tuple):
            out[key] = [tracing.capture.text(v) if isinstance(v, str) else v for v in value]
        else:
            out[key] = tracing.capture.text(str(value))
    return out


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
