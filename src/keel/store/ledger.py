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
period and window, shared by its USD and token budgets) holding the *settled* spend. Room that is
promised but not spent yet is held by `budget_holds` rows, each with an expiry. A hold is a
*lease*: one ledger (one process) holds a block of a counter's room, and hands it out to its own
requests in memory. Whatever the leases' owners do with their room, every budget keeps

    settled spend + every unexpired open hold <= limit

because a hold only grows in a transaction that checks exactly that. A request fits when it fits
in its ledger's free lease room on every counter it touches; otherwise the ledger asks the
database for more (below), and a request is refused only if, from its process, settled spend +
the other processes' holds + its own process's open reservations + this estimate would pass a
limit: the same rule as a hold per request, with the other processes' leases counted whole.

Reserving. The common case costs no database round trip: when the ledger's lease on every counter
of the request has the free room, lives at least `reservation_ttl` longer and was checked against
limits no looser than the request's budgets, the room is taken in memory (the event loop runs one
reservation at a time, so two requests cannot take the same room), and the `reserve` entry is
written behind it. Otherwise the request waits for the ledger's writer (`keel.store.ledger_writer`),
which in one transaction locks the counters (PostgreSQL: `SELECT ... FOR UPDATE` in key order;
SQLite: the transaction's first statement is a write, so it holds the database write lock), reads
the settled spend and the open unexpired holds, grants or refuses, grows the lease by what the
request lacks plus some room to spare, and records the `reserve` entry with the grant. Requests
waiting at the same time share that transaction. The room to spare is up to `LEASE_REQUESTS` (8)
estimates, doubling while the lease keeps growing more than once a second, and never more than a
quarter of the room left (`LEASE_SHARE`), in whole estimates: near a limit a lease holds exactly
what its requests need, so the last of a budget is still handed out exactly. A lease running low
or getting old is topped up in the background before a request has to wait for it;
`prepare(budgets, ...)` does that for a run's counters when the run starts.

Atomicity, across processes. Every lease change that adds room happens in such a transaction, so
two processes never both see room only one of them fits in; one process's requests are serialized
by its event loop. A process's memory never holds more than the database: room added to a lease
counts in memory once committed, room given back counts at once.

Settling. `settle` replaces the estimate with the actual usage, in one transaction (requests
settling at the same time share it): the counter's settled spend grows by the actual usage and the
lease's hold shrinks by the estimate (so room freed by a lower actual goes back to every process),
and the `settle` entry is written. The actual usage may be higher than the estimate: it is
recorded as it is, even if the settled spend then passes the limit (later requests are refused).
Settling again is a no-op (`duplicate`), so a retried step cannot count twice; the database
refuses a second settle or release entry of a reservation anyway. Usage lands in the windows the
reservation was made in, even if a day ended meanwhile. Only the ledger that made a reservation
settles or releases it (`Reservation.holder`).

Releasing. `release` gives the estimate back to the lease, in memory, and writes the `release`
entry behind it.

Expiry. A reservation stops counting `reservation_ttl` (10 minutes) after it was made, in its
ledger, as before; a lease's hold expires `reservation_ttl` + `lease_term` (60 s) after it last
grew or was renewed, and a ledger only takes room from a lease that lives `reservation_ttl` longer.
So a process that crashed holds its leases' room for at most 11 minutes (with the defaults), and a
request in flight is covered by a hold for its whole `reservation_ttl`. Settling an expired
reservation still records its usage (the request did happen), and its lease gives up as much free
room so the room is not handed out twice.

Giving room back. A lease nobody used for `lease_idle` seconds (5) returns its free room, or its
whole hold when nothing is in use (state `released`); so does every lease when the ledger closes
(`close()`, or `return_leases()`).

Soft thresholds. `settle` returns the thresholds its settlement crossed: the settled spend went
from below `limit * soft_threshold` to at least it (and, separately, past the hard limit when the
actual usage exceeded the estimate). Settled spend only grows and settlements of a counter are
serialized by its row lock (or SQLite's write lock), so each threshold of a window is reported by
exactly one settlement, in one process: emit the event there. `reserve` reports none (a
reservation may be released); its `checks` show each budget's spend, holds and what remains, as
the ledger last saw them.

The ledger. `budget_entries` is append-only: one row per reserve, settle and release, with the
time, tenant, run, amounts and the budgets involved; one ledger's entries are written in the order
it made them, and at most one reserve and one settle or release per reservation (unique indexes).
`reserve` and `release` entries are written behind the request, in batches (a crash may lose the
last few milliseconds of them; settlements are written before `settle` returns). `entries(...)`
reads it for audit, scoped through `keel.store.tenancy`, after writing what this ledger queued. A
refused request records nothing. `budget_holds.owner` says which ledger holds a lease.

Time is this process's clock (injectable), in UTC; windows are UTC days and calendar months.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, get_args

from sqlalchemy import select

from keel.errors import UsageError
from keel.gateway.budgets import (
    Budget,
    BudgetCheck,
    Period,
    Reservation,
    ScopeKind,
    Settlement,
    Unit,
    Window,
    as_tokens,
    as_usd,
    window_for,
)
from keel.store.engine import AsyncDatabase
from keel.store.ledger_lease import LEASE_REQUESTS, UNITS_, LeaseBook, Part, amounts, check_of
from keel.store.ledger_writer import (
    Entry,
    LedgerWriter,
    Return,
    Settle,
    Want,
    counter_key,
    held_of,
    settled_of,
)
from keel.store.repository import read_connection
from keel.store.tables import ID_LENGTH, NAME_LENGTH, budget_entries
from keel.store.tenancy import scope_to_tenant
from keel.store.types import as_utc

log = logging.getLogger("keel.budgets")

RESERVATION_TTL_SECONDS = 600.0
LEASE_TERM_SECONDS = 60.0
LEASE_IDLE_SECONDS = 5.0
MAX_ENTRIES = 10_000

EntryKind = Literal["reserve", "settle", "release"]
ENTRY_KINDS: frozenset[str] = frozenset(get_args(EntryKind))

_ZERO_USD = Decimal(0)
_KEY_CACHE = 65_536

__all__ = [
    "ENTRY_KINDS",
    "BudgetLedger",
    "LedgerEntry",
    "Spend",
    "counter_key",
]


@dataclass(frozen=True)
class Spend:
    """One scope's spend in one window: settled, and what unexpired holds hold of it, as this
    ledger sees it: every other process's leases whole, this ledger's own open reservations
    (its leases' free room is not counted: it is this ledger's to hand out)."""

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


class BudgetLedger(AsyncDatabase):
    """Budget reservations and the spend ledger on the database at `url` (migrated: `upgrade`).

    Connects lazily; `close()` (which gives the leases' room back) or `async with`. `clock` (aware
    UTC) defaults to the system clock; `reservation_ttl` (seconds) is how long an unsettled
    reservation keeps counting; a lease's hold lives `lease_term` seconds longer than that after
    it last grew; `lease_idle` (seconds, None: never) is how long a lease may go unused before its
    free room goes back (see the module docstring).
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime] | None = None,
        reservation_ttl: float = RESERVATION_TTL_SECONDS,
        lease_term: float = LEASE_TERM_SECONDS,
        lease_idle: float | None = LEASE_IDLE_SECONDS,
    ) -> None:
        super().__init__(url)
        if not reservation_ttl > 0:
            raise UsageError(f"reservation_ttl must be positive, got {reservation_ttl!r}")
        if not lease_term > 0:
            raise UsageError(f"lease_term must be positive, got {lease_term!r}")
        if lease_idle is not None and not lease_idle > 0:
            raise UsageError(f"lease_idle must be positive or None, got {lease_idle!r}")
        self._clock = clock or _utc_now
        self._ttl = timedelta(seconds=reservation_ttl)
        self._term = timedelta(seconds=lease_term)
        self._idle = lease_idle
        self.owner = f"{socket.gethostname()[:200]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        """Who holds this ledger's leases (`budget_holds.owner`) and made its reservations."""
        self._book = LeaseBook()
        self._writer = LedgerWriter(
            self._engine, url, self._book, clock=self._clock, ttl=self._ttl, term=self._term, owner=self.owner
        )
        self._keys: dict[tuple[Budget, datetime], str] = {}
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def transactions(self) -> int:
        """Transactions this ledger's writer committed (for benchmarks and tests)."""
        return self._writer.transactions

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

        Every budget is checked in its current window: settled spend + unexpired holds of other
        processes + this process's open reservations + this estimate must stay within its limit.
        If one does not, nothing is recorded and the error names the first budget (in the order
        given) that refused. `tenant_id` is the tenant the ledger entries belong to; by default
        the budgets' tenant.
        """
        checked = tuple(budgets)
        if not checked or not all(isinstance(budget, Budget) for budget in checked):
            raise UsageError("reserve needs at least one Budget")
        usd = as_usd(amount_usd, "estimate")
        token_count = as_tokens(tokens, "token estimate")
        tenant = _tenant_of(checked, tenant_id)
        _check_length(run_id, ID_LENGTH, "run id")
        now = as_utc(self._clock())
        book = self._book
        book.expire(now)
        windows, keys, parts = self._parts(checked, now)
        taken = amounts(usd, token_count)
        until = now + self._ttl
        reservation_id = f"res_{uuid.uuid4().hex}"

        def build(checks: tuple[BudgetCheck, ...]) -> Reservation:
            return Reservation(
                id=reservation_id,
                run_id=run_id,
                tenant_id=tenant,
                amount_usd=usd,
                tokens=token_count,
                created_at=now,
                expires_at=until,
                checks=checks,
                counter_keys=keys,
                holder=self.owner,
            )

        self._start_sweeper()
        if all(book.covers(part, taken, now, until) for part in parts):
            leases = book.leases
            reservation = build(
                tuple(
                    check_of(budget, window, leases[key], taken[budget.unit])
                    for budget, window, key in zip(checked, windows, keys, strict=True)
                )
            )
            book.record(reservation, tuple(leases[part.key] for part in parts))
            self._writer.submit(Entry(reservation, "reserve", now, usd, token_count))
            self._top_up(parts, taken, now)
            return reservation
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._writer.submit(Want(checked, windows, keys, parts, taken, build, future))
        ticket = await future
        reservation = ticket.reservation
        assert isinstance(reservation, Reservation)
        return reservation

    def prepare(self, budgets: Iterable[Budget], *, amount_usd: Decimal | int | str, tokens: int) -> None:
        """Open leases, in the background, on the counters of `budgets` this ledger holds none on,
        sized for requests of about `amount_usd` and `tokens` (a run about to start: its first
        request then finds its run budget's lease ready). Never raises for lack of room."""
        checked = tuple(budgets)
        if not checked:
            return
        taken = amounts(as_usd(amount_usd, "estimate"), as_tokens(tokens, "token estimate"))
        now = as_utc(self._clock())
        _, _, parts = self._parts(checked, now)
        until = now + self._ttl
        missing = tuple(part for part in parts if not self._book.covers(part, taken, now, until))
        if missing:
            self._start_sweeper()
            self._writer.submit(_top_up_of(missing, taken))

    async def settle(
        self, reservation: Reservation, *, actual_usd: Decimal | int | str, actual_tokens: int
    ) -> Settlement:
        """Record the actual usage of a reserved request in place of its estimate.

        The actual usage is recorded as it is, above the estimate or the limit included. A
        reservation settled already is not counted again (`duplicate`); settling a released one
        is a UsageError, and so is settling one another ledger made.
        """
        usd = as_usd(actual_usd, "actual amount")
        token_count = as_tokens(actual_tokens, "actual token count")
        self._check_holder(reservation)
        ticket = self._book.ticket(reservation.id)
        if ticket is None:
            state = await self._closed_state(reservation.id)
            if state == "settled":
                return Settlement(reservation.id, usd, token_count, duplicate=True, crossed=())
            if state == "released":
                raise UsageError(f"reservation {reservation.id} was released; it cannot be settled")
            raise UsageError(f"no reservation {reservation.id} in this ledger")
        future: asyncio.Future[Settlement] = asyncio.get_running_loop().create_future()
        self._writer.submit(Settle(ticket, usd, token_count, future))
        return await asyncio.shield(future)

    async def release(self, reservation: Reservation) -> bool:
        """Drop an unsettled reservation (the request failed, nothing was spent). False if it was
        settled or released already."""
        self._check_holder(reservation)
        ticket = self._book.ticket(reservation.id)
        if ticket is None or ticket.state not in ("open", "expired"):
            return False
        self._book.release(ticket)
        at = as_utc(self._clock())
        self._writer.submit(Entry(reservation, "release", at, reservation.amount_usd, reservation.tokens))
        return True

    async def flush(self) -> None:
        """Wait until everything this ledger queued (entries, returned room) is written."""
        await self._writer.flush()

    async def return_leases(self) -> None:
        """Give every lease's free room back to the database now (a lease with nothing in use is
        released), and wait until that is written."""
        self._give_back(None)
        await self._writer.flush()

    async def close(self) -> None:
        """Give the leases' free room back, write what is queued, and close the connections. If
        the database cannot be reached, the leases simply expire."""
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        try:
            if self._book.leases or self._book.open:
                self._give_back(None)
            await self._writer.close()
        except Exception as exc:  # the database is away: the holds expire on their own
            log.warning("budget ledger: could not give leases back on close: %s: %s", type(exc).__name__, exc)
        finally:
            await super().close()

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
        """Settled spend and what unexpired holds hold (see `Spend`) of one scope in the window
        of `period` that contains `at` (now by default). `tenant_id`: the tenant the scope
        belongs to (for a `tenant` scope, the scope id itself)."""
        await self._writer.flush()
        now = as_utc(self._clock())
        window = window_for(period, as_utc(at) if at is not None else now)
        tenant = scope_id if scope == "tenant" else tenant_id
        key = counter_key(tenant, scope, scope_id, period, window.start)
        async with read_connection(self._engine, self._url) as connection:
            settled = await settled_of(connection, [key])
            held = await held_of(connection, [key], now)
        self._book.expire(now)
        own = self._book.own_free(key, now)
        settled_usd, settled_tokens = settled.get(key, (_ZERO_USD, 0))
        reserved_usd, reserved_tokens = held.get(key, (_ZERO_USD, 0))
        return Spend(
            window,
            settled_usd,
            settled_tokens,
            reserved_usd - own["usd"],
            reserved_tokens - int(own["tokens"]),
        )

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
        when None, for operators). `since` inclusive, `until` exclusive. What this ledger has
        queued is written first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_ENTRIES:
            raise UsageError(f"limit must be an integer from 1 to {MAX_ENTRIES}, got {limit!r}")
        await self._writer.flush()
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

    def _parts(
        self, budgets: Sequence[Budget], now: datetime
    ) -> tuple[tuple[Window, ...], tuple[str, ...], tuple[Part, ...]]:
        """Each budget's window and counter key at `now`, and the budgets grouped by counter."""
        by_period: dict[Period, Window] = {}
        windows: list[Window] = []
        keys: list[str] = []
        for budget in budgets:
            window = by_period.get(budget.period)
            if window is None:
                window = by_period[budget.period] = budget.window(now)
            windows.append(window)
            cached = self._keys.get((budget, window.start))
            if cached is None:
                if len(self._keys) >= _KEY_CACHE:
                    self._keys.clear()
                cached = self._keys[(budget, window.start)] = counter_key(
                    budget.tenant_id, budget.scope, budget.scope_id, budget.period, window.start
                )
            keys.append(cached)
        grouped: dict[str, list[Budget]] = {}
        for budget, key in zip(budgets, keys, strict=True):
            grouped.setdefault(key, []).append(budget)
        part_windows = dict(zip(keys, windows, strict=True))
        parts = tuple(Part(key, part_windows[key], tuple(group)) for key, group in grouped.items())
        return tuple(windows), tuple(keys), parts

    def _top_up(self, parts: Sequence[Part], taken: Mapping[Unit, Decimal], now: datetime) -> None:
        """After a reservation from memory: top up, in the background, the leases it found low
        (less than half of `LEASE_REQUESTS` such requests left) or getting old."""
        renew_by = now + self._ttl + self._term / 2
        low: list[Part] = []
        for part in parts:
            lease = self._book.leases[part.key]
            if lease.topping_up:
                continue
            short = any(
                lease.free(budget.unit) < taken[budget.unit] * (LEASE_REQUESTS // 2)
                for budget in part.budgets
            )
            if short or lease.expires_at < renew_by:
                lease.topping_up = True
                low.append(part)
        if low:
            want = _top_up_of(tuple(low), {unit: taken[unit] for unit in UNITS_})
            want.topping = tuple(self._book.leases[part.key] for part in low)
            self._writer.submit(want)

    def _give_back(self, idle_since: float | None) -> None:
        """Queue the return of the free room of leases (only those unused since `idle_since`)."""
        book = self._book
        book.expire(as_utc(self._clock()))
        for lease in book.unused(idle_since):
            if lease.idle():
                book.leases.pop(lease.key, None)
                self._writer.submit(Return(lease, dict(lease.held), release=True))
                continue
            shrink = {unit: max(lease.free(unit), Decimal(0)) for unit in UNITS_}
            for unit in UNITS_:
                lease.held[unit] -= shrink[unit]
            self._writer.submit(Return(lease, shrink, release=False))

    def _start_sweeper(self) -> None:
        if self._idle is None or (self._sweeper is not None and not self._sweeper.done()):
            return
        self._sweeper = asyncio.get_running_loop().create_task(
            self._sweep(self._idle), name="keel-budget-leases"
        )

    async def _sweep(self, idle: float) -> None:
        """Every `idle` seconds, give back the room of leases unused for that long."""
        while True:
            await asyncio.sleep(idle)
            try:
                self._give_back(time.monotonic() - idle)
            except Exception as exc:  # never let the sweeper die of one bad lease
                log.warning("budget ledger: could not give idle leases back: %s: %s", type(exc).__name__, exc)

    def _check_holder(self, reservation: Reservation) -> None:
        if reservation.holder != self.owner:
            raise UsageError(
                f"reservation {reservation.id} was made by another ledger; only that ledger settles or "
                "releases it"
            )

    async def _closed_state(self, reservation_id: str) -> str | None:
        """'settled' or 'released' for a reservation of this ledger that is closed, else None."""
        state = self._book.closed.get(reservation_id)
        if state is not None:
            return state
        await self._writer.flush()
        statement = (
            select(budget_entries.c.kind)
            .where(budget_entries.c.reservation_id == reservation_id, budget_entries.c.kind != "reserve")
            .limit(1)
        )
        async with read_connection(self._engine, self._url) as connection:
            kind: str | None = (await connection.execute(statement)).scalar()
        return {"settle": "settled", "release": "released"}.get(kind or "")


def _top_up_of(parts: Sequence[Part], taken: Mapping[Unit, Decimal]) -> Want:
    budgets = tuple(budget for part in parts for budget in part.budgets)
    windows = tuple(part.window for part in parts for _ in part.budgets)
    keys = tuple(part.key for part in parts for _ in part.budgets)
    return Want(budgets, windows, keys, tuple(parts), dict(taken))


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _tenant_of(budgets: Sequence[Budget], tenant_id: str | None) -> str | None:
    if tenant_id is not None:
        _check_length(tenant_id, NAME_LENGTH, "tenant id")
        return tenant_id
    tenants = {budget.tenant_id for budget in budgets if budget.tenant_id is not None}
    if len(tenants) > 1:
        raise UsageError(f"budgets of several tenants ({', '.join(sorted(tenants))}): pass tenant_id")
    return next(iter(tenants), None)


def _check_length(value: str | None, most: int, what: str) -> None:
    if value is not None and (not isinstance(value, str) or len(value) > most):
        raise UsageError(f"the {what} must be a string of at most {most} characters")
