"""Budget leases: who holds a hold, and one close per reservation in the ledger.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

Budget holds are now leases: a process holds a block of a counter's room and hands it out to its
requests in memory (see `keel.store.ledger`). This revision:

- adds `budget_holds.owner` (nullable): the ledger (host, process, instance) that holds a lease,
  so an operator can tell whose room a hold is; holds made before this revision have none;
- adds two partial unique indexes to the append-only `budget_entries`: one `reserve` entry per
  reservation (`ux_budget_entries_reserve`), and at most one `settle` or `release` entry per
  reservation (`ux_budget_entries_close`), so a retried batch cannot record a reservation twice
  and a reservation is never both settled and released, or settled twice, whichever process
  tries. Both backends support partial indexes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = 256


def upgrade() -> None:
    op.add_column("budget_holds", sa.Column("owner", sa.String(_NAME), nullable=True))
    reserve = sa.text("kind = 'reserve'")
    close = sa.text("kind IN ('settle', 'release')")
    op.create_index(
        "ux_budget_entries_reserve",
        "budget_entries",
        ["reservation_id"],
        unique=True,
        sqlite_where=reserve,
        postgresql_where=reserve,
    )
    op.create_index(
        "ux_budget_entries_close",
        "budget_entries",
        ["reservation_id"],
        unique=True,
        sqlite_where=close,
        postgresql_where=close,
    )


def downgrade() -> None:
    op.drop_index("ux_budget_entries_close", table_name="budget_entries")
    op.drop_index("ux_budget_entries_reserve", table_name="budget_entries")
    op.drop_column("budget_holds", "owner")  # SQLite 3.35+ drops a column in place
