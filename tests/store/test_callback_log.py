"""The callback log: attempts stored once per (run, attempt), read back in order, per tenant."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from keel.errors import UsageError
from keel.store import CallbackAttempt, CallbackLog

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def attempt(run_id: str = "run-1", number: int = 1, **changes: object) -> CallbackAttempt:
    base = CallbackAttempt(
        run_id=run_id,
        tenant_id="acme",
        url="https://hooks.example.com/keel/run?x=1",
        attempt=number,
        attempted_at=T0 + timedelta(seconds=number),
        duration_ms=12.5,
        status_code=503,
        outcome="retry",
        error="HTTP 503 Service Unavailable",
        next_attempt_at=T0 + timedelta(seconds=number + 2),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
async def log(store_url: str) -> AsyncIterator[CallbackLog]:
    async with CallbackLog(store_url) as callback_log:
        yield callback_log


async def test_attempts_round_trip_in_attempt_order(log: CallbackLog) -> None:
    delivered = attempt(number=3, status_code=200, outcome="delivered", error=None, next_attempt_at=None)
    stored = [attempt(number=2), delivered, attempt(number=1, status_code=None, error="connection refused")]
    for item in stored:
        await log.record(item)
    await log.record(attempt("other-run"))

    found = await log.attempts("run-1")

    assert [item.attempt for item in found] == [1, 2, 3]
    assert found == sorted(stored, key=lambda item: item.attempt)
    assert all(item.attempted_at.tzinfo is UTC for item in found)
    assert found[2].next_attempt_at is None


async def test_recording_the_same_attempt_twice_keeps_the_first(log: CallbackLog) -> None:
    first = attempt()
    await log.record(first)
    # A step re-executed after a crash records its attempt again, possibly with other timings.
    await log.record(replace(first, duration_ms=99.0, status_code=500))
    assert await log.attempts("run-1") == [first]


async def test_concurrent_records_of_one_attempt_store_one_row(store_url: str) -> None:
    logs = [CallbackLog(store_url) for _ in range(4)]
    try:
        await asyncio.gather(*(logs[i % 4].record(attempt()) for i in range(12)))
        assert len(await logs[0].attempts("run-1")) == 1
    finally:
        for item in logs:
            await item.close()


async def test_attempts_are_filtered_by_tenant(log: CallbackLog) -> None:
    await log.record(attempt("run-a", tenant_id="acme"))
    await log.record(attempt("run-b", tenant_id="globex"))
    await log.record(attempt("run-c", tenant_id=None))

    assert [a.run_id for a in await log.attempts("run-a", tenant_id="acme")] == ["run-a"]
    assert await log.attempts("run-a", tenant_id="globex") == []
    assert await log.attempts("run-c", tenant_id="acme") == []
    assert [a.run_id for a in await log.attempts("run-c")] == ["run-c"]


async def test_naive_times_are_taken_as_utc(log: CallbackLog) -> None:
    naive = T0.replace(tzinfo=None)
    await log.record(attempt(attempted_at=naive, outcome="failed", status_code=400, next_attempt_at=None))
    (found,) = await log.attempts("run-1")
    assert found.attempted_at == T0


async def test_reading_before_upgrade_says_to_run_keel_db_upgrade(database_url: str) -> None:
    async with CallbackLog(database_url) as log:
        with pytest.raises(UsageError, match="keel db upgrade"):
            await log.attempts("run-1")
        with pytest.raises(UsageError, match="keel db upgrade"):
            await log.record(attempt())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"outcome": "maybe"}, "outcome must be one of"),
        ({"attempt": 0}, "counts from 1"),
        ({"outcome": "delivered"}, "next_attempt_at"),
        ({"next_attempt_at": None}, "next_attempt_at"),
    ],
)
def test_inconsistent_attempts_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        attempt(**changes)
