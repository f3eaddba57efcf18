"""YAML parsing that remembers where every value was written.

`parse_yaml` composes the document with PyYAML's SafeLoader and turns the node graph into a small
tree of `YMap` / `YSeq` / `YScalar` nodes, each carrying the `Pos` (file and 1-based line) of the
value. Merging and interpolation work on that tree, so a value keeps its position through every
layer; `flatten` finally produces plain Python data plus a `Loc -> Pos` map for error reporting.

Duplicate keys, syntax errors, non-text keys and unknown tags are reported as `ConfigIssue`s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from keel.errors import ConfigIssue

Loc = tuple[str | int, ...]
"""A path into a document: mapping keys and list indices, e.g. ("tools", 1, "timeout")."""

# Guards against alias bombs ("billion laughs"): no Keel file comes anywhere near this.
MAX_NODES = 200_000

_TEXT_TAGS = {
    "tag:yaml.org,2002:str",
    # Dates stay text: no Keel field is a date, and a JSON Schema cannot hold one.
    "tag:yaml.org,2002:timestamp",
}


@dataclass(frozen=True)
class Pos:
    """Where a value was written. `prefix` is the path of the value's document inside its file
    (("defaults",) for the `defaults:` section of keel.yaml), so reported fields match the file."""

    file: str
    line: int | None
    prefix: Loc = ()


@dataclass
class YScalar:
    value: Any
    pos: Pos
    env_vars: tuple[str, ...] = ()
    """Environment variables interpolated into this value: its text must never be shown."""
    failed: bool = False
    """The value could not be read or interpolated (already reported): later checks skip it."""


@dataclass
class YEntry:
    key_pos: Pos
    value: YNode


@dataclass
class YMap:
    entries: dict[str, YEntry]
    pos: Pos


@dataclass
class YSeq:
    items: list[YNode]
    pos: Pos


YNode = YScalar | YMap | YSeq


@dataclass
class Flat:
    """Plain data plus the position of every value, and which values came from the environment."""

    data: Any
    positions: dict[Loc, Pos] = field(default_factory=dict)
    env: dict[Loc, tuple[str, ...]] = field(default_factory=dict)
    failed: set[Loc] = field(default_factory=set)

    def pos(self, loc: Loc) -> Pos:
        """Where `loc` was written; for a path that is absent (a missing field), its nearest parent."""
        for end in range(len(loc), -1, -1):
            found = self.positions.get(loc[:end])
            if found is not None:
                return found
        return Pos("", None)  # pragma: no cover - flatten() always records the root

    def issue(self, loc: Loc, message: str) -> ConfigIssue:
        return issue_at(self.pos(loc), loc, message)

    def secret_vars(self, loc: Loc) -> tuple[str, ...]:
        """The environment variables interpolated into the value at `loc` (or a parent of it)."""
        for end in range(len(loc), -1, -1):
            found = self.env.get(loc[:end])
            if found:
                return found
        return ()

    def show(self, loc: Loc, value: Any) -> str:
        """`value` for an error message; the variable's name instead if it came from the environment."""
        names = self.secret_vars(loc)
        if names and isinstance(value, str):
            return "the value of " + " and ".join(f"${{{name}}}" for name in names)
        return render(value)


def render(value: Any) -> str:
    """A short, YAML-flavoured description of a value for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return repr(text)
    return str(value)


def issue_at(pos: Pos, loc: Loc, message: str) -> ConfigIssue:
    return ConfigIssue(file=pos.file, line=pos.line, field=format_loc(pos.prefix + loc), message=message)


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_$-]+$")


def format_loc(loc: Loc) -> str:
    """("tools", 1, "timeout") -> "tools[1].timeout"; odd keys are quoted: models["gpt-4.1"]."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f'["{part}"]'
    return out


def parse_yaml(text: str, file: str) -> tuple[YNode | None, list[ConfigIssue]]:
    """Parse one YAML document. Returns (None, issues) when nothing usable could be read."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            return None, [_syntax_issue(exc, file)]
        except yaml.YAMLError as exc:  # pragma: no cover - unmarked errors are rare (encoding)
            return None, [ConfigIssue(file, None, "", f"cannot parse YAML: {exc}")]
        if root is None:
            return None, [ConfigIssue(file, 1, "", "the file is empty")]
        builder = _Builder(loader, file)
        try:
            tree = builder.build(root, ())
        except _TooLarge:
            return None, [
                ConfigIssue(file, None, "", f"the document is too large (over {MAX_NODES:,} values)")
            ]
        return tree, builder.issues
    finally:
        loader.dispose()


def _syntax_issue(exc: yaml.MarkedYAMLError, file: str) -> ConfigIssue:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    if exc.context == "expected a single document in the stream":
        return ConfigIssue(file, line, "", "a Keel file holds a single YAML document (remove the '---')")
    parts = [p for p in (exc.context, exc.problem) if p]
    message = "YAML syntax error: " + ("; ".join(parts) if parts else "cannot parse")
    if exc.problem and "'\\t'" in exc.problem:
        message += " (indent with spaces, not tabs)"
    elif exc.context_mark is not None and exc.problem_mark is not None and exc.context:
        message += f" (started on line {exc.context_mark.line + 1})"
    return ConfigIssue(file, line, "", message)


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.issues: list[ConfigIssue] = []
        self.count = 0
        self.active: set[int] = set()

    def pos(self, node: yaml.Node) -> Pos:
        return Pos(self.file, node.start_mark.line + 1)

    def build(self, node: yaml.Node, loc: Loc) -> YNode:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooLarge
        if id(node) in self.active:
            self.issues.append(issue_at(self.pos(node), loc, "an alias refers to itself (recursive anchor)"))
            return YScalar(None, self.pos(node), failed=True)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, loc)
            if isinstance(node, yaml.SequenceNode):
                items = [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
                return YSeq(items, self.pos(node))
            return self._scalar(node, loc)
        finally:
            self.active.discard(id(node))

    def _scalar(self, node: yaml.Node, loc: Loc) -> YScalar:
        if node.tag in _TEXT_TAGS:
            return YScalar(str(node.value), self.pos(node))
        try:
            return YScalar(self.loader.construct_object(node, deep=True), self.pos(node))
        except yaml.MarkedYAMLError as exc:
            self.issues.append(issue_at(self.pos(node), loc, _constructor_message(exc)))
            return YScalar(None, self.pos(node), failed=True)

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> YNode:
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                msg = f"duplicate key '{key}' (first written on line {seen[key]})"
                self.issues.append(issue_at(Pos(self.file, line), (*loc, key), msg))
            else:
                seen[key] = line
        try:
            self.loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        except yaml.MarkedYAMLError as exc:
            self.issues.append(issue_at(self.pos(node), loc, _constructor_message(exc)))
        entries: dict[str, YEntry] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                msg = "keys must be plain text, not a list or mapping"
                self.issues.append(issue_at(self.pos(key_node), loc, msg))
                continue
            key = str(key_node.value)
            if key in entries and key in seen and seen[key] != key_node.start_mark.line + 1:
                continue  # a reported duplicate: keep the first
            key_pos = Pos(self.file, key_node.start_mark.line + 1)
            entries[key] = YEntry(key_pos, self.build(value_node, (*loc, key)))
        return YMap(entries, self.pos(node))


class _TooLarge(Exception):
    pass


def _constructor_message(exc: yaml.MarkedYAMLError) -> str:
    problem = exc.problem or "cannot read this value"
    if "could not determine a constructor for the tag" in problem:
        tag = problem.split("tag", 1)[1].strip(" '")
        return (
            f"unsupported YAML tag '{tag}' (Keel reads plain YAML only; use ${{VAR}} for environment values)"
        )
    return f"YAML error: {problem}"


def to_plain(node: YNode) -> Any:
    """The node's data without positions."""
    if isinstance(node, YMap):
        return {key: to_plain(entry.value) for key, entry in node.entries.items()}
    if isinstance(node, YSeq):
        return [to_plain(item) for item in node.items]
    return node.value


def flatten(node: YNode) -> Flat:
    """Plain data plus a map from every path to where its value (or key) was written."""
    flat = Flat(data=None)
    flat.positions[()] = node.pos
    flat.data = _flatten(node, (), flat)
    return flat


def _flatten(node: YNode, loc: Loc, flat: Flat) -> Any:
    if isinstance(node, YMap):
        out: dict[str, Any] = {}
        for key, entry in node.entries.items():
            child = (*loc, key)
            flat.positions[child] = entry.key_pos
            out[key] = _flatten(entry.value, child, flat)
        return out
    if isinstance(node, YSeq):
        items: list[Any] = []
        for i, item in enumerate(node.items):
            child = (*loc, i)
            flat.positions[child] = item.pos
            items.append(_flatten(item, child, flat))
        return items
    if node.env_vars:
        flat.env[loc] = node.env_vars
    if node.failed:
        flat.failed.add(loc)
    return node.value


def with_prefix(node: YMap, prefix: Loc) -> YMap:
    """A copy of `node` whose positions say it sits at `prefix` inside its file."""
    entries = {
        key: YEntry(replace(entry.key_pos, prefix=prefix), _prefixed(entry.value, prefix))
        for key, entry in node.entries.items()
    }
    return YMap(entries, replace(node.pos, prefix=prefix))


def _prefixed(node: YNode, prefix: Loc) -> YNode:
    if isinstance(node, YMap):
        return with_prefix(node, prefix)
    if isinstance(node, YSeq):
        return YSeq([_prefixed(item, prefix) for item in node.items], replace(node.pos, prefix=prefix))
    return replace(node, pos=replace(node.pos, prefix=prefix))
