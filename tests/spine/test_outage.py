"""The database goes away in the middle of runs: runs still complete, and their records land once it is back."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from keel.runtime.runner import Runner
from keel.store import RunStore
from keel.testing.fake_llm import FakeLLMThread, Reply, Rule, RuleScript, ToolCallReply, When
from tests.databases import PostgresServer
from tests.runtime.helpers import make_project

SCRIPT = RuleScript(
    [
        Rule(when=When(last_is_tool_result=True), reply=Reply(text="done")),
        Rule(reply=Reply(tool_calls=[ToolCallReply("lookup", {"city": "Oslo"})])),
    ]
)


def lookup(city: str) -> str:
    """Weather for a city."""
    return f"snow in {city}"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLMThread]:
    with FakeLLMThread(SCRIPT) as server:
        yield server


def stored_project(fake: FakeLLMThread):  # type: ignore[no-untyped-def]
    return make_project(
        base_url=fake.base_url,
        tools={"lookup": lookup},
        project_config={"storage": {"enabled": True, "flush_interval": 0.05}, "tracing": {"enabled": True}},
    )


async def run_batch(runner: Runner, count: int, tag: str) -> list[str]:
    results = await asyncio.gather(*(runner.run("agent", f"{tag} {i}", tags=[tag]) for i in range(count)))
    assert all(r.succeeded for r in results), [r.error for r in results if r.error]
    return [r.run_id for r in results]


async def assert_all_stored(url: str, run_ids: list[str]) -> None:
    async with await RunStore.open(url) as store:
        for run_id in run_ids:
            run = await store.get_run(run_id)
            assert run is not None, run_id
            spans = await store.spans_for_run(run_id)
            assert len(spans) == 1 + run.model_requests + run.tool_calls


async def wait_for(condition: Callable[[], bool], within: float = 20) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.mark.postgres
async def test_postgres_down_mid_run(fake: FakeLLMThread, postgres_server: PostgresServer) -> None:
    postgres_server.reset()
    url = postgres_server.url
    async with Runner(stored_project(fake), database_url=url) as runner:
        before = await run_batch(runner, 10, "before")
        assert await runner.flush(20)
        writer = runner.writer
        assert writer is not None
        postgres_server.allow_connections(False)
        postgres_server.terminate_connections()
        try:
            during = await run_batch(runner, 20, "during")  # they complete while nothing can be written
            await wait_for(lambda: writer.stats().write_failures > 0)
            assert not writer.stats().database_available
            assert writer.stats().pending > 0
        finally:
            postgres_server.allow_connections(True)
        assert await runner.flush(30)
        stats = writer.stats()
        assert stats.dropped == 0
        assert stats.pending == 0
    await assert_all_stored(url, before + during)


def hold_sqlite_lock(path: Path, seconds: float) -> subprocess.Popen[str]:
    code = (
        "import sqlite3, sys, time\n"
        f"db = sqlite3.connect({str(path)!r}, isolation_level=None, timeout=10)\n"
        "db.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        f"time.sleep({seconds})\n"
        "db.execute('COMMIT')\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "locked"
    return process


async def test_sqlite_locked_by_another_process_mid_run(fake: FakeLLMThread, tmp_path: Path) -> None:
    db = tmp_path / "keel.db"
    url = f"sqlite:///{db}"
    async with Runner(stored_project(fake), database_url=url) as runner:
        before = await run_batch(runner, 5, "before")
        assert await runner.flush(20)
        locker = hold_sqlite_lock(db, seconds=8)
        try:
            t0 = time.monotonic()
            during = await run_batch(runner, 20, "during")
            assert time.monotonic() - t0 < 6  # runs did not wait for the database
            assert runner.writer is not None
            assert runner.writer.stats().pending > 0
        finally:
            locker.wait(30)
        assert await runner.flush(30)
        assert runner.writer.stats().dropped == 0
    await assert_all_stored(url, before + during)
