"""The callback log: every attempt to deliver a run's callback, for operators and for the API.

Delivery itself lives in `keel.api.callbacks`; this module only stores what each attempt did::

    log = CallbackLog(url)
    await log.record(CallbackAttempt(run_id=..., attempt=1, outcome="retry", ...))
    attempts = await log.attempts(run_id, tenant_id=tenant)
    await log.close()

Durable semantics. A delivery attempt runs inside a durable step; a process killed after the
POST but before the step's checkpoint re-executes the step, so the same attempt is recorded
twice. `record` is therefore idempotent on (run_id, attempt): the first write wins and the second
is a no-op, never an error or a duplicate row (the table's unique constraint and
`INSERT ... ON CONFLICT DO NOTHING`, as the run writer does). The re-executed attempt did POST
again, but receivers see the same `Keel-Delivery` id and can drop it.

Attempts carry the run's tenant themselves: the run may not be stored yet (the background writer
stores it later), so tenant scoping cannot go through `runs`. See `keel.store.tenancy`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import select

from keel.store.batch import insert_ignoring_duplicates
from keel.store.engine import AsyncDatabase
from keel.store.repository import read_connection, write_transaction
from keel.store.tables import callback_attempts
from keel.store.tenancy import scope_to_tenant
from keel.store.types import as_utc

CallbackOutcome = Literal["delivered", "retry", "failed", "gave_up"]
"""What one attempt came to.

- `delivered`: the receiver answered 2xx.
- `retry`: a transient failure (408, 409, 425, 429, 5xx, no connection, timeout); another attempt follows.
- `failed`: a permanent failure (another 4xx, a 3xx): no further attempt.
- `gave_up`: a transient failure on the last allowed attempt.
"""

CALLBACK_OUTCOMES: frozenset[str] = frozenset(get_args(CallbackOutcome))


@dataclass(frozen=True)
class CallbackAttempt:
    """One delivery attempt of a run's callback. `attempt` counts from 1.

    `error` is short and human readable; it never holds a secret, a signature or the response
    body (receivers may echo headers). `next_attempt_at` is set when another attempt follows.
    """

    run_id: str
    tenant_id: str | None
    url: str
    attempt: int
    attempted_at: datetime
    duration_ms: float
    status_code: int | None
    outcome: CallbackOutcome
    error: str | None = None
    next_attempt_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.outcome not in CALLBACK_OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(CALLBACK_OUTCOMES)}, got {self.outcome!r}")
        if isinstance(self.attempt, bool) or not isinstance(self.attempt, int) or self.attempt < 1:
            raise ValueError(f"attempt counts from 1, got {self.attempt!r}")
        if (self.next_attempt_at is not None) != (self.outcome == "retry"):
            raise ValueError("next_attempt_at is set exactly when the outcome is 'retry'")


class CallbackLog(AsyncDatabase):
    """The stored callback attempts on the database at `url`. Connects lazily; `close()` when done."""

    async def record(self, attempt: CallbackAttempt) -> None:
        """Store `attempt`; storing the same (run_id, attempt) again keeps the first and does not raise.

        Database outages propagate (SQLAlchemy's OperationalError): the caller decides whether a
        lost log line matters more than the delivery it describes.
        """
        async with write_transaction(self._engine, self._url) as connection:
            statement = insert_ignoring_duplicates(callback_attempts, connection.dialect.name)
            await connection.execute(statement, [_to_row(attempt)])

    async def attempts(self, run_id: str, *, tenant_id: str | None = None) -> list[CallbackAttempt]:
        """The run's attempts, first to last; another tenant's attempts are not returned."""
        statement = scope_to_tenant(
            select(callback_attempts)
            .where(callback_attempts.c.run_id == run_id)
            .order_by(callback_attempts.c.attempt),
            callback_attempts,
            tenant_id,
        )
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [_from_row(row) for row in rows]


def _to_row(attempt: CallbackAttempt) -> dict[str, Any]:
    row = asdict(attempt)
    row["attempted_at"] = as_utc(attempt.attempted_at)
    if attempt.next_attempt_at is not None:
        row["next_attempt_at"] = as_utc(attempt.next_attempt_at)
    return row


def _from_row(row: Any) -> CallbackAttempt:
    return CallbackAttempt(
        run_id=row["run_id"],
        tenant_id=row["tenant_id"],
        url=row["url"],
        attempt=row["attempt"],
        attempted_at=row["attempted_at"],
        duration_ms=row["duration_ms"],
        status_code=row["status_code"],
        outcome=row["outcome"],
        error=row["error"],
        next_attempt_at=row["next_attempt_at"],
    )
