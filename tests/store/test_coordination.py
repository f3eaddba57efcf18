"""Coordination: worker heartbeats and dead-worker claims; one active run per session, in order.

The races are real: several Coordination objects (each with its own engine and connections) act
at once, on both backends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar

import pytest
from sqlalchemy import insert, inspect, update
from sqlalchemy.exc import IntegrityError

from keel.store import Coordination, WorkerRow
from keel.store.engine import sync_engine
from keel.store.tables import keel_workers, session_runs
from keel.store.types import as_utc

T = TypeVar("T")


@pytest.fixture
async def coordination(store_url: str) -> AsyncIterator[Coordination]:
    async with Coordination(store_url) as item:
        yield item


async def concurrently(url: str, calls: list[Callable[[Coordination], Awaitable[T]]]) -> list[T]:
    """Run each call on its own Coordination (own engine, own connections), all at once."""
    coordinations = [Coordination(url) for _ in calls]
    try:
        return list(await asyncio.gather(*(call(c) for call, c in zip(calls, coordinations, strict=True))))
    finally:
        for item in coordinations:
            await item.close()


def age_heartbeat(url: str, worker_id: str, seconds: float) -> None:
    """Move a worker's last heartbeat `seconds` into the past, as if it had gone silent."""
    engine = sync_engine(url)
    try:
        with engine.begin() as connection:
            row = connection.execute(keel_workers.select().where(keel_workers.c.worker_id == worker_id)).one()
            connection.execute(
                update(keel_workers)
                .where(keel_workers.c.worker_id == worker_id)
                .values(heartbeat_at=as_utc(row.heartbeat_at) - timedelta(seconds=seconds))
            )
    finally:
        engine.dispose()


# -- workers --------------------------------------------------------------------------------------


async def test_heartbeat_registers_then_refreshes(coordination: Coordination) -> None:
    assert await coordination.heartbeat("w1", "worker", "host-a", 100) is None
    (first,) = await coordination.live_workers()
    assert (first.worker_id, first.role, first.hostname, first.pid) == ("w1", "worker", "host-a", 100)
    assert first.started_at == first.heartbeat_at
    assert first.stopped_at is None and first.recovered_by is None

    await asyncio.sleep(0.01)
    await coordination.heartbeat("w1", "worker", "host-a", 100)
    (again,) = await coordination.live_workers()
    assert again.heartbeat_at > first.heartbeat_at
    assert again.started_at == first.started_at  # the same incarnation

    await coordination.heartbeat("w1", "api", "host-a", 200)  # restarted: another pid
    (restarted,) = await coordination.live_workers()
    assert (restarted.role, restarted.pid) == ("api", 200)
    assert restarted.started_at == restarted.heartbeat_at > first.started_at


async def test_a_stopped_worker_is_neither_live_nor_dead_until_it_beats_again(
    coordination: Coordination, store_url: str
) -> None:
    await coordination.heartbeat("w1", "worker", "host-a", 100)
    await coordination.mark_stopped("w1")
    age_heartbeat(store_url, "w1", 3600)
    assert await coordination.live_workers() == []
    assert await coordination.dead_workers(30) == []
    assert not await coordination.claim_dead_worker("w1", "w2", older_than_seconds=30)

    await coordination.heartbeat("w1", "worker", "host-a", 100)  # same pid, e.g. pid 1 in a container
    (back,) = await coordination.live_workers()
    assert back.stopped_at is None
    assert back.started_at == back.heartbeat_at


async def test_dead_workers_are_the_silent_ones(coordination: Coordination, store_url: str) -> None:
    for worker in ("w1", "w2", "w3"):
        await coordination.heartbeat(worker, "worker", "host", 1)
    age_heartbeat(store_url, "w2", 120)
    age_heartbeat(store_url, "w3", 60)

    assert await coordination.dead_workers(30) == ["w2", "w3"]  # longest silent first
    assert await coordination.dead_workers(90) == ["w2"]
    assert [w.worker_id for w in await coordination.live_workers(within_seconds=30)] == ["w1"]
    assert [w.worker_id for w in await coordination.live_workers()] == ["w1", "w2", "w3"]
    with pytest.raises(ValueError, match="positive"):
        await coordination.dead_workers(0)


async def test_one_claimer_wins_each_dead_worker(coordination: Coordination, store_url: str) -> None:
    dead = [f"dead-{i}" for i in range(4)]
    for worker in dead:
        await coordination.heartbeat(worker, "worker", "host", 1)
        age_heartbeat(store_url, worker, 120)
    claimers = [f"live-{i}" for i in range(4)]

    calls: list[Callable[[Coordination], Awaitable[bool]]] = [
        partial(Coordination.claim_dead_worker, dead_id=d, by=by, older_than_seconds=30)
        for d in dead
        for by in claimers
    ]
    won = await concurrently(store_url, calls)

    per_dead = [sum(won[i * len(claimers) : (i + 1) * len(claimers)]) for i in range(len(dead))]
    assert per_dead == [1, 1, 1, 1]
    assert await coordination.dead_workers(30) == []  # claimed workers are not offered again
    rows = {w.worker_id: w for w in _all_workers(store_url)}
    assert all(rows[d].recovered_by in claimers and rows[d].recovered_at is not None for d in dead)


async def test_a_worker_that_beats_again_cannot_be_claimed(
    coordination: Coordination, store_url: str
) -> None:
    await coordination.heartbeat("w1", "worker", "host", 1)
    age_heartbeat(store_url, "w1", 120)
    assert await coordination.dead_workers(30) == ["w1"]
    await coordination.heartbeat("w1", "worker", "host", 1)  # it was only slow
    assert not await coordination.claim_dead_worker("w1", "w2", older_than_seconds=30)
    with pytest.raises(ValueError, match="own recovery"):
        await coordination.claim_dead_worker("w1", "w1", older_than_seconds=30)


async def test_a_recovered_worker_learns_it_on_its_next_heartbeat(
    coordination: Coordination, store_url: str
) -> None:
    await coordination.heartbeat("w1", "worker", "host", 1)
    age_heartbeat(store_url, "w1", 120)
    assert await coordination.claim_dead_worker("w1", "w2", older_than_seconds=30)
    assert await coordination.live_workers() == []

    assert await coordination.heartbeat("w1", "worker", "host", 1) == "w2"
    assert await coordination.heartbeat("w1", "worker", "host", 1) is None
    (alive,) = await coordination.live_workers()
    assert alive.recovered_by is None and alive.recovered_at is None
    age_heartbeat(store_url, "w1", 120)  # it can die, and be recovered, again
    assert await coordination.claim_dead_worker("w1", "w3", older_than_seconds=30)


def _all_workers(url: str) -> list[WorkerRow]:
    engine = sync_engine(url)
    try:
        with engine.connect() as connection:
            return [WorkerRow(**row) for row in connection.execute(keel_workers.select()).mappings()]
    finally:
        engine.dispose()


# -- sessions -------------------------------------------------------------------------------------


async def test_runs_of_a_session_take_turns_in_arrival_order(coordination: Coordination) -> None:
    assert await coordination.enter_session("r1", "s") is True
    assert await coordination.enter_session("r2", "s") is False
    assert await coordination.enter_session("r3", "s") is False
    assert await coordination.enter_session("other", "t") is True  # sessions are independent
    assert await coordination.active_run("s") == "r1"
    assert await coordination.waiting_runs("s") == ["r2", "r3"]

    assert await coordination.finish_session_run("r1") == "r2"
    assert await coordination.finish_session_run("r1") is None  # idempotent
    assert await coordination.active_run("s") == "r2"
    assert await coordination.session_run_state("r1") == "done"
    assert await coordination.active_session_runs() == ["other", "r2"]

    assert await coordination.finish_session_run("r3") is None  # cancelled while waiting
    assert await coordination.waiting_runs("s") == []
    assert await coordination.finish_session_run("r2") is None  # nobody left to promote
    assert await coordination.active_run("s") is None
    assert await coordination.finish_session_run("never-entered") is None
    assert await coordination.session_run_state("never-entered") is None

    assert await coordination.enter_session("r4", "s") is True


async def test_entering_again_answers_for_the_current_state(coordination: Coordination) -> None:
    assert await coordination.enter_session("r1", "s") is True
    assert await coordination.enter_session("r2", "s") is False
    assert await coordination.enter_session("r1", "s") is True  # a re-executed step
    assert await coordination.enter_session("r2", "s") is False
    await coordination.finish_session_run("r1")
    assert await coordination.enter_session("r2", "s") is True  # promoted meanwhile
    assert await coordination.waiting_runs("s") == []
    with pytest.raises(ValueError, match="another session"):
        await coordination.enter_session("r2", "elsewhere")
    with pytest.raises(ValueError, match="session_key must be 1 to 512"):
        await coordination.enter_session("r9", "k" * 513)


async def test_concurrent_entries_make_exactly_one_run_active(
    coordination: Coordination, store_url: str
) -> None:
    runs = [f"r{i:02d}" for i in range(24)]
    calls: list[Callable[[Coordination], Awaitable[bool]]] = [
        partial(Coordination.enter_session, run_id=run, session_key="busy") for run in runs
    ]
    entered = await concurrently(store_url, calls)

    assert sum(entered) == 1
    winner = runs[entered.index(True)]
    assert await coordination.active_run("busy") == winner
    waiting = await coordination.waiting_runs("busy")
    assert sorted(waiting) == sorted(set(runs) - {winner})

    # Each finish promotes the next run in line, in the order waiting_runs announced.
    promoted = []
    active: str | None = winner
    while active is not None:
        active = await coordination.finish_session_run(active)
        if active is not None:
            promoted.append(active)
    assert promoted == waiting


async def test_concurrent_finishers_promote_one_run(coordination: Coordination, store_url: str) -> None:
    for run in ("r1", "r2", "r3"):
        await coordination.enter_session(run, "s")
    calls: list[Callable[[Coordination], Awaitable[str | None]]] = [
        lambda c: c.finish_session_run("r1") for _ in range(6)
    ]
    results = await concurrently(store_url, calls)
    assert sorted(results, key=lambda result: result or "") == [None] * 5 + ["r2"]
    assert await coordination.active_run("s") == "r2"
    assert await coordination.waiting_runs("s") == ["r3"]


async def test_a_run_entering_while_the_active_one_finishes_is_never_stranded(
    coordination: Coordination, store_url: str
) -> None:
    # Without per-session serialization the finisher may not see the newcomer, and the newcomer
    # may still see the finishing run as active: the newcomer would wait for ever.
    await coordination.enter_session("r0", "s")
    for i in range(1, 16):
        previous, newcomer = f"r{i - 1}", f"r{i}"
        calls: list[Callable[[Coordination], Awaitable[object]]] = [
            partial(Coordination.enter_session, run_id=newcomer, session_key="s"),
            partial(Coordination.finish_session_run, run_id=previous),
        ]
        await concurrently(store_url, calls)
        assert await coordination.active_run("s") == newcomer, i
        assert await coordination.waiting_runs("s") == []


def test_the_database_refuses_two_active_runs_in_one_session(store_url: str) -> None:
    engine = sync_engine(store_url)
    try:
        index = next(
            i for i in inspect(engine).get_indexes("session_runs") if (i["name"] or "").endswith("_active")
        )
        assert index["unique"]
        where = str(index.get("dialect_options", {}).get(f"{engine.dialect.name}_where"))
        assert "state" in where and "'active'" in where  # partial: only active rows are unique

        def row(run_id: str, state: str) -> dict[str, object]:
            return {"run_id": run_id, "session_key": "s", "state": state, "created_at": datetime.now(UTC)}

        with engine.begin() as connection:
            connection.execute(
                insert(session_runs), [row("a", "active"), row("b", "waiting"), row("c", "waiting")]
            )
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(insert(session_runs), [row("d", "active")])
    finally:
        engine.dispose()
