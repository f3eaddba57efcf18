"""Spend caps' totals per tenant and day, in the store (`guardrail_spend`), shared by every process.

    store = SpendStore(database_url)
    counted = await store.add(tenant_id="acme", guardrail="agent:payer/refunds", day=today,
                              amount=Decimal("120"), cap=Decimal("1000"))
    if not counted.ok: ...        # counted.total: the total before this call (nothing was added)

`add` counts an amount only if the new total stays within the cap, atomically across processes:
one `UPDATE ... SET total = total + :amount WHERE <row> AND total + :amount <= :cap` (PostgreSQL
re-checks the WHERE on the row it locked; SQLite holds the write lock); the day's first call
inserts the row (`ON CONFLICT DO NOTHING`: when another process inserted it first, the update is
tried again). Amounts are exact decimals (`Money`: 10 decimal places).

`MemorySpendStore` counts in this process only (tests, and `Env` without a database).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from keel.store.engine import AsyncDatabase
from keel.store.repository import read_connection, write_transaction
from keel.store.tables import guardrail_spend
from keel.store.tenancy import scope_to_tenant, tenant_condition
from keel.store.types import quantize_usd


@dataclass(frozen=True)
class Counted:
    ok: bool
    total: Decimal  # the total after the call when ok, else the total it was refused at


class SpendStore(AsyncDatabase):
    """Totals of spend caps on the database at `url` (connects lazily; `close()`)."""

    async def add(
        self, *, tenant_id: str, guardrail: str, day: date, amount: Decimal, cap: Decimal
    ) -> Counted:
        amount = quantize_usd(amount)
        row = guardrail_spend.c
        where = (
            tenant_condition(guardrail_spend, tenant_id),
            row.guardrail == guardrail,
            row.day == day,
        )
        for _ in range(5):
            now = datetime.now(UTC)
            async with write_transaction(self._engine, self._url) as connection:
                total = (
                    await connection.execute(
                        update(guardrail_spend)
                        .where(*where, row.total + amount <= cap)
                        .values(total=row.total + amount, updated_at=now)
                        .returning(row.total)
                    )
                ).scalar_one_or_none()
                if total is not None:
                    return Counted(True, total)
                current = (await connection.execute(select(row.total).where(*where))).scalar_one_or_none()
                if current is not None:
                    if current + amount > cap:
                        return Counted(False, current)
                    continue  # the row changed since the update read it: try again
                if amount > cap:
                    return Counted(False, Decimal(0))
                dialect = connection.dialect.name
                insert = (
                    postgresql.insert(guardrail_spend)
                    if dialect == "postgresql"
                    else sqlite.insert(guardrail_spend)
                )
                inserted = (
                    await connection.execute(
                        insert.values(
                            tenant_id=tenant_id, guardrail=guardrail, day=day, total=amount, updated_at=now
                        )
                        .on_conflict_do_nothing()
                        .returning(row.total)
                    )
                ).scalar_one_or_none()
                if inserted is not None:
                    return Counted(True, inserted)
            # another process inserted the day's row first: count against it
        raise RuntimeError("spend cap: could not count the call (the day's row kept changing)")

    async def total(self, *, tenant_id: str, guardrail: str, day: date) -> Decimal:
        """The tenant's total for `guardrail` on `day` (0 when nothing was counted)."""
        statement = scope_to_tenant(
            select(guardrail_spend.c.total).where(
                guardrail_spend.c.guardrail == guardrail, guardrail_spend.c.day == day
            ),
            guardrail_spend,
            tenant_id,
        )
        async with read_connection(self._engine, self._url) as connection:
            value = (await connection.execute(statement)).scalar_one_or_none()
        return value if value is not None else Decimal(0)


class MemorySpendStore:
    """The same counting, in this process only."""

    def __init__(self) -> None:
        self._totals: dict[tuple[str, str, date], Decimal] = {}

    async def add(
        self, *, tenant_id: str, guardrail: str, day: date, amount: Decimal, cap: Decimal
    ) -> Counted:
        key = (tenant_id, guardrail, day)
        current = self._totals.get(key, Decimal(0))
        amount = quantize_usd(amount)
        if current + amount > cap:
            return Counted(False, current)
        self._totals[key] = current + amount
        return Counted(True, current + amount)

    async def total(self, *, tenant_id: str, guardrail: str, day: date) -> Decimal:
        return self._totals.get((tenant_id, guardrail, day), Decimal(0))

    async def close(self) -> None:
        return None
