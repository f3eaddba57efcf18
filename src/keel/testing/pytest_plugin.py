"""Keel's pytest plugin (registered as the `keel` pytest11 entry point): fake LLM fixtures.

* `fake_llm_server` (session): one `FakeLLMThread`, started once for the whole session.
* `fake_llm` (function): that same server, restored to defaults before and after each test (default
  script, no faults, no latency, counters and sequences zeroed). It has `.base_url`,
  `.set_script(...)`, `.set_faults(...)`, `.set_latency(...)`, `.stats()` and `.requests()`.

The server runs on its own event loop in a background thread, so both fixtures work in sync and
async tests alike. The fake LLM is imported only when a test asks for a fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from keel.testing.fake_llm import FakeLLMThread


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLLMThread]:
    """A fake OpenAI-compatible server shared by the session. Prefer `fake_llm`, which resets it."""
    from keel.testing.fake_llm import FakeLLMThread

    with FakeLLMThread() as server:
        yield server


@pytest.fixture
def fake_llm(fake_llm_server: FakeLLMThread) -> Iterator[FakeLLMThread]:
    """The session's fake LLM server, in its default state for this test."""
    fake_llm_server.restore_defaults()
    yield fake_llm_server
    fake_llm_server.restore_defaults()
