"""Every run stored, traced and costed, end to end: Runner → fake provider → store, on SQLite and Postgres."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal

import pytest

from keel.config.schema import ModelPrice
from keel.runtime.result import RunResult
from keel.runtime.runner import Runner
from keel.store import RunStore, SpanRecord
from keel.testing.fake_llm import FakeLLMThread, Faults, Reply, Rule, RuleScript, ToolCallReply, When
from tests.runtime.helpers import make_project

PRICE = ModelPrice(input_per_mtok=3, output_per_mtok=15)
SCRIPT = RuleScript(
    [
        Rule(when=When(last_is_tool_result=True), reply=Reply(text="It is sunny in Paris.")),
        Rule(reply=Reply(tool_calls=[ToolCallReply("lookup", {"city": "Paris"})])),
    ]
)


def lookup(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLMThread]:
    with FakeLLMThread(SCRIPT, seed=7) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeLLMThread) -> None:
    fake.restore_defaults()
    fake.set_script(SCRIPT)
    fake.reset()


def project(fake: FakeLLMThread, attempts: int = 3, **tracing: object):  # type: ignore[no-untyped-def]
    return make_project(
        base_url=fake.base_url,
        tools={"lookup": lookup},
        price=PRICE,
        fallbacks=1,
        retry_options={"attempts": attempts, "initial_delay": 0.01},
        project_config={
            "storage": {"enabled": True, "flush_interval": 0.05},
            "tracing": {"enabled": True, **tracing},
        },
    )


def tree(spans: list[SpanRecord]) -> tuple[SpanRecord, dict[str, list[SpanRecord]]]:
    [root] = [s for s in spans if s.parent_span_id is None]
    children: dict[str, list[SpanRecord]] = {}
    for span in spans:
        if span.parent_span_id is not None:
            children.setdefault(span.parent_span_id, []).append(span)
    return root, children


async def test_a_run_is_stored_with_its_trace(fake: FakeLLMThread, database_url: str) -> None:
    fake.set_faults(Faults(sequence=["429", "ok", "503", "ok"], retry_after=0.01))
    async with Runner(project(fake), database_url=database_url) as runner:
        result = await runner.run(
            "agent",
            "weather?",
            trigger="cli",
            user_id="u1",
            session_id="s1",
            tags=["smoke"],
            metadata={"k": "v"},
        )
        assert await runner.flush()
    assert result.succeeded
    async with await RunStore.open(database_url) as store:
        stored = await store.get_run(result.run_id)
        spans = await store.spans_for_run(result.run_id)
    assert stored is not None
    assert (stored.status, stored.trigger, stored.user_id, stored.session_id) == (
        "succeeded",
        "cli",
        "u1",
        "s1",
    )
    assert stored.tags == ("smoke",)
    assert stored.metadata == {"k": "v"}
    assert stored.output == "It is sunny in Paris."
    assert (stored.model_requests, stored.retries, stored.tool_calls) == (4, 2, 1)
    assert (stored.input_tokens, stored.output_tokens) == (result.input_tokens, result.output_tokens)
    assert stored.cost_usd == result.cost_usd
    assert stored.cost_usd is not None
    assert stored.cost_usd > 0
    assert stored.trace_id == result.trace_id
    assert stored.tools_called == ("lookup",)

    root, children = tree(spans)
    assert root.name == "invoke_agent agent"
    assert root.attributes["keel.run.id"] == result.run_id
    assert root.trace_id == result.trace_id
    kids = children[root.span_id]
    chats = [s for s in kids if s.name.startswith("chat ")]
    tools = [s for s in kids if s.name.startswith("execute_tool ")]
    assert len(chats) == 4
    assert len(tools) == 1
    assert len(spans) == 6  # nothing else, nothing nested deeper
    assert [s.status for s in sorted(chats, key=lambda s: s.start_time)] == ["error", "ok", "error", "ok"]
    assert (
        sum(int(s.attributes.get("gen_ai.usage.input_tokens", 0)) for s in chats)
        == fake.stats().prompt_tokens
    )
    retried = [s for s in chats if any(e.name == "retry" for e in s.events)]
    assert len(retried) == 2


async def test_content_capture_off_keeps_prompts_out_of_spans(fake: FakeLLMThread, database_url: str) -> None:
    secret_prompt = "my card is 4111 1111 1111 1111, weather?"
    async with Runner(project(fake, capture_content="off"), database_url=database_url) as runner:
        result = await runner.run("agent", secret_prompt)
        await runner.flush()
    async with await RunStore.open(database_url) as store:
        spans = await store.spans_for_run(result.run_id)
    assert spans
    assert all("4111" not in str(span.attributes) and "4111" not in str(span.events) for span in spans)


@pytest.mark.slow
async def test_500_runs_with_20_percent_faults_tokens_match_the_provider(
    fake: FakeLLMThread, database_url: str
) -> None:
    fake.set_faults(Faults(rate=0.2, kinds={"429": 1, "500": 1, "503": 1, "reset": 1}, retry_after=0.01))
    # 5 attempts on each of two models: a request is lost only if 10 draws in a row fail (0.2**10).
    proj = project(fake, attempts=5)
    async with Runner(proj, database_url=database_url) as runner:
        gate = asyncio.Semaphore(25)

        async def one(i: int) -> RunResult:
            async with gate:
                return await runner.run("agent", f"weather {i}", tags=["bulk"])

        results = await asyncio.gather(*(one(i) for i in range(500)))
        assert await runner.flush(30)
        writer_stats = runner.writer.stats() if runner.writer else None
    assert [r.error for r in results if not r.succeeded] == []
    run_ids = [r.run_id for r in results]
    assert writer_stats is not None
    assert writer_stats.dropped == 0
    stats = fake.stats()
    async with await RunStore.open(database_url) as store:
        page = await store.list_runs(tag="bulk", limit=500)
        assert len(page.runs) == 500
        assert {r.id for r in page.runs} == set(run_ids)
        assert sum(r.input_tokens for r in page.runs) == stats.prompt_tokens
        assert sum(r.output_tokens for r in page.runs) == stats.completion_tokens
        assert sum(r.model_requests for r in page.runs) == stats.requests
        per_model = Counter[str]()
        for run in page.runs:
            for usage in run.usage:
                per_model[usage.model] += usage.requests
        assert sum(per_model.values()) == stats.requests
        expected_cost = (stats.prompt_tokens * Decimal(3) + stats.completion_tokens * Decimal(15)) / Decimal(
            10**6
        )
        assert sum((r.cost_usd or Decimal(0)) for r in page.runs) == expected_cost
        for run_id in run_ids:
            spans = await store.spans_for_run(run_id)
            run = next(r for r in page.runs if r.id == run_id)
            root, children = tree(spans)
            kids = children.get(root.span_id, [])
            assert len([s for s in kids if s.name.startswith("chat ")]) == run.model_requests
            assert len([s for s in kids if s.name.startswith("execute_tool ")]) == run.tool_calls
            assert all(s.trace_id == root.trace_id for s in spans)
            assert len(spans) == 1 + run.model_requests + run.tool_calls
