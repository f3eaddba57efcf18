"""The floor of the server benchmarks: bench/bare_server.py's endpoint, made durable with DBOS alone.

The same FastAPI endpoint, agent, tool and model client as bench/bare_server.py, but run the way
issue #4 mandates with no Keel code (only Keel's JSON serializer, so nothing is pickled): each
request queues a DBOS 3.x workflow on a DBOS queue and waits for it; the workflow runs the
pydantic-ai agent with pydantic-ai's `DBOSDurability` capability, so each model request is a DBOS
step, and a small capability makes each tool call a step too (`DBOS.run_step_async` around the
tool's execution: pydantic-ai leaves plain function tools un-checkpointed). What it costs over
the bare endpoint is what the mandated foundation costs before any Keel code runs.

Every cheapness the foundation allows, and the same DBOS settings Keel uses where they matter:
- SQLite system database in WAL mode with `synchronous=NORMAL` (via SQLAlchemy's `creator`), or
  a Postgres database (schema `dbos`); executor capped at 16 threads; notifications polled every
  50 ms; JSON serializer; application version pinned.
- Queue wake-ups: DBOS's queue threads sleep on one stop event with no wake-up; here a request
  that has queued a run wakes that queue's thread at once (`_Wakeable`), so no run waits for a
  poll, and the queue is polled only every FLOOR_POLL_INTERVAL seconds (default 1.0, DBOS's
  default) for anything a wake-up could have missed (nothing, in one process).
- The request waits on an in-process future that the workflow resolves with its output at the
  end of its body (as Keel's `wait` does), not on DBOS's handle, which polls the database every
  second.

    BENCH_FAKE_BASE_URL=http://127.0.0.1:8399/v1 FLOOR_DATABASE_URL=sqlite:////tmp/floor.sqlite \
        uvicorn bench.dbos_floor_server:app --port 8002 --workers 1 --log-level warning --no-access-log

FLOOR_DATABASE_URL: `sqlite:////abs/path.sqlite` or `postgresql://...` (a database of its own).
FLOOR_WORKER_CONCURRENCY: the queue's per-process concurrency (default 50).
FLOOR_COUNT_SQL=1: count the statements DBOS sends (a SQLAlchemy listener), read at `GET /stats`.
`POST /run {"input": "..."}` -> `{"output": "..."}`; `GET /readyz` -> 200 once DBOS is launched.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from dbos import DBOS, DBOSConfig, SetWorkflowID
from fastapi import FastAPI
from openai import AsyncOpenAI, Timeout
from pydantic import BaseModel
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.durable_exec.dbos import DBOSDurability
from pydantic_ai.messages import ToolCallPart
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.tools import ToolDefinition

from keel.durable.serializer import KeelJSONSerializer

BASE_URL = os.environ.get("BENCH_FAKE_BASE_URL", "http://127.0.0.1:8399/v1")
DATABASE_URL = os.environ.get("FLOOR_DATABASE_URL", "sqlite:///floor.dbos.sqlite")
WORKER_CONCURRENCY = int(os.environ.get("FLOOR_WORKER_CONCURRENCY", "50"))
POLL_INTERVAL = float(os.environ.get("FLOOR_POLL_INTERVAL", "1.0"))
COUNT_SQL = os.environ.get("FLOOR_COUNT_SQL") == "1"
QUEUE = "floor.runs"
WAIT_S = 300.0


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}, 21 C"


class ToolSteps(AbstractCapability[Any]):
    """Each tool call one DBOS step (checkpointed; not repeated once completed). Nothing is awaited
    before `run_step_async`, so parallel calls draw step ids in call order."""

    async def wrap_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: Any,
        handler: Any,
    ) -> Any:
        if DBOS.workflow_id is None or DBOS.step_id is not None:
            return await handler(args)
        return await DBOS.run_step_async({"name": f"floor.tool.{tool_def.name}"}, handler, args)


# OpenAI's default connect timeout (5 s) fails runs when 1,000 of them open their connection to the
# fake provider at once on a loaded machine (bench.server_inflight); Keel's runs retry such a
# failure, these have no retry, so they get a longer connect timeout instead.
client = AsyncOpenAI(base_url=BASE_URL, api_key="x", max_retries=0, timeout=Timeout(600.0, connect=120.0))
agent = Agent(
    OpenAIChatModel("bench", provider=OpenAIProvider(openai_client=client)),
    name="floor",
    instructions="You answer questions about the weather.",
    tools=[get_weather],
    capabilities=[DBOSDurability(), ToolSteps()],
)

_waiters: dict[str, asyncio.Future[str]] = {}


@DBOS.workflow(name="floor.run", max_recovery_attempts=50)
async def floor_run(prompt: str) -> str:
    waiter = _waiters.get(DBOS.workflow_id or "")
    try:
        output = (await agent.run(prompt)).output
    except Exception as exc:  # the request answers 500 now, not after WAIT_S
        if waiter is not None and not waiter.done():
            waiter.set_exception(RuntimeError(f"the run failed: {type(exc).__name__}: {exc}"))
        raise
    if waiter is not None and not waiter.done():
        waiter.set_result(output)
    return output


# -- waking the queue's thread ------------------------------------------------------------------


class _Wakeable(threading.Event):
    """DBOS's stop event for its queue threads, plus `wake(thread name)`: that thread's current
    (or next) sleep ends at once. Waits sleep on a condition of their own."""

    _woken: set[str]
    _cond2: threading.Condition

    def set(self) -> None:
        super().set()
        with self._cond2:
            self._cond2.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        name = threading.current_thread().name
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond2:
            while True:
                if self.is_set():
                    return True
                if name in self._woken:
                    self._woken.discard(name)
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond2.wait(remaining)

    def wake(self, name: str) -> None:
        with self._cond2:
            self._woken.add(name)
            self._cond2.notify_all()


_stop: _Wakeable | None = None


def _make_wakeable() -> None:
    global _stop
    from dbos._dbos import _get_dbos_instance
    from dbos._queue import queue_thread

    for thread in _get_dbos_instance()._background_threads:
        if getattr(thread, "_target", None) is queue_thread:
            event = thread._args[0]  # type: ignore[attr-defined]
            event._woken = set()
            event._cond2 = threading.Condition(threading.Lock())
            event.__class__ = _Wakeable
            _stop = cast(_Wakeable, event)
            return


def _wake() -> None:
    if _stop is not None:
        _stop.wake(f"queue-worker-{QUEUE}")


# -- DBOS configuration, as Keel configures it ------------------------------------------------------


def _config() -> DBOSConfig:
    config: DBOSConfig = {
        "name": "floor",
        "system_database_url": DATABASE_URL,
        "executor_id": "floor-1",
        "application_version": "floor-1",
        "serializer": KeelJSONSerializer(),
        "log_level": "WARNING",
        "notification_listener_polling_interval_sec": 0.05,
        "dbos_system_schema": "dbos",
        "max_executor_threads": 16,
    }
    if DATABASE_URL.startswith("sqlite"):
        path = DATABASE_URL.removeprefix("sqlite:///")
        Path(path).parent.mkdir(parents=True, exist_ok=True)

        def connect() -> sqlite3.Connection:
            connection = sqlite3.connect(path, check_same_thread=False, timeout=30)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            return connection

        config["db_engine_kwargs"] = {"creator": connect}
    return config


_ready = False
_statements = 0


def _count_statements() -> None:
    from dbos._dbos import _get_dbos_instance
    from sqlalchemy import event

    def count(*_: Any) -> None:
        global _statements
        _statements += 1

    event.listen(_get_dbos_instance()._sys_db.engine, "before_cursor_execute", count)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    global _ready
    logging.getLogger("dbos").setLevel(logging.WARNING)
    DBOS(config=_config())
    DBOS.launch()  # inside the running loop: queued workflows run on this loop
    _make_wakeable()
    if COUNT_SQL:
        _count_statements()
    await DBOS.register_queue_async(
        QUEUE, worker_concurrency=WORKER_CONCURRENCY, polling_interval_sec=POLL_INTERVAL
    )
    _ready = True
    try:
        yield
    finally:
        _ready = False
        await asyncio.to_thread(DBOS.destroy, workflow_completion_timeout_sec=5)


class RunRequest(BaseModel):
    input: str


app = FastAPI(title="DBOS + pydantic-ai endpoint (no Keel)", lifespan=lifespan)


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    if not _ready:
        from fastapi import HTTPException

        raise HTTPException(503, "starting")
    return {"status": "ok"}


@app.get("/stats")
async def stats() -> dict[str, int]:
    return {"statements": _statements, "threads": threading.active_count()}


@app.post("/run")
async def run(body: RunRequest) -> dict[str, str]:
    run_id = uuid.uuid4().hex
    waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    _waiters[run_id] = waiter  # before the enqueue: the run cannot end unseen
    try:
        with SetWorkflowID(run_id):
            handle = await DBOS.enqueue_workflow_async(QUEUE, floor_run, body.input)
    except BaseException:
        _waiters.pop(run_id, None)
        raise
    _wake()
    try:
        output = await asyncio.wait_for(asyncio.shield(waiter), WAIT_S)
    except TimeoutError:  # ended elsewhere (recovered, another process): ask DBOS
        output = await handle.get_result()
    finally:
        _waiters.pop(run_id, None)
    return {"output": output}
