"""Action guardrails that count: `rate_limit` (in process and on Redis) and `spend_cap` (per run
from the run's record, per tenant per day in the store, on SQLite and PostgreSQL), in real runs on
the fake OpenAI-compatible server. The model asks for the tool calls the user's text lists
(`refund 300 then 250`), one at a time, then reports what happened."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from keel.config import load_project
from keel.errors import ConfigError
from keel.guardrails.spend_store import SpendStore
from keel.runtime.result import RunResult
from keel.runtime.runner import Runner
from keel.store import upgrade
from keel.testing.fake_llm import ChatRequest, FakeLLMThread, FunctionScript, Reply, ToolCallReply
from tests.tracing.helpers import Collector, make_tracing

REDIS_URL = os.environ.get("KEEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

TOOLS = '''
import tools_ledger


def refund(order: str, amount: float) -> str:
    """Refund an order."""
    tools_ledger.PAID.append(amount)
    return f"refunded {amount}"


def ping() -> str:
    """Ping."""
    tools_ledger.PAID.append(0)
    return "pong"
'''


def script(request: ChatRequest) -> Reply:
    """`refund A then B ...` or `ping N`: the calls in order, one per model turn, then a summary."""
    user = request.last_user or ""
    done = [m for m in request.messages if m.role == "tool"]
    if user.startswith("ping"):
        wanted: list[ToolCallReply] = [ToolCallReply("ping", {})] * int(user.split()[1])
    else:
        amounts = [float(a) for a in re.findall(r"[\d.]+", user)]
        wanted = [ToolCallReply("refund", {"order": "o1", "amount": a}) for a in amounts]
    if len(done) < len(wanted):
        return Reply(tool_calls=[wanted[len(done)]])
    return Reply(text=" | ".join(m.content for m in done))


@pytest.fixture
def fake(fake_llm: FakeLLMThread) -> FakeLLMThread:
    fake_llm.set_script(FunctionScript(script))
    return fake_llm


def make_project(root: Path, fake: FakeLLMThread, guardrails: str, *, keel_yaml: str = "") -> Path:
    (root / "agents").mkdir(parents=True)
    (root / "keel.yaml").write_text(
        f"project: limits\nmodels:\n  main: {{provider: openai-compatible, model: main, base_url: '{fake.base_url}'}}\n"
        "storage: {enabled: false}\ntracing: {enabled: true}\n" + keel_yaml
    )
    (root / "tools_pay.py").write_text(TOOLS)
    (root / "tools_ledger.py").write_text("PAID: list[float] = []\n")
    for name in ("payer", "other"):
        (root / "agents" / f"{name}.yaml").write_text(
            "model: main\ninstructions: You refund orders.\ntools: [tools_pay:refund, tools_pay:ping]\n"
            + guardrails
        )
    return root


def paid() -> list[float]:
    import sys

    module = sys.modules.get("tools_ledger")
    return list(module.PAID) if module is not None else []


def clear_paid() -> None:
    import sys

    module = sys.modules.get("tools_ledger")
    if module is not None:
        module.PAID.clear()


async def runs(runner: Runner, *calls: tuple[str, str, dict[str, Any]]) -> tuple[list[RunResult], Collector]:
    tracing, collector = make_tracing()
    runner.tracing = tracing
    results = [await runner.run(agent, text, **options) for agent, text, options in calls]
    return results, collector


def refused(result: RunResult) -> list[str]:
    return [c.error or "" for c in result.tool_calls if c.status == "error"]


def events(collector: Collector) -> list[dict[str, Any]]:
    return [dict(e.attributes) for r in collector.records for e in r.events if e.name == "keel.guardrail"]


# -- rate_limit -----------------------------------------------------------------------------------


def test_rate_limit_per_tenant_refuses_the_call_and_the_model_is_told(
    tmp_path: Path, fake: FakeLLMThread
) -> None:
    root = make_project(
        tmp_path / "p", fake, "guardrails:\n  - {type: rate_limit, tool: ping, calls: 2, window: 1h}\n"
    )

    async def go() -> tuple[list[RunResult], Collector]:
        clear_paid()
        async with Runner(load_project(root)) as runner:
            return await runs(
                runner,
                ("payer", "ping 1", {"tenant_id": "acme"}),
                ("payer", "ping 2", {"tenant_id": "acme"}),
                ("payer", "ping 1", {"tenant_id": "globex"}),
                ("other", "ping 1", {"tenant_id": "acme"}),  # another agent's guardrail: its own count
            )

    (first, second, globex, other), collector = asyncio.run(go())
    assert first.output == "pong" and refused(first) == []
    assert second.succeeded and [c.status for c in second.tool_calls] == ["ok", "error"]
    [reason] = refused(second)
    assert reason.startswith(
        "blocked by a guardrail: rate_limit: 2 calls of ping per 1h for this tenant reached"
    )
    assert "a guardrail refused this call" in (second.output or "")  # the model was told
    assert globex.output == "pong" and other.output == "pong"
    assert paid() == [0, 0, 0, 0]  # the refused call never ran
    [event] = events(collector)
    assert (event["point"], event["guardrail"], event["verdict"]) == ("action", "rate_limit", "block")


def test_rate_limit_per_user_and_per_run(tmp_path: Path, fake: FakeLLMThread) -> None:
    root = make_project(
        tmp_path / "p",
        fake,
        "guardrails:\n"
        "  - {name: per_run, type: rate_limit, calls: 2, window: 1h, per: run}\n"
        "  - {name: per_user, type: rate_limit, tool: ping, calls: 3, window: 1h, per: user}\n",
    )

    async def go() -> list[RunResult]:
        async with Runner(load_project(root)) as runner:
            results, _ = await runs(
                runner,
                ("payer", "ping 3", {"tenant_id": "acme", "user_id": "ann"}),  # per run: the 3rd refused
                ("payer", "ping 2", {"tenant_id": "acme", "user_id": "ann"}),  # ann's 3rd and 4th calls
                ("payer", "ping 1", {"tenant_id": "acme", "user_id": "bob"}),
                ("payer", "ping 1", {"tenant_id": "globex", "user_id": "ann"}),  # another tenant's ann
            )
            return results

    three, ann, bob, other_ann = asyncio.run(go())
    assert [c.status for c in three.tool_calls] == ["ok", "ok", "error"]
    assert refused(three)[0].startswith(
        "blocked by a guardrail: per_run: 2 calls of tools per 1h for this run"
    )
    # The call per_run refused was not counted by per_user (after it): ann's 3rd call passes.
    assert [c.status for c in ann.tool_calls] == ["ok", "error"]
    assert refused(ann)[0].startswith(
        "blocked by a guardrail: per_user: 3 calls of ping per 1h for this user"
    )
    assert refused(bob) == [] and refused(other_ann) == []


def test_rate_limit_on_redis_is_shared_by_runners(tmp_path: Path, fake: FakeLLMThread) -> None:
    tenant = f"t-{uuid.uuid4().hex[:12]}"  # fresh counters in a shared Redis
    root = make_project(
        tmp_path / "p",
        fake,
        "guardrails:\n  - {type: rate_limit, tool: ping, calls: 2, window: 1h}\n",
        keel_yaml="gateway:\n  rate_limits: {redis_url_env: KEEL_GUARD_REDIS}\n",
    )
    os.environ["KEEL_GUARD_REDIS"] = REDIS_URL
    try:

        async def go() -> list[RunResult]:
            async with Runner(load_project(root)) as one, Runner(load_project(root)) as two:
                results, _ = await runs(one, ("payer", "ping 1", {"tenant_id": tenant}))
                more, _ = await runs(two, ("payer", "ping 2", {"tenant_id": tenant}))
                return results + more

        first, second = asyncio.run(go())
    finally:
        del os.environ["KEEL_GUARD_REDIS"]
    assert refused(first) == []
    assert [c.status for c in second.tool_calls] == ["ok", "error"]  # the other runner's call counted
    assert "2 calls of ping per 1h for this tenant reached" in refused(second)[0]


def test_closing_the_runner_closes_its_guardrails_redis_connections(
    tmp_path: Path, fake: FakeLLMThread
) -> None:
    import redis

    name = f"keel-guard-{uuid.uuid4().hex[:12]}"
    root = make_project(
        tmp_path / "p",
        fake,
        "guardrails:\n  - {type: rate_limit, tool: ping, calls: 5, window: 1h}\n",
        keel_yaml="gateway:\n  rate_limits: {redis_url_env: KEEL_GUARD_REDIS}\n",
    )
    os.environ["KEEL_GUARD_REDIS"] = f"{REDIS_URL}?client_name={name}"
    probe = redis.Redis.from_url(REDIS_URL)

    def connections() -> int:
        return sum(1 for c in probe.client_list() if c.get("name") == name)

    try:

        async def go() -> tuple[int, int, list[RunResult]]:
            runner = Runner(load_project(root))
            await runner.start()
            results, _ = await runs(runner, ("payer", "ping 1", {}))
            open_before = connections()
            await runner.aclose()
            return open_before, connections(), results

        before, after, [result] = asyncio.run(go())
    finally:
        del os.environ["KEEL_GUARD_REDIS"]
        probe.close()
    assert [c.status for c in result.tool_calls] == ["ok"]
    assert before >= 1  # the limiter talked to Redis
    assert after == 0  # and Runner.aclose closed its connections (before: left open)


# -- spend_cap ------------------------------------------------------------------------------------


def test_spend_cap_per_run_sums_the_calls_that_ran(tmp_path: Path, fake: FakeLLMThread) -> None:
    root = make_project(
        tmp_path / "p",
        fake,
        "guardrails:\n"
        "  - {type: argument, tool: refund, arg: amount, max: 400}\n"
        "  - {type: spend_cap, tool: refund, arg: amount, per_run: 500}\n",
    )

    async def go() -> list[RunResult]:
        clear_paid()
        async with Runner(load_project(root)) as runner:
            results, _ = await runs(
                runner,
                ("payer", "refund 300 then 450 then 250 then 200", {}),
                ("payer", "refund 300", {}),  # a new run: a new total
            )
            return results

    first, second = asyncio.run(go())
    # 450 is refused by the argument guardrail (it did not run: not counted); 250 would make 550.
    assert [c.status for c in first.tool_calls] == ["ok", "error", "error", "ok"]
    assert "above 400" in refused(first)[0]
    assert refused(first)[1] == (
        "blocked by a guardrail: spend_cap: refund(amount): 250 more would take this run's total to 550, "
        "over its cap of 500 (300 spent so far)"
    )
    assert second.tool_calls[0].status == "ok"
    assert paid() == [300, 200, 300]


def spend_project(root: Path, fake: FakeLLMThread, url: str) -> Path:
    made = make_project(
        root,
        fake,
        "guardrails:\n  - {type: spend_cap, tool: refund, arg: amount, per_tenant_day: 1000}\n",
        keel_yaml="",
    )
    text = (made / "keel.yaml").read_text().replace("storage: {enabled: false}", f"storage: {{url: '{url}'}}")
    (made / "keel.yaml").write_text(text)
    return made


def test_spend_cap_per_tenant_day_holds_across_runners(
    tmp_path: Path, fake: FakeLLMThread, store_url: str
) -> None:
    root = spend_project(tmp_path / "p", fake, store_url)

    async def go() -> tuple[list[RunResult], Decimal]:
        async with Runner(load_project(root)) as one, Runner(load_project(root)) as two:
            a, _ = await runs(one, ("payer", "refund 600", {"tenant_id": "acme"}))
            b, _ = await runs(two, ("payer", "refund 300 then 200", {"tenant_id": "acme"}))
            c, _ = await runs(two, ("payer", "refund 900", {"tenant_id": "globex"}))
        store = SpendStore(store_url)
        try:
            total = await store.total(
                tenant_id="acme", guardrail="agent.payer/spend_cap", day=datetime.now(UTC).date()
            )
        finally:
            await store.close()
        return a + b + c, total

    (first, second, globex), total = asyncio.run(go())
    assert first.tool_calls[0].status == "ok"
    assert [c.status for c in second.tool_calls] == ["ok", "error"]
    assert "would take tenant acme's total today" in refused(second)[0]
    assert "to 1100, over its daily cap of 1000 (900 spent so far)" in refused(second)[0]
    assert globex.tool_calls[0].status == "ok"
    assert total == Decimal(900)


def test_spend_store_never_overshoots_under_concurrency(store_url: str) -> None:
    async def go() -> tuple[list[bool], Decimal, Decimal]:
        stores = [SpendStore(store_url) for _ in range(3)]  # three "processes"
        day = date(2026, 12, 7)
        try:
            outcomes = await asyncio.gather(
                *(
                    stores[i % 3].add(
                        tenant_id="acme", guardrail="g", day=day, amount=Decimal("7.5"), cap=Decimal(100)
                    )
                    for i in range(20)
                )
            )
            total = await stores[0].total(tenant_id="acme", guardrail="g", day=day)
            other = await stores[0].total(tenant_id="globex", guardrail="g", day=day)
        finally:
            for store in stores:
                await store.close()
        return [o.ok for o in outcomes], total, other

    oks, total, other = asyncio.run(go())
    assert oks.count(True) == 13  # 13 * 7.5 = 97.5; a 14th would be 105
    assert total == Decimal("97.5") and other == Decimal(0)


def test_spend_cap_cost_per_call_and_bad_amounts(tmp_path: Path, fake: FakeLLMThread) -> None:
    root = make_project(
        tmp_path / "p",
        fake,
        "guardrails:\n  - {type: spend_cap, tool: ping, cost: 0.4, per_run: 1}\n",
    )

    async def go() -> RunResult:
        async with Runner(load_project(root)) as runner:
            results, _ = await runs(runner, ("payer", "ping 3", {}))
            return results[0]

    result = asyncio.run(go())
    assert [c.status for c in result.tool_calls] == ["ok", "ok", "error"]
    assert "ping (cost 0.4 per call): 0.4 more would take this run's total to 1.2" in refused(result)[0]


def test_limit_config_errors_name_file_line_and_field(tmp_path: Path, fake: FakeLLMThread) -> None:
    root = make_project(
        tmp_path / "p",
        fake,
        "guardrails:\n"
        "  - {type: rate_limit, tool: ping, calls: 0}\n"
        "  - {type: rate_limit, calls: 3, window: soon}\n"
        "  - {type: spend_cap, tool: refund, arg: amount}\n"
        "  - {type: spend_cap, tool: refund, arg: amount, per_tenant_day: 10}\n"
        "  - {type: spend_cap, tool: refund, per_run: 10}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_project(root)
    found = {(i.line, i.field): i.message for i in caught.value.issues if i.file == "agents/other.yaml"}
    assert found[(5, "guardrails[0]")] == "rate_limit: calls: Input should be greater than or equal to 1"
    assert "rate_limit: window: expected a duration such as 30s" in found[(6, "guardrails[1]")]
    assert found[(7, "guardrails[2]")] == "spend_cap: settings: set per_run, per_tenant_day or both"
    assert "per_tenant_day needs storage" in found[(8, "guardrails[3].per_tenant_day")]
    assert "exactly one of arg" in found[(9, "guardrails[4]")]


def test_migrated_database_has_the_spend_table(database_url: str) -> None:
    upgrade(database_url)

    async def go() -> Decimal:
        store = SpendStore(database_url)
        try:
            first = await store.add(
                tenant_id="acme", guardrail="g", day=date(2026, 1, 1), amount=Decimal(5), cap=Decimal(4)
            )
            assert not first.ok and first.total == Decimal(0)  # larger than the cap on its own
            return await store.total(tenant_id="acme", guardrail="g", day=date(2026, 1, 1))
        finally:
            await store.close()

    assert asyncio.run(go()) == Decimal(0)
