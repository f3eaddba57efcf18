"""Counters: exactly what the fake provider saw and what it put in `usage`."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from keel.testing.fake_llm import OUTCOMES, FakeLLMThread, Faults, Reply, Stats, ToolCallReply
from tests.testing.support import USER_HI

TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


async def test_counters_are_exact(fake_llm: FakeLLMThread, client: AsyncOpenAI) -> None:
    fake_llm.set_faults(Faults(sequence=["ok", "ok", "429", "ok"]))
    fake_llm.set_script(
        {
            "rules": [
                {
                    "when": {"tool_offered": "lookup"},
                    "reply": {"tool_calls": [{"name": "lookup", "arguments": {}}]},
                },
                {"name": "plain", "reply": "plain text answer"},
            ]
        }
    )
    usages = []
    first = await client.chat.completions.create(model="model-a", messages=USER_HI)
    usages.append(first.usage)
    second = await client.chat.completions.create(model="model-a", messages=USER_HI, tools=[TOOL])
    usages.append(second.usage)
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model="model-b", messages=USER_HI)
    stream = await client.chat.completions.create(
        model="model-b",
        messages=[*USER_HI, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "again"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    usages.append(chunks[-1].usage)

    stats = fake_llm.stats()
    assert all(usage is not None for usage in usages)
    assert stats.requests == 4
    assert stats.outcomes == {**dict.fromkeys(OUTCOMES, 0), "ok": 3, "429": 1}
    assert stats.ok == 3
    assert stats.prompt_tokens == sum(u.prompt_tokens for u in usages if u)
    assert stats.completion_tokens == sum(u.completion_tokens for u in usages if u)
    assert stats.total_tokens == sum(u.total_tokens for u in usages if u)
    assert (stats.streaming, stats.non_streaming) == (1, 3)
    model_a, model_b = stats.models["model-a"], stats.models["model-b"]
    assert (model_a.requests, model_b.requests) == (2, 2)
    assert model_a.outcomes == {"ok": 2}
    assert model_b.outcomes == {"429": 1, "ok": 1}
    assert usages[2] is not None and model_b.prompt_tokens == usages[2].prompt_tokens
    assert model_a.completion_tokens == sum(u.completion_tokens for u in usages[:2] if u)

    log = stats.log
    assert [r.index for r in log] == [1, 2, 3, 4]
    assert [r.outcome for r in log] == ["ok", "ok", "429", "ok"]
    assert [r.rule for r in log] == ["plain", "rules[0]", None, "plain"]
    assert [r.has_tools for r in log] == [False, True, False, False]
    assert [r.stream for r in log] == [False, False, False, True]
    assert [r.last_role for r in log] == ["user"] * 4
    assert log[2].prompt_tokens == log[2].completion_tokens == 0
    assert log[0].timestamp <= log[3].timestamp

    assert [req.model for req in fake_llm.requests()] == ["model-a", "model-a", "model-b", "model-b"]
    assert fake_llm.requests()[3].last_user == "again"


async def test_stats_and_reset_over_http(fake_llm: FakeLLMThread, client: AsyncOpenAI) -> None:
    fake_llm.set_script({"rules": [{"replies": ["one", "two"]}]})
    fake_llm.set_faults(Faults(sequence=["ok", "500"]))
    await client.chat.completions.create(model="m", messages=USER_HI)
    async with httpx.AsyncClient(base_url=fake_llm.url) as http:
        over_http = (await http.get("/_fake/stats")).json()
        assert over_http == fake_llm.stats().to_json()
        assert Stats.from_json(over_http) == fake_llm.stats()
        bodies = (await http.get("/_fake/requests")).json()
        assert bodies == [{"model": "m", "messages": USER_HI}]

        assert (await http.post("/_fake/reset")).json() == {"ok": True}
        zeroed = fake_llm.stats()
        assert zeroed.requests == 0 and zeroed.log == () and zeroed.models == {}
        assert zeroed.prompt_tokens == zeroed.completion_tokens == 0
        assert fake_llm.requests() == []
    # sequences were rewound: reply "one" again, and the fault sequence starts over with "ok"
    again = await client.chat.completions.create(model="m", messages=USER_HI)
    assert again.choices[0].message.content == "one"
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="m", messages=USER_HI)


async def test_log_is_bounded() -> None:
    with FakeLLMThread(Reply(tool_calls=[ToolCallReply("t")]), log_size=3) as fake:
        async with AsyncOpenAI(base_url=fake.base_url, api_key="x", max_retries=0) as client:
            for _ in range(5):
                await client.chat.completions.create(model="m", messages=USER_HI)
        stats = fake.stats()
    assert stats.requests == 5
    assert [record.index for record in stats.log] == [3, 4, 5]
    assert len(fake.requests()) == 3
