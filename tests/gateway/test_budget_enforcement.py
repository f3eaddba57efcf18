"""Hard budgets enforced by the run loop (`keel.runtime.budget_guard`), on both backends, against
the fake provider over real HTTP.

The acceptance test: 100 concurrent runs against a tenant's daily USD budget worth 30 runs, through
`Runner.run` and through durable runs (`DurableRuns`): the settled spend never passes the limit,
about 30 runs succeed, the others end `budget_exceeded`, and the fake provider saw exactly the
requests that were allowed. Then: a run refused mid-way keeps what it did, a soft threshold is
reported once, no budgets means no ledger, and budgets without storage are a configuration error.
"""

from __future__ import annotations

import asyncio
import logging
import textwrap
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from keel.config import load_project
from keel.config.project import Project
from keel.config.schema import ModelPrice, ProjectConfig
from keel.config.validation import BUDGETS_NEED_STORAGE, storage_issues
from keel.errors import ConfigError, ErrorCategory, UsageError
from keel.runtime.budget_guard import BudgetedModel, estimate_input_tokens
from keel.runtime.events import BudgetThreshold, RunEvent
from keel.runtime.result import RunResult, RunStatus
from keel.runtime.runner import Runner
from keel.store import RunStore
from keel.store.engine import sync_engine
from keel.store.ledger import BudgetLedger
from keel.store.tables import budget_counters, budget_entries, budget_holds
from keel.testing.fake_llm import FakeLLMThread, Faults, Reply, Rule, RuleScript, ToolCallReply, When
from tests.runtime.helpers import make_project

TENANT = "acme"
# $1000 per million tokens: a token costs $0.001, so USD amounts are token counts / 1000.
PRICE = ModelPrice(input_per_mtok=1000, output_per_mtok=1000)
RUNS = 100
FITS = 30


@pytest.fixture
def fake() -> Iterator[FakeLLMThread]:
    with FakeLLMThread(Reply(text="ok")) as server:
        server.set_latency(20)
        yield server


def budget_project(
    fake: FakeLLMThread,
    limits: list[dict[str, Any]],
    *,
    estimate_output_tokens: int = 1,
    tracing: bool = False,
    **config: Any,
) -> Project:
    return make_project(
        base_url=fake.base_url,
        price=PRICE,
        project_config={
            "storage": {"enabled": True},
            "tracing": {"enabled": tracing},
            "gateway": {"budgets": {"estimate_output_tokens": estimate_output_tokens, "limits": limits}},
        },
        **config,
    )


def count_rows(url: str) -> dict[str, int]:
    engine = sync_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table.name: int(connection.execute(select(func.count()).select_from(table)).scalar_one())
                for table in (budget_counters, budget_holds, budget_entries)
            }
    finally:
        engine.dispose()


def one_run_cost(fake: FakeLLMThread) -> Decimal:
    """What one run of the acceptance agent costs: its only request's tokens at $0.001."""
    record = fake.stats().log[-1]
    return Decimal(record.prompt_tokens + record.completion_tokens) / 1000


def check_acceptance(
    outcomes: list[tuple[str, str | None, int]], fake: FakeLLMThread, limit: Decimal
) -> None:
    """(status, error category, model requests) per run, against what the provider and ledger saw."""
    succeeded = [o for o in outcomes if o[0] == "succeeded"]
    refused = [o for o in outcomes if o[1] == ErrorCategory.BUDGET_EXCEEDED.value]
    assert len(succeeded) + len(refused) == RUNS, Counter((o[0], o[1]) for o in outcomes)
    assert 25 <= len(succeeded) <= FITS, len(succeeded)
    assert all(o[2] == 0 for o in refused)  # a refused run never reached the provider
    stats = fake.stats()
    print(  # shown with -s: the figures of the acceptance test
        f"budget {limit} USD: {len(succeeded)} succeeded, {len(refused)} budget_exceeded; "
        f"fake provider: {stats.requests} requests ({stats.ok} ok, {stats.total_tokens} tokens)"
    )
    assert stats.requests == stats.ok == sum(o[2] for o in outcomes) == len(succeeded)


# -- 1. the acceptance test: 100 concurrent runs, a budget worth 30 ------------------------------


async def test_concurrent_runs_never_overshoot_a_tenant_budget(store_url: str, fake: FakeLLMThread) -> None:
    # One probe run on an unlimited budget measures what a run costs; the budget is worth 30.
    probe = budget_project(fake, [{"scope": "tenant", "unit": "usd", "period": "day", "limit": "1000"}])
    async with Runner(probe, database_url=store_url) as runner:
        assert (await runner.run("agent", "item 000", tenant_id="probe")).succeeded
    cost = one_run_cost(fake)
    limit = cost * FITS
    fake.reset()

    project = budget_project(fake, [{"scope": "tenant", "unit": "usd", "period": "day", "limit": str(limit)}])
    async with Runner(project, database_url=store_url) as runner:
        results = await asyncio.gather(
            *(runner.run("agent", f"item {i:03d}", tenant_id=TENANT) for i in range(RUNS))
        )
        assert runner.budget_guard is not None
        spend = await runner.budget_guard.ledger.spent("tenant", TENANT, "day", tenant_id=TENANT)
        entries = await runner.budget_guard.ledger.entries(tenant_id=TENANT, limit=1000)

    check_acceptance(
        [(r.status.value, r.error.category.value if r.error else None, r.model_requests) for r in results],
        fake,
        limit,
    )
    succeeded = [r for r in results if r.succeeded]
    assert spend.settled_usd <= limit
    assert spend.reserved_usd == 0 and spend.reserved_tokens == 0  # every hold settled or released
    assert spend.settled_usd == sum(r.cost_usd or 0 for r in succeeded) == cost * len(succeeded)
    assert spend.settled_tokens == sum(r.total_tokens for r in succeeded)
    kinds = Counter(entry.kind for entry in entries)
    assert kinds == {"reserve": len(succeeded), "settle": len(succeeded)}
    # The refusal names the budget: scope, id, limit, unit and period.
    refusal = next(r for r in results if not r.succeeded)
    assert refusal.status is RunStatus.FAILED
    assert refusal.error is not None
    assert f"tenant '{TENANT}': {limit.normalize()} USD per day" in refusal.error.message
    # The run history has the refused runs with their category.
    async with RunStore(store_url) as store:
        stored = await store.get_run(refusal.run_id)
    assert stored is not None and stored.error_category == ErrorCategory.BUDGET_EXCEEDED.value


DURABLE_AGENT = """\
name: worker
model: fake
instructions: Answer.
queue: {worker_concurrency: 100}
"""


def durable_project(root: Path, fake: FakeLLMThread, limit: Decimal) -> Path:
    (root / "agents").mkdir(parents=True)
    (root / "keel.yaml").write_text(
        textwrap.dedent(
            f"""\
            project: budgets
            models:
              fake:
                provider: openai-compatible
                model: fake-model
                base_url: {fake.base_url}
                price: {{input_per_mtok: 1000, output_per_mtok: 1000}}
            server: {{poll_interval: 0.05, heartbeat_interval: 0.5, worker_timeout: 2, shutdown_grace: 1}}
            gateway:
              budgets:
                estimate_output_tokens: 1
                limits:
                  - {{scope: tenant, unit: usd, period: day, limit: "{limit}", soft_threshold: 0.5}}
            """
        )
    )
    (root / "agents" / "worker.yaml").write_text(DURABLE_AGENT)
    return root


async def test_concurrent_durable_runs_never_overshoot_a_tenant_budget(
    store_url: str, fake: FakeLLMThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbos import DBOS

    from keel.durable.service import DurableRuns, Submission

    monkeypatch.setenv("KEEL_DATABASE_URL", store_url)
    # What one run costs, measured on an unlimited budget (no DBOS needed for that).
    probe = load_project(durable_project(tmp_path / "probe", fake, Decimal(1000)))
    async with Runner(probe) as runner:
        assert (await runner.run("worker", "item 000", tenant_id="probe")).succeeded
    cost = one_run_cost(fake)
    limit = cost * FITS
    fake.reset()

    project = load_project(durable_project(tmp_path / "p", fake, limit))
    runner = Runner(project)
    runs = DurableRuns(runner, worker_id="budget-test")
    await runs.start()
    try:
        submitted = [
            await runs.submit(Submission(agent="worker", input=f"item {i:03d}", tenant_id=TENANT))
            for i in range(RUNS)
        ]
        views = await asyncio.wait_for(
            asyncio.gather(*(runs.wait(s.run_id, 120) for s in submitted)), timeout=180
        )
        assert all(v["status"] in ("succeeded", "failed") for v in views), Counter(v["status"] for v in views)
        assert runner.budget_guard is not None
        spend = await runner.budget_guard.ledger.spent("tenant", TENANT, "day", tenant_id=TENANT)
        thresholds = 0
        for s in submitted:
            async for _, event in runs.events(s.run_id):
                thresholds += event.get("type") == "budget_threshold"
        entries = len(await runner.budget_guard.ledger.entries(tenant_id=TENANT, limit=1000))
        requests = fake.stats().requests
        # Replay: a fork re-executes a run from its recorded steps. The model step returns its
        # recorded response, or its recorded refusal, without reserving or calling the provider.
        replayed: dict[str, Any] = {}
        for view in (
            next(v for v in views if v["status"] == "succeeded"),
            next(v for v in views if v["status"] != "succeeded"),
        ):
            steps = await DBOS.list_workflow_steps_async(view["run_id"])
            fork = await DBOS.fork_workflow_async(
                view["run_id"], max(step["function_id"] for step in steps) + 1
            )
            replayed[view["status"]] = await fork.get_result()
        assert len(await runner.budget_guard.ledger.entries(tenant_id=TENANT, limit=1000)) == entries
        assert fake.stats().requests == requests
    finally:
        await runs.stop()
        await runner.aclose()

    outcomes = [
        (v["status"], (v.get("error") or {}).get("category"), len(v.get("model_calls") or ())) for v in views
    ]
    check_acceptance(outcomes, fake, limit)
    succeeded = sum(1 for o in outcomes if o[0] == "succeeded")
    assert spend.settled_usd <= limit
    assert spend.settled_usd == cost * succeeded
    assert spend.reserved_usd == 0
    assert thresholds == 1  # the soft threshold (half the budget) was crossed by one run, once
    assert replayed["succeeded"]["status"] == "succeeded" and len(replayed["succeeded"]["model_calls"]) == 1
    assert replayed["failed"]["error"]["category"] == "budget_exceeded"
    assert replayed["failed"]["model_calls"] == []


# -- 2. a run refused mid-way keeps what it did --------------------------------------------------


def lookup(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"


TOOL_SCRIPT = RuleScript(
    [
        Rule(when=When(last_is_tool_result=True), reply=Reply(text="It is sunny in Paris.")),
        Rule(reply=Reply(text="Let me look.", tool_calls=[ToolCallReply("lookup", {"city": "Paris"})])),
    ]
)


async def test_a_run_refused_after_a_tool_call_keeps_its_first_response_and_tool_result(
    store_url: str, fake: FakeLLMThread
) -> None:
    fake.set_script(TOOL_SCRIPT)
    # A run budget of 300 tokens, 200 of them reserved for each request's output: the first
    # request fits (~100 + 200), the second cannot (~100 spent + ~120 + 200).
    project = budget_project(
        fake,
        [{"scope": "run", "unit": "tokens", "period": "run", "limit": 300}],
        estimate_output_tokens=200,
        tools={"lookup": lookup},
    )
    events: list[RunEvent] = []
    async with Runner(project, database_url=store_url) as runner:
        result = await runner.run("agent", "Weather in Paris?", tenant_id=TENANT, on_event=events.append)
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error.category is ErrorCategory.BUDGET_EXCEEDED
    assert f"run '{result.run_id}' of tenant '{TENANT}': 300 tokens for the run" in result.error.message
    assert fake.stats().requests == 1  # the second request never reached the provider
    assert [c.status for c in result.model_calls] == ["ok"]
    assert [(t.name, t.status) for t in result.tool_calls] == [("lookup", "ok")]
    assert result.output == "Let me look."  # the text produced so far
    assert result.total_tokens == fake.stats().total_tokens > 0
    async with RunStore(store_url) as store:
        stored = await store.get_run(result.run_id)
    assert stored is not None
    assert stored.status == "failed" and stored.error_category == "budget_exceeded"
    assert stored.tool_calls == 1 and stored.model_requests == 1


# -- 3. soft thresholds ---------------------------------------------------------------------------


async def test_a_soft_threshold_is_reported_once_as_an_event_a_log_line_and_a_span_event(
    store_url: str, fake: FakeLLMThread, caplog: pytest.LogCaptureFixture
) -> None:
    limits = [{"scope": "user", "unit": "tokens", "period": "day", "limit": 1000, "soft_threshold": 0.3}]
    project = budget_project(fake, limits, tracing=True)
    events: list[tuple[str, RunEvent]] = []
    caplog.set_level(logging.WARNING, logger="keel.budgets")
    async with Runner(project, database_url=store_url) as runner:
        results: list[RunResult] = []
        for i in range(20):  # about 20 tokens a run: the threshold (300) is crossed once, midway
            result = await runner.run(
                "agent",
                f"item {i:03d}",
                tenant_id=TENANT,
                user_id="ada",
                on_event=lambda event, n=i: events.append((str(n), event)),
            )
            results.append(result)
    assert all(r.succeeded for r in results)
    crossings = [(n, e) for n, e in events if isinstance(e, BudgetThreshold)]
    assert len(crossings) == 1
    n, event = crossings[0]
    assert event.budget["scope"] == "user" and event.budget["scope_id"] == "ada"
    assert event.budget["tenant_id"] == TENANT
    assert event.threshold == "300" and not event.hard
    assert 300 <= int(event.spent) < 400
    logged = [r for r in caplog.records if r.name == "keel.budgets"]
    assert len(logged) == 1 and "soft threshold 300 reached" in logged[0].getMessage()
    async with RunStore(store_url) as store:
        spans = await store.spans_for_run(results[int(n)].run_id)
    run_span = next(s for s in spans if s.name.startswith("invoke_agent"))
    [span_event] = [e for e in run_span.events if e.name == "budget_threshold"]
    assert span_event.attributes["keel.budget.scope"] == "user"
    assert span_event.attributes["keel.budget.threshold"] == "300"


# -- 4. no budgets: no ledger ----------------------------------------------------------------------


async def test_without_budgets_no_ledger_exists_and_no_budget_table_is_touched(
    store_url: str, fake: FakeLLMThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_ledger(*args: object, **kwargs: object) -> None:
        raise AssertionError("a BudgetLedger was created without budgets")

    monkeypatch.setattr(BudgetLedger, "__init__", no_ledger)
    project = make_project(base_url=fake.base_url, price=PRICE, project_config={"storage": {"enabled": True}})
    async with Runner(project, database_url=store_url) as runner:
        result = await runner.run("agent", "hello", tenant_id=TENANT, user_id="ada")
        assert runner.budget_guard is None
        assert not isinstance(runner.compiled("agent").agent.model, BudgetedModel)
    assert result.succeeded
    assert count_rows(store_url) == {"budget_counters": 0, "budget_holds": 0, "budget_entries": 0}


# -- 5. budgets need storage -----------------------------------------------------------------------


def test_budgets_without_storage_are_a_configuration_error(fake: FakeLLMThread) -> None:
    limits = [{"scope": "tenant", "unit": "usd", "period": "day", "limit": "5"}]
    project = make_project(
        base_url=fake.base_url,
        price=PRICE,
        project_config={"gateway": {"budgets": {"limits": limits}}},  # storage disabled
    )
    with pytest.raises(ConfigError) as caught:
        Runner(project)
    [issue] = caught.value.issues
    assert issue.field == "gateway.budgets.limits"
    assert issue.message == BUDGETS_NEED_STORAGE
    assert "storage.enabled" in str(caught.value)
    assert storage_issues(make_project(base_url=fake.base_url).config) == []


def test_a_loaded_project_with_budgets_and_no_storage_is_located_in_keel_yaml(tmp_path: Path) -> None:
    from keel.config.yaml_source import flatten, parse_yaml

    text = textwrap.dedent(
        """\
        project: p
        storage: {enabled: false}
        gateway:
          budgets:
            limits:
              - {scope: tenant, unit: usd, period: day, limit: "5"}
        """
    )
    (tmp_path / "agents").mkdir()
    (tmp_path / "keel.yaml").write_text(text)
    (tmp_path / "agents" / "a.yaml").write_text("name: a\nmodel: openai:gpt-4o-mini\n")
    # Loading (and so `keel check`) refuses it, naming the file, line and field.
    with pytest.raises(ConfigError) as refused:
        load_project(tmp_path, environ={})
    [issue] = refused.value.issues
    assert (issue.file, issue.line, issue.field) == ("keel.yaml", 5, "gateway.budgets.limits")
    tree, _ = parse_yaml(text, "keel.yaml")
    assert tree is not None
    config = ProjectConfig.model_validate(flatten(tree).data)
    [again] = storage_issues(config, flatten(tree))
    assert (again.line, again.field) == (5, "gateway.budgets.limits")


# -- the reservation: estimate, settle, release ----------------------------------------------------


async def test_a_failed_request_is_released_and_a_streamed_one_settled(
    store_url: str, fake: FakeLLMThread
) -> None:
    limits = [{"scope": "tenant", "unit": "tokens", "period": "day", "limit": 100_000}]
    project = budget_project(fake, limits, retry_options={"attempts": 1})
    async with Runner(project, database_url=store_url) as runner:
        fake.set_faults(Faults(sequence=["500"]))
        failed = await runner.run("agent", "hello", tenant_id=TENANT)
        fake.set_faults(Faults())
        streamed = await runner.run("agent", "hello", tenant_id=TENANT, stream=True)
        assert runner.budget_guard is not None
        ledger = runner.budget_guard.ledger
        spend = await ledger.spent("tenant", TENANT, "day", tenant_id=TENANT)
        failed_entries = [e.kind for e in await ledger.entries(tenant_id=TENANT, run_id=failed.run_id)]
        streamed_entries = await ledger.entries(tenant_id=TENANT, run_id=streamed.run_id)
    assert failed.error is not None and failed.error.category is ErrorCategory.MODEL_UNAVAILABLE
    assert failed_entries == ["reserve", "release"]
    assert streamed.succeeded
    assert [e.kind for e in streamed_entries] == ["reserve", "settle"]
    assert streamed_entries[1].tokens == streamed.total_tokens
    assert spend.settled_tokens == streamed.total_tokens and spend.reserved_tokens == 0


async def test_the_estimate_covers_what_the_fake_provider_counts(fake: FakeLLMThread) -> None:
    """The char-based estimate stays at or above the provider's prompt count (the fake counts like
    a tokenizer of English text), with tools, tool calls and tool results in the conversation."""
    from pydantic_ai.models import ModelRequestParameters

    seen: list[tuple[int, int]] = []
    fake.set_script(TOOL_SCRIPT)
    project = make_project(base_url=fake.base_url, tools={"lookup": lookup})
    runner = Runner(project)

    class Spy(BudgetedModel):
        async def request(self, messages: Any, settings: Any, parameters: ModelRequestParameters) -> Any:
            response = await self.wrapped.request(messages, settings, parameters)
            seen.append((estimate_input_tokens(messages, parameters), response.usage.input_tokens))
            return response

    compiled = runner.compiled("agent")
    compiled.agent._model = Spy(compiled.agent.model, models=(), price=lambda *a: None, output_tokens=1)  # type: ignore[arg-type]
    async with runner:
        assert (await runner.run("agent", "Weather in Paris?")).succeeded
    assert len(seen) == 2
    for estimate, actual in seen:
        assert actual <= estimate <= actual * 1.5 + 20, seen


def test_usd_budgets_need_a_price_for_every_model(fake: FakeLLMThread, store_url: str) -> None:
    project = make_project(
        base_url=fake.base_url,
        project_config={
            "storage": {"enabled": True},
            "gateway": {
                "budgets": {"limits": [{"scope": "run", "unit": "usd", "period": "run", "limit": 1}]}
            },
        },
    )
    runner = Runner(project, database_url=store_url)
    with pytest.raises(UsageError, match="has no known price"):
        runner.compiled("agent")


async def test_a_request_cut_by_the_run_timeout_is_released(store_url: str, fake: FakeLLMThread) -> None:
    fake.set_latency(3000)
    limits = [{"scope": "tenant", "unit": "tokens", "period": "day", "limit": 100_000}]
    project = budget_project(fake, limits, timeouts={"run": 0.5})
    async with Runner(project, database_url=store_url) as runner:
        result = await runner.run("agent", "hello", tenant_id=TENANT)
        assert runner.budget_guard is not None
        ledger = runner.budget_guard.ledger
        kinds = [e.kind for e in await ledger.entries(tenant_id=TENANT, run_id=result.run_id)]
        spend = await ledger.spent("tenant", TENANT, "day", tenant_id=TENANT)
    assert result.status is RunStatus.TIMED_OUT
    assert kinds == ["reserve", "release"]
    assert spend.reserved_tokens == 0 and spend.settled_tokens == 0


async def test_an_unreachable_ledger_fails_closed(
    store_url: str, fake: FakeLLMThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise OSError("connection refused")

    limits = [{"scope": "tenant", "unit": "tokens", "period": "day", "limit": 100_000}]
    project = budget_project(fake, limits)
    async with Runner(project, database_url=store_url) as runner:
        monkeypatch.setattr(BudgetLedger, "reserve", broken)
        result = await runner.run("agent", "hello", tenant_id=TENANT)
    assert result.error is not None and result.error.category is ErrorCategory.INTERNAL
    assert "the budget ledger could not be reached" in result.error.message
    assert fake.stats().requests == 0
