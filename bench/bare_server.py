"""The baseline of the server benchmarks: a bare FastAPI endpoint around a pydantic-ai Agent.

The same work as Keel's `weather` agent in bench.servers (one tool, `get_weather`; the fake provider
answers with a tool call, then with text), with no queue, no persistence and no tracing. The model
client is built as Keel builds it (`AsyncOpenAI(base_url, max_retries=0)` handed to
`OpenAIProvider`), so both sides have the same HTTP connection pool to the provider; only its
connect timeout is longer (see below).

    BENCH_FAKE_BASE_URL=http://127.0.0.1:8399/v1 \
        uvicorn bench.bare_server:app --port 8001 --workers 1 --log-level warning --no-access-log

`POST /run {"input": "..."}` -> `{"output": "..."}`; `GET /readyz` -> 200.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from openai import AsyncOpenAI, Timeout
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

BASE_URL = os.environ.get("BENCH_FAKE_BASE_URL", "http://127.0.0.1:8399/v1")


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}, 21 C"


# OpenAI's default connect timeout (5 s) fails runs when 1,000 of them open their connection to the
# fake provider at once on a loaded machine (bench.server_inflight); Keel's runs retry such a
# failure, these have no retry, so they get a longer connect timeout instead.
client = AsyncOpenAI(base_url=BASE_URL, api_key="x", max_retries=0, timeout=Timeout(600.0, connect=120.0))
agent = Agent(
    OpenAIChatModel("bench", provider=OpenAIProvider(openai_client=client)),
    instructions="You answer questions about the weather.",
    tools=[get_weather],
)


class RunRequest(BaseModel):
    input: str


app = FastAPI(title="bare pydantic-ai endpoint")


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/run")
async def run(body: RunRequest) -> dict[str, str]:
    result = await agent.run(body.input)
    return {"output": result.output}
