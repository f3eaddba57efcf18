"""Per-tenant guardrails (keel.yaml `tenants.<id>.guardrails`): applied to that tenant's runs of
every agent, after the agent's own; other tenants' runs see only the agent's."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from keel.config import load_project
from keel.errors import ConfigError
from keel.guardrails.builtin import build
from keel.guardrails.policy import Check, Guardrails
from keel.runtime.result import RunResult
from keel.runtime.runner import Runner
from keel.testing.fake_llm import ChatRequest, FakeLLMThread, FunctionScript, Reply, ToolCallReply
from tests.tracing.helpers import make_tracing

TOOLS = '''
def ping() -> str:
    """Ping."""
    return "pong"
'''

TENANTS = """\
tenants:
  acme:
    guardrails:
      - {type: deny, words: [confidential]}
      - {type: rate_limit, tool: ping, calls: 1, window: 1h}
  globex:
    guardrails: []
"""


def script(request: ChatRequest) -> Reply:
    user = request.last_user or ""
    if user.startswith("ping") and not any(m.role == "tool" for m in request.messages):
        return Reply(tool_calls=[ToolCallReply("ping", {})])
    return Reply(text=f"echo: {user}")


@pytest.fixture
def fake(fake_llm: FakeLLMThread) -> FakeLLMThread:
    fake_llm.set_script(FunctionScript(script))
    return fake_llm


def make_project(root: Path, fake: FakeLLMThread, tenants: str, agent_guardrails: str = "") -> Path:
    (root / "agents").mkdir(parents=True)
    (root / "keel.yaml").write_text(
        f"project: tenants\nmodels:\n  main: {{provider: openai-compatible, model: main, base_url: '{fake.base_url}'}}\n"
        "storage: {enabled: false}\ntracing: {enabled: true}\n" + tenants
    )
    (root / "tools_net.py").write_text(TOOLS)
    (root / "agents" / "helper.yaml").write_text(
        "model: main\ninstructions: You help.\ntools: [tools_net:ping]\n" + agent_guardrails
    )
    (root / "agents" / "plain.yaml").write_text(
        "model: main\ninstructions: You help too.\ntools: [tools_net:ping]\n"
    )
    return root


def test_a_tenants_guardrails_apply_to_its_runs_of_every_agent(tmp_path: Path, fake: FakeLLMThread) -> None:
    root = make_project(tmp_path / "p", fake, TENANTS, "guardrails:\n  - {type: max_input, max_chars: 40}\n")

    async def go() -> tuple[dict[str, RunResult], list[dict[str, Any]]]:
        async with Runner(load_project(root)) as runner:
            tracing, collector = make_tracing()
            runner.tracing = tracing
            out = {
                "acme_helper": await runner.run("helper", "the confidential plan", tenant_id="acme"),
                "acme_plain": await runner.run("plain", "the confidential plan", tenant_id="acme"),
                "globex": await runner.run("helper", "the confidential plan", tenant_id="globex"),
                "none": await runner.run("plain", "the confidential plan"),
                "long": await runner.run("helper", "x" * 50, tenant_id="acme"),
                "ping1": await runner.run("helper", "ping", tenant_id="acme"),
                "ping2": await runner.run(
                    "plain", "ping", tenant_id="acme"
                ),  # the tenant's count: all agents
                "ping_globex": await runner.run("plain", "ping", tenant_id="globex"),
            }
        events = [
            dict(e.attributes) for r in collector.records for e in r.events if e.name == "keel.guardrail"
        ]
        return out, events

    out, events = asyncio.run(go())
    for key in ("acme_helper", "acme_plain"):
        error = out[key].error
        assert error is not None and error.category.value == "guardrail_blocked"
        assert "deny: matched 1 denied term(s)" in error.message
    assert out["globex"].output == "echo: the confidential plan"
    assert out["none"].output == "echo: the confidential plan"
    long = out["long"].error
    assert long is not None and "max_input" in long.message  # the agent's own guardrails come first
    assert out["ping1"].output == "echo: ping" and out["ping1"].tool_calls[0].status == "ok"
    assert out["ping2"].tool_calls[0].status == "error"
    assert "1 call of ping per 1h for this tenant reached" in (out["ping2"].tool_calls[0].error or "")
    assert out["ping_globex"].tool_calls[0].status == "ok"
    assert {(e["point"], e["guardrail"]) for e in events} == {
        ("input", "deny"),
        ("input", "max_input"),
        ("action", "rate_limit"),
    }


def test_guardrails_pick_the_tenants_extra_list() -> None:
    guardrails = Guardrails(
        [build({"type": "max_input", "max_chars": 100})],
        tenants={"acme": [build({"type": "deny", "words": ["secret"]})]},
    )

    def verdict(tenant: str | None) -> str:
        outcome = asyncio.run(
            guardrails.run(Check(point="input", agent="a", text="a secret", tenant_id=tenant))
        )
        return outcome.verdict

    assert verdict("acme") == "block" and verdict("globex") == "allow" and verdict(None) == "allow"
    assert guardrails.at("output", "acme") and not guardrails.at("output", "globex")
    assert guardrails.at("output")  # for some tenant
    assert [g.name for g in guardrails.for_tenant("acme")] == ["max_input", "deny"]


def test_tenant_config_errors_name_keel_yaml_line_and_field(tmp_path: Path, fake: FakeLLMThread) -> None:
    root = make_project(
        tmp_path / "p",
        fake,
        "tenants:\n"
        "  acme:\n"
        "    guardrails:\n"
        "      - {type: deny, words: [x]}\n"
        "      - {type: grounding, judge: nobody}\n"
        "      - {type: nonsense}\n"
        "  globex:\n"
        "    guardrail: []\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_project(root)
    found = {(i.file, i.line, i.field): i.message for i in caught.value.issues}
    assert "unknown guardrail type 'nonsense'" in found[("keel.yaml", 11, "tenants.acme.guardrails[2]")]
    assert "did you mean 'guardrails'?" in found[("keel.yaml", 13, "tenants.globex.guardrail")]
    fixed = (
        (root / "keel.yaml")
        .read_text()
        .replace("      - {type: nonsense}\n", "")
        .replace("guardrail: []", "guardrails: []")
    )
    (root / "keel.yaml").write_text(fixed)
    with pytest.raises(ConfigError) as caught:
        load_project(root)
    [issue] = caught.value.issues
    assert (issue.file, issue.line, issue.field) == ("keel.yaml", 10, "tenants.acme.guardrails[1].judge")
    assert "no agent named 'nobody'" in issue.message
