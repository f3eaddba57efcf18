"""Waking one DBOS queue thread (keel.durable.engine): DBOS's queue threads sleep on one shared
stop event; Keel gives it a per-queue wake-up without ever making a thread believe it must stop."""

from __future__ import annotations

import threading
import time

from keel.durable.engine import make_wakeable


def _waiter(
    event: threading.Event, name: str, timeout: float, out: list[tuple[bool, float]]
) -> threading.Thread:
    def run() -> None:
        started = time.monotonic()
        out.append((event.wait(timeout), time.monotonic() - started))

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


def test_a_wake_ends_only_that_queues_sleep_and_never_reads_as_stop() -> None:
    event = threading.Event()
    before: list[tuple[bool, float]] = []
    early = _waiter(event, "queue-worker-a", 1.0, before)  # inside threading.Event.wait already
    time.sleep(0.1)
    stop = make_wakeable(event)
    assert make_wakeable(event) is stop
    woken: list[tuple[bool, float]] = []
    other: list[tuple[bool, float]] = []
    a = _waiter(stop, "queue-worker-a", 5.0, woken)
    b = _waiter(stop, "queue-worker-b", 0.5, other)
    time.sleep(0.1)
    stop.wake("a")
    a.join(2)
    assert woken and woken[0][0] is False and woken[0][1] < 1.0  # woken, not stopped
    early.join(2)
    assert before and before[0][0] is False  # the older wait timed out as before: not a stop
    b.join(2)
    assert other and other[0][0] is False and other[0][1] >= 0.45  # the other queue slept on


def test_a_wake_before_the_sleep_is_kept_and_stop_still_stops() -> None:
    stop = make_wakeable(threading.Event())
    stop.wake("a")  # the thread was busy polling: its next sleep ends at once
    out: list[tuple[bool, float]] = []
    _waiter(stop, "queue-worker-a", 5.0, out).join(2)
    assert out == [(False, out[0][1])] and out[0][1] < 0.5
    stopped: list[tuple[bool, float]] = []
    thread = _waiter(stop, "queue-worker-a", 5.0, stopped)
    time.sleep(0.1)
    stop.set()
    thread.join(2)
    assert stopped and stopped[0][0] is True and stopped[0][1] < 1.0
    assert stop.wait(0) is True


def test_a_queue_with_nothing_to_find_sleeps_until_woken_and_a_busy_one_polls_as_configured() -> None:
    stop = make_wakeable(threading.Event())
    stop._idle["queue-worker-idle"] = lambda: True
    stop._idle["queue-worker-busy"] = lambda: False

    def cannot_tell() -> bool:
        raise RuntimeError("no DBOS")

    stop._idle["queue-worker-unknown"] = cannot_tell
    idle: list[tuple[bool, float]] = []
    busy: list[tuple[bool, float]] = []
    unknown: list[tuple[bool, float]] = []
    sleeper = _waiter(stop, "queue-worker-idle", 0.05, idle)
    _waiter(stop, "queue-worker-busy", 0.05, busy).join(2)
    _waiter(stop, "queue-worker-unknown", 0.05, unknown).join(2)
    assert busy and busy[0][0] is False  # its own interval: it returned by itself
    assert unknown and unknown[0][0] is False
    assert sleeper.is_alive()  # past its 0.05 s interval, still asleep
    stop.wake("idle")
    sleeper.join(2)
    assert idle and idle[0][0] is False  # woken, not stopped
