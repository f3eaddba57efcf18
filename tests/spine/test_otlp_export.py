"""Runs exported over OTLP/HTTP to a real receiver that decodes the protobuf payload."""

from __future__ import annotations

import pytest

from keel.runtime.runner import Runner
from keel.testing.fake_llm import FakeLLMThread, Faults, Reply, Rule, RuleScript, ToolCallReply, When
from keel.testing.otlp_receiver import OtlpReceiver
from tests.runtime.helpers import make_project

SCRIPT = RuleScript(
    [
        Rule(when=When(last_is_tool_result=True), reply=Reply(text="Mail sent to ada@example.com.")),
        Rule(reply=Reply(tool_calls=[ToolCallReply("send", {"to": "ada@example.com"})])),
    ]
)
MODEL_KEY = "sk-live-THIS-IS-A-TEST-KEY-0123456789abcdef"
OTLP_KEY = "otlp-secret-header-value-42"


def send(to: str) -> str:
    """Send a mail."""
    return f"sent to {to}"


@pytest.mark.parametrize("capture", ["off", "on", "redacted"])
async def test_spans_reach_a_real_collector(
    capture: str, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_TEST_OTLP_KEY", OTLP_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", MODEL_KEY)
    with OtlpReceiver() as receiver, FakeLLMThread(SCRIPT) as fake:
        fake.set_faults(Faults(sequence=["503", "ok"]))
        project = make_project(
            base_url=fake.base_url,
            tools={"send": send},
            retry_options={"initial_delay": 0.01},
            project_config={
                "tracing": {
                    "enabled": True,
                    "capture_content": capture,
                    "service_name": "inbox-test",
                    "otlp": {
                        "endpoint": receiver.endpoint,
                        "headers_env": {"x-api-key": "KEEL_TEST_OTLP_KEY"},
                    },
                }
            },
        )
        async with Runner(project) as runner:
            result = await runner.run("agent", f"mail ada@example.com, my key is {MODEL_KEY}")
        assert result.succeeded
        spans = receiver.wait_for(5, timeout=10)
    by_name = {}
    for span in spans:
        by_name.setdefault(span.name.split(" ")[0], []).append(span)
    [root] = by_name["invoke_agent"]
    assert len(by_name["chat"]) == 3  # a failed attempt, the retry, the final answer
    assert len(by_name["execute_tool"]) == 1
    assert root.parent_span_id is None
    assert root.trace_id == result.trace_id
    assert root.resource["service.name"] == "inbox-test"
    assert root.attributes["keel.run.id"] == result.run_id
    for child in by_name["chat"] + by_name["execute_tool"]:
        assert child.parent_span_id == root.span_id
        assert child.trace_id == root.trace_id
    failed = [s for s in by_name["chat"] if s.status == "error"]
    assert len(failed) == 1
    failed[0].event("retry")
    assert all(r.headers.get("x-api-key") == OTLP_KEY for r in receiver.requests)
    dump = repr(spans)
    assert MODEL_KEY not in dump  # secrets never, in any mode
    assert OTLP_KEY not in dump
    if capture == "off":
        assert "ada@example.com" not in dump
    elif capture == "on":
        assert "ada@example.com" in dump
    else:
        assert "ada@example.com" not in dump
        assert "mail" in dump
