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


class _WakeableStop(threading.Event):
    """DBOS's stop event for its queue threads, which also wakes one queue's thread on request.

    Its waits sleep on a condition of their own (`_wakeup`), never on the event's: a thread that
    was already inside `threading.Event.wait` when the class was swapped would take a notification
    of the event's condition for "stop" and end."""

    _woken: set[str]
    _wakeup: threading.Condition

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
            self._woken.add(f"queue-worker-{queue}")
            self._wakeup.notify_all()


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


def destroy(grace: float) -> None:
    """Stop DBOS. Runs still going after `grace` seconds stay PENDING and resume at the next start."""
    global _stop
    _stop = None
    DBOS.destroy(workflow_completion_timeout_sec=int(grace))
