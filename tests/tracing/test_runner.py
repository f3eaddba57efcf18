"""The helpers as the runtime uses them: a real run's tree and content, exported over OTLP."""

from __future__ import annotations

import json

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from keel.testing.otlp_receiver import OtlpReceiver
from tests.runtime.helpers import make_project, runner_with


def lookup(email: str) -> str:
    """Find a customer by email."""
    return f"customer {email} pays with card 4111 1111 1111 1111"


def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if len(messages) == 1:
        return ModelResponse(
            parts=[ToolCallPart("lookup", {"email": "ada@example.com"}, tool_call_id="call_1")]
        )
    return ModelResponse(parts=[TextPart("Ada (ada@example.com) pays by card.")])


async def test_a_run_exports_its_tree_with_redacted_content() -> None:
    with OtlpReceiver() as receiver:
        tracing = {"capture_content": "redacted", "otlp": {"endpoint": receiver.endpoint}}
        project = make_project(tools={"lookup": lookup}, project_config={"tracing": tracing})
        async with runner_with(project, {"primary": FunctionModel(answer)}) as runner:
            result = await runner.run("agent", "What card does ada@example.com use?")
        assert result.succeeded, result.error
        spans = receiver.wait_for(4)

    assert sorted(s.name for s in spans) == [
        "chat primary",
        "chat primary",
        "execute_tool lookup",
        "invoke_agent agent",
    ]
    [root] = [s for s in spans if s.parent_span_id is None]
    assert root.trace_id == result.trace_id
    assert all(s.parent_span_id == root.span_id for s in spans if s is not root)
    assert all(s.attributes["keel.run.id"] == result.run_id for s in spans)
    exported = json.dumps([s.attributes for s in spans])
    assert "ada@example.com" not in exported
    assert "4111" not in exported

    first, second = sorted(receiver.named("chat primary"), key=lambda s: s.start_time_unix_nano)
    sent = json.loads(second.attributes["gen_ai.input.messages"])
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[0]["parts"][0]["content"] == "What card does [REDACTED:email] use?"
    assert sent[1]["parts"][0] == {
        "type": "tool_call",
        "id": "call_1",
        "name": "lookup",
        "arguments": {"email": "[REDACTED:email]"},
    }
    assert sent[2]["parts"][0]["type"] == "tool_call_response"
    assert "[REDACTED:card]" in sent[2]["parts"][0]["result"]
    asked = json.loads(root.attributes["gen_ai.input.messages"])
    assert asked == [
        {"role": "user", "parts": [{"type": "text", "content": "What card does [REDACTED:email] use?"}]}
    ]
    said = json.loads(first.attributes["gen_ai.output.messages"])
    assert said[0]["role"] == "assistant" and said[0]["parts"][0]["type"] == "tool_call"
    tool = receiver.named("execute_tool lookup")[0]
    assert json.loads(tool.attributes["gen_ai.tool.call.arguments"]) == {"email": "[REDACTED:email]"}
    assert "[REDACTED:card]" in json.loads(tool.attributes["gen_ai.tool.call.result"])
