"""Waiting for what a loopback test receiver has recorded (callbacks, email), shared by them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for_items(
    changed: threading.Condition, items: list[T], count: int, timeout: float, noun: str
) -> list[T]:
    """Block until `items` (guarded by `changed`, notified on every append) holds at least `count`;
    return a copy. TimeoutError, naming `noun`, otherwise."""
    deadline = time.monotonic() + timeout
    with changed:
        while len(items) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"expected {count} {noun} within {timeout:g}s, got {len(items)}")
            changed.wait(left)
        return list(items)


async def wait_for_items_async(
    snapshot: Callable[[], list[T]],
    count: int,
    timeout: float,  # noqa: ASYNC109 - a wait budget, like wait_for_items'
    noun: str,
) -> list[T]:
    """`wait_for_items` for async tests: polls `snapshot`, so the event loop keeps running."""
    deadline = time.monotonic() + timeout
    while True:
        items = snapshot()
        if len(items) >= count:
            return items
        if time.monotonic() >= deadline:
            raise TimeoutError(f"expected {count} {noun} within {timeout:g}s, got {len(items)}")
        await asyncio.sleep(0.01)
