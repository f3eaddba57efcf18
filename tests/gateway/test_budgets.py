"""Hard budgets: windows, the domain, and the ledger on both backends (reserve, settle, release,
expiry, soft thresholds, tenant-scoped audit), and the acceptance test: 100 concurrent runs
against a budget worth 30 never overshoot, and refused runs never reach the provider."""

from __future__ import annotations

import asyncio
import json
import pickle
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import func, inspect, select

from keel.errors import ErrorCategory, RunFailure, UsageError
from keel.gateway.budgets import (
    RUN_WINDOW_START,
    Budget,
    BudgetExceeded,
    Window,
    window_for,
)
from keel.store import current_revision, head_revision, upgrade
from keel.store.engine import sync_engine
from keel.store.ledger import BudgetLedger, LedgerEntry
from keel.store.migrate import alembic_config
from keel.store.tables import budget_counters, budget_entries, budget_holds
from keel.store.tenancy import scope_to_tenant
from tests.gateway.budget_runs import ESTIMATE, LIMIT, TENANT, run_all
from tests.gateway.clock import T0, Clock

REPO = Path(__file__).resolve().parents[2]
BUDGET_TABLES = {"budget_counters", "budget_holds", "budget_entries"}


@pytest.fixture
async def ledger(store_url: str, clock: Clock) -> AsyncIterator[BudgetLedger]:
    async with BudgetLedger(store_url, clock=clock) as store:
        yield store


def tenant_usd(limit: str, *, tenant: str = "acme", soft: float | None = None) -> Budget:
    return Budget("tenant", tenant, "usd", "day", Decimal(limit), soft_threshold=soft)


def rows_in(url: str, table: str) -> int:
    engine = sync_engine(url)
    try:
        with engine.connect() as connection:
            tables = {"budget_counters": budget_counters, "budget_holds": budget_holds}
            target = tables.get(table, budget_entries)
            return int(connection.execute(select(func.count()).select_from(target)).scalar_one())
    finally:
        engine.dispose()


def holds_of(url: str, tenant_id: str | None) -> int:
    """Holds visible to `tenant_id` through keel.store.tenancy."""
    engine = sync_engine(url)
    try:
        with engine.connect() as connection:
            statement = scope_to_tenant(select(budget_holds.c.reservation_id), budget_holds, tenant_id)
            return len(connection.execute(statement).all())
    finally:
        engine.dispose()


# -- windows and the domain -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "start", "end"),
    [
        (
            datetime(2026, 3, 1, 0, 0, tzinfo=UTC),
            datetime(2026, 3, 1, tzinfo=UTC),
            datetime(2026, 3, 2, tzinfo=UTC),
        ),
        (
            datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC),
            datetime(2026, 3, 1, tzinfo=UTC),
            datetime(2026, 3, 2, tzinfo=UTC),
        ),
        # 01:00 at +02:00 is 23:00 UTC the day before.
        (
            datetime(2026, 3, 1, 1, 0, tzinfo=timezone(timedelta(hours=2))),
            datetime(2026, 2, 28, tzinfo=UTC),
            datetime(2026, 3, 1, tzinfo=UTC),
        ),
        # Naive means UTC.
        (datetime(2026, 12, 31, 23, 0), datetime(2026, 12, 31, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
    ],
)
def test_day_windows_are_utc_days(at: datetime, start: datetime, end: datetime) -> None:
    window = window_for("day", at)
    assert (window.start, window.end) == (start, end)
    assert (
        window.contains(at) and not window.contains(end) and window.contains(end - timedelta(microseconds=1))
    )


@pytest.mark.parametrize(
    ("at", "start", "end"),
    [
        (
            datetime(2026, 3, 1, tzinfo=UTC),
            datetime(2026, 3, 1, tzinfo=UTC),
            datetime(2026, 4, 1, tzinfo=UTC),
        ),
        (
            datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),
            datetime(2026, 12, 1, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
        ),
        (
            datetime(2028, 2, 29, 12, tzinfo=UTC),
            datetime(2028, 2, 1, tzinfo=UTC),
            datetime(2028, 3, 1, tzinfo=UTC),
        ),
        # Still January in UTC.
        (
            datetime(2027, 2, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),
            datetime(2027, 1, 1, tzinfo=UTC),
            datetime(2027, 2, 1, tzinfo=UTC),
        ),
    ],
)
def test_month_windows_are_utc_calendar_months(at: datetime, start: datetime, end: datetime) -> None:
    window = window_for("month", at)
    assert (window.start, window.end) == (start, end)


def test_a_run_window_covers_the_whole_run() -> None:
    window = window_for("run", T0)
    assert window == Window("run", RUN_WINDOW_START, None)
    assert window.contains(datetime(2099, 1, 1, tzinfo=UTC))


def test_budgets_are_validated_and_normalized() -> None:
    budget = Budget("tenant", "acme", "usd", "month", 5, soft_threshold=0.8)
    assert budget.limit == Decimal("5.0000000000") and isinstance(budget.limit, Decimal)
    assert budget.tenant_id == "acme"
    assert budget.soft_limit == Decimal("4")
    assert Budget("agent", "support", "tokens", "day", 1000).limit == 1000
    with pytest.raises(UsageError, match="period 'run'"):
        Budget("run", "run-1", "usd", "day", Decimal(1))
    with pytest.raises(UsageError, match="period 'run'"):
        Budget("user", "alice", "usd", "run", Decimal(1))
    with pytest.raises(UsageError, match="Decimal"):
        Budget("user", "alice", "usd", "day", 0.1)  # type: ignore[arg-type]  # floats are refused
    with pytest.raises(UsageError, match="non-negative integer"):
        Budget("user", "alice", "tokens", "day", Decimal("10.5"))
    with pytest.raises(UsageError, match="between 0 and 1"):
        Budget("user", "alice", "usd", "day", Decimal(1), soft_threshold=1.0)
    with pytest.raises(UsageError, match="cannot belong"):
        Budget("tenant", "acme", "usd", "day", Decimal(1), tenant_id="other")
    with pytest.raises(UsageError, match="unknown budget scope"):
        Budget("team", "x", "usd", "day", Decimal(1))  # type: ignore[arg-type]


def test_budget_exceeded_is_a_run_failure_with_its_own_category() -> None:
    budget = tenant_usd("1")
    error = BudgetExceeded(
        budget,
        spent=Decimal("0.9"),
        reserved=Decimal("0.05"),
        requested=Decimal("0.1"),
        window=window_for("day", T0),
    )
    assert isinstance(error, RunFailure)
    assert error.category is ErrorCategory.BUDGET_EXCEEDED
    assert ErrorCategory("budget_exceeded") is ErrorCategory.BUDGET_EXCEEDED
    assert error.as_dict() == {
        "code": "budget_exceeded",
        "budget": budget.as_dict(),
        "window_start": "2026-03-01T00:00:00+00:00",
        "window_end": "2026-03-02T00:00:00+00:00",
        "limit": "1.0000000000",
        "spent": "0.9",
        "reserved": "0.05",
        "requested": "0.1",
    }
    assert "tenant 'acme': 1 USD per day" in error.message
    copy = pickle.loads(pickle.dumps(error))
    assert copy.as_dict() == error.as_dict() and copy.message == error.message


# -- the ledger ---------------------------------------------------------------------------------------


async def test_reserve_within_the_limit_holds_the_estimate(ledger: BudgetLedger) -> None:
    budget = tenant_usd("1.00")
    first = await ledger.reserve([budget], amount_usd=Decimal("0.40"), tokens=100, run_id="r1")
    second = await ledger.reserve([budget], amount_usd=Decimal("0.60"), tokens=100, run_id="r2")
    (check,) = second.checks
    assert (check.spent, check.reserved, check.requested, check.remaining) == (
        Decimal(0),
        Decimal("0.4"),
        Decimal("0.6"),
        Decimal(0),
    )
    assert first.tenant_id == "acme" and first.expires_at == T0 + timedelta(minutes=10)
    spend = await ledger.spent("tenant", "acme", "day")
    assert (spend.settled_usd, spend.reserved_usd, spend.reserved_tokens) == (
        Decimal(0),
        Decimal("1.00"),
        200,
    )
    assert [entry.kind for entry in await ledger.entries(tenant_id="acme")] == ["reserve", "reserve"]


async def test_a_refused_reservation_records_nothing(ledger: BudgetLedger, store_url: str) -> None:
    budget = tenant_usd("1.00")
    await ledger.reserve([budget], amount_usd=Decimal("0.70"), tokens=10, run_id="r1")
    counts = {table: rows_in(store_url, table) for table in BUDGET_TABLES}
    user = Budget("user", "alice", "usd", "day", Decimal(5), tenant_id="acme")  # a counter not yet seen
    with pytest.raises(BudgetExceeded) as refused:
        await ledger.reserve([user, budget], amount_usd=Decimal("0.31"), tokens=10, run_id="r2")
    error = refused.value
    assert error.budget == budget
    assert (error.limit, error.spent, error.reserved, error.requested) == (
        Decimal("1.00"),
        Decimal(0),
        Decimal("0.70"),
        Decimal("0.31"),
    )
    assert {table: rows_in(store_url, table) for table in BUDGET_TABLES} == counts
    assert (await ledger.spent("user", "alice", "day", tenant_id="acme")).reserved_usd == 0
    assert [entry.run_id for entry in await ledger.entries(tenant_id=None)] == ["r1"]
    # Exactly up to the limit still fits.
    await ledger.reserve([budget], amount_usd=Decimal("0.30"), tokens=10, run_id="r3")


async def test_settle_replaces_the_estimate_with_the_actual_usage(ledger: BudgetLedger) -> None:
    budget = tenant_usd("1.00")
    low = await ledger.reserve([budget], amount_usd=Decimal("0.50"), tokens=500, run_id="low")
    settled = await ledger.settle(low, actual_usd=Decimal("0.20"), actual_tokens=180)
    assert not settled.duplicate
    spend = await ledger.spent("tenant", "acme", "day")
    assert (spend.settled_usd, spend.settled_tokens, spend.reserved_usd) == (Decimal("0.20"), 180, Decimal(0))
    # The room given back by the lower actual is usable.
    high = await ledger.reserve([budget], amount_usd=Decimal("0.80"), tokens=500, run_id="high")
    # The actual may exceed the estimate, and the limit: it is recorded as it is.
    over = await ledger.settle(high, actual_usd=Decimal("0.95"), actual_tokens=900)
    spend = await ledger.spent("tenant", "acme", "day")
    assert (spend.settled_usd, spend.settled_tokens, spend.reserved_usd) == (
        Decimal("1.15"),
        1080,
        Decimal(0),
    )
    assert [(c.hard, c.threshold, c.spent_before, c.spent_after) for c in over.crossed] == [
        (True, Decimal("1.00"), Decimal("0.20"), Decimal("1.15"))
    ]
    with pytest.raises(BudgetExceeded) as refused:
        await ledger.reserve([budget], amount_usd=Decimal("0.01"), tokens=1)
    assert refused.value.spent == Decimal("1.15")
    # Settling again counts nothing twice.
    again = await ledger.settle(high, actual_usd=Decimal("0.95"), actual_tokens=900)
    assert again.duplicate and again.crossed == ()
    assert (await ledger.spent("tenant", "acme", "day")).settled_usd == Decimal("1.15")
    kinds = [(e.kind, e.run_id, e.amount_usd, e.tokens) for e in await ledger.entries(tenant_id="acme")]
    assert kinds == [
        ("reserve", "low", Decimal("0.5"), 500),
        ("settle", "low", Decimal("0.2"), 180),
        ("reserve", "high", Decimal("0.8"), 500),
        ("settle", "high", Decimal("0.95"), 900),
    ]


async def test_release_gives_the_estimate_back(ledger: BudgetLedger) -> None:
    budget = tenant_usd("1.00")
    reservation = await ledger.reserve([budget], amount_usd=Decimal("1.00"), tokens=1, run_id="r1")
    with pytest.raises(BudgetExceeded):
        await ledger.reserve([budget], amount_usd=Decimal("0.01"), tokens=1)
    assert await ledger.release(reservation) is True
    assert await ledger.release(reservation) is False
    spend = await ledger.spent("tenant", "acme", "day")
    assert (spend.settled_usd, spend.reserved_usd) == (Decimal(0), Decimal(0))
    with pytest.raises(UsageError, match="released"):
        await ledger.settle(reservation, actual_usd=Decimal("0.5"), actual_tokens=1)
    await ledger.reserve([budget], amount_usd=Decimal("1.00"), tokens=1, run_id="r2")
    assert [e.kind for e in await ledger.entries(tenant_id="acme")] == ["reserve", "release", "reserve"]


async def test_an_expired_reservation_stops_counting(ledger: BudgetLedger, clock: Clock) -> None:
    budget = tenant_usd("1.00")
    crashed = await ledger.reserve([budget], amount_usd=Decimal("0.90"), tokens=1, run_id="crashed")
    clock.advance(minutes=9, seconds=59)
    with pytest.raises(BudgetExceeded):
        await ledger.reserve([budget], amount_usd=Decimal("0.20"), tokens=1)
    clock.advance(seconds=1)  # ten minutes: the hold has expired
    assert (await ledger.spent("tenant", "acme", "day")).reserved_usd == Decimal(0)
    await ledger.reserve([budget], amount_usd=Decimal("0.20"), tokens=1, run_id="next")
    # A late settlement of the expired reservation still records what was spent.
    await ledger.settle(crashed, actual_usd=Decimal("0.85"), actual_tokens=1)
    spend = await ledger.spent("tenant", "acme", "day")
    assert (spend.settled_usd, spend.reserved_usd) == (Decimal("0.85"), Decimal("0.20"))


async def test_the_stricter_of_a_usd_and_a_token_budget_refuses(ledger: BudgetLedger) -> None:
    usd = Budget("user", "alice", "usd", "month", Decimal("100"), tenant_id="acme")
    tokens = Budget("user", "alice", "tokens", "month", 10_000, tenant_id="acme")
    first = await ledger.reserve([usd, tokens], amount_usd=Decimal("0.01"), tokens=6_000, run_id="r1")
    assert [check.remaining for check in first.checks] == [Decimal("99.99"), 4_000]
    with pytest.raises(BudgetExceeded) as refused:
        await ledger.reserve([usd, tokens], amount_usd=Decimal("0.01"), tokens=4_001, run_id="r2")
    assert refused.value.budget == tokens
    assert (refused.value.spent, refused.value.reserved, refused.value.requested) == (0, 6_000, 4_001)
    await ledger.settle(first, actual_usd=Decimal("0.01"), actual_tokens=5_000)
    # And the other way round: plenty of tokens, not enough dollars.
    tight = Budget("user", "alice", "usd", "month", Decimal("0.015"), tenant_id="acme")
    with pytest.raises(BudgetExceeded) as refused:
        await ledger.reserve([tokens, tight], amount_usd=Decimal("0.01"), tokens=10, run_id="r3")
    assert refused.value.budget == tight and refused.value.spent == Decimal("0.01")
    spend = await ledger.spent("user", "alice", "month", tenant_id="acme")
    assert (spend.settled_usd, spend.settled_tokens) == (Decimal("0.01"), 5_000)


async def test_a_new_window_starts_from_zero(ledger: BudgetLedger, clock: Clock) -> None:
    clock.now = datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC)
    daily = tenant_usd("1.00")
    monthly = Budget("tenant", "acme", "usd", "month", Decimal("1.50"))
    await ledger.settle(
        await ledger.reserve([daily, monthly], amount_usd=Decimal("1.00"), tokens=1),
        actual_usd=Decimal("1.00"),
        actual_tokens=1,
    )
    with pytest.raises(BudgetExceeded):
        await ledger.reserve([daily], amount_usd=Decimal("0.01"), tokens=1)
    clock.advance(seconds=1)  # April 1st, 00:00 UTC: a new day and a new month
    await ledger.reserve([daily, monthly], amount_usd=Decimal("1.00"), tokens=1)
    march = await ledger.spent("tenant", "acme", "month", at=datetime(2026, 3, 15, tzinfo=UTC))
    assert march.settled_usd == Decimal("1.00") and march.window.start == datetime(2026, 3, 1, tzinfo=UTC)


async def test_a_soft_threshold_is_reported_by_the_settlement_that_crosses_it(ledger: BudgetLedger) -> None:
    budget = tenant_usd("1.00", soft=0.8)
    crossings = []
    for amount in ("0.50", "0.29", "0.02", "0.10"):
        reservation = await ledger.reserve([budget], amount_usd=Decimal(amount), tokens=1)
        settlement = await ledger.settle(reservation, actual_usd=Decimal(amount), actual_tokens=1)
        crossings.append([(c.hard, c.threshold, c.spent_before, c.spent_after) for c in settlement.crossed])
    assert crossings == [[], [], [(False, Decimal("0.8"), Decimal("0.79"), Decimal("0.81"))], []]


async def test_the_ledger_is_tenant_scoped(ledger: BudgetLedger, store_url: str) -> None:
    for tenant, run_id in (("acme", "a1"), ("globex", "g1"), ("acme", "a2")):
        reservation = await ledger.reserve(
            [tenant_usd("5", tenant=tenant)], amount_usd=Decimal("1"), tokens=10, run_id=run_id
        )
        await ledger.settle(reservation, actual_usd=Decimal("0.75"), actual_tokens=7)
    acme = await ledger.entries(tenant_id="acme")
    assert [(e.run_id, e.kind) for e in acme] == [
        ("a1", "reserve"),
        ("a1", "settle"),
        ("a2", "reserve"),
        ("a2", "settle"),
    ]
    assert {e.tenant_id for e in acme} == {"acme"}
    assert all(isinstance(e, LedgerEntry) and e.recorded_at == T0 for e in acme)
    assert acme[1].budgets[0]["scope_id"] == "acme" and acme[1].budgets[0]["limit"] == "5.0000000000"
    assert [e.run_id for e in await ledger.entries(tenant_id="globex")] == ["g1", "g1"]
    assert await ledger.entries(tenant_id="initech") == []
    assert len(await ledger.entries(tenant_id=None)) == 6
    assert [e.kind for e in await ledger.entries(tenant_id="acme", run_id="a2")] == ["reserve", "settle"]
    assert await ledger.entries(tenant_id="globex", run_id="a2") == []
    assert await ledger.entries(tenant_id="acme", since=T0 + timedelta(seconds=1)) == []
    # Spend is per tenant too, also for a user id both tenants have.
    for tenant in ("acme", "globex"):
        user = Budget("user", "alice", "usd", "day", Decimal("1"), tenant_id=tenant)
        await ledger.reserve([user], amount_usd=Decimal("1"), tokens=1)
    assert (await ledger.spent("user", "alice", "day", tenant_id="acme")).reserved_usd == Decimal(1)
    assert (await ledger.spent("tenant", "acme", "day")).settled_usd == Decimal("1.50")
    assert (await ledger.spent("tenant", "globex", "day")).settled_usd == Decimal("0.75")
    # Holds are this ledger's leases, one per counter: each tenant's day and its user alice's day.
    assert holds_of(store_url, "acme") == 2 and holds_of(store_url, "globex") == 2
    assert holds_of(store_url, "initech") == 0 and holds_of(store_url, None) == 4


async def test_bad_amounts_are_usage_errors(ledger: BudgetLedger) -> None:
    with pytest.raises(UsageError, match="at least one Budget"):
        await ledger.reserve([], amount_usd=Decimal(1), tokens=1)
    with pytest.raises(UsageError, match="non-negative"):
        await ledger.reserve([tenant_usd("1")], amount_usd=Decimal("-0.1"), tokens=1)
    with pytest.raises(UsageError, match="token estimate"):
        await ledger.reserve([tenant_usd("1")], amount_usd=Decimal("0.1"), tokens=-1)


def test_the_migration_creates_the_budget_tables(database_url: str) -> None:
    upgrade(database_url)
    assert current_revision(database_url) == head_revision()
    engine = sync_engine(database_url)
    try:
        inspector = inspect(engine)
        assert set(inspector.get_table_names()) >= BUDGET_TABLES
        assert inspector.get_pk_constraint("budget_holds")["constrained_columns"] == [
            "reservation_id",
            "counter_key",
        ]
        indexes = {index["name"]: index["column_names"] for index in inspector.get_indexes("budget_holds")}
        assert indexes["ix_budget_holds_open_counter_key_expires_at"] == ["counter_key", "expires_at"]
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "0003")
        assert not BUDGET_TABLES & set(inspect(engine).get_table_names())
        assert current_revision(database_url) == "0003"
        upgrade(database_url)
        assert set(inspect(engine).get_table_names()) >= BUDGET_TABLES
    finally:
        engine.dispose()


# -- the acceptance test: concurrency ---------------------------------------------------------------


async def assert_never_overshot(ledger: BudgetLedger, succeeded: int) -> None:
    """Replays the tenant's ledger in order: settled + held never passed the limit at any point."""
    spend = await ledger.spent("tenant", TENANT, "day")
    assert spend.settled_usd == ESTIMATE * succeeded <= LIMIT
    assert spend.reserved_usd == 0
    entries = await ledger.entries(tenant_id=TENANT, limit=1000)
    assert len(entries) == 2 * succeeded
    held, settled, peak = Decimal(0), Decimal(0), Decimal(0)
    for entry in entries:
        if entry.kind == "reserve":
            held += entry.amount_usd
        else:
            assert entry.kind == "settle"
            held -= ESTIMATE
            settled += entry.amount_usd
        peak = max(peak, held + settled)
        assert held + settled <= LIMIT, entry
    assert settled == spend.settled_usd and peak == LIMIT


async def test_100_concurrent_runs_never_overshoot_a_budget_worth_30(store_url: str) -> None:
    async with BudgetLedger(store_url) as ledger:
        started = time.perf_counter()
        outcome = await run_all(ledger, [f"run-{index}" for index in range(100)])
        elapsed = time.perf_counter() - started
        expected = int(LIMIT / ESTIMATE)
        assert expected == 30
        assert len(outcome.succeeded) == expected and len(outcome.refused) == 100 - expected
        assert sorted(outcome.provider_calls) == sorted(outcome.succeeded)
        assert not set(outcome.refused) & set(outcome.provider_calls)
        assert outcome.refused_before_call == 100 - expected
        assert set(outcome.refused_by) == {"tenant"}
        assert (outcome.soft_crossings, outcome.hard_crossings) == (1, 0)
        await assert_never_overshot(ledger, expected)
    print(f"\n100 runs in one process: {expected} settled, {len(outcome.refused)} refused, {elapsed:.2f}s")


async def test_runs_in_three_processes_never_overshoot_together(store_url: str) -> None:
    """34 runs here and 33 in each of two other processes, each with its own engine, at once."""
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.gateway.budget_worker",
            store_url,
            f"proc{index}",
            "33",
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for index in range(2)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            ready = await asyncio.wait_for(worker.stdout.readline(), timeout=60)
            assert ready.decode().strip() == "ready"
        async with BudgetLedger(store_url) as ledger:
            await ledger.spent("tenant", "warm-up", "day")
            started = time.perf_counter()
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write(b"go\n")
                await worker.stdin.drain()
            local = await run_all(ledger, [f"main-{index}" for index in range(34)])
            reports = [await asyncio.wait_for(worker.communicate(), timeout=120) for worker in workers]
            elapsed = time.perf_counter() - started
            assert [worker.returncode for worker in workers] == [0, 0], reports
            remote = [json.loads(stdout.decode().strip().splitlines()[-1]) for stdout, _ in reports]
            succeeded = local.succeeded + [run for report in remote for run in report["succeeded"]]
            refused = local.refused + [run for report in remote for run in report["refused"]]
            refused_by = local.refused_by + [scope for report in remote for scope in report["refused_by"]]
            calls = local.provider_calls + [run for report in remote for run in report["provider_calls"]]
            assert len(succeeded) == 30 and len(refused) == 70 and len(set(succeeded + refused)) == 100
            assert set(refused_by) == {"tenant"}
            assert sorted(calls) == sorted(succeeded) and not set(refused) & set(calls)
            soft = local.soft_crossings + sum(report["soft_crossings"] for report in remote)
            assert soft == 1
            await assert_never_overshot(ledger, 30)
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
    per_process = [len(local.succeeded)] + [len(report["succeeded"]) for report in remote]
    print(f"\n100 runs in 3 processes: settled per process {per_process}, {elapsed:.2f}s")
