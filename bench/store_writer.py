"""Throughput of keel.store's RecordWriter on SQLite and PostgreSQL.

    python -m bench.store_writer [--records N] [--postgres URL]

Submits N records as fast as possible (half runs with usage, tags and tools, half spans, as a
run and its root span arrive in production), then flushes, and reports records/s from the first
submit to the end of the flush, plus the cost of `submit` itself (it sits on every run's path).
PostgreSQL gets a scratch database on the given server (default postgresql://postgres@127.0.0.1:5432/test),
dropped afterwards; it is skipped with a note if the server does not answer.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from bench.common import machine_line, scratch_postgres
from keel.store import ModelUsageRecord, RecordWriter, RunRecord, SpanRecord, upgrade

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def make_records(count: int) -> list[RunRecord | SpanRecord]:
    records: list[RunRecord | SpanRecord] = []
    for i in range(count // 2):
        started = T0 + timedelta(milliseconds=i)
        trace_id = f"{i:032x}"
        records.append(
            RunRecord(
                id=f"run-{i:08d}",
                agent="inbox",
                config_hash="sha256:abc",
                status="succeeded",
                trigger="api",
                started_at=started,
                ended_at=started + timedelta(milliseconds=850),
                duration_ms=850.0,
                input={"message": "Where is my order #1234?"},
                output={"category": "shipping", "reply": "It left the warehouse today."},
                model_requests=2,
                tool_calls=1,
                input_tokens=1200,
                output_tokens=300,
                cost_usd=Decimal("0.00042"),
                usage=(ModelUsageRecord("openai:gpt-4o-mini", 2, 1200, 300, Decimal("0.00042")),),
                tools_called=("lookup_order",),
                user_id=f"user-{i % 100}",
                tenant_id="acme",
                trace_id=trace_id,
                tags=("prod",),
            )
        )
        records.append(
            SpanRecord(
                trace_id=trace_id,
                span_id=f"{i:016x}",
                parent_span_id=None,
                name="invoke_agent inbox",
                kind="internal",
                start_time=started,
                end_time=started + timedelta(milliseconds=850),
                status="ok",
                status_message=None,
                run_id=f"run-{i:08d}",
                attributes={"gen_ai.agent.name": "inbox", "gen_ai.usage.input_tokens": 1200},
            )
        )
    return records


def measure(url: str, records: list[RunRecord | SpanRecord], batch_size: int) -> tuple[float, float]:
    """(records per second end to end, microseconds per submit call)."""
    upgrade(url)
    writer = RecordWriter(url, capacity=len(records) + 1, batch_size=batch_size)
    writer.start()
    started = time.perf_counter()
    for record in records:
        writer.submit(record)
    submitted = time.perf_counter()
    if not writer.flush(timeout=600):
        raise RuntimeError(f"flush timed out: {writer.stats()}")
    finished = time.perf_counter()
    stats = writer.stats()
    writer.close(timeout=10)
    if stats.written_runs + stats.written_spans != len(records):
        raise RuntimeError(f"not everything was written: {stats}")
    return len(records) / (finished - started), (submitted - started) / len(records) * 1e6


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store_writer")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    print(machine_line())
    records = make_records(args.records)
    print(
        f"{len(records)} records (half runs with usage/tags/tools, half spans), batch size {args.batch_size}"
    )
    with tempfile.TemporaryDirectory() as folder:
        rate, submit_us = measure(f"sqlite:///{Path(folder) / 'bench.db'}", records, args.batch_size)
        print(f"sqlite:   {rate:10,.0f} records/s   submit {submit_us:.2f} µs/record")
    with scratch_postgres(args.postgres) as url:
        if url is not None:
            rate, submit_us = measure(url, records, args.batch_size)
            print(f"postgres: {rate:10,.0f} records/s   submit {submit_us:.2f} µs/record")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
