"""Approval gates and escalation in `Runner.run`: a gated call stops the run, decisions resume it."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel

from keel.config import load_project
from keel.config.project import ResolvedModel
from keel.runtime.approval import Decision, PausedState, Resume
from keel.runtime.result import RunResult, RunStatus
from keel.runtime.runner import Runner
from tests.tracing.helpers import make_tracing

TOOLS = '''
PAID: list[int] = []


def pay(amount: int, to: str) -> str:
    """Pay an amount."""
    PAID.append(amount)
    return f"paid {amount} to {to}"


def lookup(q: str) -> str:
    """Look something up."""
    return "nothing found"
'''


def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Pays 100 (then 200, 300... after each refusal); reports what the tool said once it ran."""
    user = next(
        str(p.content) for m in messages for p in getattr(m, "parts", []) if p.part_kind == "user-prompt"
    )
    returns = [p for m in messages for p in getattr(m, "parts", []) if isinstance(p, ToolReturnPart)]
    if user.startswith("json"):
        return ModelResponse(parts=[TextPart(json.dumps({"answer": "maybe", "confidence": 0.2}))])
    if user.startswith("lookup"):
        if len(returns) < 3:
            return ModelResponse(parts=[ToolCallPart("lookup", {"q": "x"}, tool_call_id=f"l{len(returns)}")])
        return ModelResponse(parts=[TextPart("gave up")])
    paid = re.search(r"paid \d+ to \w+", str(returns[-1].content)) if returns else None
    if paid:  # the tool's result reaches the model marked as untrusted data
        return ModelResponse(parts=[TextPart(f"done: {paid.group(0)}")])
    if len(returns) >= 4:
        return ModelResponse(parts=[TextPart("I could not pay")])
    amount = 100 * (len(returns) + 1)
    return ModelResponse(
        parts=[ToolCallPart("pay", {"amount": amount, "to": "bob"}, tool_call_id=f"c{len(returns)}")]
    )


def factory(resolved: ResolvedModel) -> Model:
    return FunctionModel(model)


def project(
    root: Path,
    agent_extra: str = "",
    tool: str = "  - {function: tools_pay:pay, approval: {reason: money leaves}}\n",
    tools: str = TOOLS,
) -> Path:
    (root / "agents").mkdir(parents=True)
    (root / "keel.yaml").write_text(
        "project: a\nmodels:\n  m: {provider: openai-compatible, model: m, base_url: 'http://127.0.0.1:9/v1'}\n"
        "storage: {enabled: false}\ntracing: {enabled: false}\n"
    )
    (root / "tools_pay.py").write_text(tools)
    (root / "agents" / "payer.yaml").write_text(
        "model: m\ninstructions: Pay people.\ntools:\n"
        + tool
        + "  - {function: tools_pay:lookup}\n"
        + agent_extra
    )
    return root


def paid() -> list[int]:
    import tools_pay  # type: ignore[import-not-found]

    return list(tools_pay.PAID)


def make_runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, agent_extra: str = "", **kw: str) -> Runner:
    root = project(tmp_path, agent_extra, **kw)
    monkeypatch.syspath_prepend(str(root))
    for module in ("tools_pay", "checks"):
        monkeypatch.delitem(__import__("sys").modules, module, raising=False)
    return Runner(load_project(root), model_factory=factory)


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runner:
    return make_runner(tmp_path, monkeypatch)


def go(runner: Runner, text: str = "pay bob", **kw: Any) -> RunResult:
    return asyncio.run(runner.run("payer", text, run_id="r1", **kw))


def resume_of(result: RunResult, **decisions: Decision) -> Resume:
    assert result.paused is not None
    return Resume(PausedState.from_dict(json.loads(json.dumps(result.paused))), decisions)


def test_gated_call_stops_the_run_and_does_not_run(runner: Runner) -> None:
    result = go(runner)
    assert result.status is RunStatus.WAITING_APPROVAL
    assert result.output is None
    assert [(a["tool"], a["args"], a["reason"]) for a in result.approvals] == [
        ("pay", {"amount": 100, "to": "bob"}, "money leaves")
    ]
    assert result.approvals[0]["on_timeout"] == "reject" and result.approvals[0]["timeout_s"] == 86_400
    assert paid() == []
    assert result.to_dict()["approvals"] == result.approvals and "paused" not in result.to_dict()


def test_approved_call_runs_once_and_the_run_ends(runner: Runner) -> None:
    first = go(runner)
    call_id = first.approvals[0]["call_id"]
    final = go(runner, resume=resume_of(first, **{call_id: Decision(True, by="ann")}))
    assert final.status is RunStatus.SUCCEEDED, final.error
    assert final.output == "done: paid 100 to bob"
    assert paid() == [100]
    # The record covers the whole run: both model requests, the request for approval and the call.
    assert final.model_requests == 2
    assert [(c.name, c.status) for c in final.tool_calls] == [("pay", "waiting_approval"), ("pay", "ok")]
    assert final.started_at == first.started_at


def test_edited_arguments_are_what_the_tool_gets(runner: Runner) -> None:
    first = go(runner)
    call_id = first.approvals[0]["call_id"]
    final = go(runner, resume=resume_of(first, **{call_id: Decision(True, args={"amount": 90, "to": "bob"})}))
    assert final.output == "done: paid 90 to bob"
    assert paid() == [90]


def test_the_approved_calls_span_names_its_reviewer(runner: Runner) -> None:
    runner.tracing, spans = make_tracing("redacted")
    first = go(runner)
    call_id = first.approvals[0]["call_id"]
    decision = Decision(True, args={"amount": 90, "to": "bob"}, reason="ok for bob", by="user:ann")
    final = go(runner, resume=resume_of(first, **{call_id: decision}))
    assert final.status is RunStatus.SUCCEEDED, final.error
    runner.tracing.force_flush(5)
    waiting, ran = spans.named("execute_tool pay")
    assert [e.name for e in waiting.events if e.name == "approval"] == []
    [approval] = [e for e in ran.events if e.name == "approval"]
    assert approval.attributes == {"reviewer": "user:ann", "edited": True, "reason": "ok for bob"}


def test_rejection_reaches_the_model_and_each_new_attempt_needs_approval(runner: Runner) -> None:
    result = go(runner)
    amounts = []
    for _ in range(3):
        assert result.status is RunStatus.WAITING_APPROVAL
        amounts.append(result.approvals[0]["args"]["amount"])
        cid = result.approvals[0]["call_id"]
        result = go(runner, resume=resume_of(result, **{cid: Decision(False, reason="too much", by="ann")}))
    assert amounts == [100, 200, 300]
    assert paid() == []
    assert result.status is RunStatus.WAITING_APPROVAL and result.approvals[0]["args"]["amount"] == 400
    rejected = [c for c in result.tool_calls if c.status == "rejected"]
    assert len(rejected) == 3 and "too much" in (rejected[0].error or "")
    assert PausedState.from_dict(result.paused or {}).pauses == 4


def test_max_pauses_escalates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = make_runner(tmp_path, monkeypatch, "approvals: {max_pauses: 2}\n")
    result = go(runner)
    for _ in range(2):
        cid = result.approvals[0]["call_id"]
        result = go(runner, resume=resume_of(result, **{cid: Decision(False)}))
    assert result.status is RunStatus.ESCALATED
    assert result.escalation is not None and result.escalation["trigger"] == "max_pauses"
    assert paid() == []


def test_usage_limits_count_the_whole_run_across_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each stretch between two stops makes one model request; a limit of 3 must hold for the run,
    # not restart at every stop (before, the fourth request was allowed and the run went on).
    runner = make_runner(tmp_path, monkeypatch, "limits: {max_model_requests: 3, max_tokens: 100000}\n")
    result = go(runner)
    for _ in range(3):
        assert result.status is RunStatus.WAITING_APPROVAL
        assert PausedState.from_dict(result.paused or {}).usage["requests"] >= 1
        cid = result.approvals[0]["call_id"]
        result = go(runner, resume=resume_of(result, **{cid: Decision(False, reason="no")}))
    assert result.status is RunStatus.FAILED, result
    assert result.error is not None and result.error.category.value == "limit_exceeded"
    assert "request_limit of 3" in result.error.message
    assert sum(1 for c in result.model_calls if c.status == "ok") == 3
    assert paid() == []


def test_a_stop_stored_before_usage_was_kept_counts_its_calls(runner: Runner) -> None:
    result = go(runner)
    stored = json.loads(json.dumps(result.paused))
    del stored["usage"]  # as stored by a version that did not keep the usage
    state = PausedState.from_dict(stored)
    assert state.usage["requests"] == 1
    assert state.usage["input_tokens"] == sum(c.input_tokens for c in result.model_calls)


def test_guardrail_can_require_approval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "checks.py").write_text(
        "from keel.guardrails.policy import Decision\n"
        "def big(check):\n"
        "    if check.args and check.args.get('amount', 0) > 150:\n"
        "        return Decision('require_approval', 'big', 'over 150')\n"
        "    return None\n"
    )
    runner = make_runner(
        tmp_path,
        monkeypatch,
        "guardrails:\n  - {type: python, function: 'checks:big', points: [action]}\n",
        tool="  - {function: tools_pay:pay}\n",
    )
    result = go(runner)
    assert result.status is RunStatus.SUCCEEDED and paid() == [100]  # under the ceiling: no gate
    over = asyncio.run(runner.run("payer", "pay bob", run_id="r2", resume=None))
    assert over.status is RunStatus.SUCCEEDED  # same again (the model pays 100 first)


def test_guardrail_requiring_approval_gates_the_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "checks.py").write_text(
        "from keel.guardrails.policy import Decision\n"
        "def big(check):\n"
        "    if check.args and check.args.get('amount', 0) > 50:\n"
        "        return Decision('require_approval', 'big', 'over 50')\n"
        "    return None\n"
    )
    runner = make_runner(
        tmp_path,
        monkeypatch,
        "guardrails:\n  - {type: python, function: 'checks:big', points: [action]}\n",
        tool="  - {function: tools_pay:pay}\n",
    )
    first = go(runner)
    assert first.status is RunStatus.WAITING_APPROVAL and paid() == []
    assert first.approvals[0]["reason"] == "big: over 50"
    cid = first.approvals[0]["call_id"]
    final = go(runner, resume=resume_of(first, **{cid: Decision(True)}))
    assert final.status is RunStatus.SUCCEEDED and paid() == [100]


def test_escalation_on_request_for_a_person(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = make_runner(tmp_path, monkeypatch, "escalation: {human_request: true}\n")
    result = go(runner, "pay bob, or let me talk to a human please")
    assert result.status is RunStatus.ESCALATED and result.model_requests == 0
    assert result.escalation is not None and result.escalation["trigger"] == "human_request"
    assert "talk to a human" in result.escalation["summary"]


def test_escalation_after_failed_attempts_has_a_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = make_runner(
        tmp_path,
        monkeypatch,
        "escalation: {failed_attempts: 2}\n",
        tool="  - {function: tools_pay:pay}\n",
        tools=TOOLS.replace('return "nothing found"', 'raise RuntimeError("index down")'),
    )
    result = go(runner, "lookup the invoice")
    assert result.status is RunStatus.ESCALATED
    assert result.escalation is not None and result.escalation["trigger"] == "failed_attempts"
    summary = result.escalation["summary"]
    assert "lookup the invoice" in summary and "index down" in summary and summary.count("lookup(") == 3


def test_escalation_on_high_stakes_tool_and_low_confidence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = make_runner(
        tmp_path,
        monkeypatch,
        "escalation: {tools: [pay], confidence: {field: confidence, below: 0.5}}\n",
        tool="  - {function: tools_pay:pay}\n",
    )
    result = go(runner)
    assert result.status is RunStatus.ESCALATED and result.escalation["trigger"] == "high_stakes_tool"  # type: ignore[index]
    assert paid() == []
    low = go(runner, "json please")
    assert low.status is RunStatus.ESCALATED and low.escalation["trigger"] == "confidence"  # type: ignore[index]
    assert "0.2" in low.escalation["reason"]  # type: ignore[index]


def test_tool_allowlists_per_principal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Who asked for the run decides which tools it may use: by user, by role, else `*`."""
    runner = make_runner(
        tmp_path,
        monkeypatch,
        "guardrails:\n  - type: tools\n    principals:\n"
        "      'user:ann': {allow: [pay, lookup]}\n"
        "      'role:finance': {allow: [pay]}\n"
        "      'role:intern': {deny: [pay]}\n"
        "      '*': {allow: [lookup]}\n",
        tool="  - {function: tools_pay:pay}\n",
    )

    def as_(principal: str | None, roles: tuple[str, ...] = ()) -> RunResult:
        return asyncio.run(runner.run("payer", "pay bob", principal=principal, roles=roles))

    assert as_("user:ann").output == "done: paid 100 to bob"
    assert as_("service:k1", ("finance",)).output == "done: paid 100 to bob"
    refused = as_("user:bob")  # only `*`: lookup, not pay
    assert refused.succeeded and refused.output == "I could not pay"
    assert "not allowed for user:bob" in (refused.tool_calls[0].error or "")
    # A role that denies wins over one that allows.
    assert as_("user:eve", ("finance", "intern")).output == "I could not pay"
    assert paid() == [100, 100]
