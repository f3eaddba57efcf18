"""The built-in evaluators, one by one, and datasets with their located errors."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from keel.errors import ConfigError
from keel.evals.dataset import load_dataset
from keel.evals.evaluators import EvalContext, EvaluatorConfigError, build
from keel.evals.model import Case, Observation, Score, ToolCallSeen


def score(spec: dict[str, Any], output: Any, *, expected: Any = None, **observed: Any) -> Score:
    ctx = EvalContext(output_schema={"type": "object", "required": ["intent"]}, root=Path(__file__).parent)
    observation = Observation(output=output, status=observed.pop("status", "succeeded"), **observed)
    return asyncio.run(build(spec, ctx).evaluate(Case("c", "in", expected=expected), observation))


def test_exact_contains_regex() -> None:
    assert (
        score(
            {"type": "exact"},
            " Yes ",
            expected="yes",
        ).passed
        is False
    )
    assert score({"type": "exact", "ignore_case": True}, " Yes ", expected="yes").passed
    assert score({"type": "exact"}, '{"a": 1}', expected={"a": 1}).passed
    assert score({"type": "contains", "value": ["refund", "order"]}, "Refund for ORDER 7").passed
    partial = score({"type": "contains", "value": ["refund", "cancel"]}, "refund")
    assert (partial.passed, partial.score) == (False, 0.5) and "cancel" in partial.reason
    assert score({"type": "contains", "value": ["refund", "cancel"], "all": False}, "refund").passed
    assert score(
        {"type": "regex", "pattern": r"^C\d{4}$", "field": "customer_id"}, {"customer_id": "C1001"}
    ).passed
    assert not score(
        {"type": "regex", "pattern": r"^C\d{4}$", "field": "customer_id"}, {"customer_id": "x"}
    ).passed


def test_json_schema_defaults_to_the_agents_output_schema() -> None:
    assert score({"type": "json_schema"}, {"intent": "refund"}).passed
    failed = score({"type": "json_schema"}, {"other": 1})
    assert not failed.passed and "'intent' is a required property" in failed.reason
    assert not score({"type": "json_schema", "schema": {"type": "string"}}, {"a": 1}).passed


def test_fields_score_the_share_that_match() -> None:
    out = {"intent": "refund", "amount": 20.004, "needs_human": False, "nested": {"x": "A"}}
    want = {"intent": "refund", "amount": 20, "needs_human": False, "nested.x": "a"}
    strict = score({"type": "fields"}, out, expected=want)
    assert strict.score == pytest.approx(0.5) and not strict.passed
    loose = score({"type": "fields", "tolerance": 0.01, "ignore_case": True}, out, expected=want)
    assert loose.passed and loose.score == 1.0
    assert score({"type": "fields", "min_score": 0.5}, out, expected=want).passed
    assert not score({"type": "fields"}, {"needs_human": 0}, expected={"needs_human": False}).passed


def test_tool_trajectory_in_order_or_any_order_with_arguments() -> None:
    calls = (ToolCallSeen("lookup", {"email": "a@b.c", "x": 1}), ToolCallSeen("update", {"id": "C1"}))
    want = [{"name": "lookup", "args": {"email": "a@b.c"}}, {"name": "update"}]
    assert score({"type": "tools", "calls": want}, None, tool_calls=calls).passed
    reversed_ = [want[1], want[0]]
    assert not score({"type": "tools", "calls": reversed_}, None, tool_calls=calls).passed
    assert score({"type": "tools", "calls": reversed_, "order": "any"}, None, tool_calls=calls).passed
    wrong_args = score(
        {"type": "tools", "calls": [{"name": "lookup", "args": {"email": "z"}}]}, None, tool_calls=calls
    )
    assert not wrong_args.passed and "lookup" in wrong_args.reason
    extra = score({"type": "tools", "calls": [want[0]], "allow_extra": False}, None, tool_calls=calls)
    assert not extra.passed and "unexpected calls" in extra.reason


def test_ceilings_and_succeeded() -> None:
    assert score({"type": "latency", "max_ms": 100}, "x", latency_ms=99.0).passed
    assert not score({"type": "latency", "max_ms": 100}, "x", latency_ms=101.0).passed
    assert score({"type": "cost", "max_usd": 0.01}, "x", cost_usd=Decimal("0.005")).passed
    assert not score({"type": "cost", "max_usd": 0.01}, "x").passed  # unknown cost never passes a ceiling
    assert not score({"type": "succeeded"}, None, status="failed", error="boom").passed


def check_upper(case: Case, observation: Observation) -> tuple[float, str]:
    return (1.0, "upper") if str(observation.output).isupper() else (0.0, "not upper")


async def check_async(case: Case, observation: Observation) -> bool:
    return observation.output == "ok"


def test_python_evaluators_sync_and_async() -> None:
    assert score({"type": "python", "function": "test_evaluators:check_upper"}, "LOUD").passed
    assert score({"type": "python", "function": "test_evaluators:check_upper"}, "quiet").reason == "not upper"
    assert score({"type": "python", "function": "test_evaluators:check_async"}, "ok").passed
    with pytest.raises(EvaluatorConfigError, match="cannot import"):
        score({"type": "python", "function": "nowhere:nothing"}, "x")


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"type": "nope"}, "type"),
        ({"type": "contains"}, "value"),
        ({"type": "latency", "max_ms": -1}, "max_ms"),
        ({"type": "regex", "pattern": "("}, "pattern"),
        ({"type": "tools", "calls": [], "colour": 1}, "colour"),
    ],
)
def test_bad_settings_name_the_setting(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(EvaluatorConfigError) as caught:
        build(spec, EvalContext())
    assert caught.value.field == field


def test_dataset_files_yaml_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(
        "agent: a\nrepeat: 2\nevaluators: [{type: contains, value: x}]\ncases:\n"
        "  - {id: one, input: hi, tags: [happy]}\n  - {input: there, repeat: 1, threshold: 0.5}\n"
    )
    data = load_dataset(tmp_path / "d.yaml")
    assert [(c.id, c.repeat, c.threshold) for c in data.cases] == [("one", 2, 1.0), ("case-2", 1, 0.5)]
    assert data.only(["happy"]).cases[0].id == "one"
    (tmp_path / "d.jsonl").write_text('{"dataset": {"agent": "a"}}\n{"id": "j", "input": {"k": 1}}\n\n')
    assert load_dataset(tmp_path / "d.jsonl").cases[0].input == {"k": 1}
    assert load_dataset(tmp_path / "d.yaml").content_hash != load_dataset(tmp_path / "d.jsonl").content_hash


def test_dataset_problems_name_file_line_and_field(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "agent: a\nevaluators:\n  - {type: nope}\ncases:\n  - id: a\n    input: x\n    repeat: 0\n"
        "  - id: b\n    input: y\n  - id: b\n    input: z\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_dataset(tmp_path / "bad.yaml", display="evals/bad.yaml")
    found = [(i.file, i.line, i.field) for i in caught.value.issues]
    assert ("evals/bad.yaml", 3, "evaluators[0].type") in found
    assert ("evals/bad.yaml", 7, "cases[0].repeat") in found
    assert ("evals/bad.yaml", 10, "id") in found  # a duplicate id, with where it was first used
    (tmp_path / "bad.jsonl").write_text('{"id": "j", "input": 1}\nnot json\n{"input": 2, "repeat": "many"}\n')
    with pytest.raises(ConfigError) as caught_jsonl:
        load_dataset(tmp_path / "bad.jsonl", display="evals/bad.jsonl")
    assert [(i.line, i.field) for i in caught_jsonl.value.issues] == [(2, ""), (3, "cases[1].repeat")]
