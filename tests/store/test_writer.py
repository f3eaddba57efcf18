"""The background writer: volume, flush, overflow, bad records, close, and an unusable database."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from keel.errors import UsageError
from keel.store import RecordWriter, upgrade
from keel.store.records import RunRecord, SpanRecord
from tests.store.factories import T0, count_rows, make_run, make_span, usage, wait_until


@pytest.fixture
def writers() -> Iterator[list[RecordWriter]]:
    """Writers a test creates; closed at the end even if the test fails."""
    created: list[RecordWriter] = []
    yield created
    for writer in created:
        writer.close(timeout=1)


def new_writer(writers: list[RecordWriter], url: str, **options: float) -> RecordWriter:
    writer = RecordWriter(url, **options)  # type: ignore[arg-type]
    writers.append(writer)
    return writer


def run_and_span(i: int) -> tuple[RunRecord, SpanRecord]:
    run = make_run(
        f"run-{i:06d}",
        started_at=T0 + timedelta(milliseconds=i),
        tags=("load",),
        usage=(usage("openai:gpt-4o-mini"),),
        tools_called=("lookup",),
        trace_id=f"{i:032x}",
    )
    return run, make_span(f"{i:032x}", "1" * 16, run_id=run.id, start=run.started_at)


def test_thousands_of_records_are_written(store_url: str, writers: list[RecordWriter]) -> None:
    writer = new_writer(writers, store_url)
    writer.start()
    for i in range(3000):
        for record in run_and_span(i):
            assert writer.submit(record)
    assert writer.flush(timeout=60)
    stats = writer.stats()
    assert (stats.submitted, stats.written_runs, stats.written_spans) == (6000, 3000, 3000)
    assert (stats.pending, stats.dropped, stats.rejected, stats.write_failures) == (0, 0, 0, 0)
    assert stats.database_available
    assert count_rows(store_url, "runs") == 3000
    assert count_rows(store_url, "spans") == 3000
    assert count_rows(store_url, "run_usage") == 3000


def test_submitting_from_many_threads(store_url: str, writers: list[RecordWriter]) -> None:
    writer = new_writer(writers, store_url, batch_size=50)
    writer.start()

    def produce(offset: int) -> None:
        for i in range(offset, offset + 500):
            writer.submit(make_run(f"t-{i:05d}"))

    threads = [threading.Thread(target=produce, args=(n * 500,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert writer.flush(timeout=60)
    assert count_rows(store_url, "runs") == 2000


def test_flush_does_not_wait_for_the_interval(store_url: str, writers: list[RecordWriter]) -> None:
    writer = new_writer(writers, store_url, flush_interval=60.0)
    writer.start()
    writer.submit(make_run("r1"))
    assert writer.flush(timeout=30)  # a 60 s interval would time this out if flush did not wake the writer
    assert count_rows(store_url, "runs") == 1


def test_flush_times_out_until_the_writer_runs(store_url: str, writers: list[RecordWriter]) -> None:
    writer = new_writer(writers, store_url)
    assert writer.flush(timeout=0)  # nothing submitted yet
    writer.submit(make_run("r1"))
    assert not writer.flush(timeout=0.05)
    writer.start()
    assert writer.flush(timeout=30)


def test_a_full_buffer_drops_and_counts(store_url: str, writers: list[RecordWriter]) -> None:
    writer = new_writer(writers, store_url, capacity=5)
    accepted = [writer.submit(make_run(f"r{i}")) for i in range(8)]
    assert accepted == [True] * 5 + [False] * 3
    assert (writer.stats().pending, writer.stats().dropped) == (5, 3)
    writer.start()
    assert writer.flush(timeout=30)
    assert writer.submit(make_run("r-after"))  # room again once written
    assert writer.flush(timeout=30)
    assert count_rows(store_url, "runs") == 6
    assert writer.stats().dropped == 3


def test_duplicates_are_written_once(store_url: str, writers: list[RecordWriter]) -> None:
    writer = new_writer(writers, store_url)
    writer.start()
    run, span = run_and_span(1)
    for _ in range(3):
        writer.submit(run)
        writer.submit(span)
        assert writer.flush(timeout=30)
    assert (
        count_rows(store_url, "runs"),
        count_rows(store_url, "spans"),
        count_rows(store_url, "run_tags"),
    ) == (1, 1, 1)


def test_bad_records_are_rejected_without_blocking_the_others(
    store_url: str, writers: list[RecordWriter]
) -> None:
    writer = new_writer(writers, store_url)
    records: list[object] = [
        make_run("good-1"),
        make_run("x" * 500),  # id longer than stored
        "not a record",
        make_run("good-2", input={"ok": float("nan")}),  # NaN is not JSON: stored as null
        make_span("s" * 32, "1" * 16, kind="k" * 100),
        make_run("good-3"),
    ]
    for record in records:
        assert writer.submit(record)  # type: ignore[arg-type]
    writer.start()
    assert writer.flush(timeout=30)
    stats = writer.stats()
    assert stats.written_runs + stats.rejected + stats.written_spans == len(records)
    assert count_rows(store_url, "runs") == stats.written_runs
    assert _run_ids(store_url) == {"good-1", "good-2", "good-3"}
    assert stats.rejected == 3
    assert stats.write_failures == 0
    assert stats.database_available


def _run_ids(url: str) -> set[str]:
    from sqlalchemy import text

    from keel.store.engine import sync_engine

    engine = sync_engine(url)
    try:
        with engine.connect() as connection:
            return set(connection.execute(text("SELECT id FROM runs")).scalars())
    finally:
        engine.dispose()


def test_close_flushes_and_refuses_later_records(store_url: str) -> None:
    writer = RecordWriter(store_url, flush_interval=60.0)
    writer.start()
    writer.submit(make_run("r1"))
    assert writer.close(timeout=30)
    assert count_rows(store_url, "runs") == 1
    assert not writer.submit(make_run("r2"))
    assert writer.stats().dropped == 1
    assert writer.close(timeout=1)  # closing twice is harmless
    with pytest.raises(UsageError, match="closed"):
        writer.start()


def test_records_wait_for_the_tables_to_exist(database_url: str, writers: list[RecordWriter]) -> None:
    writer = new_writer(writers, database_url, flush_interval=0.01)
    writer.start()
    writer.submit(make_run("early"))
    wait_until(lambda: writer.stats().write_failures >= 1, what="a failed write")
    assert not writer.stats().database_available
    assert writer.stats().pending == 1
    upgrade(database_url)
    assert writer.flush(timeout=30)
    assert count_rows(database_url, "runs") == 1
    assert writer.stats().database_available


def test_an_unreachable_database_never_raises_and_close_counts_what_is_lost() -> None:
    writer = RecordWriter("postgresql://keel:s3cret@127.0.0.1:1/keel", flush_interval=0.01)
    writer.start()
    assert all(writer.submit(make_run(f"r{i}")) for i in range(3))
    wait_until(lambda: writer.stats().write_failures >= 1, what="a failed write")
    assert not writer.close(timeout=0.2)
    stats = writer.stats()
    assert (stats.pending, stats.dropped, stats.written_runs) == (0, 3, 0)
    assert not stats.database_available
    assert stats.last_error is not None
    assert "s3cret" not in stats.last_error


def test_options_are_checked() -> None:
    with pytest.raises(UsageError, match="capacity"):
        RecordWriter("sqlite:////tmp/x.db", capacity=0)
    with pytest.raises(UsageError, match="unsupported database URL"):
        RecordWriter("mysql://localhost/db")


def test_an_unexpected_error_in_the_writer_does_not_stop_it(
    store_url: str, writers: list[RecordWriter], monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = new_writer(writers, store_url, flush_interval=0.01)
    finish = writer._finish
    failures = iter([RuntimeError("a bug")])

    def finish_after_a_bug(outcome: object) -> None:
        exc = next(failures, None)
        if exc is not None:
            raise exc
        finish(outcome)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "_finish", finish_after_a_bug)
    writer.start()
    for i in range(10):
        writer.submit(make_run(f"r{i}"))
    # The first batch committed but was not marked done: it is written again, harmlessly.
    assert writer.flush(timeout=30)
    assert count_rows(store_url, "runs") == 10
    assert writer.stats().pending == 0
