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
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSConfig

from keel.durable.serializer import KeelJSONSerializer
from keel.errors import UsageError
from keel.store.urls import parse_url

WORKFLOW_REVISION = 1
APP_VERSION = f"keel-wf{WORKFLOW_REVISION}"
DBOS_SCHEMA = "dbos"
_NO_QUEUE = "keel.none"  # what an API-only process "listens" to: nothing


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
    await asyncio.sleep(0)


def destroy(grace: float) -> None:
    """Stop DBOS. Runs still going after `grace` seconds stay PENDING and resume at the next start."""
    DBOS.destroy(workflow_completion_timeout_sec=int(grace))
