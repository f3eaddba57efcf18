"""A ledger's leases, in memory: the room this process holds on each budget counter.

A lease is one `budget_holds` row per counter (its `reservation_id` is the lease id), held by one
`BudgetLedger`. The database counts its whole amount against every budget of the counter, like
any hold; this book hands that room out to the ledger's requests without a database round trip,
and keeps what the database must learn later (the writer, `keel.store.ledger_writer`).

Per counter and per unit (USD, tokens) a lease knows:
- `held`: the hold's amount in the database, as this ledger wrote it (memory never holds more
  than the database: growth counts here only once committed, shrinking counts here first);
- `used`: what the ledger's open reservations took from it; `held - used` is its free room;
- `limit`: the strictest limit its room was checked against (None: not checked in that unit).
  A request may take from the free room without asking the database only for budgets whose limit
  is at least that, while the hold lives at least `reservation_ttl` longer (`expires_at`);
- `settled` and `others`: the counter's settled spend and the other holds on it when last seen,
  which is what a reservation made from the lease reports in its `checks`.

Everything here is synchronous: the event loop runs one reservation at a time, so a request that
finds room takes it before any other can. Amounts are Decimals in both units here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from keel.gateway.budgets import Budget, BudgetCheck, Reservation, Unit, Window

UNITS_: tuple[Unit, Unit] = ("usd", "tokens")
ZERO = Decimal(0)

LEASE_REQUESTS = 8
"""A lease grows by up to this many estimates beyond what the requests waiting for it need
(times its boost, which doubles while it grows more than once a second, up to `MAX_BOOST`)."""
LEASE_SHARE = 4
"""... and by at most a quarter of the room then left, so that near the limit leases hold
exactly what their requests need and the last of a budget is still handed out exactly."""
MAX_BOOST = 512
BOOST_WINDOW_S = 1.0

TicketState = Literal["open", "expired", "closing", "settled", "released"]


def amounts(usd: Decimal, tokens: int) -> dict[Unit, Decimal]:
    return {"usd": usd, "tokens": Decimal(tokens)}


def in_unit(unit: Unit, value: Decimal) -> Decimal | int:
    """A book amount as the domain has it: a Decimal for USD, an int for tokens."""
    return value if unit == "usd" else int(value)


@dataclass(eq=False)
class Lease:
    """The room this ledger holds on one counter (see the module docstring)."""

    key: str
    id: str
    expires_at: datetime
    stored: bool = False
    held: dict[Unit, Decimal] = field(default_factory=lambda: {"usd": ZERO, "tokens": ZERO})
    used: dict[Unit, Decimal] = field(default_factory=lambda: {"usd": ZERO, "tokens": ZERO})
    limit: dict[Unit, Decimal | None] = field(default_factory=lambda: {"usd": None, "tokens": None})
    settled: dict[Unit, Decimal] = field(default_factory=lambda: {"usd": ZERO, "tokens": ZERO})
    others: dict[Unit, Decimal] = field(default_factory=lambda: {"usd": ZERO, "tokens": ZERO})
    quantum: dict[Unit, Decimal] = field(default_factory=lambda: {"usd": ZERO, "tokens": ZERO})
    last_used: float = field(default_factory=time.monotonic)
    grown_at: float = 0.0
    boost: int = 1
    topping_up: bool = False

    def free(self, unit: Unit) -> Decimal:
        return self.held[unit] - self.used[unit]

    def idle(self) -> bool:
        return self.used["usd"] == 0 and self.used["tokens"] == 0


@dataclass(eq=False)
class Ticket:
    """One reservation made by this ledger: the leases it took room from, and its state."""

    reservation: Reservation
    leases: tuple[Lease, ...]
    state: TicketState = "open"

    @property
    def taken(self) -> dict[Unit, Decimal]:
        return amounts(self.reservation.amount_usd, self.reservation.tokens)


@dataclass(frozen=True)
class Part:
    """The budgets of one request that share one counter, with that counter's window and key."""

    key: str
    window: Window
    budgets: tuple[Budget, ...]


def new_lease_id() -> str:
    return f"lease_{uuid.uuid4().hex}"


class LeaseBook:
    """This ledger's leases by counter key, and its open reservations (oldest first)."""

    def __init__(self) -> None:
        self.leases: dict[str, Lease] = {}
        self.open: dict[str, Ticket] = {}  # by reservation id, in the order they were made
        self.expired: dict[str, Ticket] = {}  # open ones past their expiry, until closed
        self.closed: dict[str, TicketState] = {}  # recently settled or released ids

    # -- expiry -----------------------------------------------------------------------------------

    def expire(self, now: datetime) -> None:
        """Reservations past their `expires_at` stop counting: their room is free again."""
        while self.open:
            ticket = next(iter(self.open.values()))
            if ticket.reservation.expires_at > now:
                return
            del self.open[ticket.reservation.id]
            self._give_back(ticket)
            ticket.state = "expired"
            self.expired[ticket.reservation.id] = ticket
            _bounded(self.expired)

    def current(self, lease: Lease) -> bool:
        """Whether `lease` is still this ledger's lease on its counter."""
        return self.leases.get(lease.key) is lease

    def _give_back(self, ticket: Ticket) -> None:
        taken = ticket.taken
        for lease in ticket.leases:
            if self.current(lease):
                for unit in UNITS_:
                    lease.used[unit] -= taken[unit]

    # -- the fast path ----------------------------------------------------------------------------

    def covers(self, part: Part, taken: Mapping[Unit, Decimal], now: datetime, until: datetime) -> bool:
        """Whether this ledger's lease on `part`'s counter has the room for `taken` under every
        budget of `part`, and lives until `until` at least."""
        lease = self.leases.get(part.key)
        if lease is None or not lease.stored or lease.expires_at < until or lease.expires_at <= now:
            return False
        for budget in part.budgets:
            unit = budget.unit
            checked = lease.limit[unit]
            if checked is None or checked > Decimal(budget.limit) or lease.free(unit) < taken[unit]:
                return False
        return True

    def record(self, reservation: Reservation, leases: tuple[Lease, ...]) -> Ticket:
        """Count `reservation` as using `leases` (its room is taken)."""
        ticket = Ticket(reservation, leases)
        taken = ticket.taken
        clock = time.monotonic()
        for lease in leases:
            for unit in UNITS_:
                lease.used[unit] += taken[unit]
            lease.last_used = clock
        self.open[reservation.id] = ticket
        return ticket

    def unrecord(self, ticket: Ticket) -> None:
        """Undo `record` (the database refused what the reservation needed)."""
        self.open.pop(ticket.reservation.id, None)
        self._give_back(ticket)

    # -- closing ----------------------------------------------------------------------------------

    def ticket(self, reservation_id: str) -> Ticket | None:
        return self.open.get(reservation_id) or self.expired.get(reservation_id)

    def release(self, ticket: Ticket) -> None:
        """The request failed, nothing was spent: its room is free again, in its leases."""
        if ticket.state == "open":
            self._give_back(ticket)
        self.open.pop(ticket.reservation.id, None)
        self.expired.pop(ticket.reservation.id, None)
        self.close(ticket, "released")

    def settle_shrink(self, ticket: Ticket) -> list[tuple[Lease, dict[Unit, Decimal]]]:
        """Settling: the reservation leaves its leases, and each lease's hold shrinks by what of
        the estimate it held (the counter's settled spend takes its place). Of a reservation
        already expired, each lease gives up as much of its free room instead, so the room a
        late settlement used cannot be handed out again. Returns (lease, shrink) to write."""
        taken = ticket.taken
        shrinks: list[tuple[Lease, dict[Unit, Decimal]]] = []
        was_open = ticket.state == "open"
        for lease in ticket.leases:
            if not self.current(lease):
                continue  # replaced: its hold stopped counting in the database
            shrink: dict[Unit, Decimal] = {}
            for unit in UNITS_:
                if was_open:
                    covered = lease.held[unit] - (lease.used[unit] - taken[unit])
                    lease.used[unit] -= taken[unit]
                else:
                    covered = lease.held[unit] - lease.used[unit]
                shrink[unit] = min(max(covered, ZERO), taken[unit])
                lease.held[unit] -= shrink[unit]
            shrinks.append((lease, shrink))
        self.open.pop(ticket.reservation.id, None)
        self.expired.pop(ticket.reservation.id, None)
        ticket.state = "closing"
        return shrinks

    def unsettle(
        self, ticket: Ticket, previous: TicketState, shrinks: list[tuple[Lease, dict[Unit, Decimal]]]
    ) -> None:
        """Undo `settle_shrink` (its transaction failed)."""
        taken = ticket.taken
        for lease, shrink in shrinks:
            for unit in UNITS_:
                lease.held[unit] += shrink[unit]
                if previous == "open":
                    lease.used[unit] += taken[unit]
        ticket.state = previous
        (self.open if previous == "open" else self.expired)[ticket.reservation.id] = ticket

    def close(self, ticket: Ticket, state: TicketState) -> None:
        ticket.state = state
        self.closed[ticket.reservation.id] = state
        _bounded(self.closed)

    # -- giving room back -------------------------------------------------------------------------

    def unused(self, idle_since: float | None = None) -> Iterator[Lease]:
        """Leases with free room (or none in use), optionally only those unused since then."""
        for lease in list(self.leases.values()):
            if lease.topping_up or not lease.stored:
                continue
            if idle_since is not None and lease.last_used > idle_since:
                continue
            if lease.idle() or lease.free("usd") > 0 or lease.free("tokens") > 0:
                yield lease

    def own_free(self, key: str, now: datetime) -> dict[Unit, Decimal]:
        """This ledger's hold on a counter, as the database counts it, less what its open
        reservations use (negative in a unit its leases do not hold room in)."""
        lease = self.leases.get(key)
        if lease is None or not lease.stored or lease.expires_at <= now:
            used = lease.used if lease is not None and self.current(lease) else amounts(ZERO, 0)
            return {unit: -used[unit] for unit in UNITS_}
        return {unit: lease.free(unit) for unit in UNITS_}


def check_of(budget: Budget, window: Window, lease: Lease, requested: Decimal) -> BudgetCheck:
    """`budget` as a reservation from `lease` finds it: the settled spend and what the other
    holds held when the ledger last saw them, what its own open reservations hold (before this
    one), and the request."""
    unit = budget.unit
    return BudgetCheck(
        budget,
        window,
        in_unit(unit, lease.settled[unit]),
        in_unit(unit, lease.others[unit] + lease.used[unit]),
        in_unit(unit, requested),
    )


def _bounded(
    table: dict[str, object] | dict[str, Ticket] | dict[str, TicketState], size: int = 65_536
) -> None:
    while len(table) > size:
        del table[next(iter(table))]
