"""The one DBOS instance of a Keel process: its configuration, launch and shutdown.

DBOS is a process-wide singleton (a second `DBOS(config=...)` silently keeps the first config), so
Keel owns it here and nowhere else. It is launched inside the server's running event loop, so
queued runs execute on that loop next to the HTTP handlers and share their clients.

Where the durable state lives:
- PostgreSQL: in Keel's own database, schema `dbos`. Any number of processes may share it.
- SQLite: in a file next to Keel's database (`keel.db` -> `keel.dbos.sqlite`), in WAL mode with
  `synchronous=NORMAL` (DBOS's defaults cap it near 50 runs/s). One process only: several
  processes on one SQLite file break the global concurrency limits.

The application version is pinned (`APP_VERSION`): DBOS recovers and dequeues only runs of the
version that created them, and its default (a hash of the source) would strand every run in
flight at each upgrade. Bump `WORKFLOW_REVISION` when the sequence of steps of a run changes, so
old runs are not replayed against a different sequence.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from dbos import DBOS, DBOSConfig

from keel.durable.serializer import KeelJSONSerializer
from keel.errors import UsageError
from keel.store.urls import parse_url

WORKFLOW_REVISION = 1
APP_VERSION = f"keel-wf{WORKFLOW_REVISION}"
DBOS_SCHEMA = "dbos"
_NO_QUEUE = "keel.none"  # what an API-only process "listens" to: nothing
EXECUTOR_THREADS = 16  # below DBOS's connection pool (20), which its own background threads share


def system_database_url(keel_url: str) -> str:
    """Where DBOS keeps its state for Keel's database `keel_url`."""
    parsed = parse_url(keel_url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            raise UsageError(
                "durable runs need a file database; an in-memory SQLite database cannot be shared"
            )
        path = Path(database)
        return f"sqlite:///{path.with_name(path.stem + '.dbos.sqlite')}"
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _sqlite_creator(path: str) -> Any:
    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(path, check_same_thread=False, timeout=30)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    return connect


def dbos_config(system_url: str, *, executor_id: str) -> DBOSConfig:
    config: DBOSConfig = {
        "name": "keel",
        "system_database_url": system_url,
        "executor_id": executor_id,
        "application_version": APP_VERSION,
        "serializer": KeelJSONSerializer(),
        "log_level": "WARNING",
        "notification_listener_polling_interval_sec": 0.05,
        "dbos_system_schema": DBOS_SCHEMA,
        # DBOS's executor runs every synchronous database call of the async APIs; unbounded (its
        # default), a thousand runs in flight make hundreds of threads that only wait for one of
        # the pool's connections (each thread's stack and allocator arena is resident memory).
        "max_executor_threads": EXECUTOR_THREADS,
    }
    if is_sqlite(system_url):
        path = system_url.removeprefix("sqlite:///")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        config["db_engine_kwargs"] = {"creator": _sqlite_creator(path)}
    return config


async def launch(config: DBOSConfig, *, listen: list[str] | None) -> None:
    """Create the DBOS instance and launch it on the running loop. `listen`: the queues this
    process takes work from (None: all registered; []: none, for API-only processes)."""
    logging.getLogger("dbos").setLevel(logging.WARNING)
    DBOS(config=config)
    if listen is not None:
        DBOS.listen_queues(listen or [_NO_QUEUE])
    DBOS.launch()
    _make_queues_wakeable()
    await asyncio.sleep(0)


# -- waking a queue's poller -------------------------------------------------------------------------
#
# DBOS's queue threads (one per queue, `queue-worker-<name>`) check their queue every
# `polling_interval_sec` and have no wake-up: a run enqueued just after a check waits for the next
# one. All of them sleep on one stop event of DBOS's (`stop_event.wait(timeout=interval)`). Keel
# gives that event a wake-up per queue, so a process that has just enqueued a run into a queue it
# executes lets that queue's thread check at once. The thread does its ordinary check (same code,
# same concurrency limits and fairness, nothing claimed outside it); only its sleep is cut short.


IDLE_POLL_S = 0.5
"""How long a queue thread that may poll slowly (`poll_slowly_when_idle`) sleeps while it has room."""


class _WakeableStop(threading.Event):
    """DBOS's stop event for its queue threads, which also wakes one queue's thread on request.

    Its waits sleep on a condition of their own (`_wakeup`), never on the event's: a thread that
    was already inside `threading.Event.wait` when the class was swapped would take a notification
    of the event's condition for "stop" and end.

    A queue thread with an `_idle` check sleeps at least IDLE_POLL_S when the check says it has
    nothing to find (see `poll_slowly_when_idle`); a wake still ends that sleep at once."""

    _woken: set[str]
    _wakeup: threading.Condition
    _idle: dict[str, Callable[[], bool]]

    def set(self) -> None:
        super().set()
        wakeup = self.__dict__.get("_wakeup")
        if wakeup is not None:
            with wakeup:
                wakeup.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        wakeup = self.__dict__.get("_wakeup")
        if wakeup is None:
            return super().wait(timeout)
        name = threading.current_thread().name
        idle = self._idle.get(name)
        if timeout is not None and idle is not None and timeout < IDLE_POLL_S and _safe(idle):
            timeout = IDLE_POLL_S
        deadline = None if timeout is None else time.monotonic() + timeout
        with wakeup:
            while True:
                if self.is_set():
                    return True
                if name in self._woken:
                    self._woken.discard(name)
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                wakeup.wait(remaining)

    def wake(self, queue: str) -> None:
        with self._wakeup:
            self._woken.add(_thread_name(queue))
            self._wakeup.notify_all()


def _thread_name(queue: str) -> str:
    return f"queue-worker-{queue}"


def _safe(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except Exception:  # a check that cannot tell: poll as configured
        return False


_stop: _WakeableStop | None = None


def make_wakeable(event: threading.Event) -> _WakeableStop:
    """`event`, now also able to wake one queue thread (a plain `threading.Event`, possibly
    being waited on already)."""
    if isinstance(event, _WakeableStop):
        return event
    if type(event) is not threading.Event:
        raise TypeError(f"cannot make a {type(event).__name__} wakeable")
    # Threads may be waiting on it already: its attributes come first, then the class (same
    # layout: only `set`, `wait` and `wake` differ).
    event._woken = set()  # type: ignore[attr-defined]
    event._idle = {}  # type: ignore[attr-defined]
    event._wakeup = threading.Condition(threading.Lock())  # type: ignore[attr-defined]
    event.__class__ = _WakeableStop
    return cast(_WakeableStop, event)


def _make_queues_wakeable() -> None:
    """Find the stop event DBOS handed its queue thread at launch and give it `wake`. Without it
    (another DBOS release laid out differently) queues are only polled, as before."""
    global _stop
    _stop = None
    try:
        from dbos._dbos import _get_dbos_instance
        from dbos._queue import queue_thread

        instance = _get_dbos_instance()
        for thread in instance._background_threads:
            if getattr(thread, "_target", None) is queue_thread:
                event = thread._args[0]  # type: ignore[attr-defined]
                if isinstance(event, threading.Event):
                    _stop = make_wakeable(event)
                break
    except Exception:  # never fatal: polling alone still works
        logging.getLogger("keel.durable").debug("queue wake-ups unavailable", exc_info=True)


def wake_queue(name: str) -> None:
    """Let the queue `name`'s thread check its queue now (no-op if this process does not poll it)."""
    if _stop is not None:
        _stop.wake(name)


# -- slower polling when a queue has nothing to find (one process on SQLite) -------------------------
#
# A poll costs a few statements whether or not it finds work (about 10 % of a core per queue at
# 0.05 s). In a process that is the only one queueing into its queues (SQLite), every run it queues
# wakes the queue's thread, so a poll can only find something new when a slot frees up while runs
# wait for one. So: while the queue has room for more runs in this process (fewer running than its
# `worker_concurrency`) and no per-group or global cap could hold queued runs back, its thread
# sleeps IDLE_POLL_S; when it is full, or caps apply, it polls at its interval as before, and a run
# that ends in a full (or capped) queue wakes its thread at once. What is queued other than by a
# submission here (runs recovered at start, a parked session run released, a run going on after
# approvals) waits at most IDLE_POLL_S.

_limits: dict[str, tuple[int, bool]] = {}  # queue -> (worker concurrency, capped)


def _running(queue: str) -> int | None:
    try:
        from dbos._dbos import _get_dbos_instance

        return int(_get_dbos_instance()._active_workflows_set.count_for_queue(queue))
    except Exception:
        return None


def _has_room(queue: str) -> bool:
    limit, capped = _limits[queue]
    running = _running(queue)
    if running is None:
        return False
    return running == 0 if capped else running < limit


def poll_slowly_when_idle(queue: str, *, worker_concurrency: int, capped: bool) -> None:
    """Let `queue`'s thread sleep IDLE_POLL_S while it has room (only for a process that is the
    only one queueing into `queue`: see above). `capped`: per-group or global limits below
    `worker_concurrency` may hold queued runs back while there is room."""
    _limits[queue] = (worker_concurrency, capped)
    if _stop is not None:
        _stop._idle[_thread_name(queue)] = lambda: _has_room(queue)


def run_ended(queue: str) -> None:
    """A run of `queue` has ended here (its slot is free): wake the thread if runs may be waiting
    for that slot (the queue was full, or caps apply); a slowly polled queue would not look soon."""
    if _stop is None or queue not in _limits:
        return
    limit, capped = _limits[queue]
    running = _running(queue)
    if capped or running is None or running + 1 >= limit:
        _stop.wake(queue)


def destroy(grace: float) -> None:
    """Stop DBOS. Runs still going after `grace` seconds stay PENDING and resume at the next start."""
    global _stop
    _stop = None
    _limits.clear()
    DBOS.destroy(workflow_completion_timeout_sec=int(grace))
