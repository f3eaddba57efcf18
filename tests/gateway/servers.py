"""`keel serve` processes that a test module shares, started and stopped together.

Starting a server is mostly importing Keel (seconds, on one core) and stopping one waits about a
second, so a module that needs one server per backend (or per configuration) starts them all at
once, in threads, and stops them all at once. The tests then use the one for their parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from tests.server.harness import KeelServer

K = TypeVar("K")


def _each(servers: list[KeelServer], action: Callable[[KeelServer], None]) -> list[BaseException]:
    with ThreadPoolExecutor(max_workers=max(1, len(servers))) as pool:
        futures = [pool.submit(action, server) for server in servers]
    return [error for future in futures if (error := future.exception()) is not None]


@contextmanager
def running(servers: Mapping[K, KeelServer]) -> Iterator[Mapping[K, KeelServer]]:
    """Start every server (in parallel), yield them, and stop them all (in parallel) afterwards;
    if one does not start, the others are stopped and its error is raised."""
    started = list(servers.values())
    try:
        errors = _each(started, KeelServer.start)
        if errors:
            raise errors[0]
        yield servers
    finally:
        _each(started, KeelServer.stop)
