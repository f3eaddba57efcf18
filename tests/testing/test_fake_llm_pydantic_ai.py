"""pydantic-ai agents, end to end against the fake server over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

import pytest
from openai import AsyncOpenAI
from pydantic import BaseModel
from pydantic_ai import Agent, AgentStreamEvent, NativeOutput, RunContext
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from keel.testing.fake_llm import FakeLLMThread

WEATHER_RULES = {
    "rules": [
        {
            "name": "call-tool",
            "when": {
                "last_user_contains": "weather",
                "tool_offered": "get_weather",
                "last_is_tool_result": False,
            },
            "reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
        },
        {
            "name": "answer",
            "when": {"tool_result_name": "get_weather"},
            "reply": "In Paris: {last_tool_result}.",
        },
    ]
}


class Forecast(BaseModel):
    city: str
    celsius: int


@pytest.fixture
async def model(fake_llm: FakeLLMThread) -> AsyncIterator[OpenAIChatModel]:
    """A pydantic-ai model on the fake server, with a client closed after the test."""
    async with AsyncOpenAI(base_url=fake_llm.base_url, api_key="x", max_retries=0) as client:
        yield OpenAIChatModel("gpt-fake", provider=OpenAIProvider(openai_client=client))


def weather_agent(model: OpenAIChatModel) -> Agent[None, str]:
    agent = Agent(model, instructions="Answer weather questions.")

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """Current weather of a city."""
        return f"sunny and 21C in {city}"

    return agent


async def test_agent_with_a_tool(fake_llm: FakeLLMThread, model: OpenAIChatModel) -> None:
    fake_llm.set_script(WEATHER_RULES)
    result = await weather_agent(model).run("What is the weather?")

    assert result.output == "In Paris: sunny and 21C in Paris."
    stats = fake_llm.stats()
    assert [record.rule for record in stats.log] == ["call-tool", "answer"]
    assert [record.last_role for record in stats.log] == ["user", "tool"]
    usage = result.usage
    assert (usage.input_tokens, usage.output_tokens) == (stats.prompt_tokens, stats.completion_tokens)
    assert usage.requests == 2
    second = fake_llm.requests()[1]
    assert second.tool_results[0].name == "get_weather"
    assert second.messages[0].role == "system"


async def test_agent_streaming_with_a_tool(fake_llm: FakeLLMThread, model: OpenAIChatModel) -> None:
    fake_llm.set_script(WEATHER_RULES)
    agent = weather_agent(model)
    async with agent.run_stream("What is the weather?") as run:
        deltas = [delta async for delta in run.stream_text(delta=True)]
    assert "".join(deltas) == "In Paris: sunny and 21C in Paris."

    events: list[str] = []

    async def handler(ctx: RunContext[None], stream: AsyncIterable[AgentStreamEvent]) -> None:
        async for event in stream:
            events.append(event.event_kind)

    result = await agent.run("What is the weather?", event_stream_handler=handler)
    assert result.output == "In Paris: sunny and 21C in Paris."
    assert "function_tool_call" in events and "function_tool_result" in events
    stats = fake_llm.stats()
    assert stats.streaming == 4 and stats.ok == 4


async def test_structured_output_first_bad_then_good(fake_llm: FakeLLMThread, model: OpenAIChatModel) -> None:
    fake_llm.set_script(
        {"rules": [{"replies": [{"json": {"city": "Paris"}}, {"json": {"city": "Paris", "celsius": 21}}]}]}
    )
    result = await Agent(model, output_type=Forecast).run("Forecast?")  # output tool mode

    assert result.output == Forecast(city="Paris", celsius=21)
    assert fake_llm.stats().requests == 2  # the invalid output was sent back for a retry
    retry = fake_llm.requests()[1]
    assert retry.last_message is not None and retry.last_message.role == "tool"
    assert "celsius" in retry.last_message.content


async def test_structured_output_native_json_schema(fake_llm: FakeLLMThread, model: OpenAIChatModel) -> None:
    fake_llm.set_script({"rules": [{"reply": {"json": {"city": "Rome", "celsius": 30}}}]})
    result = await Agent(model, output_type=NativeOutput(Forecast)).run("Forecast?")

    assert result.output == Forecast(city="Rome", celsius=30)
    [seen] = fake_llm.requests()
    assert seen.response_format == "json_schema"
    assert seen.tools == ()
