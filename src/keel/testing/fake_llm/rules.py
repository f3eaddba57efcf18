"""Rules documents (YAML or JSON files, or the same structure as data) and `as_script`.

The document format (see docs/fake-llm.md)::

    default: "Fallback text"          # optional; a reply object or a string
    rules:
      - name: weather                 # optional label, shown in the request log
        when: {last_user_contains: weather, tool_offered: get_weather}
        reply: {tool_calls: [{name: get_weather, arguments: {city: Paris}}]}
      - when: {tool_result_name: get_weather}
        replies: ["first answer", "second answer"]   # used in turn; the last repeats
        cycle: false                  # true: start over after the last

A top-level list is accepted as the `rules` list. Every problem is reported as a
`keel.errors.ConfigError`, each issue naming the file, the line (for files) and the field.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, TypeAlias, cast

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    field_validator,
    model_validator,
)

from keel.errors import ConfigError, ConfigIssue, UsageError
from keel.testing.fake_llm.script import (
    FinishReason,
    FunctionScript,
    Reply,
    Rule,
    RuleScript,
    Script,
    StaticScript,
    ToolCallReply,
    When,
)
from keel.testing.fake_llm.wire import ChatRequest

ScriptLike: TypeAlias = (
    Script
    | Reply
    | Callable[[ChatRequest], Reply]
    | Mapping[str, object]
    | Sequence[Mapping[str, object]]
    | str
    | os.PathLike[str]
    | None
)
"""Anything `as_script` accepts: a Script, a Reply (always that), a callable, a rules document
(mapping, or list of rules), a rules file path, or None (the default reply for every request)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ToolCallSpec(_Strict):
    name: Annotated[str, Field(min_length=1)]
    arguments: dict[str, JsonValue] | str = Field(default_factory=dict)

    @field_validator("arguments", mode="before")
    @classmethod
    def _object_or_string(cls, value: object) -> object:
        if not isinstance(value, dict | str):
            raise ValueError("arguments must be an object (or a string, sent verbatim)")
        return value


class _ReplySpec(_Strict):
    text: str | None = None
    tool_calls: list[_ToolCallSpec] | None = None
    json_value: JsonValue = Field(default=None, alias="json")
    finish_reason: FinishReason | None = None

    @model_validator(mode="before")
    @classmethod
    def _string_is_text(cls, data: object) -> object:
        return {"text": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _one_kind(self) -> _ReplySpec:
        if self.json_value is not None and (self.text is not None or self.tool_calls):
            raise ValueError("a reply is either 'json', or 'text' and/or 'tool_calls', not both")
        if self.json_value is None and self.text is None and not self.tool_calls:
            raise ValueError("a reply needs 'text', 'tool_calls' or 'json'")
        return self

    def to_reply(self) -> Reply:
        calls = [ToolCallReply(call.name, call.arguments) for call in self.tool_calls or ()]
        return Reply(text=self.text, tool_calls=calls, json=self.json_value, finish_reason=self.finish_reason)


class _WhenSpec(_Strict):
    last_user_contains: str | None = None
    last_user_regex: str | None = None
    conversation_contains: str | None = None
    model: str | None = None
    last_is_tool_result: Annotated[bool | None, Field(strict=True)] = None
    tool_result_contains: str | None = None
    tool_result_name: str | None = None
    assistant_turns: Annotated[int | None, Field(strict=True, ge=0)] = None
    tool_offered: str | None = None

    @field_validator("last_user_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value


class _RuleSpec(_Strict):
    name: str | None = None
    when: _WhenSpec = Field(default_factory=_WhenSpec)
    reply: _ReplySpec | None = None
    replies: Annotated[list[_ReplySpec] | None, Field(min_length=1)] = None
    cycle: bool = False

    @model_validator(mode="after")
    def _one_reply_field(self) -> _RuleSpec:
        if (self.reply is None) == (self.replies is None):
            raise ValueError("a rule needs exactly one of 'reply' or 'replies'")
        return self

    def to_rule(self) -> Rule:
        replies = (
            [self.reply.to_reply()] if self.reply is not None else [r.to_reply() for r in self.replies or ()]
        )
        when = When(**self.when.model_dump(exclude_none=True))
        return Rule(when=when, reply=replies, name=self.name, cycle=self.cycle)


class _RulesDocument(_Strict):
    default: _ReplySpec | None = None
    rules: list[_RuleSpec] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _list_is_rules(cls, data: object) -> object:
        return {"rules": data} if isinstance(data, list) else data


def parse_rules(document: object, *, source: str = "<rules>", node: yaml.Node | None = None) -> RuleScript:
    """Validate a rules document (already decoded) and build its `RuleScript`. Raises ConfigError."""
    if document is None:
        raise ConfigError([ConfigIssue(source, None, "", "the rules document is empty")])
    if not isinstance(document, dict | list):
        kind = type(document).__name__
        raise ConfigError(
            [ConfigIssue(source, _line(node, ()), "", f"expected a mapping with 'rules', not {kind}")]
        )
    try:
        spec = _RulesDocument.model_validate(document)
        rules = [rule.to_rule() for rule in spec.rules]
        default = spec.default.to_reply() if spec.default is not None else None
    except ValidationError as exc:
        raise ConfigError(_issues(exc, source, node)) from None
    return RuleScript(rules, default, source=source)


def load_script(path: str | os.PathLike[str], function: str = "script") -> Script:
    """A script from a file: a Python file defining `script(request) -> Reply`, or a rules file.

    Raises ConfigError naming the file when it cannot be read, imported or parsed.
    """
    source = os.fspath(path)
    if not source.endswith(".py"):
        return load_rules(source)
    module_name = f"_keel_fake_script_{hashlib.sha256(os.path.abspath(source).encode()).hexdigest()[:16]}"
    spec = importlib.util.spec_from_file_location(module_name, source)
    if spec is None or spec.loader is None or not Path(source).is_file():
        raise ConfigError([ConfigIssue(source, None, "", "cannot load this file as a Python module")])
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's script failed at import: report it, without a traceback
        del sys.modules[module_name]
        message = f"importing it failed: {type(exc).__name__}: {exc}"
        raise ConfigError([ConfigIssue(source, None, "", message)]) from None
    candidate = getattr(module, function, None)
    if not callable(candidate):
        raise ConfigError([ConfigIssue(source, None, function, f"no function {function!r} in this file")])
    return FunctionScript(cast(Callable[[ChatRequest], Reply], candidate))


def load_rules(path: str | os.PathLike[str]) -> RuleScript:
    """Read a rules file: `.json` as JSON, anything else as YAML. Raises ConfigError naming the file."""
    source = os.fspath(path)
    if source.endswith(".py"):
        message = "a Python file is not a rules file (rules files are YAML or JSON)"
        raise ConfigError([ConfigIssue(source, None, "", message)])
    try:
        text = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([ConfigIssue(source, None, "", f"cannot read the rules file: {reason}")]) from None
    document: object
    if source.endswith(".json"):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError([ConfigIssue(source, exc.lineno, "", f"invalid JSON: {exc.msg}")]) from None
    else:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if isinstance(mark, yaml.Mark) else None
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError([ConfigIssue(source, line, "", f"invalid YAML: {problem}")]) from None
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        node = None  # JSON that YAML 1.1 cannot read: errors are reported without line numbers
    return parse_rules(document, source=source, node=node)


def as_script(script: ScriptLike) -> Script:
    """Turn anything a `ScriptLike` can be into a `Script`."""
    if script is None:
        return RuleScript()
    if isinstance(script, Script):
        return script
    if isinstance(script, Reply):
        return StaticScript(script)
    if isinstance(script, str | os.PathLike):
        return load_rules(script)
    if isinstance(script, Mapping):
        return parse_rules(dict(script))
    if isinstance(script, Sequence):
        return parse_rules(list(script))
    if callable(script):
        return FunctionScript(script)
    raise UsageError(f"cannot use a {type(script).__name__} as a fake LLM script")


def _issues(exc: ValidationError, source: str, node: yaml.Node | None) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        message = "unknown key" if error["type"] == "extra_forbidden" else _clean(error["msg"])
        issues.append(ConfigIssue(source, _line(node, loc), _dotted(loc), message))
    return issues


def _clean(message: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _line(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the deepest node on `loc` (a key's line for mapping entries)."""
    if node is None:
        return None
    line: int = node.start_mark.line + 1
    if isinstance(node, yaml.SequenceNode) and loc and isinstance(loc[0], str) and loc[0] == "rules":
        loc = loc[1:]  # a top-level list stands for `rules`
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            entry = next((pair for pair in node.value if getattr(pair[0], "value", None) == part), None)
            if entry is None:
                break
            line = entry[0].start_mark.line + 1
            node = entry[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
