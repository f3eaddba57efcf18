"""Worker liveness: heartbeats, adopting the runs of dead workers, and unblocking sessions.

DBOS resumes a worker's unfinished runs when that worker restarts with the same id. A worker
that never comes back would strand them; DBOS 3.4 only detects that in its hosted Conductor. So
each executing Keel process records a heartbeat every `server.heartbeat_interval` seconds in
`keel_workers`, and checks for workers silent longer than `server.worker_timeout`. One live
worker wins the claim on a dead one (a conditional UPDATE) and resumes its PENDING runs: they
continue from their last checkpoint, without repeating completed model requests or tool calls.

On SQLite the one process is the only worker; a second process on the same database is refused
at start-up while the first one's heartbeat is fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from dbos import DBOS

from keel.errors import UsageError
from keel.store import Coordination

if TYPE_CHECKING:
    from keel.durable.service import DurableRuns

log = logging.getLogger("keel.durable")


class WorkerPresence:
    def __init__(self, service: DurableRuns, coordination: Coordination) -> None:
        self.service = service
        self.coordination = coordination
        self._task: asyncio.Task[None] | None = None
        self.adopted: list[str] = []  # dead workers whose runs this process took over

    async def check_single_sqlite_process(self) -> None:
        service = self.service
        if not service.sqlite:
            return
        for worker in await self.coordination.live_workers():
            age = (datetime.now(UTC) - worker.heartbeat_at).total_seconds()
            mine = worker.pid == os.getpid() and worker.hostname == socket.gethostname()
            if worker.stopped_at is None and age < service.settings.worker_timeout and not mine:
                raise UsageError(
                    f"another Keel process (pid {worker.pid} on {worker.hostname}) is serving this SQLite "
                    "database; on SQLite only one process may run (use PostgreSQL for several workers)"
                )

    async def start(self) -> None:
        if not self.service.executes:
            return
        await self._beat()
        self._task = asyncio.create_task(self._loop(), name="keel-worker-heartbeat")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.service.executes:
            with contextlib.suppress(Exception):
                await self.coordination.mark_stopped(self.service.worker_id)

    async def _beat(self) -> None:
        await self.coordination.heartbeat(
            self.service.worker_id, self.service.role, socket.gethostname(), os.getpid()
        )

    async def _loop(self) -> None:
        settings = self.service.settings
        while True:
            await asyncio.sleep(settings.heartbeat_interval)
            try:
                await self._beat()
                if not self.service.sqlite:
                    await self.adopt_dead_workers()
                await self.sweep_sessions()
            except Exception as exc:  # the database may be briefly unavailable: try again next beat
                log.warning("worker heartbeat failed: %s", exc)

    async def adopt_dead_workers(self) -> list[str]:
        """Resume the unfinished runs of every worker silent for `worker_timeout` seconds."""
        me = self.service.worker_id
        adopted: list[str] = []
        for dead in await self.coordination.dead_workers(self.service.settings.worker_timeout):
            timeout = self.service.settings.worker_timeout
            if dead == me or not await self.coordination.claim_dead_worker(
                dead, me, older_than_seconds=timeout
            ):
                continue
            # DBOS's own recovery, as at launch, for another executor id (no public API in 3.4).
            handles = await asyncio.to_thread(DBOS._recover_pending_workflows, [dead])
            log.warning("worker %s is dead: resumed its %d unfinished runs here", dead, len(handles))
            adopted.append(dead)
        self.adopted += adopted
        return adopted

    async def sweep_sessions(self) -> None:
        """Release sessions whose active run has ended without releasing them (cancelled while
        queued elsewhere, or ended by an operator), and un-park promoted runs."""
        from keel.durable.service import TERMINAL

        gate = self.service.sessions
        for run_id in await self.coordination.active_session_runs():
            found = await DBOS.list_workflows_async(
                workflow_ids=[run_id], load_input=False, load_output=False
            )
            if not found:
                continue
            status = found[0].status
            if status == "SUCCESS":
                # A run waiting for approval (or going on after it) ended its first workflow but
                # still holds its session.
                view = await self.service.get(run_id)
                if view is not None and view["status"] not in TERMINAL:
                    continue
            if status in ("SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"):
                await gate.release(run_id)
            elif status == "DELAYED":
                await DBOS.set_workflow_delay_async(run_id, delay_seconds=0)
