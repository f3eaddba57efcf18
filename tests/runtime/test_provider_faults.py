"""The run loop against the fake provider over real HTTP: retries, Retry-After, faults, fallback, streaming."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest

from keel.errors import ErrorCategory
from keel.runtime.events import RunEvent, TextDelta
from keel.runtime.result import RunStatus
from keel.runtime.runner import Runner
from keel.testing.fake_llm import FakeLLMThread, Faults, Reply, Rule, RuleScript, ToolCallReply, When
from tests.runtime.helpers import make_project


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLMThread]:
    with FakeLLMThread() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeLLMThread) -> None:
    fake.restore_defaults()
    fake.reset()


def lookup(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"


TOOL_SCRIPT = RuleScript(
    [
        Rule(when=When(last_is_tool_result=True), reply=Reply(text="It is sunny in Paris.")),
        Rule(reply=Reply(tool_calls=[ToolCallReply("lookup", {"city": "Paris"})])),
    ]
)


async def test_retry_after_is_honoured_and_every_attempt_counted(fake: FakeLLMThread) -> None:
    fake.set_script(Reply(text="hello"))
    fake.set_faults(Faults(sequence=["429", "429", "ok"], retry_after=0.3))
    project = make_project(base_url=fake.base_url, retry_options={"attempts": 5, "initial_delay": 0.01})
    async with Runner(project) as runner:
        result = await runner.run("agent", "hi")
    assert result.succeeded
    assert result.output == "hello"
    stats = fake.stats()
    assert stats.requests == 3 == result.model_requests
    assert stats.outcomes["429"] == 2
    assert [c.retry_delay_s for c in result.model_calls] == [0.3, 0.3, None]
    times = [record.timestamp for record in stats.log]
    assert all(b - a >= 0.29 for a, b in itertools.pairwise(times))
    assert [c.error_category for c in result.model_calls[:2]] == [ErrorCategory.MODEL_RATE_LIMITED] * 2


@pytest.mark.parametrize("kind", ["500", "503", "reset", "malformed"])
async def test_transient_faults_are_retried(fake: FakeLLMThread, kind: str) -> None:
    fake.set_script(Reply(text="recovered"))
    fake.set_faults(Faults(sequence=[kind, kind, "ok"]))
    project = make_project(base_url=fake.base_url, retry_options={"attempts": 3, "initial_delay": 0.01})
    async with Runner(project) as runner:
        result = await runner.run("agent", "hi")
    assert result.succeeded, result.error
    assert result.output == "recovered"
    assert fake.stats().requests == 3 == result.model_requests
    assert result.retries == 2


async def test_hanging_provider_times_out_per_request(fake: FakeLLMThread) -> None:
    fake.set_faults(Faults(rate=1.0, kinds={"hang": 1}, hang_seconds=5))
    project = make_project(
        base_url=fake.base_url,
        retry_options={"attempts": 2, "initial_delay": 0.01},
        timeouts={"model_request": 0.3, "run": 10},
    )
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    async with Runner(project) as runner:
        result = await runner.run("agent", "hi")
    assert loop.time() - t0 < 3
    assert result.error is not None
    assert result.error.category is ErrorCategory.MODEL_TIMEOUT
    assert result.model_requests == 2


async def test_fallback_model_gets_the_request_after_the_primary_gives_up(fake: FakeLLMThread) -> None:
    fake.set_script(Reply(text="from whichever model answered"))
    fake.set_faults(Faults(sequence=["503", "503", "ok"]))
    project = make_project(
        base_url=fake.base_url, fallbacks=1, retry_options={"attempts": 2, "initial_delay": 0.01}
    )
    async with Runner(project) as runner:
        result = await runner.run("agent", "hi")
    assert result.succeeded
    models = [record.model for record in fake.stats().log]
    assert models == ["primary", "primary", "fallback1"]
    assert result.usage["openai-compatible:primary"].requests == 2
    assert result.usage["openai-compatible:primary"].input_tokens == 0
    assert result.usage["openai-compatible:fallback1"].requests == 1


async def test_tokens_recorded_equal_what_the_provider_counted(fake: FakeLLMThread) -> None:
    fake.set_script(TOOL_SCRIPT)
    fake.set_faults(Faults(rate=0.3, kinds={"429": 1, "500": 1}, retry_after=0.01))
    project = make_project(
        base_url=fake.base_url, tools={"lookup": lookup}, retry_options={"attempts": 8, "initial_delay": 0.01}
    )
    async with Runner(project) as runner:
        results = await asyncio.gather(*(runner.run("agent", f"weather {i}") for i in range(30)))
    assert all(r.succeeded for r in results)
    stats = fake.stats()
    assert sum(r.model_requests for r in results) == stats.requests
    assert sum(r.input_tokens for r in results) == stats.prompt_tokens
    assert sum(r.output_tokens for r in results) == stats.completion_tokens
    assert sum(r.retries for r in results) == stats.requests - stats.ok


async def test_streaming_delivers_text_deltas(fake: FakeLLMThread) -> None:
    text = "Streaming works: " + "word " * 40
    fake.set_script(Reply(text=text))
    events: list[RunEvent] = []
    async with Runner(make_project(base_url=fake.base_url)) as runner:
        result = await runner.run("agent", "hi", stream=True, on_event=events.append)
    assert result.succeeded
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 3
    assert "".join(deltas) == text == result.output
    stats = fake.stats()
    assert stats.streaming == 1
    assert result.model_calls[0].streamed
    assert result.input_tokens == stats.prompt_tokens
    assert result.output_tokens == stats.completion_tokens


async def test_streaming_with_tools_and_retry_before_the_stream_opens(fake: FakeLLMThread) -> None:
    fake.set_script(TOOL_SCRIPT)
    fake.set_faults(Faults(sequence=["503", "ok", "500", "ok"]))
    project = make_project(
        base_url=fake.base_url, tools={"lookup": lookup}, retry_options={"attempts": 3, "initial_delay": 0.01}
    )
    events: list[RunEvent] = []
    async with Runner(project) as runner:
        result = await runner.run("agent", "hi", stream=True, on_event=events.append)
    assert result.succeeded, result.error
    assert result.output == "It is sunny in Paris."
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "It is sunny in Paris."
    assert [t.status for t in result.tool_calls] == ["ok"]
    assert fake.stats().requests == 4 == result.model_requests


async def test_cut_stream_fails_the_run_cleanly(fake: FakeLLMThread) -> None:
    fake.set_script(Reply(text="a long answer " * 30))
    fake.set_faults(Faults(rate=1.0, kinds={"cut_stream": 1}))
    project = make_project(base_url=fake.base_url, retry_options={"attempts": 2, "initial_delay": 0.01})
    async with Runner(project) as runner:
        result = await runner.run("agent", "hi", stream=True)
    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert result.error.category in (ErrorCategory.MODEL_UNAVAILABLE, ErrorCategory.INVALID_OUTPUT)
