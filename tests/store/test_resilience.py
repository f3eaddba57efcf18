"""The writer survives the database going away: nothing is lost, failures are counted.

PostgreSQL: connections killed mid-stream (as a server restart or a DBA would), and a database
refusing new connections for a while. SQLite: another process holding the file's write lock.
Every wait is on a condition with a timeout; no assertion depends on timing.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from keel.store import RecordWriter, upgrade
from keel.store.records import RunRecord, SpanRecord
from tests.databases import PostgresServer
from tests.store.factories import T0, count_rows, make_run, make_span, usage, wait_until


def records(start: int, count: int) -> list[RunRecord | SpanRecord]:
    result: list[RunRecord | SpanRecord] = []
    for i in range(start, start + count):
        run = make_run(
            f"run-{i:06d}", started_at=T0 + timedelta(milliseconds=i), usage=(usage("openai:gpt"),)
        )
        result += [run, make_span(f"{i:032x}", "1" * 16, run_id=run.id, start=run.started_at)]
    return result


def written_more_than(writer: RecordWriter, count: int) -> Callable[[], bool]:
    return lambda: writer.stats().written_runs > count


@pytest.fixture
def pg_store_url(postgres_url: str) -> str:
    upgrade(postgres_url)
    return postgres_url


@pytest.fixture
def writer_holder() -> Iterator[list[RecordWriter]]:
    held: list[RecordWriter] = []
    yield held
    for writer in held:
        writer.close(timeout=1)


@pytest.mark.postgres
def test_killed_postgres_connections_lose_nothing(
    pg_store_url: str, postgres_server: PostgresServer, writer_holder: list[RecordWriter]
) -> None:
    writer = RecordWriter(pg_store_url, flush_interval=0.005, batch_size=50)
    writer_holder.append(writer)
    writer.start()
    kills = 0
    for chunk in range(20):
        for record in records(chunk * 100, 100):
            assert writer.submit(record)
        # Kill while the writer is busy with this chunk, once it has written part of it, so the
        # kills hit both idle pooled connections and transactions in flight.
        wait_until(written_more_than(writer, chunk * 50), what="progress before the kill")
        kills += postgres_server.terminate_connections()
    assert writer.flush(timeout=60)
    stats = writer.stats()
    assert kills > 0
    print(f"{kills} connections killed, {stats.write_failures} failed batches")
    assert (stats.written_runs, stats.written_spans, stats.dropped, stats.rejected) == (2000, 2000, 0, 0)
    assert count_rows(pg_store_url, "runs") == 2000
    assert count_rows(pg_store_url, "spans") == 2000
    assert count_rows(pg_store_url, "run_usage") == 2000


@pytest.mark.postgres
def test_postgres_refusing_connections_is_retried_until_it_is_back(
    pg_store_url: str, postgres_server: PostgresServer, writer_holder: list[RecordWriter]
) -> None:
    writer = RecordWriter(pg_store_url, flush_interval=0.01)
    writer_holder.append(writer)
    writer.start()
    for record in records(0, 100):
        writer.submit(record)
    assert writer.flush(timeout=30)
    try:
        postgres_server.allow_connections(False)
        postgres_server.terminate_connections()
        for record in records(100, 100):
            assert writer.submit(record)
        wait_until(
            lambda: writer.stats().write_failures >= 2, what="failed writes while the database is away"
        )
        stats = writer.stats()
        assert not stats.database_available
        assert stats.pending == 200
        assert stats.last_error is not None
    finally:
        postgres_server.allow_connections(True)
    assert writer.flush(timeout=30)  # backoff is capped at 5 s
    stats = writer.stats()
    assert stats.database_available
    assert (stats.written_runs, stats.pending, stats.dropped) == (200, 0, 0)
    assert count_rows(pg_store_url, "runs") == 200


LOCKER = """
import select, sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
select.select([sys.stdin], [], [], float(sys.argv[2]))  # until told to release, or the hold time
connection.execute("COMMIT")
print("released", flush=True)
"""


def lock_sqlite(path: Path, hold_seconds: float) -> subprocess.Popen[str]:
    """Another process holding an exclusive lock on the database file; returns once it is held."""
    process = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(path), str(hold_seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "locked"
    return process


def release(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("release\n")
    process.stdin.flush()
    assert process.stdout.readline().strip() == "released"
    process.wait(timeout=10)


@pytest.fixture
def sqlite_store(sqlite_url: str) -> tuple[str, Path]:
    upgrade(sqlite_url)
    return sqlite_url, Path(sqlite_url.removeprefix("sqlite:///"))


def test_a_short_sqlite_lock_is_waited_out(
    sqlite_store: tuple[str, Path], writer_holder: list[RecordWriter]
) -> None:
    url, path = sqlite_store
    writer = RecordWriter(url, flush_interval=0.01)
    writer_holder.append(writer)
    writer.start()
    locker = lock_sqlite(path, hold_seconds=1.5)  # releases by itself, well within the 5 s busy timeout
    try:
        for record in records(0, 500):
            assert writer.submit(record)
        assert writer.flush(timeout=30)
    finally:
        locker.kill()
        locker.wait()
    stats = writer.stats()
    assert (stats.written_runs, stats.dropped, stats.write_failures) == (500, 0, 0)
    assert count_rows(url, "runs") == 500


def test_a_long_sqlite_lock_is_retried_until_released(
    sqlite_store: tuple[str, Path], writer_holder: list[RecordWriter]
) -> None:
    url, path = sqlite_store
    writer = RecordWriter(url + "?timeout=0.1", flush_interval=0.01)  # a busy timeout shorter than the lock
    writer_holder.append(writer)
    writer.start()
    locker = lock_sqlite(path, hold_seconds=60)
    try:
        for record in records(0, 500):
            assert writer.submit(record)
        wait_until(lambda: writer.stats().write_failures >= 2, what="writes failing on the lock")
        stats = writer.stats()
        assert not stats.database_available
        assert stats.last_error is not None and "locked" in stats.last_error
        assert count_rows(url, "runs") == 0  # readers still work under WAL; nothing got in
        release(locker)
    finally:
        locker.kill()
        locker.wait()
    assert writer.flush(timeout=30)
    stats = writer.stats()
    assert stats.database_available
    assert (stats.written_runs, stats.written_spans, stats.pending, stats.dropped) == (500, 500, 0, 0)
    assert count_rows(url, "runs") == 500
