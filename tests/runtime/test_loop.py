"""The run loop with in-process fake models (pydantic-ai FunctionModel): no network, exact control."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from keel.errors import ErrorCategory
from keel.runtime.events import ModelFallback, ModelRetrying, RunEvent
from keel.runtime.result import RunStatus
from tests.runtime.helpers import make_project, runner_with

OUTPUT_SCHEMA = {
    "type": "object",
    "required": ["intent", "amount"],
    "additionalProperties": False,
    "properties": {
        "intent": {"enum": ["refund", "question"]},
        "amount": {"type": "number", "x-unclear": True},
    },
}


def last_tool_returns(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    return [p for p in messages[-1].parts if isinstance(p, ToolReturnPart)]


def final(info: AgentInfo, args: dict[str, Any]) -> ModelResponse:
    return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, args)])


async def test_invalid_output_is_corrected_by_the_model() -> None:
    seen: list[str] = []

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:
            return final(info, {"intent": "refund", "amount": "lots"})
        seen.extend(str(p.content) for p in last_tool_returns(messages))
        return final(info, {"intent": "refund", "amount": 42.5})

    runner = runner_with(make_project(output_schema=OUTPUT_SCHEMA), {"primary": FunctionModel(model)})
    result = await runner.run("agent", "refund please")
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.output == {"intent": "refund", "amount": 42.5}
    assert result.model_requests == 2
    assert any("amount" in text and "does not match" in text for text in seen)


async def test_output_that_stays_invalid_fails_as_invalid_output() -> None:
    calls = 0

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        nonlocal calls
        calls += 1
        return final(info, {"intent": "shout", "amount": 1})

    project = make_project(output_schema=OUTPUT_SCHEMA, output_retries=2)
    result = await runner_with(project, {"primary": FunctionModel(model)}).run("agent", "x")
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error.category is ErrorCategory.INVALID_OUTPUT
    assert calls == 3  # the first answer and two corrections


async def test_unclear_is_accepted_only_where_the_schema_allows_it() -> None:
    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:
            return final(info, {"intent": "unclear", "amount": "unclear"})
        return final(info, {"intent": "question", "amount": "unclear"})

    runner = runner_with(make_project(output_schema=OUTPUT_SCHEMA), {"primary": FunctionModel(model)})
    result = await runner.run("agent", "x")
    assert result.succeeded
    assert result.output == {"intent": "question", "amount": "unclear"}
    assert result.model_requests == 2  # "intent" may not be unclear: one correction


def crm_down(customer_id: str) -> str:
    """Look a customer up."""
    raise ConnectionError("CRM unreachable")


async def test_failing_tool_is_retried_then_reported_to_the_model() -> None:
    told: list[str] = []

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:
            return ModelResponse(parts=[ToolCallPart("crm_down", {"customer_id": "C1"})])
        told.extend(str(p.content) for p in last_tool_returns(messages))
        return ModelResponse(parts=[TextPart("I could not look the customer up.")])

    project = make_project(
        tools={"crm_down": crm_down},
        tool_config={"crm_down": {"retry": {"attempts": 3, "initial_delay": 0.01}}},
    )
    result = await runner_with(project, {"primary": FunctionModel(model)}).run("agent", "x")
    assert result.succeeded
    assert result.output == "I could not look the customer up."
    [call] = result.tool_calls
    assert (call.name, call.status, call.attempts) == ("crm_down", "error", 3)
    assert "ConnectionError: CRM unreachable" in (call.error or "")
    assert len(told) == 1 and "failed after 3 attempts" in told[0] and "do not invent" in told[0]


async def test_tool_with_on_failure_fail_ends_the_run() -> None:
    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[ToolCallPart("crm_down", {"customer_id": "C1"})])

    project = make_project(tools={"crm_down": crm_down}, tool_config={"crm_down": {"on_failure": "fail"}})
    result = await runner_with(project, {"primary": FunctionModel(model)}).run("agent", "x")
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error.category is ErrorCategory.TOOL_ERROR
    assert result.model_requests == 1


async def slow_tool(seconds: float) -> str:
    """Take a while."""
    await asyncio.sleep(seconds)
    return "done"


@pytest.mark.parametrize("on_failure", ["report", "fail"])
async def test_tool_timeout(on_failure: str) -> None:
    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:
            return ModelResponse(parts=[ToolCallPart("slow_tool", {"seconds": 5})])
        return ModelResponse(parts=[TextPart("the lookup timed out")])

    project = make_project(
        tools={"slow_tool": slow_tool}, tool_config={"slow_tool": {"timeout": 0.05, "on_failure": on_failure}}
    )
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    result = await runner_with(project, {"primary": FunctionModel(model)}).run("agent", "x")
    assert loop.time() - t0 < 2
    [call] = result.tool_calls
    assert call.status == "timeout"
    if on_failure == "report":
        assert result.succeeded and result.output == "the lookup timed out"
    else:
        assert result.error is not None and result.error.category is ErrorCategory.TOOL_TIMEOUT


async def test_run_timeout_keeps_what_was_produced() -> None:
    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(
            parts=[TextPart("Looking that up now."), ToolCallPart("slow_tool", {"seconds": 30})]
        )

    project = make_project(tools={"slow_tool": slow_tool}, timeouts={"run": 0.3, "tool_call": 60})
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    result = await runner_with(project, {"primary": FunctionModel(model)}).run("agent", "x")
    assert loop.time() - t0 < 1.5
    assert result.status is RunStatus.TIMED_OUT
    assert result.error is not None and result.error.category is ErrorCategory.TIMED_OUT
    assert result.output == "Looking that up now."
    assert result.model_requests == 1 and result.tool_calls[0].name == "slow_tool"


def echo(text: str) -> str:
    """Echo."""
    return text


def always_tools(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[ToolCallPart("echo", {"text": "again " * 50})])


@pytest.mark.parametrize(
    ("limits", "max_requests"),
    [({"max_model_requests": 3}, 3), ({"max_tool_calls": 2}, 3), ({"max_tokens": 400}, 6)],
)
async def test_limits_end_the_run_as_limit_exceeded(limits: dict[str, int], max_requests: int) -> None:
    project = make_project(tools={"echo": echo}, limits=limits)
    result = await runner_with(project, {"primary": FunctionModel(always_tools)}).run("agent", "x")
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error.category is ErrorCategory.LIMIT_EXCEEDED
    assert 1 <= result.model_requests <= max_requests


async def test_bad_input_fails_before_any_model_call() -> None:
    calls = 0

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        nonlocal calls
        calls += 1
        return ModelResponse(parts=[TextPart("hi")])

    schema = {"type": "object", "required": ["from"], "properties": {"from": {"type": "string"}}}
    runner = runner_with(make_project(input_schema=schema), {"primary": FunctionModel(model)})
    for bad in ["not json", {"from": 3}, {}]:
        result = await runner.run("agent", bad)
        assert result.error is not None and result.error.category is ErrorCategory.BAD_INPUT, bad
    assert calls == 0
    ok = await runner.run("agent", '{"from": "a@b.c"}')
    assert ok.succeeded and calls == 1


def failing(statuses: list[int], then: str = "fine") -> tuple[FunctionModel, list[float]]:
    """A model failing with the given HTTP statuses in turn, then answering; records call times."""
    times: list[float] = []
    queue = list(statuses)

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        times.append(time.monotonic())
        if queue:
            raise ModelHTTPError(queue.pop(0), "m", headers={})
        return ModelResponse(parts=[TextPart(then)])

    return FunctionModel(model), times


async def test_retries_back_off_exponentially() -> None:
    model, times = failing([503, 500])
    project = make_project(retry_options={"attempts": 3, "initial_delay": 0.1, "jitter": 0})
    events: list[RunEvent] = []
    result = await runner_with(project, {"primary": model}).run("agent", "x", on_event=events.append)
    assert result.succeeded and result.model_requests == 3 and result.retries == 2
    assert [c.retry_delay_s for c in result.model_calls] == [0.1, 0.2, None]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2
    assert [e.delay_s for e in events if isinstance(e, ModelRetrying)] == [0.1, 0.2]


async def test_spent_retry_budget_fails_with_the_model_category() -> None:
    model, times = failing([429] * 10)
    project = make_project(retry_options={"attempts": 4, "initial_delay": 0.01})
    result = await runner_with(project, {"primary": model}).run("agent", "x")
    assert result.error is not None and result.error.category is ErrorCategory.MODEL_RATE_LIMITED
    assert len(times) == 4 == result.model_requests


async def test_client_errors_are_not_retried() -> None:
    model, times = failing([400])
    project = make_project(retry_options={"attempts": 5, "initial_delay": 0.01})
    result = await runner_with(project, {"primary": model}).run("agent", "x")
    assert result.error is not None and result.error.category is ErrorCategory.MODEL_UNAVAILABLE
    assert len(times) == 1


async def test_fallback_model_takes_over_after_retries() -> None:
    primary, primary_times = failing([503] * 10)
    backup, backup_times = failing([], then="from backup")
    project = make_project(fallbacks=1, retry_options={"attempts": 2, "initial_delay": 0.01})
    events: list[RunEvent] = []
    runner = runner_with(project, {"primary": primary, "fallback1": backup})
    result = await runner.run("agent", "x", on_event=events.append)
    assert result.succeeded and result.output == "from backup"
    assert (len(primary_times), len(backup_times)) == (2, 1)
    assert result.usage["openai-compatible:primary"].requests == 2
    assert result.usage["openai-compatible:primary"].input_tokens == 0
    assert result.usage["openai-compatible:fallback1"].requests == 1
    assert [e for e in events if isinstance(e, ModelFallback)] == [
        ModelFallback(
            "openai-compatible:primary", "openai-compatible:fallback1", ErrorCategory.MODEL_UNAVAILABLE
        )
    ]


async def test_retry_never_sleeps_past_the_run_deadline() -> None:
    model, times = failing([503] * 10)
    project = make_project(
        retry_options={"attempts": 10, "initial_delay": 5, "jitter": 0}, timeouts={"run": 1.0}
    )
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    result = await runner_with(project, {"primary": model}).run("agent", "x")
    assert loop.time() - t0 < 0.5
    assert result.error is not None and result.error.category is ErrorCategory.MODEL_UNAVAILABLE
    assert len(times) == 1


async def test_cancel_ends_the_run_as_cancelled() -> None:
    project = make_project(tools={"slow_tool": slow_tool})

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[ToolCallPart("slow_tool", {"seconds": 30})])

    cancel = asyncio.Event()
    runner = runner_with(project, {"primary": FunctionModel(model)})
    task = asyncio.create_task(runner.run("agent", "x", cancel=cancel))
    await asyncio.sleep(0.1)
    cancel.set()
    result = await asyncio.wait_for(task, 2)
    assert result.status is RunStatus.CANCELLED
    assert result.error is not None and result.error.category is ErrorCategory.CANCELLED


async def test_concurrent_runs_keep_their_own_records() -> None:
    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        prompt = str(messages[0].parts[-1].content)
        if len(messages) == 1:
            return ModelResponse(parts=[ToolCallPart("echo", {"text": prompt})])
        return ModelResponse(parts=[TextPart(f"done {prompt}")])

    runner = runner_with(make_project(tools={"echo": echo}), {"primary": FunctionModel(model)})
    results = await asyncio.gather(*(runner.run("agent", f"p{i}") for i in range(20)))
    for i, result in enumerate(results):
        assert result.output == f"done p{i}"
        assert [c.args for c in result.tool_calls] == [{"text": f"p{i}"}]
        assert result.model_requests == 2
