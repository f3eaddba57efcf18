"""Column types that behave the same on SQLite and PostgreSQL.

- `UtcDateTime`: timezone-aware UTC in and out. PostgreSQL stores `timestamptz`; SQLite stores
  SQLAlchemy's fixed-width text (`YYYY-MM-DD HH:MM:SS.ffffff`, always UTC), which sorts and compares
  correctly as text and whose first ten characters are the UTC date.
- `Money`: exact USD amounts with 10 decimal places. PostgreSQL stores `numeric(20, 10)`; SQLite
  has no exact decimal (NUMERIC there is a float), so it stores an integer count of 1e-10 USD,
  which SQLite sums exactly. Values are quantized identically before either backend sees them, so
  sums and means agree to the last digit across backends.
- `JsonDocument`: JSON text on SQLite, `jsonb` on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Numeric
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

MONEY_SCALE = 10
_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)
_UNITS_PER_USD = 10**MONEY_SCALE

JsonDocument = JSON().with_variant(JSONB(), "postgresql")


def as_utc(value: datetime) -> datetime:
    """Aware UTC; a naive value is taken to be UTC already (the contract says UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # aggregates over the column come back as text on SQLite
            value = datetime.fromisoformat(value)
        return as_utc(value)


def quantize_usd(value: Decimal) -> Decimal:
    """A USD amount rounded to the stored precision (1e-10), half to even."""
    return Decimal(value).quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)


class Money(TypeDecorator[Decimal]):
    """An exact USD amount: numeric(20, 10) on PostgreSQL, integer 1e-10 units on SQLite."""

    impl = Numeric(20, MONEY_SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(20, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Decimal | int | None:
        if value is None:
            return None
        amount = quantize_usd(value)
        if dialect.name == "sqlite":
            return int(amount.scaleb(MONEY_SCALE))
        return amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-MONEY_SCALE).quantize(_QUANTUM)
        return quantize_usd(Decimal(value))
