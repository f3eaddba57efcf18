"""A durable run's step events in Keel's own table (`run_events`), written in batches.

Runs accepted since `"events": 3` (EVENTS_V3) do not write the events their steps emit (tool
calls started and finished, model retries and fallbacks, text deltas, budget thresholds) to their
DBOS stream, where each one was a transaction of DBOS's (an ownership check and an insert, on one
of its threads): they go to `run_events` through one writer per process, which inserts whatever
is pending in one transaction on a thread of its own, so concurrent runs share transactions.

What stays as it was:
- Durable before the step is: an event is awaited until its batch has committed, except
  `tool_started`, which the same step's `tool_finished` (always emitted, in a `finally`, before
  the step returns) waits behind: batches commit in order. `tool_started` is written within
  LINGER_S (50 ms) or with its `tool_finished`, whichever comes first, so a live reader sees a
  long tool call start, and a quick one costs one transaction. So a step's events are stored before
  DBOS records the step's outcome, and a completed step, which a recovered run does not execute
  again, never loses its events; a step executed again after a crash writes them again, as before.
- Order and ids: a workflow's events are read in `id` order (one process writes a workflow's
  events, one batch at a time, so a later event never commits before an earlier one); the reader
  numbers them after the `running` event and before what the workflow wrote to its DBOS stream
  from workflow code (only `waiting_approval`, after its last step), see
  `keel.durable.events._read_segment_v3`.
- A write that fails with a transient error is retried (WRITE_ATTEMPTS); one that still fails is
  logged and its events are lost, never the run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

from keel.store.engine import AsyncDatabase, sync_engine
from keel.store.tables import run_events

log = logging.getLogger("keel.durable")

EVENTS_V3 = 3
"""The request's `events` value for runs whose step events are in `run_events`."""
PAGE = 500
LINGER_S = 0.05
WRITE_ATTEMPTS = 6
RETRY_S = 0.05
"""A batch that fails with a transient database error (SQLite's `database is locked` under a
thousand runs in flight, a Postgres connection lost) is tried again after 0.05, 0.1 ... 0.8 s
(about 1.5 s in all) before its events are given up (logged); its steps wait for it meanwhile."""
"""How long an event nobody waits for (`tool_started`) may wait for the next one before it is
written: about as long as text deltas are batched (keel.durable.replay.DELTA_FLUSH_S)."""


class EventLog(AsyncDatabase):
    """Writes (`add`) and reads (`page`, `count`) the events of durable runs' workflows."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._sync: Engine | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: list[tuple[str, dict[str, Any], asyncio.Future[None]]] = []
        self._drain: asyncio.Task[None] | None = None
        self._linger: asyncio.TimerHandle | None = None

    def add(self, workflow_id: str, event: dict[str, Any], *, soon: bool = False) -> asyncio.Future[None]:
        """Queue an event; the future is done once it is stored (or its write failed, logged).
        `soon`: nobody waits for it now; it may wait up to LINGER_S for company (the next event
        of its step, usually), so a quick tool call's two events take one transaction."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((workflow_id, event, done))
        if soon:
            if self._linger is None and (self._drain is None or self._drain.done()):
                self._linger = loop.call_later(LINGER_S, self._start)
        else:
            self._start()
        return done

    def _start(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._pending and (self._drain is None or self._drain.done()):
            self._drain = asyncio.get_running_loop().create_task(self._write_pending())

    async def _write_pending(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            rows = [{"workflow_id": workflow, "event": event} for workflow, event, _ in batch]
            for attempt in range(WRITE_ATTEMPTS):
                try:
                    await loop.run_in_executor(self._writer(), self._insert, rows)
                    break
                except OperationalError as exc:  # locked (SQLite), connection lost: transient
                    if attempt + 1 == WRITE_ATTEMPTS:
                        log.warning(
                            "could not store %d run events after %d tries: %s", len(rows), WRITE_ATTEMPTS, exc
                        )
                    else:
                        await asyncio.sleep(RETRY_S * 2**attempt)
                except Exception as exc:  # an event lost must not fail the run
                    log.warning("could not store %d run events: %s", len(rows), exc)
                    break
            for _, _, done in batch:
                if not done.done():
                    done.set_result(None)

    def _writer(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="keel-events")
        return self._executor

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        if self._sync is None:
            self._sync = sync_engine(self._url)
        with self._sync.begin() as connection:
            connection.execute(run_events.insert(), rows)

    async def page(
        self, workflow_id: str, *, after_id: int | None = None, skip: int = 0
    ) -> list[tuple[int, dict[str, Any]]]:
        """Up to PAGE events of the workflow as (row id, event): those after row `after_id`, or
        (without it) from its `skip`-th event on."""
        query = select(run_events.c.id, run_events.c.event).where(run_events.c.workflow_id == workflow_id)
        if after_id is not None:
            query = query.where(run_events.c.id > after_id)
        query = query.order_by(run_events.c.id).limit(PAGE)
        if after_id is None and skip:
            query = query.offset(skip)
        async with self._engine.connect() as connection:
            found = (await connection.execute(query)).all()
        return [(int(row.id), dict(row.event)) for row in found]

    async def count(self, workflow_id: str) -> int:
        query = select(func.count()).select_from(run_events).where(run_events.c.workflow_id == workflow_id)
        async with self._engine.connect() as connection:
            return int((await connection.execute(query)).scalar_one())

    async def close(self) -> None:
        """Write what is pending, then close."""
        self._start()
        if self._drain is not None and not self._drain.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._drain), timeout=10)
            except TimeoutError:
                log.warning("run events still unwritten at shutdown: %d", len(self._pending))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._sync is not None:
            self._sync.dispose()
            self._sync = None
        await super().close()
