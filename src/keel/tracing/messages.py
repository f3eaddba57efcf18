"""Messages in the GenAI conventions' format, for `gen_ai.input.messages` / `gen_ai.output.messages`.

pydantic-ai's messages are converted by pydantic-ai itself
(`InstrumentationSettings.messages_to_otel_messages`), so the format is exactly that of
pydantic-ai's own instrumentation: `[{"role": …, "parts": [{"type": "text", "content": …},
{"type": "tool_call", …}]}]`. The settings object is built once, lazily, on no-op tracer and
meter providers: nothing global is read or set, and pydantic-ai is not imported until content is
first captured.

Conversion is per message (one `ModelRequest` may become several GenAI messages, e.g. system and
user), so `ContentCapture` can cache each message's masked JSON: a run's history is sent again
with every model request, and only the new messages then cost anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, cast


@cache
def _settings(binary: bool) -> Any:
    """pydantic-ai's conversion settings. `binary=False` drops file data (keeping its media type);
    with it pydantic-ai walks every tool result looking for files, which costs tens of
    microseconds, so messages known to hold none use `binary=True`, where the flag changes
    nothing."""
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider
    from pydantic_ai.models.instrumented import InstrumentationSettings

    return InstrumentationSettings(
        tracer_provider=NoOpTracerProvider(),
        meter_provider=NoOpMeterProvider(),
        include_binary_content=binary,
        version=6,  # tool results as role "tool", the role the conventions pair with tool_call_response
    )


_PLAIN = (str, int, float, bool, type(None))
_PLAIN_RESPONSE_PARTS = frozenset({"TextPart", "ToolCallPart", "ThinkingPart"})


def _plain_value(value: object, budget: list[int]) -> bool:
    """Whether `value` is made of JSON types only (no file inside), within `budget` nodes."""
    budget[0] -= 1
    if budget[0] < 0:
        return False
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_value(v, budget) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_plain_value(v, budget) for v in value)
    return False


def _holds_no_file(message: Any) -> bool:
    """Whether a pydantic-ai message certainly holds no binary content (a cheap, shallow check;
    False when unsure)."""
    budget = [256]
    for part in message.parts:
        name = type(part).__name__
        if name in _PLAIN_RESPONSE_PARTS or name == "SystemPromptPart":
            continue
        if name in ("UserPromptPart", "ToolReturnPart", "RetryPromptPart") and _plain_value(
            part.content, budget
        ):
            continue
        return False
    return True


@cache
def _message_types() -> tuple[type, ...]:
    from pydantic_ai.messages import ModelRequest, ModelResponse

    return (ModelRequest, ModelResponse)


def is_model_message(value: object) -> bool:
    """Whether `value` is a pydantic-ai `ModelRequest` or `ModelResponse`."""
    return type(value).__module__.startswith("pydantic_ai.") and isinstance(value, _message_types())


def message_list(value: object) -> list[object] | None:
    """The messages `value` holds: a pydantic-ai message, a sequence of them, or a sequence of
    dicts with a `role` (GenAI messages already). None when `value` is not messages."""
    kind = type(value)
    if kind is not list and kind is not tuple:  # the usual case first, without ABC checks
        if is_model_message(value):
            return [value]
        if kind is str or kind is dict or not isinstance(value, Sequence) or isinstance(value, str | bytes):
            return None
    items = cast(Sequence[object], value)
    if items:
        if all(is_model_message(item) for item in items):
            return list(items)
        if all(isinstance(item, dict) and "role" in item for item in items):
            return list(items)
    return None


def to_genai(message: object) -> list[Any]:
    """One message as a list of GenAI messages (a dict message is returned as is)."""
    if is_model_message(message):
        return list(_settings(_holds_no_file(message)).messages_to_otel_messages([message]))
    return [message]
