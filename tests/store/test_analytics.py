"""Usage totals and run statistics against hand-computed numbers, identical on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from keel.errors import UsageError
from keel.store import RunStore, ToolStats, UsageTotal
from keel.store.records import RunRecord
from tests.store.factories import make_run, seed, usage


def usage_runs() -> list[RunRecord]:
    # Two runs either side of midnight UTC, and one whose local date differs from its UTC date.
    return [
        make_run(
            "a1",
            agent="inbox",
            started_at=datetime(2025, 3, 1, 23, 59, 59, 999999, tzinfo=UTC),
            user_id="ann",
            tenant_id="acme",
            model_requests=2,
            input_tokens=100,
            output_tokens=50,
            cost_usd=Decimal("0.10"),
            usage=(usage("openai:gpt", 2, (100, 50), "0.10"),),
        ),
        make_run(
            "a2",
            agent="inbox",
            started_at=datetime(2025, 3, 2, 0, 0, 0, tzinfo=UTC),
            user_id="bob",
            tenant_id="acme",
            model_requests=3,
            input_tokens=200,
            output_tokens=80,
            cost_usd=None,
            usage=(usage("openai:gpt", 1, (50, 20), "0.02"), usage("anthropic:claude", 2, (150, 60), None)),
        ),
        make_run(
            "a3",
            agent="triage",
            started_at=datetime(2025, 3, 2, 1, 30, tzinfo=timezone(timedelta(hours=5))),  # 2025-03-01 UTC
            user_id="ann",
            model_requests=1,
            input_tokens=10,
            output_tokens=5,
            cost_usd=Decimal("0.000000001"),
            usage=(usage("anthropic:claude", 1, (10, 5), "0.000000001"),),
        ),
        make_run(
            "a4",
            agent="triage",
            started_at=datetime(2025, 3, 2, 12, 0, tzinfo=UTC),
            tenant_id="globex",
            model_requests=1,
            input_tokens=1,
            output_tokens=1,
            cost_usd=Decimal("0.3333333333"),
            usage=(usage("openai:gpt", 1, (1, 1), "0.3333333333"),),
        ),
    ]


def total(
    key: str | None, runs: int, requests: int, tokens: tuple[int, int], cost: str, unpriced: int
) -> UsageTotal:
    return UsageTotal(key, runs, requests, tokens[0], tokens[1], Decimal(cost), unpriced)


EXPECTED_TOTALS = {
    "agent": [total("inbox", 2, 5, (300, 130), "0.10", 1), total("triage", 2, 2, (11, 6), "0.3333333343", 0)],
    "user": [
        total("ann", 2, 3, (110, 55), "0.100000001", 0),
        total("bob", 1, 3, (200, 80), "0", 1),
        total(None, 1, 1, (1, 1), "0.3333333333", 0),
    ],
    "tenant": [
        total("acme", 2, 5, (300, 130), "0.10", 1),
        total("globex", 1, 1, (1, 1), "0.3333333333", 0),
        total(None, 1, 1, (10, 5), "0.000000001", 0),
    ],
    "day": [
        total("2025-03-01", 2, 3, (110, 55), "0.100000001", 0),
        total("2025-03-02", 2, 4, (201, 81), "0.3333333333", 1),
    ],
    "model": [
        total("anthropic:claude", 2, 3, (160, 65), "0.000000001", 1),
        total("openai:gpt", 3, 4, (151, 71), "0.4533333333", 0),
    ],
}


@pytest.mark.parametrize("group_by", list(EXPECTED_TOTALS))
async def test_usage_totals(store_url: str, store: RunStore, group_by: str) -> None:
    seed(store_url, usage_runs())
    assert await store.usage_totals(group_by) == EXPECTED_TOTALS[group_by]  # type: ignore[arg-type]


async def test_usage_totals_filters(store_url: str, store: RunStore) -> None:
    seed(store_url, usage_runs())
    midnight = datetime(2025, 3, 2, tzinfo=UTC)
    assert [t.key for t in await store.usage_totals("day", since=midnight)] == ["2025-03-02"]
    assert [t.key for t in await store.usage_totals("day", until=midnight)] == ["2025-03-01"]
    assert await store.usage_totals("model", tenant_id="acme") == [
        total("anthropic:claude", 1, 2, (150, 60), "0", 1),
        total("openai:gpt", 2, 3, (150, 70), "0.12", 0),
    ]
    assert await store.usage_totals("user", agent="triage") == [
        total("ann", 1, 1, (10, 5), "0.000000001", 0),
        total(None, 1, 1, (1, 1), "0.3333333333", 0),
    ]
    assert await store.usage_totals("agent", since=datetime(2030, 1, 1, tzinfo=UTC)) == []


async def test_usage_totals_refuses_unknown_groups(store: RunStore) -> None:
    with pytest.raises(UsageError, match="cannot group usage by 'week'"):
        await store.usage_totals("week")  # type: ignore[arg-type]


def stats_runs() -> list[RunRecord]:
    start = datetime(2025, 4, 1, tzinfo=UTC)
    inbox_durations = [130.0, 20.0, 200.0, 50.0, 10.0, 190.0, 80.0, 60.0, 170.0, 40.0,
                       110.0, 30.0, 150.0, 70.0, 180.0, 90.0, 120.0, 100.0, 160.0, 140.0]  # fmt: skip
    categories = {
        3: "tool_error",
        7: "tool_error",
        11: "tool_error",
        15: "model_timeout",
        19: "model_timeout",
    }
    runs = []
    for i, duration in enumerate(inbox_durations):
        failed = i in categories
        runs.append(
            make_run(
                f"inbox-{i:02d}",
                agent="inbox",
                started_at=start + timedelta(minutes=i),
                duration_ms=duration,
                status="failed" if failed else "succeeded",
                error_category=categories.get(i),
                cost_usd=None if i in (0, 1) else Decimal("0.01") * i,
                tools_called=("lookup", "lookup") if i < 10 else ("search",),
                tool_failures=("lookup",) if i < 4 else ("search",) if i == 19 else (),
                tenant_id="acme",
            )
        )
    for i, (duration, cost) in enumerate([(5.0, "0.1"), (1.0, "0.2"), (3.0, None)]):
        runs.append(
            make_run(
                f"triage-{i}",
                agent="triage",
                started_at=start + timedelta(hours=1, minutes=i),
                duration_ms=duration,
                status="timed_out" if i == 2 else "succeeded",
                error_category="timed_out" if i == 2 else None,
                cost_usd=None if cost is None else Decimal(cost),
            )
        )
    return runs


async def test_run_stats(store_url: str, store: RunStore) -> None:
    seed(store_url, stats_runs())
    inbox, triage = await store.run_stats()

    assert (inbox.agent, inbox.runs, inbox.succeeded, inbox.success_rate) == ("inbox", 20, 15, 0.75)
    # Sorted durations are 10, 20, ..., 200. Nearest rank: p50 = 10th (100), p95 = 19th (190),
    # p99 = ceil(19.8) = 20th (200).
    assert (inbox.latency_p50_ms, inbox.latency_p95_ms, inbox.latency_p99_ms) == (100.0, 190.0, 200.0)
    # Priced runs are 2..19 at 0.01 * i: sum 1.89 over 18 runs.
    assert inbox.mean_cost_usd == Decimal("0.1050000000")
    assert inbox.unpriced_runs == 2
    assert inbox.error_categories == {"tool_error": 3, "model_timeout": 2}
    assert list(inbox.error_categories) == ["tool_error", "model_timeout"]
    assert inbox.tools == [ToolStats("lookup", 20, 4, 0.2), ToolStats("search", 10, 1, 0.1)]

    # Durations 1, 3, 5: p50 = ceil(1.5) = 2nd (3); p95 = ceil(2.85) = 3rd (5); p99 = 3rd (5).
    assert (triage.agent, triage.runs, triage.succeeded) == ("triage", 3, 2)
    assert triage.success_rate == pytest.approx(2 / 3)
    assert (triage.latency_p50_ms, triage.latency_p95_ms, triage.latency_p99_ms) == (3.0, 5.0, 5.0)
    assert triage.mean_cost_usd == Decimal("0.15")
    assert triage.unpriced_runs == 1
    assert triage.error_categories == {"timed_out": 1}
    assert triage.tools == []


async def test_run_stats_filters(store_url: str, store: RunStore) -> None:
    seed(store_url, stats_runs())
    start = datetime(2025, 4, 1, tzinfo=UTC)
    [first_ten] = await store.run_stats(until=start + timedelta(minutes=10))
    # Durations of runs 0..9: 10..200 minus the second half; sorted 10,20,40,50,60,80,130,170,190,200.
    assert (first_ten.runs, first_ten.latency_p50_ms, first_ten.latency_p95_ms) == (10, 60.0, 200.0)
    assert first_ten.tools == [ToolStats("lookup", 20, 4, 0.2)]
    assert [s.agent for s in await store.run_stats(agent="triage")] == ["triage"]
    assert [s.agent for s in await store.run_stats(tenant_id="acme")] == ["inbox"]
    assert [s.agent for s in await store.run_stats(since=start + timedelta(hours=1))] == ["triage"]
    assert await store.run_stats(since=start + timedelta(days=1)) == []
