"""Deterministic token estimates for `usage` (no tokenizer: none may be downloaded).

The estimate is close enough to real tokenizers for English text to make cost and budget code
behave realistically, and exactly reproducible, so tests can assert on it:

* text: one token per 4 characters, rounded up (`ceil(len(text) / 4)`, 0 for empty text);
* prompt: 3 tokens of reply priming, plus per message 4 tokens of overhead, its text, its name,
  85 tokens per non-text part (image, audio, file) and, per tool call it holds, 4 tokens plus its
  name and arguments; plus per offered tool 8 tokens plus its name, description and compact JSON
  parameter schema; plus the compact JSON of a `json_schema` response format;
* completion: the reply text, plus per tool call 4 tokens plus its name and arguments; at least 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from keel.testing.fake_llm.wire import ChatRequest

CHARS_PER_TOKEN = 4
REPLY_PRIMING_TOKENS = 3
MESSAGE_OVERHEAD_TOKENS = 4
NON_TEXT_PART_TOKENS = 85
TOOL_CALL_OVERHEAD_TOKENS = 4
TOOL_DEFINITION_OVERHEAD_TOKENS = 8


def text_tokens(text: str) -> int:
    """`ceil(len(text) / 4)`: the estimate for a piece of text."""
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def prompt_tokens(request: ChatRequest) -> int:
    """The estimated prompt size of a request: messages, tool calls, tool schemas, output schema."""
    total = REPLY_PRIMING_TOKENS
    for message in request.messages:
        total += MESSAGE_OVERHEAD_TOKENS + text_tokens(message.sent or message.content)
        total += NON_TEXT_PART_TOKENS * message.non_text_parts
        if message.name:
            total += text_tokens(message.name)
        for call in message.tool_calls:
            total += TOOL_CALL_OVERHEAD_TOKENS + text_tokens(call.name) + text_tokens(call.arguments)
    for tool in request.tools:
        total += TOOL_DEFINITION_OVERHEAD_TOKENS + text_tokens(tool.name) + text_tokens(tool.description)
        if tool.parameters:
            total += text_tokens(_compact(tool.parameters))
    if request.response_schema is not None:
        total += text_tokens(_compact(request.response_schema))
    return total


def completion_tokens(content: str | None, tool_calls: Iterable[tuple[str, str]] = ()) -> int:
    """The estimated size of a reply: its text and its `(name, arguments)` tool calls; at least 1."""
    total = text_tokens(content or "")
    for name, arguments in tool_calls:
        total += TOOL_CALL_OVERHEAD_TOKENS + text_tokens(name) + text_tokens(arguments)
    return max(total, 1)
