"""`GET /v1/circuits`: the process's breakers through the HTTP API (FastAPI's app over httpx's
ASGI transport; storage off, so a run executes inside its request). The route needs `admin`; the
authorization matrix (tests/gateway/test_authz_matrix.py) also covers it against `keel serve`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from keel.api.app import create_app
from keel.api.security import check_routes
from keel.runtime.circuit import CircuitRegistry
from keel.runtime.runner import Runner
from keel.testing.fake_llm import FakeLLMThread, Faults, Reply
from tests.runtime.helpers import make_project


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLMThread]:
    with FakeLLMThread(Reply(text="ok")) as server:
        yield server


def app_for(fake: FakeLLMThread, scopes: list[str], **config: Any) -> tuple[httpx.AsyncClient, Runner]:
    gateway = {"auth": "off", "anonymous": {"scopes": scopes}}
    project = make_project(base_url=fake.base_url, project_config={"gateway": gateway}, **config)
    runner = Runner(project)
    runner.circuits = CircuitRegistry(clock=Clock())
    app = create_app(project, runner)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://keel"), runner


async def test_circuits_lists_each_breaker_with_its_state(fake: FakeLLMThread) -> None:
    fake.reset()
    fake.set_faults(Faults(rate=1.0, kinds={"503": 1}))
    client, runner = app_for(
        fake,
        ["admin", "runs:write"],
        fallbacks=1,
        retry_options={"attempts": 1},
        circuit_breaker={"enabled": True, "failure_threshold": 2, "cool_down": 45},
    )
    try:
        async with client, runner:
            empty = await client.get("/v1/circuits")
            assert empty.status_code == 200 and empty.json() == {"circuits": []}
            for _ in range(3):
                run = await client.post("/v1/agents/agent/runs", json={"input": "hi"})
                assert run.status_code == 200, run.text
            assert run.json()["error"]["category"] == "circuit_open"
            body = (await client.get("/v1/circuits")).json()
    finally:
        fake.restore_defaults()
    circuits = {c["name"]: c for c in body["circuits"]}
    assert [c["kind"] for c in body["circuits"]] == ["model", "model"]
    primary = circuits["openai-compatible:primary"]
    assert primary["state"] == "open"
    assert (primary["calls"], primary["failures"], primary["refused"], primary["times_opened"]) == (
        2,
        2,
        1,
        1,
    )
    assert primary["last_transition_reason"] == "2 consecutive failures"
    assert primary["last_transition_at"] is not None and primary["half_open_at"] is not None
    assert primary["settings"]["cool_down"] == 45.0 and primary["settings"]["failure_threshold"] == 2
    assert circuits["openai-compatible:fallback1"]["state"] == "open"


async def test_circuits_need_the_admin_scope(fake: FakeLLMThread) -> None:
    client, runner = app_for(fake, ["runs:read", "runs:write"])
    async with client, runner:
        refused = await client.get("/v1/circuits")
    assert refused.status_code == 403
    assert refused.json()["code"] == "missing_scope"
    assert check_routes(create_app(runner.project, runner))["GET /v1/circuits"] == "admin"
