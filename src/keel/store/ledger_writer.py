"""The ledger's writer: one task per `BudgetLedger` that turns its work into database transactions.

Work is queued and written in order, many items per transaction (group commit), so a burst of
requests costs a few transactions rather than one each:

- `Want`: a request the leases could not serve from memory (no lease yet, not enough free room,
  a stricter limit, a lease about to expire), or a top-up of a lease running low (no request);
- `Settle`: a reservation's actual usage (the caller waits for it: it reports threshold crossings);
- `Entry`: a reserve or release entry of the append-only ledger, written behind the request;
- `Return`: free room a lease gives back (idle, or the ledger closing);
- `Flush`: resolves once everything queued before it is committed.

A transaction, in this order: insert the counters it touches if missing, and read their settled
spend (on PostgreSQL `FOR UPDATE`, in key order, so two processes never deadlock; on SQLite the
insert, a write, takes the database's write lock first); read the open unexpired holds of the
counters requests want room on; then, without awaiting anything, decide every item in queue
order (grant or refuse each request, settle each reservation, size each lease); then write the
counters, the holds and the entries (in queue order: the entries of one ledger appear in the order
it made them) and commit. Memory (`keel.store.ledger_lease`) follows the rule that it never holds
more than the database: room taken out of a lease counts at once, room added only once committed;
what the transaction changed in memory beforehand is undone if it fails, and the items are then
retried one by one, each in its own transaction, so one bad item cannot fail the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from functools import partial
from typing import Any, Literal

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from keel.errors import UsageError
from keel.gateway.budgets import (
    Budget,
    BudgetCheck,
    BudgetExceeded,
    Reservation,
    Settlement,
    ThresholdCrossing,
    Unit,
    Window,
)
from keel.store.batch import insert_ignoring_duplicates
from keel.store.ledger_lease import (
    BOOST_WINDOW_S,
    LEASE_REQUESTS,
    LEASE_SHARE,
    MAX_BOOST,
    UNITS_,
    ZERO,
    Lease,
    LeaseBook,
    Part,
    Ticket,
    TicketState,
    amounts,
    in_unit,
    new_lease_id,
)
from keel.store.repository import write_transaction
from keel.store.tables import OPEN_BUDGET_HOLD, budget_counters, budget_entries, budget_holds
from keel.store.types import Money, as_utc

log = logging.getLogger("keel.budgets")

EntryKind = Literal["reserve", "settle", "release"]
LINGER_S = 0.01
"""How long work nobody waits for (entries, returns) may wait for more to share its transaction."""


# -- rows ------------------------------------------------------------------------------------------


def counter_key(tenant_id: str | None, scope: str, scope_id: str, period: str, window_start: datetime) -> str:
    """The `budget_counters` key of one scope's window: a SHA-256 over its parts (64 hex digits)."""
    parts = [tenant_id, scope, scope_id, period, as_utc(window_start).isoformat()]
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()


def counter_row(key: str, budget: Budget, window: Window, now: datetime) -> dict[str, Any]:
    return {
        "key": key,
        "tenant_id": budget.tenant_id,
        "scope": budget.scope,
        "scope_id": budget.scope_id,
        "period": budget.period,
        "window_start": window.start,
        "window_end": window.end,
        "settled_usd": ZERO,
        "settled_tokens": 0,
        "updated_at": now,
    }


def entry_row(
    reservation: Reservation, kind: EntryKind, now: datetime, usd: Decimal, tokens: int
) -> dict[str, Any]:
    return {
        "reservation_id": reservation.id,
        "tenant_id": reservation.tenant_id,
        "run_id": reservation.run_id,
        "kind": kind,
        "recorded_at": now,
        "amount_usd": usd,
        "tokens": tokens,
        "budgets": [
            {**check.budget.as_dict(), "window_start": check.window.start.isoformat()}
            for check in reservation.checks
        ],
    }


# -- work items ------------------------------------------------------------------------------------


@dataclass(eq=False)
class Entry:
    reservation: Reservation
    kind: EntryKind
    at: datetime
    usd: Decimal
    tokens: int


@dataclass(eq=False)
class Want:
    """Room for a request (`build` and `future` set), or a top-up of leases (neither; `taken` is
    then the estimate to size them by, and `topping` the leases flagged as being topped up)."""

    budgets: tuple[Budget, ...]
    windows: tuple[Window, ...]
    keys: tuple[str, ...]
    parts: tuple[Part, ...]
    taken: dict[Unit, Decimal]
    build: Callable[[tuple[BudgetCheck, ...]], Reservation] | None = None
    future: asyncio.Future[Ticket] | None = None
    topping: tuple[Lease, ...] = ()


@dataclass(eq=False)
class Settle:
    ticket: Ticket
    usd: Decimal
    tokens: int
    future: asyncio.Future[Settlement]


@dataclass(eq=False)
class Return:
    """Memory already gave the room up: `shrink` out of the hold, or the whole hold released."""

    lease: Lease
    shrink: dict[Unit, Decimal]
    release: bool


@dataclass(eq=False)
class Flush:
    future: asyncio.Future[None]


Item = Entry | Want | Settle | Return | Flush


def _urgent(item: Item) -> bool:
    return isinstance(item, Settle | Flush) or (isinstance(item, Want) and item.future is not None)


# -- the plan of one transaction -------------------------------------------------------------------


# -- the plan of one transaction -------------------------------------------------------------------


@dataclass
class _HoldChange:
    """What one transaction does to one lease's hold: `grow` counts in memory once committed,
    `shrink` counted in memory already; the database hold changes by `grow - shrink`."""

    lease: Lease
    grow: dict[Unit, Decimal] = field(default_factory=lambda: amounts(ZERO, 0))
    shrink: dict[Unit, Decimal] = field(default_factory=lambda: amounts(ZERO, 0))
    expires_at: datetime | None = None
    release: bool = False
    insert: bool = False


@dataclass
class _Plan:
    now: datetime
    settled: dict[str, dict[Unit, Decimal]]  # per counter, as this transaction leaves it
    held: dict[str, dict[Unit, Decimal]]  # open holds per counter wanted, as it leaves them
    entries: list[dict[str, Any]] = field(default_factory=list)
    counters: dict[str, dict[Unit, Decimal]] = field(default_factory=dict)
    holds: dict[int, _HoldChange] = field(default_factory=dict)
    created: set[int] = field(default_factory=set)
    undo: list[Callable[[], None]] = field(default_factory=list)
    after: list[Callable[[], None]] = field(default_factory=list)
    limits: list[tuple[Lease, Unit, Decimal]] = field(default_factory=list)
    grown: dict[int, tuple[Lease, dict[Unit, Decimal]]] = field(default_factory=dict)

    def hold(self, lease: Lease) -> _HoldChange:
        change = self.holds.get(id(lease))
        if change is None:
            change = self.holds[id(lease)] = _HoldChange(lease)
        return change

    def free(self, lease: Lease, unit: Unit) -> Decimal:
        """`lease`'s free room, with what this transaction adds to it."""
        change = self.holds.get(id(lease))
        return lease.free(unit) + (change.grow[unit] if change is not None else ZERO)

    def in_database(self, lease: Lease, unit: Unit) -> Decimal:
        """`lease`'s hold as this transaction leaves it in the database."""
        change = self.holds.get(id(lease))
        return lease.held[unit] + (change.grow[unit] if change is not None else ZERO)

    def shrink(self, lease: Lease, unit: Unit, amount: Decimal) -> None:
        """Memory gave `amount` of `lease`'s hold up already: the database follows."""
        if amount == 0:
            return
        self.hold(lease).shrink[unit] += amount
        if lease.key in self.held:
            self.held[lease.key][unit] -= amount


class LedgerWriter:
    """Writes one ledger's work (see the module docstring); `submit` never blocks."""

    def __init__(
        self,
        engine: AsyncEngine,
        url: str,
        book: LeaseBook,
        *,
        clock: Callable[[], datetime],
        ttl: timedelta,
        term: timedelta,
        owner: str,
    ) -> None:
        self._engine = engine
        self._url = url
        self._book = book
        self._clock = clock
        self._ttl = ttl
        self._term = term
        self._owner = owner
        self._queue: list[Item] = []
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.transactions = 0

    def submit(self, item: Item) -> None:
        self._queue.append(item)
        self._wake.set()
        if _urgent(item):
            self._urgent.set()
        if self._task is None or self._task.done():
            self._closing = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="keel-budget-ledger")

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed (or has failed)."""
        if not self._queue and (self._task is None or self._task.done()):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.submit(Flush(future))
        await asyncio.shield(future)

    async def close(self) -> None:
        """Write what is queued, then stop."""
        await self.flush()
        self._closing = True
        self._wake.set()
        self._urgent.set()
        task, self._task = self._task, None
        if task is not None and not task.done():
            await task

    # -- the loop ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if not self._closing and not any(_urgent(item) for item in self._queue):
                self._urgent.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), LINGER_S)
            self._urgent.clear()
            items, self._queue = self._queue, []
            try:
                await self._write(items)
            finally:
                for item in items:
                    if isinstance(item, Want) and item.future is None:
                        for lease in item.topping:
                            lease.topping_up = False

    async def _write(self, items: list[Item]) -> None:
        try:
            await self._commit(items)
        except Exception as exc:
            if len(items) == 1:
                _fail(items[0], exc)
                return
            log.warning(
                "budget ledger: a batch of %d failed (%s: %s); retrying one by one",
                len(items),
                type(exc).__name__,
                exc,
            )
            for item in items:
                try:
                    await self._commit([item])
                except Exception as alone:
                    _fail(item, alone)

    async def _commit(self, items: list[Item]) -> None:
        live = [item for item in items if not _abandoned(item)]
        if all(isinstance(item, Flush) for item in live):
            _finish(live)
            return
        now = as_utc(self._clock())
        rows: dict[str, dict[str, Any]] = {}
        wanted: set[str] = set()
        for item in live:
            if isinstance(item, Want):
                for budget, window, key in zip(item.budgets, item.windows, item.keys, strict=True):
                    rows.setdefault(key, counter_row(key, budget, window, now))
                    wanted.add(key)
            elif isinstance(item, Settle):
                reservation = item.ticket.reservation
                for check, key in zip(reservation.checks, reservation.counter_keys, strict=True):
                    rows.setdefault(key, counter_row(key, check.budget, check.window, now))
        plan: _Plan | None = None
        try:
            async with write_transaction(self._engine, self._url) as connection:
                touched = sorted(rows)
                settled: dict[str, dict[Unit, Decimal]] = {}
                held: dict[str, dict[Unit, Decimal]] = {}
                new_counters: set[str] = set()
                if touched:
                    dialect = connection.dialect.name
                    # Counters a request wants may not exist yet. On SQLite this first statement, a
                    # write, also takes the database write lock for the transaction (before any
                    # read); on PostgreSQL a settlement's counters exist and are locked below.
                    missing = touched if dialect == "sqlite" else sorted(wanted)
                    if missing:
                        created = await connection.execute(
                            insert_ignoring_duplicates(budget_counters, dialect).returning(
                                budget_counters.c.key
                            ),
                            [rows[key] for key in missing],
                        )
                        new_counters = {key for (key,) in created}
                    found = await settled_of(connection, touched, lock=True)
                    settled = {key: amounts(*found.get(key, (ZERO, 0))) for key in touched}
                if wanted:
                    holding = await held_of(connection, sorted(wanted), now)
                    held = {key: amounts(*holding.get(key, (ZERO, 0))) for key in wanted}
                plan = _Plan(now, settled, held)
                for item in live:  # room given back before this transaction read the holds
                    if isinstance(item, Return):
                        change = plan.hold(item.lease)
                        change.release = change.release or item.release
                        for unit in UNITS_:
                            plan.shrink(item.lease, unit, item.shrink[unit])
                for item in live:
                    self._decide(item, plan)
                self._size_leases(plan)
                await self._apply(connection, plan)
                # A refused request records nothing: not even the counter it would have made.
                unused = (
                    new_counters - plan.counters.keys() - {change.lease.key for change in plan.holds.values()}
                )
                if unused:
                    await connection.execute(
                        delete(budget_counters).where(budget_counters.c.key.in_(sorted(unused)))
                    )
        except BaseException:
            if plan is not None:
                for step in reversed(plan.undo):
                    step()
            raise
        self.transactions += 1
        for step in plan.after:
            step()

    # -- deciding ---------------------------------------------------------------------------------

    def _decide(self, item: Item, plan: _Plan) -> None:
        if isinstance(item, Entry):
            plan.entries.append(entry_row(item.reservation, item.kind, item.at, item.usd, item.tokens))
        elif isinstance(item, Settle):
            self._settle(item, plan)
        elif isinstance(item, Want):
            self._want(item, plan)
        elif isinstance(item, Flush):
            future = item.future
            plan.after.append(lambda: _resolve(future, None))

    def _settle(self, item: Settle, plan: _Plan) -> None:
        ticket, future = item.ticket, item.future
        reservation = ticket.reservation
        if ticket.state not in ("open", "expired"):
            if ticket.state == "released":
                error = UsageError(f"reservation {reservation.id} was released; it cannot be settled")
                plan.after.append(lambda: _reject(future, error))
                return
            settlement = Settlement(reservation.id, item.usd, item.tokens, duplicate=True, crossed=())
            plan.after.append(lambda: _resolve(future, settlement))
            return
        previous: TicketState = ticket.state
        shrinks = self._book.settle_shrink(ticket)
        plan.undo.append(lambda: self._book.unsettle(ticket, previous, shrinks))
        for lease, shrink in shrinks:
            for unit in UNITS_:
                plan.shrink(lease, unit, shrink[unit])
        actual = amounts(item.usd, item.tokens)
        before: dict[str, dict[Unit, Decimal]] = {}
        for key in dict.fromkeys(reservation.counter_keys):
            current = plan.settled[key]
            before[key] = dict(current)
            plan.settled[key] = {unit: current[unit] + actual[unit] for unit in UNITS_}
            total = plan.counters.setdefault(key, amounts(ZERO, 0))
            for unit in UNITS_:
                total[unit] += actual[unit]
        crossed: list[ThresholdCrossing] = []
        for check, key in zip(reservation.checks, reservation.counter_keys, strict=True):
            unit = check.budget.unit
            crossed.extend(_crossings(check, before[key][unit], actual[unit]))
        self._give_back_overrun(ticket, plan)
        plan.entries.append(entry_row(reservation, "settle", plan.now, item.usd, item.tokens))
        settlement = Settlement(
            reservation.id, item.usd, item.tokens, duplicate=False, crossed=tuple(crossed)
        )
        after = {key: dict(plan.settled[key]) for key in before}

        def settled() -> None:
            self._book.close(ticket, "settled")
            for lease in ticket.leases:
                if self._book.current(lease) and lease.key in after:
                    lease.settled = dict(after[lease.key])
            _resolve(future, settlement)

        plan.after.append(settled)

    def _give_back_overrun(self, ticket: Ticket, plan: _Plan) -> None:
        """After a settlement: if the settled spend, the other holds (as last seen) and this
        lease's hold now pass a limit its room was checked against (actual usage above the
        estimate, here or elsewhere), the lease gives up free room by as much, so it hands out
        no room the limit no longer has: requests are then refused, as with a hold per request."""
        for lease in ticket.leases:
            if not self._book.current(lease) or lease.key not in plan.settled:
                continue
            for unit in UNITS_:
                limit = lease.limit[unit]
                if limit is None:
                    continue
                excess = (
                    plan.settled[lease.key][unit] + lease.others[unit] + plan.in_database(lease, unit) - limit
                )
                giving = min(excess, max(lease.free(unit), ZERO))
                if giving > 0:
                    lease.held[unit] -= giving
                    plan.undo.append(partial(_add, lease.held, unit, giving))
                    plan.shrink(lease, unit, giving)

    def _live(self, lease: Lease | None, plan: _Plan) -> Lease | None:
        if lease is None:
            return None
        if id(lease) in plan.created or (lease.stored and lease.expires_at > plan.now):
            return lease
        return None

    def _want(self, want: Want, plan: _Plan) -> None:
        now, book, held = plan.now, self._book, plan.held
        book.expire(now)
        leases: dict[str, Lease | None] = {
            part.key: self._live(book.leases.get(part.key), plan) for part in want.parts
        }
        future, build = want.future, want.build
        checks: list[BudgetCheck] = []
        if build is not None:
            for budget, window, key in zip(want.budgets, want.windows, want.keys, strict=True):
                unit = budget.unit
                lease = leases[key]
                spent = plan.settled[key][unit]
                others = held[key][unit] - (plan.in_database(lease, unit) if lease is not None else ZERO)
                mine = lease.used[unit] if lease is not None else ZERO
                free = plan.free(lease, unit) if lease is not None else ZERO
                room = Decimal(budget.limit) - spent - held[key][unit]
                asked = want.taken[unit]
                reserved = in_unit(unit, others + mine)
                if asked > free + room:
                    refused = BudgetExceeded(
                        budget,
                        spent=in_unit(unit, spent),
                        reserved=reserved,
                        requested=in_unit(unit, asked),
                        window=window,
                    )
                    plan.after.append(partial(_reject, future, refused))
                    return
                checks.append(
                    BudgetCheck(budget, window, in_unit(unit, spent), reserved, in_unit(unit, asked))
                )
        # It fits (or is a top-up): every part gets a live lease, renewed.
        for part in want.parts:
            lease = leases[part.key]
            if lease is None:
                if build is None and not _room_for_top_up(part, want.taken, plan):
                    continue
                lease = self._new_lease(part, plan)
                leases[part.key] = lease
            plan.hold(lease).expires_at = now + self._ttl + self._term
            _, quantum = plan.grown.setdefault(id(lease), (lease, amounts(ZERO, 0)))
            for unit in UNITS_:
                quantum[unit] = max(quantum[unit], want.taken[unit])
            for budget in part.budgets:
                plan.limits.append((lease, budget.unit, Decimal(budget.limit)))
        if build is None or future is None:
            return
        taken_from = tuple(lease for lease in leases.values() if lease is not None)
        reservation = build(tuple(checks))
        ticket = book.record(reservation, taken_from)
        plan.undo.append(lambda: book.unrecord(ticket))
        # Grow each lease by what its free room lacks, in the units its budgets count.
        for part in want.parts:
            lease = leases[part.key]
            if lease is None:
                continue
            change = plan.hold(lease)
            for unit in {budget.unit for budget in part.budgets}:
                lacking = -plan.free(lease, unit)
                if lacking > 0:
                    change.grow[unit] += lacking
                    held[part.key][unit] += lacking
        plan.entries.append(
            entry_row(
                reservation, "reserve", reservation.created_at, reservation.amount_usd, reservation.tokens
            )
        )

        def granted() -> None:
            if future.cancelled():  # the caller gave up meanwhile: nobody will settle it
                book.release(ticket)
                at = as_utc(self._clock())
                self.submit(Entry(reservation, "release", at, reservation.amount_usd, reservation.tokens))
                return
            _resolve(future, ticket)

        plan.after.append(granted)

    def _new_lease(self, part: Part, plan: _Plan) -> Lease:
        book = self._book
        lease = Lease(part.key, new_lease_id(), plan.now)
        old = book.leases.get(part.key)
        book.leases[part.key] = lease
        plan.created.add(id(lease))

        def undo() -> None:
            if old is None:
                book.leases.pop(part.key, None)
            else:
                book.leases[part.key] = old

        plan.undo.append(undo)
        plan.hold(lease).insert = True
        return lease

    def _size_leases(self, plan: _Plan) -> None:
        """Past what the requests need: extra room for the leases this transaction touched
        (`LEASE_REQUESTS` estimates times the lease's boost, at most `1/LEASE_SHARE` of the room
        left, in whole estimates); then the limits each lease's room is now within."""
        clock = time.monotonic()
        for lease, quantum in plan.grown.values():
            key = lease.key
            change = plan.hold(lease)
            boost = lease.boost
            if lease.grown_at and clock - lease.grown_at < BOOST_WINDOW_S:
                boost = min(boost * 2, MAX_BOOST)
            elif lease.grown_at:
                boost = max(1, boost // 2)
            limits: dict[Unit, Decimal] = {}
            for of, unit, limit in plan.limits:
                if of is lease:
                    limits[unit] = min(limits.get(unit, limit), limit)
            within: dict[Unit, Decimal] = {}
            for unit, limit in limits.items():
                step = quantum[unit]
                room = limit - plan.settled[key][unit] - plan.held[key][unit]
                if step > 0 and room > 0:
                    count = min(
                        Decimal(LEASE_REQUESTS * boost),
                        (room / (LEASE_SHARE * step)).to_integral_value(ROUND_FLOOR),
                    )
                    if count > 0:
                        change.grow[unit] += count * step
                        plan.held[key][unit] += count * step
                excess = plan.settled[key][unit] + plan.held[key][unit] - limit
                if excess > 0:  # more is held than this limit allows: give our free room back
                    from_growth = min(excess, max(change.grow[unit], ZERO), max(plan.free(lease, unit), ZERO))
                    change.grow[unit] -= from_growth
                    plan.held[key][unit] -= from_growth
                    excess -= from_growth
                    giving = min(excess, max(lease.free(unit), ZERO))
                    if giving > 0:
                        lease.held[unit] -= giving
                        plan.undo.append(partial(_add, lease.held, unit, giving))
                        plan.shrink(lease, unit, giving)
                        excess -= giving
                if excess <= 0:
                    within[unit] = limit
            plan.after.append(
                partial(_sized, lease, boost, clock, within, dict(plan.settled[key]), dict(plan.held[key]))
            )

    # -- writing ----------------------------------------------------------------------------------

    async def _apply(self, connection: AsyncConnection, plan: _Plan) -> None:
        if plan.counters:
            await connection.execute(
                update(budget_counters)
                .where(budget_counters.c.key == bindparam("k"))
                .values(
                    settled_usd=budget_counters.c.settled_usd + bindparam("add_usd", type_=Money()),
                    settled_tokens=budget_counters.c.settled_tokens + bindparam("add_tokens"),
                    updated_at=bindparam("now"),
                ),
                [
                    {"k": key, "add_usd": total["usd"], "add_tokens": int(total["tokens"]), "now": plan.now}
                    for key, total in sorted(plan.counters.items())
                ],
            )
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        commits: list[Callable[[], None]] = []
        for change in plan.holds.values():
            lease = change.lease
            delta = {unit: change.grow[unit] - change.shrink[unit] for unit in UNITS_}
            expires_at = change.expires_at or lease.expires_at
            if change.insert:
                inserts.append(
                    {
                        "reservation_id": lease.id,
                        "counter_key": lease.key,
                        "amount_usd": delta["usd"],
                        "tokens": int(delta["tokens"]),
                        "state": "open",
                        "expires_at": expires_at,
                        "owner": self._owner,
                    }
                )
            elif lease.stored and (change.release or change.expires_at or any(delta.values())):
                updates.append(
                    {
                        "lid": lease.id,
                        "ckey": lease.key,
                        "add_usd": delta["usd"],
                        "add_tokens": int(delta["tokens"]),
                        "until": expires_at,
                        "to_state": "released" if change.release else "open",
                    }
                )
            commits.append(partial(_committed, lease, dict(change.grow), expires_at))
        plan.after[:0] = commits  # memory first, then what reads it
        if updates:
            await connection.execute(
                update(budget_holds)
                .where(
                    budget_holds.c.reservation_id == bindparam("lid"),
                    budget_holds.c.counter_key == bindparam("ckey"),
                )
                .values(
                    amount_usd=budget_holds.c.amount_usd + bindparam("add_usd", type_=Money()),
                    tokens=budget_holds.c.tokens + bindparam("add_tokens"),
                    expires_at=bindparam("until"),
                    state=bindparam("to_state"),
                ),
                updates,
            )
        if inserts:
            await connection.execute(insert(budget_holds), inserts)
        if plan.entries:
            await connection.execute(insert(budget_entries), plan.entries)


def _committed(lease: Lease, grow: dict[Unit, Decimal], expires_at: datetime) -> None:
    for unit in UNITS_:
        lease.held[unit] += grow[unit]
    lease.expires_at = expires_at
    lease.stored = True


def _sized(
    lease: Lease,
    boost: int,
    clock: float,
    within: dict[Unit, Decimal],
    settled: dict[Unit, Decimal],
    holding: dict[Unit, Decimal],
) -> None:
    """After the commit: the lease's boost, its limits, and the counter as it saw it."""
    lease.boost, lease.grown_at = boost, clock
    for unit, limit in within.items():
        current = lease.limit[unit]
        lease.limit[unit] = limit if current is None else min(current, limit)
    lease.settled = settled
    lease.others = {unit: holding[unit] - lease.held[unit] for unit in UNITS_}


def _add(table: dict[Unit, Decimal], unit: Unit, amount: Decimal) -> None:
    table[unit] += amount


def _abandoned(item: Item) -> bool:
    """A request whose caller stopped waiting before it was decided."""
    return isinstance(item, Want) and item.future is not None and item.future.done()


def _room_for_top_up(part: Part, taken: Mapping[Unit, Decimal], plan: _Plan) -> bool:
    """Whether a top-up should open a lease on `part`'s counter: every budget has room for a few
    estimates like `taken` (near the limit, leases are only made for actual requests)."""
    key = part.key
    for budget in part.budgets:
        unit = budget.unit
        room = Decimal(budget.limit) - plan.settled[key][unit] - plan.held[key][unit]
        if room <= 0 or room < taken[unit] * LEASE_SHARE:
            return False
    return True


def _crossings(check: BudgetCheck, before: Decimal, added: Decimal) -> list[ThresholdCrossing]:
    budget = check.budget
    unit = budget.unit
    after = before + added
    crossed: list[ThresholdCrossing] = []
    soft = budget.soft_limit
    if soft is not None and before < soft <= after:
        crossed.append(
            ThresholdCrossing(budget, check.window, soft, False, in_unit(unit, before), in_unit(unit, after))
        )
    limit = Decimal(budget.limit)
    if before <= limit < after:
        crossed.append(
            ThresholdCrossing(budget, check.window, limit, True, in_unit(unit, before), in_unit(unit, after))
        )
    return crossed


def _resolve(future: asyncio.Future[Any], value: object) -> None:
    if not future.done():
        future.set_result(value)


def _reject(future: asyncio.Future[Any] | None, error: BaseException) -> None:
    if future is not None and not future.done():
        future.set_exception(error)


def _finish(items: Sequence[Item]) -> None:
    for item in items:
        if isinstance(item, Flush):
            _resolve(item.future, None)


def _fail(item: Item, error: Exception) -> None:
    if isinstance(item, Want | Settle):
        _reject(item.future, error)
        if isinstance(item, Want) and item.future is None:
            item_parts = ", ".join(part.key[:12] for part in item.parts)
            log.warning(
                "budget ledger: could not top up leases (%s): %s: %s", item_parts, type(error).__name__, error
            )
    elif isinstance(item, Flush):
        _resolve(item.future, None)
    elif isinstance(item, Entry):
        log.error(
            "budget ledger: could not record the %s entry of reservation %s: %s: %s",
            item.kind,
            item.reservation.id,
            type(error).__name__,
            error,
        )
    else:
        log.warning(
            "budget ledger: could not give back room of lease %s: %s: %s",
            item.lease.id,
            type(error).__name__,
            error,
        )


# -- reads -----------------------------------------------------------------------------------------


async def settled_of(
    connection: AsyncConnection, keys: Sequence[str], *, lock: bool = False
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


async def held_of(
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
    return {key: (usd if usd is not None else ZERO, int(tokens or 0)) for key, usd, tokens in rows}
