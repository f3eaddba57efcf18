"""The HTTP API over real loopback HTTP: a uvicorn server in a thread, the fake provider behind it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from keel.api.app import create_app
from keel.config import load_project
from keel.store.keys import KeyStore
from keel.testing.fake_llm import FakeLLMThread
from keel.testing.project_fake import project_script

INBOX = Path(__file__).resolve().parents[2] / "examples" / "inbox"
EMAIL = {"from": "ada@example.com", "subject": "Refund", "body": "Please refund the 120 USD I paid twice."}


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    crm = tmp_path_factory.mktemp("crm") / "crm.sqlite"
    with pytest.MonkeyPatch.context() as mp, FakeLLMThread(project_script(INBOX)) as fake:
        mp.setenv("INBOX_CRM_PATH", str(crm))
        mp.setenv("KEEL_DATABASE_URL", f"sqlite:///{crm.parent}/keel.db")
        project = load_project(INBOX, environ={"KEEL_LLM_BASE_URL": fake.base_url})
        server = uvicorn.Server(
            uvicorn.Config(create_app(project), host="127.0.0.1", port=0, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        # The example project keeps authentication on (the default): the tests call with a key.
        created = asyncio.run(_create_key(f"sqlite:///{crm.parent}/keel.db"))
        yield f"http://127.0.0.1:{port}", created
        server.should_exit = True
        thread.join(10)


async def _create_key(url: str) -> str:
    async with KeyStore(url) as keys:
        created = await keys.create("tests", ["runs:write", "runs:read"])
    return created.key


@pytest.fixture
def client(base_url: tuple[str, str]) -> Iterator[httpx.Client]:
    url, key = base_url
    with httpx.Client(base_url=url, timeout=30, headers={"authorization": f"Bearer {key}"}) as http:
        yield http


def test_the_api_refuses_callers_without_a_key(base_url: tuple[str, str]) -> None:
    with httpx.Client(base_url=base_url[0], timeout=30) as anonymous:
        response = anonymous.post("/v1/agents/inbox/runs", json={"input": EMAIL, "wait": 1})
        assert_problem(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.get("/livez").status_code == 200


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def test_run_an_agent_synchronously(client: httpx.Client) -> None:
    response = client.post("/v1/agents/inbox/runs", json={"input": EMAIL, "user_id": "u1", "wait": 30})
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["status"] == "succeeded"
    assert run["output"]["intent"] == "refund"
    assert run["output"]["customer_id"] == "C1001"
    assert run["model_requests"] == 3
    assert [t["name"] for t in run["tool_calls"]] == ["lookup_customer", "propose_crm_update"]
    assert run["input_tokens"] > 0


def test_input_not_matching_the_schema_is_a_422_naming_the_field(client: httpx.Client) -> None:
    response = client.post("/v1/agents/inbox/runs", json={"input": {"from": "ada@example.com"}})
    body = assert_problem(response, 422, "bad_input")
    assert "subject" in str(body["detail"])


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "input"),
        ({"input": "x", "surprise": 1}, "surprise"),
        ({"input": "x", "metadata": []}, "metadata"),
    ],
)
def test_invalid_request_bodies(client: httpx.Client, payload: dict[str, object], field: str) -> None:
    body = assert_problem(client.post("/v1/agents/inbox/runs", json=payload), 422, "invalid_request")
    assert field in str(body["detail"])


def test_malformed_json_is_a_422_not_a_500(client: httpx.Client) -> None:
    response = client.post(
        "/v1/agents/inbox/runs", content=b'{"input": ', headers={"content-type": "application/json"}
    )
    assert_problem(response, 422, "invalid_request")


def test_unknown_agent_is_a_404(client: httpx.Client) -> None:
    assert_problem(client.post("/v1/agents/nope/runs", json={"input": "x"}), 404, "agent_not_found")


def test_unknown_route_is_a_problem_too(client: httpx.Client) -> None:
    assert_problem(client.get("/v1/nothing-here"), 404, "not_found")


def test_health_agents_and_openapi(client: httpx.Client) -> None:
    assert client.get("/livez").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ok"
    assert ready["storage"]["database_available"] is True
    assert ready["storage"]["dropped"] == 0
    assert ready["tracing"] == {"enabled": True, "spans_dropped": 0}
    agents = client.get("/v1/agents").json()["agents"]
    assert [a["name"] for a in agents] == ["inbox"]
    spec = client.get("/openapi.json").json()
    assert "/v1/agents/{agent}/runs" in spec["paths"]
