"""Budget leases (`keel.store.ledger`, `keel.store.ledger_writer`), on both backends: a ledger
hands out the room it leased without a database round trip, hands out exactly the limit and no
more, shares a budget with other ledgers (other processes) without overshooting, gives its room
back when idle and when it closes, and a crashed process's lease expires."""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from keel.config.gateway import BudgetConfig, BudgetsConfig
from keel.errors import UsageError
from keel.gateway.budgets import Budget, BudgetExceeded, Reservation, ThresholdCrossing
from keel.runtime.budget_guard import BudgetGuard
from keel.store.engine import sync_engine
from keel.store.ledger import LEASE_TERM_SECONDS, RESERVATION_TTL_SECONDS, BudgetLedger
from keel.store.tables import budget_holds
from tests.gateway.budget_runs import ESTIMATE, TENANT, crash_budget
from tests.gateway.clock import Clock

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def ledger(store_url: str, clock: Clock) -> AsyncIterator[BudgetLedger]:
    async with BudgetLedger(store_url, clock=clock, lease_idle=None) as store:
        yield store


def daily(limit: str, *, soft: float | None = None) -> Budget:
    return Budget("tenant", TENANT, "usd", "day", Decimal(limit), soft_threshold=soft)


def holds(url: str) -> list[tuple[str, str, Decimal, str | None]]:
    """(reservation id, state, amount, owner) of every hold."""
    engine = sync_engine(url)
    try:
        with engine.connect() as connection:
            columns = (budget_holds.c.reservation_id, budget_holds.c.state, budget_holds.c.amount_usd)
            rows = connection.execute(select(*columns, budget_holds.c.owner)).all()
            return [(row[0], row[1], row[2], row[3]) for row in rows]
    finally:
        engine.dispose()


async def reserve(ledger: BudgetLedger, budget: Budget, usd: str, run_id: str | None = None) -> Reservation:
    return await ledger.reserve([budget], amount_usd=Decimal(usd), tokens=1, run_id=run_id)


# -- one ledger ---------------------------------------------------------------------------------------


async def test_a_lease_serves_requests_from_memory(ledger: BudgetLedger, store_url: str) -> None:
    budget = daily("100")
    await reserve(ledger, budget, "1")  # the first asks the database for a lease
    served = 0
    for _ in range(3):
        before = ledger.transactions
        await reserve(ledger, budget, "1")  # from the lease: nothing awaited, so no transaction ran
        served += ledger.transactions == before
    assert served == 3
    [(lease_id, state, amount, owner)] = holds(store_url)
    assert lease_id.startswith("lease_") and state == "open" and owner == ledger.owner
    assert amount >= Decimal(4)  # one lease holds the room of the four reservations, and more
    spend = await ledger.spent("tenant", TENANT, "day")
    assert spend.reserved_usd == Decimal(4)  # this ledger's open reservations; its spare room is its own


async def test_leases_hand_out_exactly_the_limit(ledger: BudgetLedger) -> None:
    budget = daily("1.00", soft=0.5)
    granted = []
    for _ in range(14):
        granted.append(await reserve(ledger, budget, "0.07"))  # 0.98 in all
    with pytest.raises(BudgetExceeded) as refused:
        await reserve(ledger, budget, "0.07")
    assert (refused.value.spent, refused.value.reserved) == (Decimal(0), Decimal("0.98"))
    granted.append(await reserve(ledger, budget, "0.02"))  # the last of it, exactly
    with pytest.raises(BudgetExceeded):
        await reserve(ledger, budget, "0.0000000001")
    assert (await ledger.spent("tenant", TENANT, "day")).reserved_usd == Decimal("1.00")
    crossed: list[ThresholdCrossing] = []
    for reservation in granted:
        settlement = await ledger.settle(
            reservation, actual_usd=reservation.amount_usd, actual_tokens=reservation.tokens
        )
        crossed.extend(settlement.crossed)
    assert [(c.hard, c.threshold) for c in crossed] == [(False, Decimal("0.5"))]
    spend = await ledger.spent("tenant", TENANT, "day")
    assert (spend.settled_usd, spend.reserved_usd) == (Decimal("1.00"), Decimal(0))
    with pytest.raises(BudgetExceeded):
        await reserve(ledger, budget, "0.0000000001")


async def test_usage_above_the_estimate_takes_the_leases_spare_room(ledger: BudgetLedger) -> None:
    """As with a hold per request: room an actual usage above its estimate used is not handed
    out again, although the lease held it to spare."""
    budget = daily("10.00")
    over = await reserve(ledger, budget, "0.10")  # leases 0.90: the estimate and 8 to spare
    inflight = await reserve(ledger, budget, "0.10")  # from the lease: 0.70 to spare
    await ledger.settle(over, actual_usd=Decimal("9.50"), actual_tokens=1)  # 9.40 above its estimate
    # 9.50 settled and 0.10 in flight leave 0.40: the lease keeps that much to spare, no more.
    with pytest.raises(BudgetExceeded) as refused:
        await reserve(ledger, budget, "0.41")
    assert (refused.value.spent, refused.value.reserved) == (Decimal("9.50"), Decimal("0.10"))
    last = await reserve(ledger, budget, "0.40")
    for reservation in (inflight, last):
        await ledger.settle(reservation, actual_usd=reservation.amount_usd, actual_tokens=1)
    spend = await ledger.spent("tenant", TENANT, "day")
    assert (spend.settled_usd, spend.reserved_usd) == (Decimal("10.00"), Decimal(0))


async def test_a_release_gives_the_room_back_to_the_lease(ledger: BudgetLedger) -> None:
    budget = daily("1.00")
    first = await reserve(ledger, budget, "0.60")
    with pytest.raises(BudgetExceeded):
        await reserve(ledger, budget, "0.50")
    assert await ledger.release(first)
    before = ledger.transactions
    await reserve(ledger, budget, "0.60")
    assert ledger.transactions == before  # the released room was the lease's: no database needed
    await reserve(ledger, budget, "0.40")  # the rest: the lease grows
    kinds = [entry.kind for entry in await ledger.entries(tenant_id=TENANT)]
    assert kinds == ["reserve", "release", "reserve", "reserve"]


async def test_only_the_ledger_that_made_a_reservation_settles_it(
    ledger: BudgetLedger, store_url: str
) -> None:
    reservation = await reserve(ledger, daily("1.00"), "0.10")
    async with BudgetLedger(store_url, lease_idle=None) as other:
        with pytest.raises(UsageError, match="another ledger"):
            await other.settle(reservation, actual_usd=Decimal("0.10"), actual_tokens=1)
        with pytest.raises(UsageError, match="another ledger"):
            await other.release(reservation)
    assert not (await ledger.settle(reservation, actual_usd=Decimal("0.10"), actual_tokens=1)).duplicate


async def test_per_run_entries_stay_queryable(ledger: BudgetLedger) -> None:
    budget = daily("10")
    for run in ("r1", "r2", "r1"):
        reservation = await reserve(ledger, budget, "0.10", run_id=run)
        await ledger.settle(reservation, actual_usd=Decimal("0.05"), actual_tokens=1)
    entries = await ledger.entries(tenant_id=TENANT, run_id="r1")
    assert [(e.kind, e.amount_usd) for e in entries] == [
        ("reserve", Decimal("0.1")),
        ("settle", Decimal("0.05")),
        ("reserve", Decimal("0.1")),
        ("settle", Decimal("0.05")),
    ]
    assert len({e.reservation_id for e in entries}) == 2


# -- ledgers sharing a budget ----------------------------------------------------------------------


async def test_another_ledgers_lease_counts_whole_until_it_is_returned(
    ledger: BudgetLedger, store_url: str, clock: Clock
) -> None:
    budget = daily("1.00")
    taken = await reserve(ledger, budget, "0.10")  # leases 0.30: the estimate, and 2 to spare
    await ledger.settle(taken, actual_usd=Decimal("0.10"), actual_tokens=1)
    async with BudgetLedger(store_url, clock=clock, lease_idle=None) as other:
        spend = await other.spent("tenant", TENANT, "day")
        assert (spend.settled_usd, spend.reserved_usd) == (Decimal("0.10"), Decimal("0.20"))
        with pytest.raises(BudgetExceeded) as refused:
            await reserve(other, budget, "0.75")
        assert refused.value.reserved == Decimal("0.20")
        await ledger.return_leases()
        assert (await other.spent("tenant", TENANT, "day")).reserved_usd == 0
        await reserve(other, budget, "0.90")  # the rest of the budget, exactly
        with pytest.raises(BudgetExceeded):
            await reserve(ledger, budget, "0.0000000001")


async def test_two_ledgers_at_once_never_overshoot(store_url: str) -> None:
    """Two ledgers (two engines, as two processes), 40 runs each at once, of 3 requests of
    varied estimates, settled at or below the estimate: the settled spend and the holds never
    pass the limit, replayed from the ledger, and the soft threshold is reported once."""
    limit = Decimal("5.00")
    budget = daily(str(limit), soft=0.5)
    estimates = itertools.cycle(Decimal(cents) / 100 for cents in (3, 25, 7, 11, 19, 5, 13))
    factors = itertools.cycle((Decimal(1), Decimal("0.5"), Decimal("0.9")))

    async def one_run(ledger: BudgetLedger, run_id: str, soft: list[int]) -> None:
        for _ in range(3):
            usd = next(estimates)
            try:
                reservation = await ledger.reserve([budget], amount_usd=usd, tokens=1, run_id=run_id)
            except BudgetExceeded:
                return
            await asyncio.sleep(0)
            actual = (usd * next(factors)).quantize(Decimal("0.0001"))
            settlement = await ledger.settle(reservation, actual_usd=actual, actual_tokens=1)
            soft.append(sum(1 for crossing in settlement.crossed if not crossing.hard))

    soft: list[int] = []
    async with (
        BudgetLedger(store_url, lease_idle=None) as first,
        BudgetLedger(store_url, lease_idle=None) as second,
    ):
        await asyncio.gather(
            *(
                one_run(ledger, f"{name}-{i}", soft)
                for i in range(40)
                for name, ledger in (("a", first), ("b", second))
            )
        )
        await second.flush()  # its entries written behind its requests
        spend = await first.spent("tenant", TENANT, "day")
        entries = await first.entries(tenant_id=TENANT, limit=10_000)
    assert spend.settled_usd <= limit and sum(soft) == 1
    estimate_of: dict[str, Decimal] = {}
    held, settled = Decimal(0), Decimal(0)
    for entry in entries:
        if entry.kind == "reserve":
            estimate_of[entry.reservation_id] = entry.amount_usd
            held += entry.amount_usd
        else:
            assert entry.kind == "settle"
            held -= estimate_of[entry.reservation_id]
            settled += entry.amount_usd
        assert held + settled <= limit, entry
    assert held == 0 and settled == spend.settled_usd
    # Most of the budget was used: a refusal leaves less than the largest estimate to anyone.
    assert sum(estimate_of.values()) > limit - Decimal("0.25") * 2


# -- giving room back ------------------------------------------------------------------------------


async def test_closing_a_ledger_releases_its_leases(store_url: str, clock: Clock) -> None:
    budget = daily("1.00")
    first = BudgetLedger(store_url, clock=clock, lease_idle=None)
    taken = await reserve(first, budget, "0.10")
    await first.settle(taken, actual_usd=Decimal("0.10"), actual_tokens=1)
    assert [(state, amount) for _, state, amount, _ in holds(store_url)] == [("open", Decimal("0.20"))]
    await first.close()
    [(_, state, _, owner)] = holds(store_url)
    assert state == "released" and owner == first.owner
    async with BudgetLedger(store_url, clock=clock, lease_idle=None) as other:
        assert (await other.spent("tenant", TENANT, "day")).reserved_usd == 0
        await reserve(other, budget, "0.90")


async def test_a_lease_nobody_uses_goes_back_by_itself(store_url: str) -> None:
    budget = daily("1.00")
    async with (
        BudgetLedger(store_url, lease_idle=0.05) as idle,
        BudgetLedger(store_url, lease_idle=None) as other,
    ):
        taken = await reserve(idle, budget, "0.10")
        await idle.settle(taken, actual_usd=Decimal("0.10"), actual_tokens=1)
        assert (await other.spent("tenant", TENANT, "day")).reserved_usd > 0
        for _ in range(500):  # the sweeper runs every 0.05 s; wait for it, within reason
            if (await other.spent("tenant", TENANT, "day")).reserved_usd == 0:
                break
            await asyncio.sleep(0.02)
        assert (await other.spent("tenant", TENANT, "day")).reserved_usd == 0
        assert [state for _, state, _, _ in holds(store_url)] == ["released"]


async def test_a_crashed_process_holds_its_lease_until_it_expires(store_url: str) -> None:
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.gateway.budget_worker",
        store_url,
        "hold",
        "crash-run",
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert worker.stdout is not None
        line = await asyncio.wait_for(worker.stdout.readline(), timeout=60)
        assert line.decode().strip() == "held", await worker.stderr.read() if worker.stderr else b""
    finally:
        worker.send_signal(signal.SIGKILL)  # a crash: no close, no lease given back
        await worker.wait()
    budget = crash_budget("crash-run")  # 10 estimates, for the whole run
    [(_, state, leased, _)] = holds(store_url)
    assert state == "open" and leased == ESTIMATE * 3  # the request and 2 estimates to spare
    clock = Clock(datetime.now(UTC))
    async with BudgetLedger(store_url, clock=clock, lease_idle=None) as survivor:
        spend = await survivor.spent("run", "crash-run", "run", tenant_id=TENANT)
        assert spend.reserved_usd == leased
        with pytest.raises(BudgetExceeded):
            await survivor.reserve([budget], amount_usd=budget.limit - leased + Decimal("0.01"), tokens=1)
        clock.advance(seconds=RESERVATION_TTL_SECONDS + LEASE_TERM_SECONDS + 1)  # the lease expired
        assert (await survivor.spent("run", "crash-run", "run", tenant_id=TENANT)).reserved_usd == 0
        await survivor.reserve([budget], amount_usd=budget.limit, tokens=1)


async def test_a_lease_lives_at_least_a_reservation_longer_than_what_it_hands_out(
    ledger: BudgetLedger, clock: Clock
) -> None:
    budget = daily("100")
    await reserve(ledger, budget, "1")
    clock.advance(seconds=LEASE_TERM_SECONDS + 1)  # the lease now ends within reservation_ttl
    before = ledger.transactions
    late = await reserve(ledger, budget, "1")
    assert ledger.transactions > before  # renewed in the database before handing room out
    assert late.expires_at == clock.now + timedelta(seconds=RESERVATION_TTL_SECONDS)


async def test_a_starting_run_has_its_leases_opened_for_it(store_url: str) -> None:
    """`BudgetGuard.for_run` opens the run's leases in the background, sized by the agent's
    latest request, so the run's first request finds room in memory."""
    config = BudgetsConfig(limits=[BudgetConfig(scope="run", unit="tokens", period="run", limit=10_000)])
    guard = BudgetGuard(config, store_url)
    guard.start()
    try:
        first = guard.for_run(run_id="r1", agent="support", tenant_id=TENANT, user_id=None)
        assert first is not None
        await guard.ledger.flush()
        assert holds(store_url) == []  # no request of the agent seen yet: nothing to size a lease by
        guard.estimated("support", Decimal(0), 500)
        run = guard.for_run(run_id="r2", agent="support", tenant_id=TENANT, user_id=None)
        assert run is not None
        await guard.ledger.flush()  # the run's setup, in a real run
        before = guard.ledger.transactions
        await guard.ledger.reserve(run.budgets, amount_usd=0, tokens=500, run_id="r2", tenant_id=TENANT)
        assert guard.ledger.transactions == before
    finally:
        await guard.aclose()
