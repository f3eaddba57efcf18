"""Coordination between Keel processes through the database: worker liveness and session order.

    coordination = Coordination(url)
    await coordination.heartbeat("worker-1", "worker", socket.gethostname(), os.getpid())
    for dead in await coordination.dead_workers(older_than_seconds=30):
        if await coordination.claim_dead_worker(dead, "worker-1", older_than_seconds=30):
            ...  # this worker, and no other, recovers `dead`'s unfinished runs
    if await coordination.enter_session(run_id, session_key):
        ...  # the run may start now; otherwise it waits until finish_session_run promotes it
    await coordination.close()

Workers. Every worker upserts its row in `keel_workers` each `server.heartbeat_interval`. A row
whose heartbeat is older than `server.worker_timeout`, and that was neither stopped cleanly nor
already recovered, belongs to a dead worker. Several live workers may notice it at once; the claim
is one conditional UPDATE (still unclaimed, still stale), so exactly one of them wins and recovers
its runs. A worker that was only paused, and heartbeats again, learns from `heartbeat` that it was
recovered (its runs may now run twice: at-least-once, as everywhere in durable execution).

Sessions. The runs of one session run one at a time, in arrival order. `session_runs` holds each
run as `waiting`, `active` or `done`; a partial unique index on `session_key WHERE state =
'active'` makes two active runs in one session impossible on both backends, whatever the callers
do. Liveness (a waiting run is always promoted when the active one finishes) needs more than the
index: a run entering while the active one finishes could otherwise be left waiting with no active
run. So each session operation is serialized per session: on PostgreSQL by a transaction-scoped
advisory lock on the session key, on SQLite by the database write lock, taken by the
transaction's first statement, which is always a write.

Time. "Now" is the database server's clock on PostgreSQL (`clock_timestamp()`), so workers on
machines whose clocks disagree still judge heartbeats and order session runs on one clock. On
SQLite every process shares one machine, hence one clock.

Durable semantics. Every operation is idempotent, so a durable step re-executed after a crash may
call it again: `enter_session` for a run already entered answers whether it is active now;
`finish_session_run` for a run already done changes nothing and returns None. That last point
means the id of a promoted run can be lost when the finisher dies between its commit and its
step's checkpoint: a waiting run must not rely only on being notified, and should also re-check
`session_run_state` now and then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, Update, case, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.store.batch import insert_ignoring_duplicates
from keel.store.engine import AsyncDatabase
from keel.store.repository import read_connection, write_transaction
from keel.store.tables import ID_LENGTH, SESSION_KEY_LENGTH, keel_workers, session_runs
from keel.store.types import as_utc

SessionRunState = Literal["waiting", "active", "done"]

# pg_advisory_xact_lock(int4, int4) key space, disjoint from the migration's single int8 key.
_SESSION_LOCK_CLASS = int.from_bytes(b"kses", "big")


@dataclass(frozen=True)
class WorkerRow:
    """A worker as last seen: who, where, since when, its last heartbeat, and how it ended."""

    worker_id: str
    role: str
    hostname: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    recovered_by: str | None
    recovered_at: datetime | None


class Coordination(AsyncDatabase):
    """Worker heartbeats and session order on the database at `url`. Connects lazily; `close()`."""

    # -- workers ----------------------------------------------------------------------------------

    async def heartbeat(self, worker_id: str, role: str, hostname: str, pid: int) -> str | None:
        """Say `worker_id` is alive now; return the id of the worker that recovered it, if any.

        The first heartbeat inserts the row. A later one refreshes `heartbeat_at` and clears
        `stopped_at`. `started_at` is reset when a new incarnation takes the id over: another
        host or pid, or a row that was stopped or recovered (a container restarts as pid 1 on the
        same host name). If another worker had claimed this one as dead, the claim is cleared (a
        live worker can be recovered again if it dies later) and the claimer's id is returned, so
        the caller can log that its runs were taken over.
        """
        _check_length("worker_id", worker_id, ID_LENGTH)
        async with write_transaction(self._engine, self._url) as connection:
            now = await _now(connection)
            insert = _dialect_insert(connection)(keel_workers).values(
                worker_id=worker_id,
                role=role,
                hostname=hostname,
                pid=pid,
                started_at=now,
                heartbeat_at=now,
            )
            row = keel_workers.c
            new_incarnation = or_(
                row.pid != insert.excluded.pid,
                row.hostname != insert.excluded.hostname,
                row.stopped_at.is_not(None),
                row.recovered_at.is_not(None),
            )
            await connection.execute(
                insert.on_conflict_do_update(
                    index_elements=[row.worker_id],
                    set_={
                        "role": insert.excluded.role,
                        "hostname": insert.excluded.hostname,
                        "pid": insert.excluded.pid,
                        "started_at": case(
                            (new_incarnation, insert.excluded.started_at), else_=row.started_at
                        ),
                        "heartbeat_at": insert.excluded.heartbeat_at,
                        "stopped_at": None,
                    },
                )
            )
            # The upsert holds the row (PostgreSQL) or the write lock (SQLite): no claim interleaves.
            recovered_by: str | None = await connection.scalar(
                select(row.recovered_by).where(row.worker_id == worker_id)
            )
            if recovered_by is not None:
                await connection.execute(
                    update(keel_workers)
                    .where(row.worker_id == worker_id)
                    .values(recovered_by=None, recovered_at=None)
                )
            return recovered_by

    async def mark_stopped(self, worker_id: str) -> None:
        """Record a clean shutdown: a stopped worker is never treated as dead, nor recovered."""
        async with write_transaction(self._engine, self._url) as connection:
            now = await _now(connection)
            await connection.execute(
                update(keel_workers).where(keel_workers.c.worker_id == worker_id).values(stopped_at=now)
            )

    async def dead_workers(self, older_than_seconds: float) -> list[str]:
        """Workers silent for more than `older_than_seconds`, not stopped and not yet recovered."""
        async with read_connection(self._engine, self._url) as connection:
            cutoff = await _cutoff(connection, older_than_seconds)
            rows = await connection.execute(
                select(keel_workers.c.worker_id)
                .where(*_unclaimed_and_stale(cutoff))
                .order_by(keel_workers.c.heartbeat_at, keel_workers.c.worker_id)
            )
            return list(rows.scalars())

    async def claim_dead_worker(self, dead_id: str, by: str, *, older_than_seconds: float) -> bool:
        """Claim the recovery of `dead_id` for worker `by`; True only for the one caller that wins.

        One conditional UPDATE: it succeeds only if the worker is still unclaimed and still
        silent for more than `older_than_seconds`, judged at the moment of the update. Two
        claimers at once: one updates the row, the other finds it claimed (PostgreSQL re-checks
        the condition after waiting for the row; SQLite runs one writer at a time). A worker that
        heartbeated meanwhile is not claimed.
        """
        if dead_id == by:
            raise ValueError(f"worker {by!r} cannot claim its own recovery")
        _check_length("by", by, ID_LENGTH)
        async with write_transaction(self._engine, self._url) as connection:
            cutoff = await _cutoff(connection, older_than_seconds)
            result = await connection.execute(
                update(keel_workers)
                .where(keel_workers.c.worker_id == dead_id, *_unclaimed_and_stale(cutoff))
                .values(recovered_by=by, recovered_at=await _now(connection))
            )
            return result.rowcount == 1

    async def live_workers(self, within_seconds: float | None = None) -> list[WorkerRow]:
        """Workers neither stopped nor recovered, by id; with `within_seconds`, only those that
        heartbeated within that many seconds."""
        async with read_connection(self._engine, self._url) as connection:
            conditions: list[ColumnElement[bool]] = [
                keel_workers.c.stopped_at.is_(None),
                keel_workers.c.recovered_at.is_(None),
            ]
            if within_seconds is not None:
                conditions.append(keel_workers.c.heartbeat_at >= await _cutoff(connection, within_seconds))
            rows = await connection.execute(
                select(keel_workers).where(*conditions).order_by(keel_workers.c.worker_id)
            )
            return [WorkerRow(**row) for row in rows.mappings()]

    # -- sessions ---------------------------------------------------------------------------------

    async def enter_session(self, run_id: str, session_key: str) -> bool:
        """Add `run_id` to its session; True if it is the session's active run (it may start now).

        The run is stored as `waiting`, then the session's earliest waiting run is promoted if no
        run is active: a new run in an idle session is active at once; behind an active run it
        waits for `finish_session_run`. Entering again (a re-executed step) adds nothing and
        answers for the run's current state.
        """
        _check_length("run_id", run_id, ID_LENGTH)
        _check_length("session_key", session_key, SESSION_KEY_LENGTH)
        async with write_transaction(self._engine, self._url) as connection:
            await _lock_session(connection, session_key)
            now = await _now(connection)
            # RETURNING says whether the row was inserted: rowcount is -1 for inserts on psycopg.
            inserted = await connection.scalar(
                insert_ignoring_duplicates(session_runs, connection.dialect.name).returning(
                    session_runs.c.run_id
                ),
                {"run_id": run_id, "session_key": session_key, "state": "waiting", "created_at": now},
            )
            if inserted is None:
                existing = (
                    await connection.execute(
                        select(session_runs.c.session_key, session_runs.c.state).where(
                            session_runs.c.run_id == run_id
                        )
                    )
                ).one()
                if existing.session_key != session_key:
                    raise ValueError(f"run {run_id!r} already belongs to another session")
                return bool(existing.state == "active")
            return await _promote(connection, session_key) == run_id

    async def finish_session_run(self, run_id: str) -> str | None:
        """Mark `run_id` done; if it was the active run, promote the next one and return its id.

        The next run is the session's earliest waiting one (by arrival, then run id). A waiting
        run that finishes (cancelled before its turn) just leaves the queue. Finishing a done or
        unknown run changes nothing and returns None, so concurrent or repeated finishers promote
        at most one run.
        """
        async with write_transaction(self._engine, self._url) as connection:
            session_key = await connection.scalar(
                select(session_runs.c.session_key).where(session_runs.c.run_id == run_id)
            )
            if session_key is None:
                return None
            await _lock_session(connection, session_key)
            was_active = await connection.execute(_finish(run_id, "active"))
            if was_active.rowcount == 0:
                await connection.execute(_finish(run_id, "waiting"))
                return None
            return await _promote(connection, session_key)

    async def active_run(self, session_key: str) -> str | None:
        """The session's active run, or None."""
        async with read_connection(self._engine, self._url) as connection:
            active: str | None = await connection.scalar(
                select(session_runs.c.run_id).where(
                    session_runs.c.session_key == session_key, session_runs.c.state == "active"
                )
            )
            return active

    async def waiting_runs(self, session_key: str) -> list[str]:
        """The session's waiting runs, in the order they will become active."""
        async with read_connection(self._engine, self._url) as connection:
            rows = await connection.execute(_waiting(session_key))
            return list(rows.scalars())

    async def active_session_runs(self) -> list[str]:
        """The active run of every session, by run id: what a sweeper checks for runs that ended
        without `finish_session_run` (a crash between the end of a run and its release)."""
        async with read_connection(self._engine, self._url) as connection:
            rows = await connection.execute(
                select(session_runs.c.run_id)
                .where(session_runs.c.state == "active")
                .order_by(session_runs.c.run_id)
            )
            return list(rows.scalars())

    async def session_run_state(self, run_id: str) -> SessionRunState | None:
        """`waiting`, `active` or `done`; None for a run that never entered a session."""
        async with read_connection(self._engine, self._url) as connection:
            state: SessionRunState | None = await connection.scalar(
                select(session_runs.c.state).where(session_runs.c.run_id == run_id)
            )
            return state


# -- helpers --------------------------------------------------------------------------------------


async def _now(connection: AsyncConnection) -> datetime:
    """The database's clock on PostgreSQL (one clock for every machine), the local one on SQLite."""
    if connection.dialect.name == "postgresql":
        value = await connection.scalar(text("SELECT clock_timestamp()"))
        assert isinstance(value, datetime)
        return as_utc(value)
    return datetime.now(UTC)


async def _cutoff(connection: AsyncConnection, seconds: float) -> datetime:
    if not seconds > 0:
        raise ValueError(f"a worker timeout must be positive, got {seconds!r}")
    return await _now(connection) - timedelta(seconds=seconds)


def _unclaimed_and_stale(cutoff: datetime) -> tuple[Any, ...]:
    row = keel_workers.c
    return (row.heartbeat_at < cutoff, row.stopped_at.is_(None), row.recovered_at.is_(None))


async def _lock_session(connection: AsyncConnection, session_key: str) -> None:
    """Serialize this session's operations until the transaction ends (PostgreSQL; SQLite's
    write lock already does). Two keys with the same hash only wait for each other."""
    if connection.dialect.name == "postgresql":
        await connection.execute(
            text("SELECT pg_advisory_xact_lock(:lock_class, hashtext(:key))"),
            {"lock_class": _SESSION_LOCK_CLASS, "key": session_key},
        )


async def _promote(connection: AsyncConnection, session_key: str) -> str | None:
    """Make the session's earliest waiting run active if none is; its id, or None. Session locked."""
    active = await connection.scalar(
        select(session_runs.c.run_id).where(
            session_runs.c.session_key == session_key, session_runs.c.state == "active"
        )
    )
    if active is not None:
        return None
    candidate: str | None = await connection.scalar(_waiting(session_key).limit(1))
    if candidate is None:
        return None
    promoted = await connection.execute(
        update(session_runs)
        .where(session_runs.c.run_id == candidate, session_runs.c.state == "waiting")
        .values(state="active")
    )
    return candidate if promoted.rowcount == 1 else None


def _waiting(session_key: str) -> Select[str]:
    return (
        select(session_runs.c.run_id)
        .where(session_runs.c.session_key == session_key, session_runs.c.state == "waiting")
        .order_by(session_runs.c.created_at, session_runs.c.run_id)
    )


def _finish(run_id: str, state: SessionRunState) -> Update:
    return (
        update(session_runs)
        .where(session_runs.c.run_id == run_id, session_runs.c.state == state)
        .values(state="done")
    )


def _dialect_insert(connection: AsyncConnection) -> Any:
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


def _check_length(name: str, value: str, limit: int) -> None:
    """Refuse over-long ids on both backends alike (SQLite would store them, PostgreSQL refuse)."""
    if not value or len(value) > limit:
        raise ValueError(f"{name} must be 1 to {limit} characters, got {len(value)}")
