"""Scripting what the fake model answers: replies, rules (first match wins) and Python callables.

A `Script` turns a `ChatRequest` into a `Decision` (the `Reply` and a label naming the rule that
produced it, recorded in the request log). Three kinds exist:

* `RuleScript`: ordered `Rule`s, each a `When` (all its conditions ANDed) and one reply or a
  sequence of replies used in turn; the first matching rule wins, else the default reply;
* `FunctionScript`: a `Callable[[ChatRequest], Reply]`;
* `StaticScript`: always the same reply.

Rules files (YAML or JSON) are read by `keel.testing.fake_llm.rules`.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from pydantic import JsonValue

from keel.errors import UsageError
from keel.testing.fake_llm.wire import ChatRequest, JsonObject

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]
DEFAULT_REPLY_TEXT = "This is a reply from Keel's fake LLM."

_TEMPLATE = re.compile(r"\{(last_user|model|last_tool_result)\}")


@dataclass(frozen=True, slots=True)
class ToolCallReply:
    """A tool call for the fake model to make. `arguments` as a string is sent verbatim (even invalid)."""

    name: str
    arguments: JsonObject | str = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            raise UsageError("a tool call reply needs a tool name")


@dataclass(frozen=True, slots=True)
class Reply:
    """What the fake model answers: text, tool calls (optionally with text), or a JSON value.

    A `json` reply is mode-agnostic: with a JSON `response_format` it is the message content; else,
    when the request offers a tool whose name starts with `final_result` (pydantic-ai's output tool),
    it is a call to that tool with the value as arguments; else it is the content, as JSON text.
    JSON `null` cannot be a reply (None means "no JSON reply").
    """

    text: str | None = None
    tool_calls: Sequence[ToolCallReply] = ()
    json: JsonValue = None
    finish_reason: FinishReason | None = None
    """Overrides the finish reason (default: `tool_calls` when there are tool calls, else `stop`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "tool_calls", tuple(self.tool_calls))
        if self.json is not None and (self.text is not None or self.tool_calls):
            raise UsageError("a reply is either JSON, or text and/or tool calls, not both")
        if self.json is None and self.text is None and not self.tool_calls:
            raise UsageError("a reply needs text, tool_calls or json")

    def to_json(self) -> JsonObject:
        """This reply in the rules-file format."""
        out: JsonObject = {}
        if self.text is not None:
            out["text"] = self.text
        if self.tool_calls:
            out["tool_calls"] = [{"name": call.name, "arguments": call.arguments} for call in self.tool_calls]
        if self.json is not None:
            out["json"] = self.json
        if self.finish_reason is not None:
            out["finish_reason"] = self.finish_reason
        return out


def render_template(text: str, request: ChatRequest) -> str:
    """Replace `{last_user}`, `{model}` and `{last_tool_result}`; other braces are left as they are."""
    if "{" not in text:
        return text

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key == "last_user":
            return request.last_user or ""
        if key == "model":
            return request.model
        result = request.last_tool_result
        return result.content if result is not None else ""

    return _TEMPLATE.sub(substitute, text)


@dataclass(frozen=True, kw_only=True)
class When:
    """Conditions of a rule; all optional, all given ones must hold. Substring tests ignore case."""

    last_user_contains: str | None = None
    last_user_regex: str | None = None
    """`re.search` over the last user message, case-sensitive unless the pattern says `(?i)`."""
    conversation_contains: str | None = None
    """Substring of any message's content or tool-call arguments, any role."""
    model: str | None = None
    """Exact model name of the request."""
    last_is_tool_result: bool | None = None
    tool_result_contains: str | None = None
    """Substring of one of the tool results that end the conversation."""
    tool_result_name: str | None = None
    """Name of a tool whose result is among those that end the conversation."""
    assistant_turns: int | None = None
    """Exact number of assistant messages already in the conversation."""
    tool_offered: str | None = None
    """Name of a tool the request offers."""
    _regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.last_user_regex is not None:
            try:
                object.__setattr__(self, "_regex", re.compile(self.last_user_regex))
            except re.error as exc:
                raise UsageError(f"invalid last_user_regex {self.last_user_regex!r}: {exc}") from None
        if self.assistant_turns is not None and self.assistant_turns < 0:
            raise UsageError("assistant_turns must be >= 0")

    def matches(self, request: ChatRequest) -> bool:
        if self.model is not None and request.model != self.model:
            return False
        if self.assistant_turns is not None and request.assistant_turns != self.assistant_turns:
            return False
        if self.tool_offered is not None and not request.offers_tool(self.tool_offered):
            return False
        if self.last_user_contains is not None or self._regex is not None:
            last_user = request.last_user
            if last_user is None:
                return False
            if (
                self.last_user_contains is not None
                and self.last_user_contains.lower() not in last_user.lower()
            ):
                return False
            if self._regex is not None and self._regex.search(last_user) is None:
                return False
        if (
            self.conversation_contains is not None
            and self.conversation_contains.lower() not in request.conversation_text
        ):
            return False
        if self.last_is_tool_result is not None:
            last = request.last_message
            if (last is not None and last.role == "tool") != self.last_is_tool_result:
                return False
        if self.tool_result_contains is not None:
            needle = self.tool_result_contains.lower()
            if not any(needle in result.content.lower() for result in request.tool_results):
                return False
        return self.tool_result_name is None or any(
            result.name == self.tool_result_name for result in request.tool_results
        )

    def to_json(self) -> JsonObject:
        out: JsonObject = {}
        for key in (
            "last_user_contains",
            "last_user_regex",
            "conversation_contains",
            "model",
            "last_is_tool_result",
            "tool_result_contains",
            "tool_result_name",
            "assistant_turns",
            "tool_offered",
        ):
            value: str | int | bool | None = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True, kw_only=True)
class Rule:
    """A rule: when `when` holds, answer `reply`; a sequence of replies is used in turn.

    After the last reply of a sequence, the last one repeats, or with `cycle=True` the sequence
    starts over. `name` labels the rule in the request log (default `rules[<index>]`).
    """

    reply: Reply | Sequence[Reply]
    when: When = field(default_factory=When)
    name: str | None = None
    cycle: bool = False
    replies: tuple[Reply, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        replies = (self.reply,) if isinstance(self.reply, Reply) else tuple(self.reply)
        if not replies:
            raise UsageError("a rule needs at least one reply")
        object.__setattr__(self, "replies", replies)

    def to_json(self) -> JsonObject:
        out: JsonObject = {}
        if self.name is not None:
            out["name"] = self.name
        when = self.when.to_json()
        if when:
            out["when"] = when
        if len(self.replies) == 1:
            out["reply"] = self.replies[0].to_json()
        else:
            out["replies"] = [reply.to_json() for reply in self.replies]
        if self.cycle:
            out["cycle"] = True
        return out


class Decision(NamedTuple):
    reply: Reply
    rule: str
    """What produced the reply: a rule's name or `rules[<index>]`, `default`, `callable`, `static`."""


class Script(ABC):
    """Decides the reply to a request. Subclass it for a custom, stateful script."""

    @abstractmethod
    def decide(self, request: ChatRequest) -> Decision: ...

    def reset(self) -> None:
        """Rewind any state (reply sequences). Called by the server's `reset()`."""
        return None


class StaticScript(Script):
    """Always the same reply (templating applies to its text)."""

    def __init__(self, reply: Reply | None = None) -> None:
        self.reply = reply if reply is not None else Reply(text=DEFAULT_REPLY_TEXT)

    def decide(self, request: ChatRequest) -> Decision:
        return Decision(_templated(self.reply, request), "static")


class FunctionScript(Script):
    """A Python callable as a script. It runs on the server's event loop thread: keep it quick."""

    def __init__(self, function: Callable[[ChatRequest], Reply]) -> None:
        self.function = function

    def decide(self, request: ChatRequest) -> Decision:
        reply = self.function(request)
        if not isinstance(reply, Reply):
            raise TypeError(f"script callable {self.function!r} returned {type(reply).__name__}, not a Reply")
        return Decision(reply, "callable")


class RuleScript(Script):
    """Ordered rules, first match wins; `default` answers when none matches."""

    def __init__(self, rules: Sequence[Rule] = (), default: Reply | None = None, *, source: str = "<rules>"):
        self.rules = tuple(rules)
        self.default = default if default is not None else Reply(text=DEFAULT_REPLY_TEXT)
        self.source = source
        self._positions = [0] * len(self.rules)
        self._lock = threading.Lock()

    def decide(self, request: ChatRequest) -> Decision:
        for index, rule in enumerate(self.rules):
            if rule.when.matches(request):
                with self._lock:
                    position = self._positions[index]
                    self._positions[index] = position + 1
                count = len(rule.replies)
                if position >= count:
                    position = position % count if rule.cycle else count - 1
                label = rule.name if rule.name is not None else f"rules[{index}]"
                return Decision(_templated(rule.replies[position], request), label)
        return Decision(_templated(self.default, request), "default")

    def reset(self) -> None:
        with self._lock:
            self._positions = [0] * len(self.rules)

    def to_json(self) -> JsonObject:
        """The rules in the rules-file format (to send them to a server in another process)."""
        return {"default": self.default.to_json(), "rules": [rule.to_json() for rule in self.rules]}


def _templated(reply: Reply, request: ChatRequest) -> Reply:
    if reply.text is None or "{" not in reply.text:
        return reply
    return Reply(
        text=render_template(reply.text, request),
        tool_calls=reply.tool_calls,
        finish_reason=reply.finish_reason,
    )
