"""Output guardrails on the answer: `json_schema` and `grounding`, in real runs against the fake
OpenAI-compatible server (the run's agent on model `main`, the grounding judge on model `judge`)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from keel.config import load_project
from keel.errors import ConfigError
from keel.guardrails.builtin import build
from keel.guardrails.policy import Check, Guardrails
from keel.runtime.result import RunResult
from keel.runtime.runner import Runner
from keel.store import RunStore
from keel.testing.fake_llm import ChatRequest, FakeLLMThread, FunctionScript, Reply, ToolCallReply
from tests.tracing.helpers import Collector, make_tracing

TOOLS = '''
def lookup(order: str) -> str:
    """Look an order up."""
    return f"Order {order} shipped on May 3 by courier."


def weather(city: str) -> str:
    """Today's weather."""
    return f"It rains in {city}."
'''

ANSWERS = {
    "grounded": "Order 42 shipped on May 3.",
    "invented": "Order 42 was refunded yesterday.",
    "json ok": json.dumps({"total": 3, "items": [{"sku": "a", "price": 1}]}),
    "json bad": json.dumps({"total": "three", "items": [{"sku": "a"}, {"sku": "b", "price": -2}]}),
    "not json": "Your total is three.",
}

JUDGE_SCHEMA = (
    "output_schema:\n  type: object\n  required: [score, reason]\n"
    "  properties: {score: {type: number}, reason: {type: string}}\n"
)


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def judge(request: ChatRequest) -> Reply:
    """A strict judge: the answer is grounded when each of its words appears in the context."""
    payload = json.loads(request.last_user or "{}")
    context = " ".join(item["content"] for item in payload.get("context", []))
    missing = sorted(words(payload.get("output", "")) - words(context))
    if not missing:
        return Reply(json={"score": 1.0, "reason": "every claim is in the context"})
    return Reply(json={"score": 0.1, "reason": f"not in the context: {', '.join(missing)}"})


def script(request: ChatRequest) -> Reply:
    if request.model == "judge":
        return judge(request)
    if request.model == "broken":
        return Reply(text="I would rather not grade this.")
    user = request.last_user or ""
    returned = [m for m in request.messages if m.role == "tool"]
    for key, answer in ANSWERS.items():
        if key in user:
            wanted = [name for name in ("lookup", "weather") if name in user]
            if len(returned) < len(wanted):
                tool = wanted[len(returned)]
                args = {"order": "42"} if tool == "lookup" else {"city": "Oslo"}
                return Reply(tool_calls=[ToolCallReply(tool, args)])
            return Reply(text=answer)
    return Reply(text="?")


@pytest.fixture
def fake(fake_llm: FakeLLMThread) -> FakeLLMThread:
    fake_llm.set_script(FunctionScript(script))
    return fake_llm


def make_project(root: Path, fake: FakeLLMThread, guardrails: str, *, storage: bool = False) -> Path:
    (root / "agents").mkdir(parents=True)
    (root / "schemas").mkdir()
    models = "".join(
        f"  {name}: {{provider: openai-compatible, model: {name}, base_url: '{fake.base_url}'}}\n"
        for name in ("main", "judge", "broken")
    )
    (root / "keel.yaml").write_text(
        f"project: answers\nmodels:\n{models}"
        + ("storage: {url: 'sqlite:///keel.db'}\n" if storage else "storage: {enabled: false}\n")
        + "tracing: {enabled: true}\n"
    )
    (root / "tools_orders.py").write_text(TOOLS)
    (root / "schemas" / "order.yaml").write_text(
        "type: object\nrequired: [total, items]\nproperties:\n  total: {type: number}\n"
        "  items:\n    type: array\n    items:\n      type: object\n      required: [sku, price]\n"
        "      properties: {sku: {type: string}, price: {type: number, minimum: 0}}\n"
    )
    (root / "agents" / "support.yaml").write_text(
        "model: main\ninstructions: You answer questions about orders.\n"
        "tools: [tools_orders:lookup, tools_orders:weather]\n" + guardrails
    )
    (root / "agents" / "grader.yaml").write_text(
        "model: judge\ninstructions: You grade answers.\n" + JUDGE_SCHEMA
    )
    (root / "agents" / "sulky.yaml").write_text("model: broken\ninstructions: You grade answers.\n")
    return root


def run(root: Path, text: str, **options: Any) -> tuple[RunResult, Collector]:
    async def go() -> tuple[RunResult, Collector]:
        async with Runner(load_project(root)) as runner:
            tracing, collector = make_tracing()
            runner.tracing = tracing
            return await runner.run("support", text, **options), collector

    return asyncio.run(go())


def guardrail_events(collector: Collector) -> list[dict[str, Any]]:
    return [dict(e.attributes) for r in collector.records for e in r.events if e.name == "keel.guardrail"]


# -- json_schema ----------------------------------------------------------------------------------


def test_json_schema_reasons_name_the_json_paths_and_what_is_wrong() -> None:
    schema = {
        "type": "object",
        "required": ["total", "items"],
        "properties": {
            "total": {"type": "number"},
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["sku", "price"],
                    "properties": {"price": {"minimum": 0}},
                },
            },
        },
    }
    guardrails = Guardrails([build({"type": "json_schema", "schema": schema})])

    def check(text: str) -> Any:
        return asyncio.run(guardrails.run(Check(point="output", agent="a", text=text)))

    assert check(ANSWERS["json ok"]).verdict == "allow"
    bad = check(ANSWERS["json bad"])
    assert bad.verdict == "block"
    assert "at $.total: 'three' is not of type 'number'" in bad.reason
    assert "at $.items[0]: 'price' is a required property" in bad.reason
    assert "at $.items[1].price: -2 is less than the minimum of 0" in bad.reason
    not_json = check("Your total is three.")
    assert (
        not_json.verdict == "block"
        and "it is not JSON (Expecting value at line 1, column 1)" in not_json.reason
    )
    one = asyncio.run(
        Guardrails(
            [build({"type": "json_schema", "schema": schema, "max_errors": 1, "verdict": "warn"})]
        ).run(Check(point="output", agent="a", text=ANSWERS["json bad"]))
    )
    assert one.verdict == "warn" and one.reason.endswith("(and 2 more)") and one.reason.count("at $") == 1


def test_json_schema_from_a_project_file_in_a_run(tmp_path: Path, fake: FakeLLMThread) -> None:
    root = make_project(
        tmp_path / "p", fake, "guardrails:\n  - {type: json_schema, schema_file: schemas/order.yaml}\n"
    )
    ok, _ = run(root, "json ok")
    assert ok.succeeded and ok.output == ANSWERS["json ok"]
    bad, collector = run(root, "json bad")
    assert bad.error is not None and bad.error.category.value == "guardrail_blocked" and bad.output is None
    assert "json_schema: the answer does not match the schema" in bad.error.message
    assert "at $.items[1].price: -2 is less than the minimum of 0" in bad.error.message
    [event] = guardrail_events(collector)
    assert event["point"] == "output" and event["guardrail"] == "json_schema" and event["verdict"] == "block"


def test_json_schema_config_errors_name_file_line_and_field(tmp_path: Path, fake: FakeLLMThread) -> None:
    root = make_project(
        tmp_path / "p",
        fake,
        "guardrails:\n"
        "  - {type: json_schema, schema_file: schemas/missing.json}\n"
        "  - {type: json_schema, schema: {type: object}, schema_file: schemas/order.yaml}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_project(root)
    found = {(i.file, i.line, i.field): i.message for i in caught.value.issues}
    assert (
        found[("agents/support.yaml", 5, "guardrails[0].schema_file")]
        == "file not found: schemas/missing.json"
    )
    assert (
        "exactly one of schema (inline) or schema_file" in found[("agents/support.yaml", 6, "guardrails[1]")]
    )


# -- grounding ------------------------------------------------------------------------------------

GROUNDING = "guardrails:\n  - {type: grounding, judge: grader, threshold: 0.5}\n"


def test_grounded_answers_pass_and_invented_ones_are_blocked(tmp_path: Path, fake: FakeLLMThread) -> None:
    root = make_project(tmp_path / "p", fake, GROUNDING)
    grounded, collector = run(root, "grounded: lookup order 42")
    assert grounded.succeeded and grounded.output == ANSWERS["grounded"]
    assert guardrail_events(collector) == []
    invented, collector = run(root, "invented: lookup order 42")
    assert invented.error is not None and invented.error.category.value == "guardrail_blocked"
    assert invented.output is None
    message = invented.error.message
    assert "grounding: the answer is not supported by the retrieved context" in message
    assert "grounding score 0.10 (threshold 0.5)" in message and "refunded" in message
    [event] = guardrail_events(collector)
    assert (event["point"], event["guardrail"], event["verdict"]) == ("output", "grounding", "block")
    judged = [r for r in fake.requests() if r.model == "judge"]
    payload = json.loads(judged[-1].last_user or "")
    assert payload["output"] == ANSWERS["invented"]
    assert payload["context"] == [
        {"source": "tool:lookup", "content": "Order 42 shipped on May 3 by courier."}
    ]


def test_only_the_chosen_tools_count_as_context(tmp_path: Path, fake: FakeLLMThread) -> None:
    root = make_project(
        tmp_path / "p", fake, "guardrails:\n  - {type: grounding, judge: grader, tools: [weather]}\n"
    )
    result, _ = run(root, "grounded: lookup and weather")
    assert (
        result.error is not None and "not supported" in result.error.message
    )  # lookup's result was left out
    payload = json.loads([r for r in fake.requests() if r.model == "judge"][-1].last_user or "")
    assert [item["source"] for item in payload["context"]] == ["tool:weather"]


def test_without_context_the_check_says_so(tmp_path: Path, fake: FakeLLMThread) -> None:
    allowed = make_project(tmp_path / "a", fake, GROUNDING)
    result, collector = run(allowed, "grounded, from memory")
    assert result.succeeded and guardrail_events(collector) == []
    warned = make_project(
        tmp_path / "w", fake, "guardrails:\n  - {type: grounding, judge: grader, no_context: warn}\n"
    )
    result, collector = run(warned, "grounded, from memory")
    assert result.succeeded
    [event] = guardrail_events(collector)
    assert (
        event["verdict"] == "warn" and event["reason"] == "no retrieved context to check the answer against"
    )
    blocked = make_project(
        tmp_path / "b", fake, "guardrails:\n  - {type: grounding, judge: grader, no_context: block}\n"
    )
    result, _ = run(blocked, "grounded, from memory")
    assert result.error is not None and "no retrieved context" in result.error.message
    assert not [r for r in fake.requests() if r.model == "judge"]  # no context: the judge is not asked


def test_a_failing_judge_blocks_unless_allowed(tmp_path: Path, fake: FakeLLMThread) -> None:
    strict = make_project(tmp_path / "s", fake, "guardrails:\n  - {type: grounding, judge: sulky}\n")
    result, _ = run(strict, "grounded: lookup order 42")
    assert result.error is not None and result.error.category.value == "guardrail_blocked"
    assert "the judge gave no score: I would rather not grade this." in result.error.message
    lenient = make_project(
        tmp_path / "l", fake, "guardrails:\n  - {type: grounding, judge: sulky, on_error: allow}\n"
    )
    result, collector = run(lenient, "grounded: lookup order 42")
    assert result.succeeded and result.output == ANSWERS["grounded"]
    [event] = guardrail_events(collector)
    assert event["verdict"] == "warn" and "allowed (on_error: allow)" in event["reason"]


def test_the_judge_runs_as_a_recorded_run_in_the_runs_tenant(tmp_path: Path, fake: FakeLLMThread) -> None:
    root = make_project(tmp_path / "p", fake, GROUNDING, storage=True)
    result, _ = run(root, "grounded: lookup order 42", tenant_id="acme")
    assert result.succeeded

    async def judged() -> list[Any]:
        store = await RunStore.open(f"sqlite:///{root / 'keel.db'}")
        try:
            return (await store.list_runs(agent="grader", tenant_id="acme")).runs
        finally:
            await store.close()

    [judge_run] = asyncio.run(judged())
    assert judge_run.trigger == "eval" and judge_run.tenant_id == "acme"
    assert (
        judge_run.metadata["judged_run"] == result.run_id and judge_run.metadata["guardrail"] == "grounding"
    )
    assert judge_run.input_tokens > 0


def test_grounding_config_errors(tmp_path: Path, fake: FakeLLMThread) -> None:
    root = make_project(
        tmp_path / "p",
        fake,
        "guardrails:\n  - {type: grounding, judge: nobody}\n  - {type: grounding, judge: grader, threshold: 2}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_project(root)
    found = {(i.file, i.line, i.field): i.message for i in caught.value.issues}
    assert "no agent named 'nobody'" in found[("agents/support.yaml", 5, "guardrails[0].judge")]
    assert "threshold" in found[("agents/support.yaml", 6, "guardrails[1]")]
