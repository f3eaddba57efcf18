"""Fixtures for the fake LLM tests. The `fake_llm` fixture itself comes from Keel's pytest plugin."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from openai import AsyncOpenAI

from keel.testing.fake_llm import FakeLLMThread


@pytest.fixture
async def client(fake_llm: FakeLLMThread) -> AsyncIterator[AsyncOpenAI]:
    """An OpenAI client on the fake server: no retries, a short timeout."""
    async with AsyncOpenAI(
        base_url=fake_llm.base_url, api_key="x", max_retries=0, timeout=5
    ) as openai_client:
        yield openai_client
