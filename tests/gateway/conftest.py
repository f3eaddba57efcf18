"""Fixtures of the gateway tests: a key store on each backend, with a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from keel.store import KeyStore
from tests.gateway.clock import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def keys(store_url: str, clock: Clock) -> AsyncIterator[KeyStore]:
    """A KeyStore on a migrated database (each backend in turn), on the test's clock."""
    async with KeyStore(store_url, environ={}, clock=clock) as store:
        yield store
