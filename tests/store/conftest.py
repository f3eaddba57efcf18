"""Fixtures of the store tests; the database fixtures themselves are in tests/conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from keel.store import RunStore


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[RunStore]:
    """A RunStore on a migrated database, on each backend in turn."""
    run_store = await RunStore.open(store_url)
    try:
        yield run_store
    finally:
        await run_store.close()
