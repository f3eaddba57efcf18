"""The request side of the OpenAI chat-completions wire format, as a small typed view.

`parse_chat_request` turns a decoded JSON body into a `ChatRequest`; scripts (rules or a Python
callable) only ever see that view. Only what the fake server needs is modelled: text content
(content parts are flattened, non-text parts counted), tool calls in the history, tool
definitions, `response_format`, `stream` and `stream_options.include_usage`. The full decoded
body stays available as `ChatRequest.body`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import cast

from pydantic import JsonValue

from keel.guardrails.untrusted import unmark

JsonObject = dict[str, JsonValue]


class BadRequest(Exception):
    """The request body is not a valid chat-completions request (answered with HTTP 400)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call made by the assistant earlier in the conversation."""

    id: str
    name: str
    arguments: str
    """The arguments exactly as sent: a JSON text, not necessarily valid."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message of the conversation, its content flattened to text."""

    role: str
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    non_text_parts: int = 0
    """How many content parts were not text (images, audio, files)."""
    sent: str | None = None
    """The content as sent, when `content` reads through an untrusted-data marking (tool results):
    what token counts are made of."""


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """A function tool offered to the model."""

    name: str
    description: str = ""
    parameters: JsonObject = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool result (`role: tool` message), with the name of the tool resolved from its call id."""

    name: str | None
    tool_call_id: str | None
    content: str


@dataclass(frozen=True)
class ChatRequest:
    """What a script sees of one chat-completions request."""

    model: str
    messages: tuple[Message, ...]
    tools: tuple[ToolDefinition, ...] = ()
    response_format: str | None = None
    """`text`, `json_object`, `json_schema`, or None when the request has no `response_format`."""
    response_schema: JsonObject | None = None
    """The `json_schema` object of a `json_schema` response format (name, schema, strict)."""
    stream: bool = False
    include_usage: bool = False
    body: JsonObject = field(default_factory=dict, repr=False, compare=False)
    """The decoded request body, exactly as received."""

    @property
    def last_message(self) -> Message | None:
        return self.messages[-1] if self.messages else None

    @cached_property
    def last_user(self) -> str | None:
        """Text of the last `user` message, or None when there is none."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.content
        return None

    @cached_property
    def tool_results(self) -> tuple[ToolResult, ...]:
        """The tool results at the end of the conversation (the trailing run of `tool` messages)."""
        trailing: list[Message] = []
        for message in reversed(self.messages):
            if message.role != "tool":
                break
            trailing.append(message)
        if not trailing:
            return ()
        names = {call.id: call.name for message in self.messages for call in message.tool_calls}
        return tuple(
            ToolResult(
                name=names.get(message.tool_call_id or "", message.name),
                tool_call_id=message.tool_call_id,
                content=message.content,
            )
            for message in reversed(trailing)
        )

    @property
    def last_tool_result(self) -> ToolResult | None:
        return self.tool_results[-1] if self.tool_results else None

    @cached_property
    def assistant_turns(self) -> int:
        """How many assistant messages the conversation already holds."""
        return sum(1 for message in self.messages if message.role == "assistant")

    @cached_property
    def conversation_text(self) -> str:
        """All message contents and tool-call arguments, lower-cased, for substring matching."""
        parts: list[str] = []
        for message in self.messages:
            parts.append(message.content)
            parts.extend(call.arguments for call in message.tool_calls)
        return "\n".join(parts).lower()

    @cached_property
    def tool_names(self) -> frozenset[str]:
        return frozenset(tool.name for tool in self.tools)

    def offers_tool(self, name: str) -> bool:
        return name in self.tool_names

    @property
    def wants_json(self) -> bool:
        """True when `response_format` asks for JSON (`json_object` or `json_schema`)."""
        return self.response_format in ("json_object", "json_schema")


def parse_chat_request(body: object) -> ChatRequest:
    """Check a decoded JSON body and build the `ChatRequest` view. Raises `BadRequest`."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    obj = cast(JsonObject, body)
    model = obj.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a non-empty string", "model")
    raw_messages = obj.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise BadRequest("'messages' is required and must be a non-empty array", "messages")
    messages = tuple(_parse_message(item, index) for index, item in enumerate(raw_messages))

    tools: tuple[ToolDefinition, ...] = ()
    raw_tools = obj.get("tools")
    if raw_tools is not None:
        if not isinstance(raw_tools, list):
            raise BadRequest("'tools' must be an array", "tools")
        tools = tuple(_parse_tool(item, index) for index, item in enumerate(raw_tools))

    response_format: str | None = None
    response_schema: JsonObject | None = None
    raw_format = obj.get("response_format")
    if raw_format is not None:
        if not isinstance(raw_format, dict) or not isinstance(raw_format.get("type"), str):
            raise BadRequest("'response_format' must be an object with a string 'type'", "response_format")
        response_format = cast(str, raw_format["type"])
        if response_format not in ("text", "json_object", "json_schema"):
            raise BadRequest(f"unknown response_format type {response_format!r}", "response_format.type")
        schema = raw_format.get("json_schema")
        if response_format == "json_schema":
            if not isinstance(schema, dict):
                raise BadRequest(
                    "a json_schema response_format needs a 'json_schema' object", "response_format"
                )
            response_schema = schema

    stream = obj.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean", "stream")
    include_usage = False
    options = obj.get("stream_options")
    if isinstance(options, dict):
        include_usage = options.get("include_usage") is True

    return ChatRequest(
        model=model,
        messages=messages,
        tools=tools,
        response_format=response_format,
        response_schema=response_schema,
        stream=stream,
        include_usage=include_usage,
        body=obj,
    )


def _parse_message(item: JsonValue, index: int) -> Message:
    where = f"messages[{index}]"
    if not isinstance(item, dict):
        raise BadRequest(f"{where} must be an object", where)
    role = item.get("role")
    if not isinstance(role, str) or not role:
        raise BadRequest(f"{where}.role is required", f"{where}.role")
    content, non_text = _flatten_content(item.get("content"), where)
    tool_calls: tuple[ToolCall, ...] = ()
    raw_calls = item.get("tool_calls")
    if isinstance(raw_calls, list):
        tool_calls = tuple(
            _parse_tool_call(call, f"{where}.tool_calls[{i}]") for i, call in enumerate(raw_calls)
        )
    tool_call_id = item.get("tool_call_id")
    name = item.get("name")
    sent = None
    if role == "tool":  # read through the untrusted-data marking, as a model does (the body keeps it)
        sent, content = content, unmark(content)
        sent = sent if sent != content else None
    return Message(
        role=role,
        content=content,
        tool_calls=tool_calls,
        tool_call_id=tool_call_id if isinstance(tool_call_id, str) else None,
        name=name if isinstance(name, str) else None,
        non_text_parts=non_text,
        sent=sent,
    )


def _flatten_content(content: JsonValue, where: str) -> tuple[str, int]:
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        raise BadRequest(f"{where}.content must be a string, an array of parts or null", f"{where}.content")
    texts: list[str] = []
    non_text = 0
    for part in content:
        if isinstance(part, dict) and part.get("type") in ("text", "input_text", "refusal"):
            text = part.get("text", part.get("refusal"))
            if isinstance(text, str):
                texts.append(text)
                continue
        non_text += 1
    return "\n".join(texts), non_text


def _parse_tool_call(call: JsonValue, where: str) -> ToolCall:
    if not isinstance(call, dict):
        raise BadRequest(f"{where} must be an object", where)
    function = call.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise BadRequest(f"{where}.function.name is required", f"{where}.function")
    arguments = function.get("arguments", "")
    call_id = call.get("id")
    return ToolCall(
        id=call_id if isinstance(call_id, str) else "",
        name=cast(str, function["name"]),
        arguments=arguments if isinstance(arguments, str) else "",
    )


def _parse_tool(item: JsonValue, index: int) -> ToolDefinition:
    where = f"tools[{index}]"
    if not isinstance(item, dict):
        raise BadRequest(f"{where} must be an object", where)
    function = item.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise BadRequest(f"{where}.function.name is required", f"{where}.function")
    description = function.get("description")
    parameters = function.get("parameters")
    return ToolDefinition(
        name=cast(str, function["name"]),
        description=description if isinstance(description, str) else "",
        parameters=parameters if isinstance(parameters, dict) else {},
    )
