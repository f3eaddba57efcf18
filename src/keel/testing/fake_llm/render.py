"""The response side of the wire format: completions, SSE chunks and error bodies, as bytes."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import JsonValue

from keel.testing.fake_llm.script import Reply
from keel.testing.fake_llm.tokens import completion_tokens, prompt_tokens
from keel.testing.fake_llm.wire import ChatRequest, JsonObject

SYSTEM_FINGERPRINT = "fp_keel_fake"
OUTPUT_TOOL_PREFIX = "final_result"
DONE_EVENT = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class OutgoingToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Completion:
    """A reply resolved against its request: final content, tool calls, finish reason and usage."""

    content: str | None
    tool_calls: tuple[OutgoingToolCall, ...]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def usage(self) -> JsonObject:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _dumps(value: JsonValue) -> str:
    return _ENCODER.encode(value)


def resolve(reply: Reply, request: ChatRequest, next_call_id: Callable[[], str]) -> Completion:
    """Apply the mode-agnostic JSON rule, encode tool-call arguments, count tokens."""
    content = reply.text
    calls: list[OutgoingToolCall] = []
    if reply.json is not None:
        output_tool = None
        if not request.wants_json:
            output_tool = next((t.name for t in request.tools if t.name.startswith(OUTPUT_TOOL_PREFIX)), None)
        if output_tool is not None:
            calls.append(OutgoingToolCall(next_call_id(), output_tool, _dumps(reply.json)))
        else:
            content = _dumps(reply.json)
    for call in reply.tool_calls:
        arguments = call.arguments if isinstance(call.arguments, str) else _dumps(call.arguments)
        calls.append(OutgoingToolCall(next_call_id(), call.name, arguments))
    finish = reply.finish_reason or ("tool_calls" if calls else "stop")
    return Completion(
        content=content,
        tool_calls=tuple(calls),
        finish_reason=finish,
        prompt_tokens=prompt_tokens(request),
        completion_tokens=completion_tokens(content, ((c.name, c.arguments) for c in calls)),
    )


def completion_body(request: ChatRequest, completion: Completion, completion_id: str, created: int) -> bytes:
    """A non-streaming `chat.completion` JSON body."""
    message: JsonObject = {
        "role": "assistant",
        "content": completion.content,
        "refusal": None,
        "annotations": [],
    }
    if completion.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in completion.tool_calls
        ]
    body: JsonObject = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": request.model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": completion.finish_reason}
        ],
        "usage": completion.usage(),
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    return _dumps(body).encode()


@dataclass(frozen=True, slots=True)
class StreamEvents:
    """The SSE events of a streamed completion; events from `final_index` on end the stream properly
    (the finish-reason chunk, the usage chunk, `[DONE]`), so a cut stream stops before it."""

    events: tuple[bytes, ...]
    final_index: int


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] if text else []


def stream_events(
    request: ChatRequest, completion: Completion, completion_id: str, created: int, chunk_chars: int
) -> StreamEvents:
    """`chat.completion.chunk` events: role, content pieces, tool calls with argument pieces, finish,
    then the usage chunk when the request asked for it (`stream_options.include_usage`), then [DONE]."""
    prefix = (
        f'data: {{"id":{_dumps(completion_id)},"object":"chat.completion.chunk","created":{created},'
        f'"model":{_dumps(request.model)},"system_fingerprint":"{SYSTEM_FINGERPRINT}","choices":[{{"index":0,"delta":'
    ).encode()
    suffix = b"]" + (b',"usage":null' if request.include_usage else b"") + b"}\n\n"
    middle = b',"logprobs":null,"finish_reason":null}'

    def event(delta: str) -> bytes:
        return prefix + delta.encode() + middle + suffix

    role_content = '""' if completion.content is not None else "null"
    events = [event(f'{{"role":"assistant","content":{role_content}}}')]
    events.extend(
        event(f'{{"content":{_dumps(piece)}}}') for piece in _pieces(completion.content or "", chunk_chars)
    )
    for index, call in enumerate(completion.tool_calls):
        head: JsonObject = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        events.append(event(f'{{"tool_calls":[{_dumps(head)}]}}'))
        for piece in _pieces(call.arguments, chunk_chars):
            events.append(
                event(f'{{"tool_calls":[{{"index":{index},"function":{{"arguments":{_dumps(piece)}}}}}]}}')
            )
    final_index = len(events)
    finish = f',"logprobs":null,"finish_reason":{_dumps(completion.finish_reason)}}}'.encode()
    events.append(prefix + b"{}" + finish + suffix)
    if request.include_usage:
        usage_prefix = prefix[: prefix.index(b'"choices":')]
        events.append(
            usage_prefix + b'"choices":[],"usage":' + _dumps(completion.usage()).encode() + b"}\n\n"
        )
    events.append(DONE_EVENT)
    return StreamEvents(tuple(events), final_index)


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> bytes:
    """An OpenAI-style error body: `{"error": {"message", "type", "param", "code"}}`."""
    return _dumps({"error": {"message": message, "type": type_, "param": param, "code": code}}).encode()


MALFORMED_BODY = (
    b'{"id": "chatcmpl-malformed", "object": "chat.completion", "choices": [{"index": 0, '
    b'"message": {"role": "assistant", "content": "this body is cut short on purpose'
)
MALFORMED_EVENTS = (
    b'data: {"id": "chatcmpl-malformed", "object": "chat.completion.chunk", "choices": [{"delta": {"con\n\n',
    DONE_EVENT,
)
