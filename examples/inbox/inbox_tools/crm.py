"""A tiny CRM on SQLite, exposed to the inbox agent as tools.

The database lives at `$INBOX_CRM_PATH`, by default `.keel/crm.sqlite` under the project, and is
created from `data/crm_seed.sql` on first use. Tools are plain typed Python functions: Keel turns
their signatures and docstrings into the schemas the model sees.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from pydantic_ai import RunContext

from keel.runtime.tools import RunDeps

PROJECT_ROOT = Path(__file__).resolve().parent.parent
APPROVAL_THRESHOLD_USD = 500.0


def _db_path() -> Path:
    return Path(os.environ.get("INBOX_CRM_PATH", PROJECT_ROOT / ".keel" / "crm.sqlite"))


def _connect() -> sqlite3.Connection:
    path = _db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=10)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript((PROJECT_ROOT / "data" / "crm_seed.sql").read_text())
    return conn


def lookup_customer(email: str) -> dict[str, Any]:
    """Find a customer by email address, with their plan, status and recent history.

    Args:
        email: The customer's email address, exactly as it appears in the email's From field.
    """
    with _connect() as conn:
        row = conn.execute(
            "SELECT * FROM customers WHERE lower(email) = lower(?)", (email.strip(),)
        ).fetchone()
        if row is None:
            return {"found": False, "email": email}
        history = conn.execute(
            "SELECT happened_at, kind, note FROM interactions WHERE customer_id = ? ORDER BY happened_at DESC LIMIT 5",
            (row["id"],),
        ).fetchall()
    return {
        "found": True,
        "customer_id": row["id"],
        "name": row["name"],
        "plan": row["plan"],
        "status": row["status"],
        "lifetime_value_usd": row["lifetime_value_usd"],
        "history": [dict(h) for h in history],
    }


def propose_crm_update(
    ctx: RunContext[RunDeps],
    customer_id: str,
    field: str,
    value: str,
    reason: str,
    amount_usd: float | None = None,
) -> dict[str, Any]:
    """Propose a change to a customer's record. Nothing changes until a person accepts it.

    Args:
        customer_id: The CRM id of the customer, like C1001.
        field: What should change, e.g. "refund", "status" or "billing_address".
        value: The proposed new value or action.
        reason: Why, in one sentence, quoting the email where useful.
        amount_usd: The money involved, if any (refunds, credits).
    """
    key = ctx.deps.idempotency_key(ctx)
    requires_approval = amount_usd is not None and amount_usd > APPROVAL_THRESHOLD_USD
    with _connect() as conn:
        if conn.execute("SELECT 1 FROM customers WHERE id = ?", (customer_id,)).fetchone() is None:
            return {"accepted": False, "error": f"no customer with id {customer_id!r}"}
        conn.execute(
            "INSERT OR IGNORE INTO proposed_updates"
            " (customer_id, field, value, reason, amount_usd, requires_approval, idempotency_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (customer_id, field, value, reason, amount_usd, int(requires_approval), key),
        )
        row = conn.execute("SELECT id FROM proposed_updates WHERE idempotency_key = ?", (key,)).fetchone()
    return {"accepted": True, "proposal_id": row["id"], "requires_approval": requires_approval}
