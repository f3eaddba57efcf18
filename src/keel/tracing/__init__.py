"""OpenTelemetry tracing of runs, per the GenAI semantic conventions.

    tracing = Tracing.create(project.config.tracing, sink=writer.submit)
    with agent_span(tracing, agent="inbox", run_id=run_id, model="openai:gpt-4o-mini",
                    conversation_id=None, input=input) as run:
        with chat_span(tracing, provider="openai", model="gpt-4o-mini", attempt=1,
                       streamed=False, messages=messages) as chat:
            chat.ok(input_tokens=12, output_tokens=5, response_model="gpt-4o-mini",
                    finish_reasons=["stop"], output=response)
        run.finish("succeeded", output=output, input_tokens=12, output_tokens=5, cost_usd=0.0001)
    tracing.shutdown()

One `Tracing` per runner, on its own `TracerProvider` (the global provider is never touched).
Finished spans go to the store's sink as `keel.store.records.SpanRecord`s and, when configured, to
an OTLP/HTTP collector. See docs/tracing.md.
"""

from keel.tracing.content import TRUNCATED, CaptureMode, ContentCapture, size_of
from keel.tracing.provider import WELL_KNOWN_SECRET_ENV_VARS, Tracing
from keel.tracing.redact import redact_all, redact_pii, redact_secrets
from keel.tracing.sink import SpanSink, span_to_record
from keel.tracing.spans import AgentSpan, ChatSpan, SpanHandle, ToolSpan, agent_span, chat_span, tool_span

__all__ = [
    "TRUNCATED",
    "WELL_KNOWN_SECRET_ENV_VARS",
    "AgentSpan",
    "CaptureMode",
    "ChatSpan",
    "ContentCapture",
    "SpanHandle",
    "SpanSink",
    "ToolSpan",
    "Tracing",
    "agent_span",
    "chat_span",
    "redact_all",
    "redact_pii",
    "redact_secrets",
    "size_of",
    "span_to_record",
    "tool_span",
]
