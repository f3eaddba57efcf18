"""Hard budgets: how much a run, user, tenant or agent may spend, in USD or in tokens.

    daily = Budget("tenant", "acme", "usd", "day", Decimal("50"), soft_threshold=0.8)
    per_run = Budget("run", run_id, "tokens", "run", 200_000, tenant_id="acme")

A budget is a limit on one scope (`run`, `user`, `tenant` or `agent` with its id), in one unit
(`usd` or `tokens`), over one period: a UTC calendar `day`, a UTC calendar `month`, or the whole
`run` (only for run budgets, and run budgets only have that period). Amounts in USD are exact
Decimals at the store's precision (1e-10 USD); tokens are integers.

Enforcement (`keel.store.ledger.BudgetLedger`, called by the run loop through
`keel.runtime.budget_guard`, from the project's `gateway.budgets`) reserves an estimate before
each model request and settles it with the actual usage afterwards; the estimate is usually taken
in memory from room the ledger leases per process. A request that would take any applicable
budget's settled spend plus what is held of it (other processes' leases, this process's open
reservations) past its limit is refused with `BudgetExceeded` (error category
`budget_exceeded`), before the provider is called. A soft
threshold is a fraction of the limit: settling reports the thresholds that this settlement
crossed, once per budget and window.

Budgets of scope `user`, `agent` or `run` may belong to a tenant (`tenant_id`), so two tenants'
user "alice" have separate budgets. A `tenant` budget belongs to the tenant it limits.

See docs/gateway.md#budgets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Literal, get_args

from keel.errors import ErrorCategory, RunFailure, UsageError

ScopeKind = Literal["run", "user", "tenant", "agent"]
Unit = Literal["usd", "tokens"]
Period = Literal["day", "month", "run"]

SCOPE_KINDS: tuple[ScopeKind, ...] = get_args(ScopeKind)
UNITS: tuple[Unit, ...] = get_args(Unit)
PERIODS: tuple[Period, ...] = get_args(Period)

Amount = Decimal | int
"""A USD amount (Decimal) or a token count (int), depending on the budget's unit."""

RUN_WINDOW_START = datetime(1970, 1, 1, tzinfo=UTC)
"""The start of every `run` period window: a run budget covers the whole run, whenever it ran."""

_MAX_ID = 256
# The store's money precision (keel.store.types.Money), repeated here: keel.store imports this module.
USD_QUANTUM = Decimal("1e-10")


@dataclass(frozen=True)
class Window:
    """A budget period: from `start` (inclusive) to `end` (exclusive), UTC; `end` None for a run."""

    period: Period
    start: datetime
    end: datetime | None

    def contains(self, at: datetime) -> bool:
        """Whether `at` falls in this window (a run window contains every time)."""
        at = as_utc(at)
        return self.start <= at and (self.end is None or at < self.end)


def window_for(period: Period, at: datetime) -> Window:
    """The window of `period` that contains `at`, in UTC (a naive `at` is taken as UTC).

    `day`: from 00:00 UTC to the next 00:00 UTC. `month`: from the first of the calendar month,
    00:00 UTC, to the first of the next one. `run`: the whole run (`RUN_WINDOW_START`, no end).
    """
    at = as_utc(at)
    if period == "day":
        start = at.replace(hour=0, minute=0, second=0, microsecond=0)
        return Window("day", start, start + timedelta(days=1))
    if period == "month":
        start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else start.replace(month=start.month + 1)
        )
        return Window("month", start, end)
    if period == "run":
        return Window("run", RUN_WINDOW_START, None)
    raise UsageError(f"unknown budget period {period!r}; known: {', '.join(PERIODS)}")


def as_utc(value: datetime) -> datetime:
    """Aware UTC; a naive value is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def quantize_usd(value: Decimal) -> Decimal:
    """A USD amount at the store's precision (1e-10), half to even, as `keel.store.types.Money`."""
    return Decimal(value).quantize(USD_QUANTUM, rounding=ROUND_HALF_EVEN)


def as_usd(value: object, what: str = "amount") -> Decimal:
    """`value` (Decimal, int or numeric string; never a float) as a non-negative stored USD amount."""
    if isinstance(value, bool | float) or not isinstance(value, Decimal | int | str):
        raise UsageError(f"the {what} in USD must be a Decimal, an int or a numeric string, got {value!r}")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise UsageError(f"the {what} in USD is not a number: {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise UsageError(f"the {what} in USD must be a finite, non-negative number, got {value!r}")
    return quantize_usd(amount)


def as_tokens(value: object, what: str = "token count") -> int:
    """`value` as a non-negative token count."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"the {what} must be a non-negative integer, got {value!r}")
    return value


@dataclass(frozen=True)
class Budget:
    """A hard limit on one scope's spend in one unit over one period (see the module docstring).

    `limit` is a Decimal (or int, or numeric string) for `usd`, an int for `tokens`; it is
    normalized on construction. `soft_threshold`, a fraction strictly between 0 and 1, marks the
    spend at which an event should be emitted (`soft_limit`).
    """

    scope: ScopeKind
    scope_id: str
    unit: Unit
    period: Period
    limit: Amount
    soft_threshold: Decimal | float | None = None
    tenant_id: str | None = None

    def __post_init__(self) -> None:
        if self.scope not in SCOPE_KINDS:
            raise UsageError(f"unknown budget scope {self.scope!r}; known: {', '.join(SCOPE_KINDS)}")
        if self.unit not in UNITS:
            raise UsageError(f"unknown budget unit {self.unit!r}; known: {', '.join(UNITS)}")
        if self.period not in PERIODS:
            raise UsageError(f"unknown budget period {self.period!r}; known: {', '.join(PERIODS)}")
        if (self.scope == "run") != (self.period == "run"):
            raise UsageError("a run budget has the period 'run', and only run budgets have it")
        _check_id(self.scope_id, "scope id")
        tenant = self.tenant_id
        if self.scope == "tenant":
            if tenant is not None and tenant != self.scope_id:
                raise UsageError(f"a budget of tenant {self.scope_id!r} cannot belong to tenant {tenant!r}")
            object.__setattr__(self, "tenant_id", self.scope_id)
        elif tenant is not None:
            _check_id(tenant, "tenant id")
        limit: Amount = as_usd(self.limit, "limit") if self.unit == "usd" else as_tokens(self.limit, "limit")
        object.__setattr__(self, "limit", limit)
        if self.soft_threshold is not None:
            raw = self.soft_threshold
            if isinstance(raw, bool) or not isinstance(raw, Decimal | float | int | str):
                raise UsageError(f"soft_threshold must be a fraction between 0 and 1, got {raw!r}")
            try:
                fraction = Decimal(str(raw))
            except InvalidOperation:
                raise UsageError(f"soft_threshold must be a fraction between 0 and 1, got {raw!r}") from None
            if not (fraction.is_finite() and 0 < fraction < 1):
                raise UsageError(f"soft_threshold must be a fraction strictly between 0 and 1, got {raw!r}")
            object.__setattr__(self, "soft_threshold", fraction)

    @property
    def soft_limit(self) -> Decimal | None:
        """`limit * soft_threshold` (exact), or None without a soft threshold."""
        if self.soft_threshold is None:
            return None
        return Decimal(self.limit) * Decimal(self.soft_threshold)

    def window(self, at: datetime) -> Window:
        """The window of this budget's period that contains `at`."""
        return window_for(self.period, at)

    def amount(self, usd: Decimal, tokens: int) -> Amount:
        """Of a request's USD amount and tokens, the one this budget counts."""
        return usd if self.unit == "usd" else tokens

    def describe(self) -> str:
        """`tenant 'acme': 50 USD per day`, for messages."""
        unit = "USD" if self.unit == "usd" else "tokens"
        period = "for the run" if self.period == "run" else f"per {self.period}"
        owner = (
            f" of tenant {self.tenant_id!r}" if self.tenant_id is not None and self.scope != "tenant" else ""
        )
        return f"{self.scope} {self.scope_id!r}{owner}: {_format(self.limit)} {unit} {period}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: what the ledger records about the budgets an entry was checked against."""
        return {
            "scope": self.scope,
            "scope_id": self.scope_id,
            "tenant_id": self.tenant_id,
            "unit": self.unit,
            "period": self.period,
            "limit": str(self.limit),
            "soft_threshold": None if self.soft_threshold is None else str(self.soft_threshold),
        }


class BudgetExceeded(RunFailure):
    """A model request was refused: it would have taken `budget` past its limit.

    `spent` is the settled spend in the budget's current window, `reserved` what is held of it
    (other processes' leases, this process's open reservations), `requested` the refused
    estimate; all in the budget's unit. A run that gets
    this ends with category `budget_exceeded` and keeps what it produced.
    """

    code = "budget_exceeded"
    category = ErrorCategory.BUDGET_EXCEEDED

    def __init__(
        self,
        budget: Budget,
        *,
        spent: Amount,
        reserved: Amount,
        requested: Amount,
        window: Window,
    ) -> None:
        self.budget = budget
        self.limit: Amount = budget.limit
        self.spent = spent
        self.reserved = reserved
        self.requested = requested
        self.window = window
        unit = "USD" if budget.unit == "usd" else "tokens"
        super().__init__(
            f"budget exceeded: {budget.describe()}; spent {_format(spent)}, reserved {_format(reserved)}, "
            f"this request needs {_format(requested)} {unit}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_exceeded,
            (self.budget, self.spent, self.reserved, self.requested, self.window),
        )

    def as_dict(self) -> dict[str, Any]:
        """Machine-readable: `code`, the budget, its window, limit, spent, reserved, requested."""
        return {
            "code": self.code,
            "budget": self.budget.as_dict(),
            "window_start": self.window.start.isoformat(),
            "window_end": None if self.window.end is None else self.window.end.isoformat(),
            "limit": str(self.limit),
            "spent": str(self.spent),
            "reserved": str(self.reserved),
            "requested": str(self.requested),
        }


def _rebuild_exceeded(
    budget: Budget, spent: Amount, reserved: Amount, requested: Amount, window: Window
) -> BudgetExceeded:
    return BudgetExceeded(budget, spent=spent, reserved=reserved, requested=requested, window=window)


@dataclass(frozen=True)
class BudgetCheck:
    """One budget as a reservation found it: its window and, in its unit, spend before this call."""

    budget: Budget
    window: Window
    spent: Amount
    reserved: Amount
    requested: Amount

    @property
    def remaining(self) -> Amount:
        """What is left after this reservation (negative never: it would have been refused)."""
        left = (
            Decimal(self.budget.limit)
            - Decimal(self.spent)
            - Decimal(self.reserved)
            - Decimal(self.requested)
        )
        return left if self.budget.unit == "usd" else int(left)


@dataclass(frozen=True)
class ThresholdCrossing:
    """A settlement took `budget`'s settled spend from below `threshold` to at least it.

    `threshold` is the soft limit (`limit * soft_threshold`), or the hard limit itself when
    `hard` (the actual usage may exceed the estimate, so settled spend can pass the limit).
    Reported by exactly one settlement per budget, window and threshold.
    """

    budget: Budget
    window: Window
    threshold: Decimal
    hard: bool
    spent_before: Amount
    spent_after: Amount


@dataclass(frozen=True)
class Reservation:
    """An estimate held against budgets until it is settled or released (or expires)."""

    id: str
    run_id: str | None
    tenant_id: str | None
    amount_usd: Decimal
    tokens: int
    created_at: datetime
    expires_at: datetime
    checks: tuple[BudgetCheck, ...]
    counter_keys: tuple[str, ...] = field(repr=False)
    holder: str = field(default="", repr=False, compare=False)
    """The ledger that made it (`BudgetLedger.owner`): only that ledger settles or releases it."""

    @property
    def budgets(self) -> tuple[Budget, ...]:
        return tuple(check.budget for check in self.checks)


@dataclass(frozen=True)
class Settlement:
    """What settling a reservation recorded. `duplicate` when it had been settled already (nothing
    was recorded again); `crossed` the thresholds this settlement crossed."""

    reservation_id: str
    amount_usd: Decimal
    tokens: int
    duplicate: bool
    crossed: tuple[ThresholdCrossing, ...]


def _check_id(value: object, what: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"the budget's {what} must be a non-empty string, got {value!r}")
    if len(value) > _MAX_ID:
        raise UsageError(f"the budget's {what} is longer than {_MAX_ID} characters")


def _format(value: Amount) -> str:
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return text
    return str(value)
