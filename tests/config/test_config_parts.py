"""The loader's building blocks: YAML positions, interpolation, merging, tools, JSON Schema export."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from keel.config import export_json_schemas
from keel.config.interpolate import expand
from keel.config.merge import merge_layers
from keel.config.tools import docstring_summary, is_run_context, signature_problems
from keel.config.yaml_source import Pos, YMap, flatten, format_loc, parse_yaml, with_prefix


def _parse(text: str, file: str = "f.yaml") -> YMap:
    tree, issues = parse_yaml(text, file)
    assert issues == []
    assert isinstance(tree, YMap)
    return tree


@pytest.mark.parametrize(
    ("loc", "text"),
    [
        ((), ""),
        (("model",), "model"),
        (("tools", 1, "timeout"), "tools[1].timeout"),
        (("models", "gpt-4.1", "provider"), 'models["gpt-4.1"].provider'),
        (("output_schema", "properties", "a", "$ref"), "output_schema.properties.a.$ref"),
        ((0, "a"), "[0].a"),
    ],
)
def test_format_loc(loc: tuple[str | int, ...], text: str) -> None:
    assert format_loc(loc) == text


def test_positions_of_keys_and_list_items() -> None:
    doc = flatten(
        _parse("model: fast\ntools:\n  - a:b\n  - function: c:d\n    timeout: 3\nlimits: {max_tokens: 9}\n")
    )
    lines = {loc: pos.line for loc, pos in doc.positions.items()}
    assert lines == {
        (): 1,
        ("model",): 1,
        ("tools",): 2,
        ("tools", 0): 3,
        ("tools", 1): 4,
        ("tools", 1, "function"): 4,
        ("tools", 1, "timeout"): 5,
        ("limits",): 6,
        ("limits", "max_tokens"): 6,
    }
    assert doc.pos(("tools", 0, "function")).line == 3  # absent: the nearest enclosing value


def test_yaml_scalars_keep_their_types_but_dates_stay_text() -> None:
    data = flatten(_parse("a: 1\nb: 1.5\nc: true\nd: null\ne: 2024-05-01\nf: '3'\n1: x\n")).data
    assert data == {"a": 1, "b": 1.5, "c": True, "d": None, "e": "2024-05-01", "f": "3", "1": "x"}


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("a: 1\nb: 2\na: 3\n", 3, "a", "duplicate key 'a' (first written on line 1)"),
        ("x:\n  y: 1\n  y: 2\n", 3, "x.y", "duplicate key 'y' (first written on line 2)"),
        ("a: &x [1, *x]\n", 1, "a[1]", "an alias refers to itself (recursive anchor)"),
        ("a: 1\n---\nb: 2\n", 2, "", "a Keel file holds a single YAML document (remove the '---')"),
        (
            "a: !!python/name:os.system x\n",
            1,
            "a",
            "unsupported YAML tag 'tag:yaml.org,2002:python/name:os.system'",
        ),
    ],
)
def test_yaml_problems(text: str, line: int, field: str, message: str) -> None:
    _, issues = parse_yaml(text, "f.yaml")
    assert [(i.file, i.line, i.field) for i in issues] == [("f.yaml", line, field)]
    assert issues[0].message.startswith(message)


def test_tabs_get_a_hint() -> None:
    _, issues = parse_yaml("a: 1\n\tb: 2\n", "f.yaml")
    assert issues[0].line == 2
    assert issues[0].message.endswith("(indent with spaces, not tabs)")


def test_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    _, issues = parse_yaml("\n".join(lines) + "\n", "bomb.yaml")
    assert [i.message for i in issues] == ["the document is too large (over 200,000 values)"]


@pytest.mark.parametrize(
    ("text", "env", "result", "used", "problems"),
    [
        ("plain", {}, "plain", (), []),
        ("${A}", {"A": "1"}, "1", ("A",), []),
        ("x-${A}-${B:-two}-y", {"A": "one"}, "x-one-two-y", ("A",), []),
        ("${A:-d}", {"A": ""}, "d", (), []),
        ("${A}", {"A": ""}, "", ("A",), []),
        ("${A:-}", {}, "", (), []),
        ("${A:-a:b}", {}, "a:b", (), []),
        ("$${A} $$ $A", {"A": "1"}, "${A} $$ $A", (), []),
        ("$$${A}", {"A": "1"}, "$${A}", (), []),  # '$' then the escape '$${'
        ("${D:-$}${A}", {"A": "1"}, "$1", ("A",), []),  # a literal '$' right before a reference
        (
            "${A}",
            {},
            "",
            (),
            ["environment variable 'A' is not set (set it, or write ${A:-default} for a default)"],
        ),
        ("${A-b}", {}, "${A-b}", (), ["invalid variable reference '${A-b}'"]),
        ("${}", {}, "${}", (), ["invalid variable reference '${}'"]),
        ("${A", {}, "${A", (), ["unterminated '${'"]),
    ],
)
def test_expand(
    text: str, env: dict[str, str], result: str, used: tuple[str, ...], problems: list[str]
) -> None:
    got_result, got_used, got_problems = expand(text, env)
    assert (got_result, got_used) == (result, used)
    assert len(got_problems) == len(problems)
    assert all(p.startswith(expected) for p, expected in zip(got_problems, problems, strict=True))


def test_merge_keeps_positions_of_each_layer() -> None:
    low = with_prefix(_parse("a: 1\nsub:\n  x: 1\n  y: 2\nlst: [1, 2]\n", "keel.yaml"), ("defaults",))
    mid = _parse("sub:\n  y: 3\n", "agents/_defaults.yaml")
    top = _parse("\nlst: [9]\nb: 2\n", "agents/a.yaml")

    merged = merge_layers(low, mid, None, top)
    assert isinstance(merged, YMap)
    doc = flatten(merged)

    assert doc.data == {"a": 1, "sub": {"x": 1, "y": 3}, "lst": [9], "b": 2}
    assert doc.pos(("a",)) == Pos("keel.yaml", 1, ("defaults",))
    assert doc.pos(("sub", "x")) == Pos("keel.yaml", 3, ("defaults",))
    assert doc.pos(("sub", "y")) == Pos("agents/_defaults.yaml", 2)
    assert doc.pos(("lst", 0)) == Pos("agents/a.yaml", 2)
    assert ("lst", 1) not in doc.positions
    assert doc.issue(("sub", "x"), "m").field == "defaults.sub.x"
    assert doc.issue(("sub", "y"), "m").field == "sub.y"


def _ctx_first(ctx: Any, q: str) -> str:
    return q


def test_run_context_detection() -> None:
    from pydantic_ai import RunContext

    assert is_run_context(RunContext)
    assert is_run_context(RunContext[None])
    assert is_run_context("RunContext[Deps]")
    assert is_run_context("pydantic_ai.RunContext[dict[str, int]]")
    assert not is_run_context("str")
    assert not is_run_context(int)


def test_signature_problems() -> None:
    def ok(a: int, b: str = "x", *, c: bool = False) -> None: ...
    def untyped(a, b: int):  # type: ignore[no-untyped-def]
        ...
    def star(a: int, *rest: int, **more: int) -> None: ...

    assert signature_problems(ok) == []
    assert signature_problems(_ctx_first) == []  # Any-annotated first parameter is just a typed parameter
    assert signature_problems(untyped) == ["parameter 'a' has no type annotation (the model needs its type)"]
    assert signature_problems(star) == [
        "*rest is not allowed: a tool's parameters must be named",
        "**more is not allowed: a tool's parameters must be named",
    ]
    assert signature_problems(print)  # builtins without a signature are not usable tools


def test_docstring_summary() -> None:
    def two(x: int) -> int:
        """First line
        continues here.

        Second paragraph.
        """
        return x

    def none(x: int) -> int:
        return x

    assert docstring_summary(two) == "First line continues here."
    assert docstring_summary(none) is None


def test_export_json_schemas_are_valid_and_complete() -> None:
    schemas = export_json_schemas()

    assert set(schemas) == {"keel", "agent"}
    for schema in schemas.values():
        Draft202012Validator.check_schema(schema)
    agent = schemas["agent"]
    assert "required" not in agent  # everything may come from the defaults layers
    assert agent["$defs"]["ToolConfig"]["required"] == ["function"]  # nested requirements stay
    assert agent["properties"]["output_retries"]["maximum"] == 10
    assert agent["properties"]["model"]["description"]
    assert agent["additionalProperties"] is False


def test_exported_schemas_accept_real_files_and_reject_typos() -> None:
    schemas = export_json_schemas()
    agent = Draft202012Validator(schemas["agent"])
    project = Draft202012Validator(schemas["keel"])

    assert not list(agent.iter_errors({"tools": ["pkg.mod:f", {"function": "pkg.mod:g", "timeout": 2}]}))
    assert not list(
        agent.iter_errors({"instructions": {"file": "prompts/a.md"}, "output_schema": {"type": "object"}})
    )
    assert list(agent.iter_errors({"temprature": 1}))
    assert list(agent.iter_errors({"retry_options": {"attempts": 11}}))
    assert list(agent.iter_errors({"tools": ["not an import path"]}))

    good = {
        "project": "demo",
        "models": {"fast": {"provider": "openai", "model": "m"}},
        "defaults": {"model": "fast"},
    }
    assert not list(project.iter_errors(good))
    assert list(project.iter_errors({**good, "defaults": {"name": "x"}}))  # defaults cannot set the name
    assert list(project.iter_errors({**good, "defaults": {"timeouts": {"run": "soon"}}}))
    assert list(project.iter_errors({"models": {}}))  # `project` is required
