"""The span helpers: tree shape, GenAI attribute names and values, handle semantics."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import trace

from keel.tracing import Tracing, agent_span, chat_span, semconv, tool_span
from tests.tracing.helpers import make_tracing


def run_once(tracing: Tracing, *, run_id: str = "run-1") -> None:
    """One run: a failed chat attempt (retried), a tool call, a successful attempt."""
    with agent_span(
        tracing,
        agent="inbox",
        run_id=run_id,
        model="openai:gpt-4o-mini",
        conversation_id="conv-9",
        input="hi",
    ) as run:
        with chat_span(
            tracing, provider="openai", model="gpt-4o-mini", attempt=1, streamed=False, messages=[]
        ) as chat:
            chat.failed("model_rate_limited", "model 'gpt-4o-mini' rate limited (HTTP 429)", retry_in=0.25)
        with tool_span(tracing, name="lookup", call_id="call_1", args={"id": 3}) as tool:
            tool.ok({"name": "Ada"}, attempts=2)
        with chat_span(
            tracing, provider="openai", model="gpt-4o-mini", attempt=2, streamed=True, messages=[]
        ) as chat:
            chat.ok(120, 8, "gpt-4o-mini-2024-07-18", ["stop"], None)
        run.event("fallback", from_model="openai:a", to_model="openai:b", category="model_unavailable")
        run.finish("succeeded", None, None, "done", 120, 8, 0.00042)


def test_the_run_is_one_tree_agent_over_chats_and_tool() -> None:
    tracing, sink = make_tracing()
    run_once(tracing)
    agent = sink.one("invoke_agent inbox")
    chats = sink.named("chat gpt-4o-mini")
    tool = sink.one("execute_tool lookup")
    assert agent.parent_span_id is None
    assert [c.parent_span_id for c in chats] == [agent.span_id, agent.span_id]
    assert tool.parent_span_id == agent.span_id
    assert {r.trace_id for r in sink.records} == {agent.trace_id}
    assert len({r.span_id for r in sink.records}) == 4
    assert [r.name for r in sink.records] == [  # children end first
        "chat gpt-4o-mini",
        "execute_tool lookup",
        "chat gpt-4o-mini",
        "invoke_agent inbox",
    ]
    assert all(r.run_id == "run-1" for r in sink.records)


def test_agent_span_attributes_follow_the_genai_conventions() -> None:
    tracing, sink = make_tracing()
    run_once(tracing)
    agent = sink.one("invoke_agent inbox")
    assert agent.kind == "internal"
    assert agent.status == "ok"
    attributes = agent.attributes
    assert attributes["gen_ai.operation.name"] == "invoke_agent"
    assert attributes["gen_ai.agent.name"] == "inbox"
    assert attributes["gen_ai.conversation.id"] == "conv-9"
    assert attributes["gen_ai.request.model"] == "openai:gpt-4o-mini"
    assert attributes["gen_ai.usage.input_tokens"] == 120
    assert attributes["gen_ai.usage.output_tokens"] == 8
    assert attributes["keel.run.id"] == "run-1"
    assert attributes["keel.run.status"] == "succeeded"
    assert attributes["keel.cost.usd"] == pytest.approx(0.00042)
    assert attributes["keel.input.size"] == 2
    assert attributes["keel.output.size"] == 4
    fallback = agent.events[0]
    assert fallback.name == "fallback"
    assert fallback.attributes == {
        "from_model": "openai:a",
        "to_model": "openai:b",
        "category": "model_unavailable",
    }


def test_chat_spans_record_attempts_errors_and_retries() -> None:
    tracing, sink = make_tracing()
    run_once(tracing)
    failed, ok = sink.named("chat gpt-4o-mini")
    assert failed.kind == ok.kind == "client"
    for record, attempt in ((failed, 1), (ok, 2)):
        assert record.attributes["gen_ai.operation.name"] == "chat"
        assert record.attributes["gen_ai.provider.name"] == "openai"
        assert record.attributes["gen_ai.request.model"] == "gpt-4o-mini"
        assert record.attributes["keel.attempt"] == attempt
        assert record.attributes["keel.chat.messages"] == 0
    assert failed.status == "error"
    assert failed.status_message == "model 'gpt-4o-mini' rate limited (HTTP 429)"
    assert failed.attributes["error.type"] == "model_rate_limited"
    assert [e.name for e in failed.events] == ["exception", "retry"]
    assert failed.events[0].attributes == {
        "exception.type": "model_rate_limited",
        "exception.message": "model 'gpt-4o-mini' rate limited (HTTP 429)",
    }
    assert failed.events[1].attributes == {"keel.retry.delay_s": 0.25}
    assert failed.attributes["gen_ai.request.stream"] is False
    assert ok.status == "ok"
    assert ok.attributes["gen_ai.request.stream"] is True
    assert ok.attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert ok.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert ok.attributes["gen_ai.usage.input_tokens"] == 120
    assert ok.attributes["gen_ai.usage.output_tokens"] == 8
    assert "error.type" not in ok.attributes
    assert ok.events == ()


def test_tool_spans_record_calls_and_failures() -> None:
    tracing, sink = make_tracing()
    run_once(tracing)
    with (
        agent_span(tracing, agent="inbox", run_id="run-2", model="m", input=None),
        tool_span(tracing, name="lookup", call_id="call_2", args=None) as tool,
    ):
        tool.failed("timeout", "timed out after 2s", attempts=3)
    ok, failed = sink.named("execute_tool lookup")
    assert ok.kind == "internal"
    assert ok.status == "ok"
    assert ok.attributes["gen_ai.operation.name"] == "execute_tool"
    assert ok.attributes["gen_ai.tool.name"] == "lookup"
    assert ok.attributes["gen_ai.tool.call.id"] == "call_1"
    assert ok.attributes["gen_ai.tool.type"] == "function"
    assert ok.attributes["keel.tool.status"] == "ok"
    assert ok.attributes["keel.tool.attempts"] == 2
    assert ok.attributes["keel.tool.args.size"] == len('{"id":3}')
    assert ok.attributes["keel.tool.result.size"] == len('{"name":"Ada"}')
    assert failed.status == "error"
    assert failed.status_message == "timed out after 2s"
    assert failed.run_id == "run-2"
    assert failed.attributes["error.type"] == "tool_timeout"
    assert failed.attributes["keel.tool.status"] == "timeout"
    assert failed.attributes["keel.tool.attempts"] == 3
    assert failed.events[0].name == "exception"


def test_semconv_names_are_the_installed_conventions() -> None:
    from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as g

    assert semconv.PROVIDER_NAME == g.GEN_AI_PROVIDER_NAME == "gen_ai.provider.name"
    assert semconv.OPERATION_NAME == g.GEN_AI_OPERATION_NAME
    assert semconv.TOOL_CALL_ID == g.GEN_AI_TOOL_CALL_ID
    assert semconv.INPUT_MESSAGES == g.GEN_AI_INPUT_MESSAGES


def test_google_maps_to_the_conventions_provider_name() -> None:
    tracing, sink = make_tracing()
    with chat_span(tracing, provider="google", model="gemini-2.0-flash") as chat:
        chat.ok(1, 1)
    with chat_span(tracing, provider="openai-compatible", model="llama") as chat:
        chat.ok(1, 1)
    assert sink.one("chat gemini-2.0-flash").attributes["gen_ai.provider.name"] == "gcp.gen_ai"
    assert sink.one("chat llama").attributes["gen_ai.provider.name"] == "openai-compatible"


@pytest.mark.parametrize(
    ("status", "category"),
    [("failed", "tool_error"), ("timed_out", "timed_out"), ("cancelled", "cancelled")],
)
def test_a_run_that_did_not_succeed_is_an_error_span(status: str, category: str) -> None:
    tracing, sink = make_tracing()
    with agent_span(tracing, agent="inbox", run_id="r", model="m", input="x") as run:
        run.finish(status, category, f"the run {status}", None, 10, 0, None)
    record = sink.one("invoke_agent inbox")
    assert record.status == "error"
    assert record.status_message == f"the run {status}"
    assert record.attributes["error.type"] == category
    assert record.attributes["keel.run.status"] == status
    assert "keel.cost.usd" not in record.attributes


def test_outcomes_are_recorded_once() -> None:
    tracing, sink = make_tracing()
    with agent_span(tracing, agent="a", run_id="r", model="m") as run:
        with chat_span(tracing, provider="openai", model="x") as chat:
            chat.ok(1, 2)
            chat.failed("model_unavailable", "late")
            chat.ok(5, 6)
        with tool_span(tracing, name="t", call_id="c") as tool:
            tool.failed("error", "boom")
            tool.ok("late")
        run.finish("succeeded", output="first")
        run.finish("failed", "internal", "late")
    chat_record = sink.one("chat x")
    assert chat_record.status == "ok"
    assert chat_record.attributes["gen_ai.usage.input_tokens"] == 1
    assert chat_record.events == ()
    assert sink.one("execute_tool t").status == "error"
    agent = sink.one("invoke_agent a")
    assert agent.status == "ok"
    assert agent.attributes["keel.run.status"] == "succeeded"


def test_an_exception_leaving_the_block_marks_the_span_an_error_and_propagates() -> None:
    tracing, sink = make_tracing()
    with (
        pytest.raises(KeyError),
        agent_span(tracing, agent="a", run_id="r", model="m") as run,
        tool_span(tracing, name="t", call_id="c"),
    ):
        raise KeyError("sk-abcdefghijklmnopqrstuvwx is not a customer")
    tool = sink.one("execute_tool t")
    assert tool.status == "error"
    assert tool.attributes["error.type"] == "KeyError"
    assert tool.events[0].name == "exception"
    assert tool.events[0].attributes["exception.type"] == "KeyError"
    assert "sk-abcdefghijklmnopqrstuvwx" not in sink.text()
    assert "[REDACTED:api_key]" in (tool.status_message or "")
    assert sink.one("invoke_agent a").status == "error"
    assert run.trace_id == tool.trace_id


def test_an_exception_after_the_outcome_keeps_the_outcome() -> None:
    tracing, sink = make_tracing()

    def fail_then_raise() -> None:
        with chat_span(tracing, provider="openai", model="x") as chat:
            chat.failed("model_timeout", "timed out")
            raise RuntimeError("re-raised by the caller")

    with pytest.raises(RuntimeError):
        fail_then_raise()
    record = sink.one("chat x")
    assert record.attributes["error.type"] == "model_timeout"
    assert [e.name for e in record.events] == ["exception"]


def test_a_span_left_without_an_outcome_is_unset() -> None:
    tracing, sink = make_tracing()
    with tool_span(tracing, name="t", call_id="c"):
        pass
    assert sink.one("execute_tool t").status == "unset"


def test_handles_expose_ids_and_the_span_is_current_inside() -> None:
    tracing, _ = make_tracing()
    handle = agent_span(tracing, agent="a", run_id="r", model="m")
    assert handle.trace_id is None
    with handle as run:
        current = trace.get_current_span().get_span_context()
        assert run.trace_id == format(current.trace_id, "032x")
        assert run.span_id == format(current.span_id, "016x")
        assert len(run.trace_id) == 32
    assert run.trace_id is not None  # still readable after the block, for the run record
    assert not trace.get_current_span().get_span_context().is_valid


async def test_spans_in_tasks_nest_under_the_agent_span() -> None:
    tracing, sink = make_tracing()

    async def call_tool(name: str) -> None:
        await asyncio.sleep(0)
        with tool_span(tracing, name=name, call_id=name) as tool:
            await asyncio.sleep(0.001)
            tool.ok(None)

    with agent_span(tracing, agent="a", run_id="run-t", model="m") as run:
        await asyncio.gather(call_tool("one"), call_tool("two"), asyncio.create_task(call_tool("three")))
        run.finish("succeeded")
    agent = sink.one("invoke_agent a")
    tools = [r for r in sink.records if r.name.startswith("execute_tool")]
    assert len(tools) == 3
    assert all(t.parent_span_id == agent.span_id and t.run_id == "run-t" for t in tools)


async def test_concurrent_runs_do_not_mix() -> None:
    tracing, sink = make_tracing()

    async def one_run(run_id: str) -> None:
        with agent_span(tracing, agent="a", run_id=run_id, model="m") as run:
            for attempt in (1, 2):
                await asyncio.sleep(0.001)
                with chat_span(tracing, provider="openai", model="x", attempt=attempt) as chat:
                    await asyncio.sleep(0.001)
                    chat.ok(1, 1)
            run.finish("succeeded")

    await asyncio.gather(*(one_run(f"run-{i}") for i in range(5)))
    agents = {r.run_id: r for r in sink.named("invoke_agent a")}
    assert len(agents) == 5
    assert len({a.trace_id for a in agents.values()}) == 5
    for chat in sink.named("chat x"):
        assert chat.run_id is not None
        parent = agents[chat.run_id]
        assert chat.parent_span_id == parent.span_id
        assert chat.trace_id == parent.trace_id


def test_spans_made_with_the_tracer_directly_get_the_run_id() -> None:
    tracing, sink = make_tracing()
    with (
        agent_span(tracing, agent="a", run_id="run-x", model="m"),
        tracing.tracer.start_as_current_span("custom step"),
    ):
        pass
    with tracing.tracer.start_as_current_span("outside"):
        pass
    assert sink.one("custom step").run_id == "run-x"
    assert sink.one("custom step").parent_span_id == sink.one("invoke_agent a").span_id
    assert sink.one("outside").run_id is None
