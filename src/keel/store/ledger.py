"""The budget ledger: reserve before a model request, settle (or release) after it.

    async with BudgetLedger(url) as ledger:
        reservation = await ledger.reserve(budgets, amount_usd=estimate, tokens=4_000, run_id=run_id)
        ...                                    # BudgetExceeded above: the provider is not called
        settlement = await ledger.settle(reservation, actual_usd=cost, actual_tokens=used)
        for crossing in settlement.crossed:    # soft thresholds crossed by this settlement
            emit(...)
        # or, if the request failed and nothing was spent:
        await ledger.release(reservation)

The domain (`Budget`, windows, `BudgetExceeded`) is `keel.gateway.budgets`. The run loop calls
this ledger through `keel.runtime.budget_guard` (one ledger per `Runner`): one reserve before each
model request, one settle (or release) after it.

Model. Each budget's current window has a counter row (`budget_counters`, one per tenant, scope,
period and window, shared by its USD and token budgets) holding the *settled* spend. A reservation
adds one `budget_holds` row per counter with its estimate, `open` until it is settled or released.
A request fits a budget when settled + open holds + the new estimate <= the limit.

Atomicity, across processes. `reserve` runs in one transaction that first locks every counter it
checks, then sums the open holds, checks every budget and inserts its holds, or raises
`BudgetExceeded` and rolls back, recording nothing. On PostgreSQL the lock is a row lock
(`SELECT ... FOR UPDATE` on the counter rows, created first if missing with
`INSERT ... ON CONFLICT DO NOTHING`), always taken in key order so two reservations never
deadlock; `settle` takes the same locks. On SQLite the transaction's first statement is a write,
so it holds the database write lock from its start (the same effect as `BEGIN IMMEDIATE`; other
processes wait up to the busy timeout), and within one process the ledger also queues its own
writes so they do not compete for that lock. Two concurrent reservations on a counter therefore
never both see the room only one of them fits in.

Settling. `settle` replaces the estimate with the actual usage, which may be higher than the
estimate: it is recorded as it is, even if the settled spend then passes the limit (later
requests are refused). Settling again is a no-op (`duplicate`), so a retried step cannot count
twice. Usage lands in the windows the reservation was made in, even if a day ended meanwhile.

Expiry. A hold stops counting `reservation_ttl` (10 minutes) after it was made, so a process
that crashed between reserve and settle cannot block a budget forever. Settling an expired
reservation still records its usage: the request did happen.

Soft thresholds. `settle` returns the thresholds its settlement crossed: the settled spend went
from below `limit * soft_threshold` to at least it (and, separately, past the hard limit when the
actual usage exceeded the estimate). Settled spend only grows and settlements of a counter are
serialized, so each threshold of a window is reported by exactly one settlement, in one process:
emit the event there. `reserve` reports none (a reservation may be released); its `checks` show
each budget's spend, holds and what remains.

The ledger. `budget_entries` is append-only: one row per reserve, settle and release, with the
time, tenant, run, amounts and the budgets involved. `entries(tenant_id=...)` reads it for audit,
scoped through `keel.store.tenancy`. A refused request records nothing.

Time is this process's clock (injectable), in UTC; windows are UTC days and calendar months.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, get_args

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.errors import UsageError
from keel.gateway.budgets import (
    Amount,
    Budget,
    BudgetCheck,
    BudgetExceeded,
    Period,
    Reservation,
    ScopeKind,
    Settlement,
    ThresholdCrossing,
    Window,
    as_tokens,
    as_usd,
    window_for,
)
from keel.store.batch import insert_ignoring_duplicates
from keel.store.engine import AsyncDatabase
from keel.store.repository import read_connection, write_transaction
from keel.store.tables import OPEN_BUDGET_HOLD, budget_counters, budget_entries, budget_holds
from keel.store.tenancy import scope_to_tenant
from keel.store.types import as_utc
from keel.store.urls import backend_of, parse_url

RESERVATION_TTL_SECONDS = 600.0
MAX_ENTRIES = 10_000

EntryKind = Literal["reserve", "settle", "release"]
ENTRY_KINDS: frozenset[str] = frozenset(get_args(EntryKind))

_ZERO_USD = Decimal(0)


@dataclass(frozen=True)
class Spend:
    """One scope's spend in one window: settled, and what unexpired open reservations hold."""

    window: Window
    settled_usd: Decimal
    settled_tokens: int
    reserved_usd: Decimal
    reserved_tokens: int


@dataclass(frozen=True)
class LedgerEntry:
    """One line of the spend ledger. `amount_usd`/`tokens`: the estimate for `reserve` and
    `release`, the actual usage for `settle`. `budgets`: the budgets involved (as recorded)."""

    id: int
    reservation_id: str
    tenant_id: str | None
    run_id: str | None
    kind: EntryKind
    recorded_at: datetime
    amount_usd: Decimal
    tokens: int
    budgets: tuple[Mapping[str, Any], ...]


def counter_key(tenant_id: str | None, scope: str, scope_id: str, period: str, window_start: datetime) -> str:
    """The `budget_counters` key of one scope's window: a SHA-256 over its parts (64 hex digits)."""
    parts = [tenant_id, scope, scope_id, period, as_utc(window_start).isoformat()]
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()


class BudgetLedger(AsyncDatabase):
    """Budget reservations and the spend ledger on the database at `url` (migrated: `upgrade`).

    Connects lazily; `close()` or `async with`. `clock` (aware UTC) defaults to the system clock;
    `reservation_ttl` (seconds) is how long an unsettled reservation keeps counting.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime] | None = None,
        reservation_ttl: float = RESERVATION_TTL_SECONDS,
    ) -> None:
        super().__init__(url)
        if not reservation_ttl > 0:
            raise UsageError(f"reservation_ttl must be positive, got {reservation_ttl!r}")
        self._clock = clock or _utc_now
        self._ttl = timedelta(seconds=reservation_ttl)
        self._sqlite = backend_of(parse_url(url)) == "sqlite"
        self._writes = asyncio.Lock()

    # -- reserve, settle, release -----------------------------------------------------------------

    async def reserve(
        self,
        budgets: Iterable[Budget],
        *,
        amount_usd: Decimal | int | str,
        tokens: int,
        run_id: str | None = None,
        tenant_id: str | None = None,
    ) -> Reservation:
        """Hold `amount_usd` and `tokens` against every budget, or raise `BudgetExceeded`.

        Every budget is checked in its current window: settled spend + unexpired open holds +
        this estimate must stay within its limit. If one does not, nothing is recorded and the
        error names the first budget (in the order given) that refused. `tenant_id` is the
        tenant the ledger entries belong to; by default the budgets' tenant.
        """
        checked = tuple(budgets)
        if not checked or not all(isinstance(budget, Budget) for budget in checked):
            raise UsageError("reserve needs at least one Budget")
        usd = as_usd(amount_usd, "estimate")
        token_count = as_tokens(tokens, "token estimate")
        tenant = _tenant_of(checked, tenant_id)
        now = as_utc(self._clock())
        windows = [budget.window(now) for budget in checked]
        keys = [_key_of(budget, window) for budget, window in zip(checked, windows, strict=True)]
        counters = {
            key: _counter_row(key, budget, window, now)
            for key, budget, window in zip(keys, checked, windows, strict=True)
        }
        ordered = sorted(counters)
        reservation_id = f"res_{uuid.uuid4().hex}"
        expires_at = now + self._ttl
        async with self._transaction() as connection:
            dialect = connection.dialect.name
            # First statement, a write: on SQLite it takes the write lock for the transaction.
            await connection.execute(
                insert_ignoring_duplicates(budget_counters, dialect), [counters[key] for key in ordered]
            )
            settled = await _lock_counters(connection, ordered)
            held = await _held(connection, ordered, now)
            results: list[BudgetCheck] = []
            for budget, window, key in zip(checked, windows, keys, strict=True):
                spent = _in_unit(budget, settled[key])
                reserved = _in_unit(budget, held.get(key, (_ZERO_USD, 0)))
                requested = budget.amount(usd, token_count)
                if Decimal(spent) + Decimal(reserved) + Decimal(requested) > Decimal(budget.limit):
                    raise BudgetExceeded(
                        budget, spent=spent, reserved=reserved, requested=requested, window=window
                    )
                results.append(BudgetCheck(budget, window, spent, reserved, requested))
            await connection.execute(
                insert(budget_holds),
                [
                    {
                        "reservation_id": reservation_id,
                        "counter_key": key,
                        "amount_usd": usd,
                        "tokens": token_count,
                        "state": "open",
                        "expires_at": expires_at,
                    }
                    for key in ordered
                ],
            )
            await connection.execute(
                insert(budget_entries),
                [_entry(reservation_id, tenant, run_id, "reserve", now, usd, token_count, checked, windows)],
            )
        return Reservation(
            id=reservation_id,
            run_id=run_id,
            tenant_id=tenant,
            amount_usd=usd,
            tokens=token_count,
            created_at=now,
            expires_at=expires_at,
            checks=tuple(results),
            counter_keys=tuple(keys),
        )

    async def settle(
        self, reservation: Reservation, *, actual_usd: Decimal | int | str, actual_tokens: int
    ) -> Settlement:
        """Record the actual usage of a reserved request in place of its estimate.

        The actual usage is recorded as it is, above the estimate or the limit included. A
        reservation settled already is not counted again (`duplicate`); settling a released one
        is a UsageError.
        """
        usd = as_usd(actual_usd, "actual amount")
        token_count = as_tokens(actual_tokens, "actual token count")
        now = as_utc(self._clock())
        ordered = sorted(set(reservation.counter_keys))
        async with self._transaction() as connection:
            if not self._sqlite:
                await _lock_counters(connection, ordered)
            # On SQLite this write comes first, so it takes the write lock.
            closed = await connection.execute(
                update(budget_holds)
                .where(budget_holds.c.reservation_id == reservation.id, OPEN_BUDGET_HOLD)
                .values(state="settled")
            )
            if closed.rowcount == 0:
                state = await _state_of(connection, reservation.id)
                if state == "settled":
                    return Settlement(reservation.id, usd, token_count, duplicate=True, crossed=())
                if state == "released":
                    raise UsageError(f"reservation {reservation.id} was released; it cannot be settled")
                raise UsageError(f"no reservation {reservation.id} in this database")
            before = await _lock_counters(connection, ordered, lock=False)
            for key in ordered:
                await connection.execute(
                    update(budget_counters)
                    .where(budget_counters.c.key == key)
                    .values(
                        settled_usd=budget_counters.c.settled_usd + usd,
                        settled_tokens=budget_counters.c.settled_tokens + token_count,
                        updated_at=now,
                    )
                )
            await _log(connection, reservation, "settle", now, usd, token_count)
        crossed: list[ThresholdCrossing] = []
        for check, key in zip(reservation.checks, reservation.counter_keys, strict=True):
            crossed.extend(_crossings(check, before[key], usd, token_count))
        return Settlement(reservation.id, usd, token_count, duplicate=False, crossed=tuple(crossed))

    async def release(self, reservation: Reservation) -> bool:
        """Drop an unsettled reservation (the request failed, nothing was spent). False if it was
        settled or released already."""
        now = as_utc(self._clock())
        async with self._transaction() as connection:
            released = await connection.execute(
                update(budget_holds)
                .where(budget_holds.c.reservation_id == reservation.id, OPEN_BUDGET_HOLD)
                .values(state="released")
            )
            if released.rowcount == 0:
                return False
            await _log(connection, reservation, "release", now, reservation.amount_usd, reservation.tokens)
        return True

    # -- queries ----------------------------------------------------------------------------------

    async def spent(
        self,
        scope: ScopeKind,
        scope_id: str,
        period: Period,
        *,
        tenant_id: str | None = None,
        at: datetime | None = None,
    ) -> Spend:
        """Settled spend and unexpired open holds of one scope in the window of `period` that
        contains `at` (now by default). `tenant_id`: the tenant the scope belongs to (for a
        `tenant` scope, the scope id itself)."""
        now = as_utc(self._clock())
        window = window_for(period, as_utc(at) if at is not None else now)
        tenant = scope_id if scope == "tenant" else tenant_id
        key = counter_key(tenant, scope, scope_id, period, window.start)
        async with read_connection(self._engine, self._url) as connection:
            settled = await _lock_counters(connection, [key], lock=False)
            held = await _held(connection, [key], now)
        settled_usd, settled_tokens = settled.get(key, (_ZERO_USD, 0))
        reserved_usd, reserved_tokens = held.get(key, (_ZERO_USD, 0))
        return Spend(window, settled_usd, settled_tokens, reserved_usd, reserved_tokens)

    async def entries(
        self,
        *,
        tenant_id: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
        run_id: str | None = None,
        reservation_id: str | None = None,
        limit: int = 1000,
    ) -> list[LedgerEntry]:
        """Ledger entries in the order they were recorded; only `tenant_id`'s (every tenant's
        when None, for operators). `since` inclusive, `until` exclusive."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_ENTRIES:
            raise UsageError(f"limit must be an integer from 1 to {MAX_ENTRIES}, got {limit!r}")
        statement = select(budget_entries).order_by(budget_entries.c.id).limit(limit)
        if since is not None:
            statement = statement.where(budget_entries.c.recorded_at >= as_utc(since))
        if until is not None:
            statement = statement.where(budget_entries.c.recorded_at < as_utc(until))
        if run_id is not None:
            statement = statement.where(budget_entries.c.run_id == run_id)
        if reservation_id is not None:
            statement = statement.where(budget_entries.c.reservation_id == reservation_id)
        statement = scope_to_tenant(statement, budget_entries, tenant_id)
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [
            LedgerEntry(
                id=row["id"],
                reservation_id=row["reservation_id"],
                tenant_id=row["tenant_id"],
                run_id=row["run_id"],
                kind=row["kind"],
                recorded_at=row["recorded_at"],
                amount_usd=row["amount_usd"],
                tokens=int(row["tokens"]),
                budgets=tuple(row["budgets"]),
            )
            for row in rows
        ]

    # -- plumbing ---------------------------------------------------------------------------------

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction; on SQLite, one at a time per ledger (the file lock does the rest)."""
        if self._sqlite:
            async with self._writes, write_transaction(self._engine, self._url) as connection:
                yield connection
        else:
            async with write_transaction(self._engine, self._url) as connection:
                yield connection


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _tenant_of(budgets: Sequence[Budget], tenant_id: str | None) -> str | None:
    if tenant_id is not None:
        return tenant_id
    tenants = {budget.tenant_id for budget in budgets if budget.tenant_id is not None}
    if len(tenants) > 1:
        raise UsageError(f"budgets of several tenants ({', '.join(sorted(tenants))}): pass tenant_id")
    return next(iter(tenants), None)


def _key_of(budget: Budget, window: Window) -> str:
    return counter_key(budget.tenant_id, budget.scope, budget.scope_id, budget.period, window.start)


def _counter_row(key: str, budget: Budget, window: Window, now: datetime) -> dict[str, Any]:
    return {
        "key": key,
        "tenant_id": budget.tenant_id,
        "scope": budget.scope,
        "scope_id": budget.scope_id,
        "period": budget.period,
        "window_start": window.start,
        "window_end": window.end,
        "settled_usd": _ZERO_USD,
        "settled_tokens": 0,
        "updated_at": now,
    }


async def _lock_counters(
    connection: AsyncConnection, keys: Sequence[str], *, lock: bool = True
) -> dict[str, tuple[Decimal, int]]:
    """Settled (USD, tokens) per counter key; on PostgreSQL with `lock`, rows locked in key order."""
    statement = (
        select(budget_counters.c.key, budget_counters.c.settled_usd, budget_counters.c.settled_tokens)
        .where(budget_counters.c.key.in_(keys))
        .order_by(budget_counters.c.key)
    )
    if lock and connection.dialect.name == "postgresql":
        statement = statement.with_for_update()
    rows = await connection.execute(statement)
    return {key: (usd, int(tokens)) for key, usd, tokens in rows}


async def _held(
    connection: AsyncConnection, keys: Sequence[str], now: datetime
) -> dict[str, tuple[Decimal, int]]:
    """What unexpired open holds hold, per counter key: (USD, tokens)."""
    statement = (
        select(
            budget_holds.c.counter_key,
            func.sum(budget_holds.c.amount_usd),
            func.sum(budget_holds.c.tokens),
        )
        .where(budget_holds.c.counter_key.in_(keys), OPEN_BUDGET_HOLD, budget_holds.c.expires_at > now)
        .group_by(budget_holds.c.counter_key)
    )
    rows = await connection.execute(statement)
    return {key: (usd if usd is not None else _ZERO_USD, int(tokens or 0)) for key, usd, tokens in rows}


async def _state_of(connection: AsyncConnection, reservation_id: str) -> str | None:
    statement = select(budget_holds.c.state).where(budget_holds.c.reservation_id == reservation_id).limit(1)
    state: str | None = (await connection.execute(statement)).scalar()
    return state


def _in_unit(budget: Budget, amounts: tuple[Decimal, int]) -> Amount:
    return amounts[0] if budget.unit == "usd" else amounts[1]


def _crossings(
    check: BudgetCheck, settled_before: tuple[Decimal, int], usd: Decimal, tokens: int
) -> list[ThresholdCrossing]:
    budget = check.budget
    before = _in_unit(budget, settled_before)
    after: Amount = before + budget.amount(usd, tokens)
    crossed: list[ThresholdCrossing] = []
    soft = budget.soft_limit
    if soft is not None and Decimal(before) < soft <= Decimal(after):
        crossed.append(ThresholdCrossing(budget, check.window, soft, False, before, after))
    limit = Decimal(budget.limit)
    if Decimal(before) <= limit < Decimal(after):
        crossed.append(ThresholdCrossing(budget, check.window, limit, True, before, after))
    return crossed


async def _log(
    connection: AsyncConnection,
    reservation: Reservation,
    kind: EntryKind,
    now: datetime,
    usd: Decimal,
    tokens: int,
) -> None:
    """Append one audit entry for `reservation` (settle or release), in the caller's transaction."""
    windows = [check.window for check in reservation.checks]
    entry = _entry(
        reservation.id,
        reservation.tenant_id,
        reservation.run_id,
        kind,
        now,
        usd,
        tokens,
        reservation.budgets,
        windows,
    )
    await connection.execute(insert(budget_entries), [entry])


def _entry(
    reservation_id: str,
    tenant_id: str | None,
    run_id: str | None,
    kind: EntryKind,
    now: datetime,
    usd: Decimal,
    tokens: int,
    budgets: Sequence[Budget],
    windows: Sequence[Window],
) -> dict[str, Any]:
    return {
        "reservation_id": reservation_id,
        "tenant_id": tenant_id,
        "run_id": run_id,
        "kind": kind,
        "recorded_at": now,
        "amount_usd": usd,
        "tokens": tokens,
        "budgets": [
            {**budget.as_dict(), "window_start": window.start.isoformat()}
            for budget, window in zip(budgets, windows, strict=True)
        ],
    }
