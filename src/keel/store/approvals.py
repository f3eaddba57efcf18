"""Runs paused for approval, the calls waiting for people, and escalations (tables of revision 0013).

    store = ApprovalStore(url)
    waiting = await store.create_pause(run_id, 1, tenant, agent, request, state, view, calls, now)
    decided = await store.decide(approval_id, tenant_id=t, approved=True, by="ann", now=now)
    ready = await store.ready_pauses()              # every call decided: the run can go on

Every change of state is one conditional UPDATE (`WHERE status = 'pending'`), so two reviewers,
or a reviewer and the timeout sweeper, in any number of processes, cannot both decide a call: the
second gets the first's decision back (`Decided.changed` False). Rows are made idempotently (the
ids are derived from run, pause and call), so a replayed durable step makes nothing twice.
Reads are scoped to a tenant through `keel.store.tenancy`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, select, update

from keel.store.batch import insert_ignoring_duplicates
from keel.store.engine import AsyncDatabase
from keel.store.repository import read_connection, write_transaction
from keel.store.tables import approvals, escalations, run_pauses
from keel.store.tenancy import scope_to_tenant
from keel.store.types import as_utc

PENDING = "pending"
WAITING = "waiting"


@dataclass(frozen=True)
class Decided:
    approval: dict[str, Any]
    changed: bool  # False: it had been decided already (the stored decision is returned)


def approval_id(run_id: str, pause: int, call_id: str) -> str:
    return "ap_" + hashlib.sha256(f"{run_id}\x00{pause}\x00{call_id}".encode()).hexdigest()[:28]


def escalation_id(run_id: str) -> str:
    return "esc_" + hashlib.sha256(run_id.encode()).hexdigest()[:28]


class ApprovalStore(AsyncDatabase):
    # -- pauses ------------------------------------------------------------------------------------

    async def create_pause(
        self,
        run_id: str,
        pause: int,
        tenant_id: str | None,
        agent: str,
        request: Mapping[str, Any],
        state: Mapping[str, Any],
        view: Mapping[str, Any],
        calls: Sequence[Mapping[str, Any]],
        now: datetime,
    ) -> list[dict[str, Any]]:
        """Store a stop of `run_id` and its waiting calls (again: a no-op); the calls as stored."""
        now = as_utc(now)
        pause_row = {
            "run_id": run_id,
            "pause": pause,
            "tenant_id": tenant_id,
            "agent": agent,
            "status": WAITING,
            "request": dict(request),
            "state": dict(state),
            "view": dict(view),
            "created_at": now,
            "resumed_at": None,
        }
        rows = [
            {
                "id": approval_id(run_id, pause, str(call["call_id"])),
                "run_id": run_id,
                "pause": pause,
                "call_id": str(call["call_id"]),
                "tenant_id": tenant_id,
                "agent": agent,
                "tool": str(call["tool"]),
                "args": dict(call.get("args") or {}),
                "reason": str(call.get("reason") or ""),
                "status": PENDING,
                "on_timeout": str(call.get("on_timeout") or "reject"),
                "expires_at": now + timedelta(seconds=float(call.get("timeout_s") or 86_400)),
                "created_at": now,
            }
            for call in calls
        ]
        async with write_transaction(self._engine, self._url) as connection:
            dialect = connection.dialect.name
            await connection.execute(insert_ignoring_duplicates(run_pauses, dialect), [pause_row])
            if rows:
                await connection.execute(insert_ignoring_duplicates(approvals, dialect), rows)
        return await self.approvals_of(run_id, pause)

    async def latest_pause(self, run_id: str) -> dict[str, Any] | None:
        statement = (
            select(run_pauses)
            .where(run_pauses.c.run_id == run_id)
            .order_by(run_pauses.c.pause.desc())
            .limit(1)
        )
        async with read_connection(self._engine, self._url) as connection:
            row = (await connection.execute(statement)).mappings().first()
        return None if row is None else dict(row)

    async def pause_row(self, run_id: str, pause: int) -> dict[str, Any] | None:
        statement = select(run_pauses).where(run_pauses.c.run_id == run_id, run_pauses.c.pause == pause)
        async with read_connection(self._engine, self._url) as connection:
            row = (await connection.execute(statement)).mappings().first()
        return None if row is None else dict(row)

    async def waiting_runs(
        self, *, tenant_id: str | None, agent: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """The latest stop of each run that waits for approval now, oldest first."""
        statement = select(run_pauses).where(run_pauses.c.status == WAITING)
        if agent is not None:
            statement = statement.where(run_pauses.c.agent == agent)
        statement = scope_to_tenant(
            statement.order_by(run_pauses.c.created_at, run_pauses.c.run_id).limit(limit),
            run_pauses,
            tenant_id,
        )
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [dict(row) for row in rows]

    async def ready_pauses(self, limit: int = 100) -> list[dict[str, Any]]:
        """Waiting stops whose every call is decided: their runs can go on (or end)."""
        undecided = exists().where(
            approvals.c.run_id == run_pauses.c.run_id,
            approvals.c.pause == run_pauses.c.pause,
            approvals.c.status == PENDING,
        )
        statement = (
            select(run_pauses)
            .where(run_pauses.c.status == WAITING, ~undecided)
            .order_by(run_pauses.c.created_at)
            .limit(limit)
        )
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [dict(row) for row in rows]

    async def mark_pause(self, run_id: str, pause: int, status: str, now: datetime) -> bool:
        """Move a waiting stop to `status` (resumed, cancelled); False if it was not waiting."""
        statement = (
            update(run_pauses)
            .where(run_pauses.c.run_id == run_id, run_pauses.c.pause == pause, run_pauses.c.status == WAITING)
            .values(status=status, resumed_at=as_utc(now))
        )
        async with write_transaction(self._engine, self._url) as connection:
            result = await connection.execute(statement)
        return bool(result.rowcount)

    async def cancel_run(self, run_id: str, now: datetime) -> bool:
        """Cancel a waiting run: its stop and its undecided calls. False if it was not waiting."""
        async with write_transaction(self._engine, self._url) as connection:
            stopped = await connection.execute(
                update(run_pauses)
                .where(run_pauses.c.run_id == run_id, run_pauses.c.status == WAITING)
                .values(status="cancelled", resumed_at=as_utc(now))
            )
            await connection.execute(
                update(approvals)
                .where(approvals.c.run_id == run_id, approvals.c.status == PENDING)
                .values(status="cancelled", decided_at=as_utc(now), decided_by="run cancelled")
            )
        return bool(stopped.rowcount)

    # -- approvals ---------------------------------------------------------------------------------

    async def approvals_of(
        self, run_id: str, pause: int | None = None, *, tenant_id: str | None = None
    ) -> list[dict[str, Any]]:
        statement = select(approvals).where(approvals.c.run_id == run_id)
        if pause is not None:
            statement = statement.where(approvals.c.pause == pause)
        statement = scope_to_tenant(
            statement.order_by(approvals.c.pause, approvals.c.created_at, approvals.c.call_id),
            approvals,
            tenant_id,
        )
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [approval_view(row) for row in rows]

    async def get(self, id: str, *, tenant_id: str | None = None) -> dict[str, Any] | None:
        statement = scope_to_tenant(select(approvals).where(approvals.c.id == id), approvals, tenant_id)
        async with read_connection(self._engine, self._url) as connection:
            row = (await connection.execute(statement)).mappings().first()
        return None if row is None else approval_view(row)

    async def inbox(
        self,
        *,
        tenant_id: str | None,
        status: str | None = PENDING,
        agent: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """The inbox: oldest first (the next to decide on top)."""
        statement = select(approvals)
        if status is not None:
            statement = statement.where(approvals.c.status == status)
        if agent is not None:
            statement = statement.where(approvals.c.agent == agent)
        statement = scope_to_tenant(
            statement.order_by(approvals.c.created_at, approvals.c.id).limit(limit), approvals, tenant_id
        )
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [approval_view(row) for row in rows]

    async def decide(
        self,
        id: str,
        *,
        tenant_id: str | None,
        approved: bool,
        by: str,
        now: datetime,
        reason: str | None = None,
        args: Mapping[str, Any] | None = None,
    ) -> Decided | None:
        """Decide a pending call (None: no such call for this tenant)."""
        changed = await self._settle(
            approvals,
            id,
            tenant_id,
            PENDING,
            status="approved" if approved else "rejected",
            decided_at=as_utc(now),
            decided_by=by,
            decision_reason=reason,
            edited_args=dict(args) if args is not None else None,
        )
        stored = await self.get(id, tenant_id=tenant_id)
        return None if stored is None else Decided(stored, changed)

    async def _settle(self, table: Any, id: str, tenant_id: str | None, current: str, **values: Any) -> bool:
        """Move row `id` from status `current` to `values` (of the tenant, when given): one
        conditional UPDATE, so only one of concurrent callers changes it. True if this one did."""
        condition = and_(table.c.id == id, table.c.status == current)
        if tenant_id is not None:
            condition = and_(condition, table.c.tenant_id == tenant_id)
        async with write_transaction(self._engine, self._url) as connection:
            result = await connection.execute(update(table).where(condition).values(**values))
        return bool(result.rowcount)

    async def expired(self, now: datetime, limit: int = 100) -> list[dict[str, Any]]:
        statement = (
            select(approvals)
            .where(approvals.c.status == PENDING, approvals.c.expires_at <= as_utc(now))
            .order_by(approvals.c.expires_at)
            .limit(limit)
        )
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [approval_view(row) for row in rows]

    async def pending_count(self, *, tenant_id: str | None) -> int:
        statement = scope_to_tenant(
            select(func.count()).select_from(approvals).where(approvals.c.status == PENDING),
            approvals,
            tenant_id,
        )
        async with read_connection(self._engine, self._url) as connection:
            return int((await connection.execute(statement)).scalar_one())

    # -- escalations -------------------------------------------------------------------------------

    async def open_escalation(
        self,
        run_id: str,
        *,
        tenant_id: str | None,
        agent: str,
        trigger: str,
        reason: str,
        summary: str,
        now: datetime,
    ) -> dict[str, Any]:
        id = escalation_id(run_id)
        row = {
            "id": id,
            "run_id": run_id,
            "tenant_id": tenant_id,
            "agent": agent,
            "trigger": trigger,
            "reason": reason,
            "summary": summary,
            "status": "open",
            "created_at": as_utc(now),
        }
        async with write_transaction(self._engine, self._url) as connection:
            await connection.execute(insert_ignoring_duplicates(escalations, connection.dialect.name), [row])
        found = await self.escalation(id)
        assert found is not None
        return found

    async def escalation(self, id: str, *, tenant_id: str | None = None) -> dict[str, Any] | None:
        statement = scope_to_tenant(select(escalations).where(escalations.c.id == id), escalations, tenant_id)
        async with read_connection(self._engine, self._url) as connection:
            row = (await connection.execute(statement)).mappings().first()
        return None if row is None else _iso(row)

    async def escalations(
        self, *, tenant_id: str | None, status: str | None = "open", limit: int = 50
    ) -> list[dict[str, Any]]:
        statement = select(escalations)
        if status is not None:
            statement = statement.where(escalations.c.status == status)
        statement = scope_to_tenant(
            statement.order_by(escalations.c.created_at, escalations.c.id).limit(limit),
            escalations,
            tenant_id,
        )
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [_iso(row) for row in rows]

    async def resolve_escalation(
        self, id: str, *, tenant_id: str | None, by: str, resolution: str, now: datetime
    ) -> Decided | None:
        changed = await self._settle(
            escalations,
            id,
            tenant_id,
            "open",
            status="resolved",
            resolved_at=as_utc(now),
            resolved_by=by,
            resolution=resolution,
        )
        stored = await self.escalation(id, tenant_id=tenant_id)
        return None if stored is None else Decided(stored, changed)


def approval_view(row: Any) -> dict[str, Any]:
    """An approval as the API shows it."""
    return _iso(row)


def _iso(row: Any) -> dict[str, Any]:
    data = dict(row)
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = as_utc(value).isoformat()
    return data
