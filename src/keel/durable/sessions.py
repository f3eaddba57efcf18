"""One active run per session, across all processes.

Each run submitted with a `session_id` enters its session's line in the `session_runs` table: it
is `active` if the session has no active run, otherwise `waiting`. A partial unique index allows
one active run per session, so two API processes cannot both start one.

A waiting run is enqueued *parked* (DBOS `DELAYED` with a far-away delay), so it holds no worker
slot. When the active run ends, its workflow's `keel.session_release` step marks it done,
promotes the earliest waiting run and un-parks it (delay set to zero: it becomes an ordinary
queued run). The release is a checkpointed step and idempotent, and workers also sweep for
sessions whose active run ended without releasing (cancelled, crashed), so a session never stays
blocked.

Policies for a second submission while a run is active (agent `queue.session_policy`):
`enqueue` (wait in line), `reject` (409 `session_busy`), `interrupt` (cancel the active run; the
new one takes its place).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from dbos import DBOS

from keel.store import Coordination

if TYPE_CHECKING:
    from keel.durable.service import DurableRuns

PARKED_SECONDS = 10 * 365 * 24 * 3600.0


def session_key(tenant_id: str | None, agent: str, session_id: str) -> str:
    """The line a run waits in: per tenant, agent and session (hashed to bound its length)."""
    raw = json.dumps([tenant_id, agent, session_id])
    return hashlib.sha256(raw.encode()).hexdigest()


class SessionBusy(Exception):
    pass


class SessionGate:
    def __init__(self, coordination: Coordination) -> None:
        self.coordination = coordination

    async def enter(self, run_id: str, key: str, policy: str) -> bool:
        """Join the session's line. True: the run may start now. False: it must be parked.
        Raises `SubmitRefused` (409) under the `reject` policy when the session is busy."""
        from keel.durable.service import SubmitRefused

        if await self.coordination.enter_session(run_id, key):
            return True
        if policy == "reject":
            await self.coordination.finish_session_run(run_id)
            raise SubmitRefused(
                409, "session_busy", "this session already has an active run; try again when it ends"
            )
        return False

    async def after_enqueue(self, run_id: str, key: str, policy: str, service: DurableRuns) -> None:
        """Under `interrupt`, cancel the session's active run; this run takes its place. Then, if
        this run became active while it was being enqueued parked, un-park it."""
        active = await self.coordination.active_run(key)
        if policy == "interrupt" and active is not None and active != run_id:
            await service.cancel(active)  # releases the session, promoting the earliest waiting run
            active = await self.coordination.active_run(key)
        if active == run_id:
            await _unpark(run_id)

    async def release(self, run_id: str) -> None:
        """The run ended (or was cancelled): let the next run of its session go. Idempotent."""
        promoted = await self.coordination.finish_session_run(run_id)
        if promoted is not None:
            await _unpark(promoted)

    async def unpark_active(self, key: str) -> None:
        active = await self.coordination.active_run(key)
        if active is not None:
            await _unpark(active)


async def _unpark(run_id: str) -> None:
    # Only affects DELAYED workflows, so repeating it (after a crash, or by the sweeper) is harmless.
    await DBOS.set_workflow_delay_async(run_id, delay_seconds=0)
