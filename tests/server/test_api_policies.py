"""The durable runs API over real HTTP, continued: session policies (reject, interrupt), streamed
text as server-sent events, listing runs not ended yet, and clear errors for bad requests."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from keel.testing.fake_llm import ChatRequest, FakeLLMThread, Latency, Reply, ToolCallReply
from tests.server.harness import KeelServer, wait_all, write_project

LONG_TEXT = "The quick brown fox jumps over the lazy dog. " * 6


def script(request: ChatRequest) -> Reply:
    """Plain runs: call the tool, then answer. Runs whose input starts with 'story': long text."""
    marker = (request.last_user or "").strip()
    if marker.startswith("story"):
        return Reply(text=LONG_TEXT)
    if not request.tool_results:
        return Reply(tool_calls=[ToolCallReply(name="record", arguments={"n": 1})])
    return Reply(text=f"done {marker}")


def _agent(root: Path, name: str, policy: str) -> None:
    (root / "agents" / f"{name}.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: {name}
            model: fake
            instructions: Handle the item.
            tools: [tools.side:record]
            queue: {{session_policy: {policy}}}
            """
        )
    )


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[tuple[httpx.Client, FakeLLMThread]]:
    with FakeLLMThread(script, stream_chunk_chars=8) as fake:
        project = write_project(tmp_path / "p", fake.base_url)
        _agent(project, "strict", "reject")
        _agent(project, "takeover", "interrupt")
        server = KeelServer(project, database_url, {"SIDE_FILE": str(tmp_path / "side")})
        server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                yield client, fake
        finally:
            server.stop()


def _create(client: httpx.Client, agent: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(f"/v1/agents/{agent}/runs", json=body)


def _wait_status(client: httpx.Client, run_id: str, wanted: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view: dict[str, Any] = client.get(f"/v1/runs/{run_id}").json()
        if view.get("status") == wanted or time.monotonic() > deadline:
            return view
        time.sleep(0.05)


def _wait_for_request(fake: FakeLLMThread, marker: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not any((r.last_user or "").strip() == marker for r in fake.requests()):
        assert time.monotonic() < deadline, f"the fake provider never saw a request for {marker!r}"
        time.sleep(0.02)


def test_reject_policy_refuses_a_second_run_while_the_session_is_busy(
    served: tuple[httpx.Client, FakeLLMThread],
) -> None:
    client, fake = served
    fake.set_latency(1500)
    first = _create(client, "strict", {"input": "one", "session_id": "s-strict"})
    assert first.status_code == 202
    second = _create(client, "strict", {"input": "two", "session_id": "s-strict"})
    assert second.status_code == 409, second.text
    assert second.headers["content-type"].startswith("application/problem+json")
    assert second.json()["code"] == "session_busy"
    other_session = _create(client, "strict", {"input": "three", "session_id": "s-other"})
    assert other_session.status_code == 202  # only the busy session refuses
    fake.set_latency(0)
    run_ids = [first.json()["run_id"], other_session.json()["run_id"]]
    views = wait_all(client, run_ids, 30)
    assert [views[r]["status"] for r in run_ids] == ["succeeded", "succeeded"]
    # Once the session's run has ended, the session takes a new run.
    again = _create(client, "strict", {"input": "four", "session_id": "s-strict", "wait": 20})
    assert again.status_code == 200 and again.json()["status"] == "succeeded"


def test_interrupt_policy_cancels_the_active_run_and_takes_its_place(
    served: tuple[httpx.Client, FakeLLMThread],
) -> None:
    client, fake = served
    fake.set_latency(2000)
    first = _create(client, "takeover", {"input": "old", "session_id": "s-int"}).json()
    assert _wait_status(client, first["run_id"], "running")["status"] == "running"
    # "running" is recorded before the model request is sent; the fake samples its latency when a
    # request arrives, so lowering it earlier would let the old run finish before the new one comes.
    _wait_for_request(fake, "old")
    fake.set_latency(0)
    second = _create(client, "takeover", {"input": "new", "session_id": "s-int", "wait": 30})
    assert second.status_code == 200, second.text
    assert second.json()["status"] == "succeeded"
    assert second.json()["output"] == "done new"
    old = wait_all(client, [first["run_id"]], 30)[first["run_id"]]
    assert old["status"] == "cancelled"
    assert old["error"]["category"] == "cancelled"


def test_streamed_text_arrives_as_text_events_in_order(served: tuple[httpx.Client, FakeLLMThread]) -> None:
    client, fake = served
    fake.set_latency(Latency.fixed(0, chunk_ms=15))  # 8-char pieces every 15 ms: several batches
    run = _create(client, "worker", {"input": "story 1", "stream": True, "wait": 30}).json()
    assert run["status"] == "succeeded" and run["output"] == LONG_TEXT
    body = client.get(f"/v1/runs/{run['run_id']}/events").text
    events = [json.loads(line[len("data: ") :]) for line in body.splitlines() if line.startswith("data: ")]
    texts = [e["text"] for e in events if e["type"] == "text"]
    assert len(texts) >= 2, events  # delivered in several pieces while generated
    assert "".join(texts) == LONG_TEXT
    assert events[0] == {"type": "status", "status": "running"}
    assert events[-1]["type"] == "status" and events[-1]["status"] == "succeeded"
    # A run created without `stream` has no text events.
    plain = _create(client, "worker", {"input": "story 2", "wait": 30}).json()
    plain_body = client.get(f"/v1/runs/{plain['run_id']}/events").text
    assert "event: text" not in plain_body and "event: status" in plain_body


def test_runs_not_ended_are_listed_by_status(served: tuple[httpx.Client, FakeLLMThread]) -> None:
    client, fake = served
    fake.set_latency(1500)
    active = _create(client, "worker", {"input": "a", "session_id": "s-list"}).json()
    waiting = _create(client, "worker", {"input": "b", "session_id": "s-list"}).json()
    assert _wait_status(client, active["run_id"], "running")["status"] == "running"
    running = client.get("/v1/runs", params={"status": "running"}).json()["runs"]
    queued = client.get("/v1/runs", params={"status": "queued", "agent": "worker"}).json()["runs"]
    assert active["run_id"] in {r["run_id"] for r in running}
    assert waiting["run_id"] in {r["run_id"] for r in queued}
    assert active["run_id"] not in {r["run_id"] for r in queued}
    stats = {q["agent"]: q for q in client.get("/v1/queues").json()["queues"]}
    assert stats["worker"]["running"] >= 1 and stats["worker"]["waiting_for_session"] >= 1
    fake.set_latency(0)
    views = wait_all(client, [active["run_id"], waiting["run_id"]], 30)
    assert {v["status"] for v in views.values()} == {"succeeded"}


MALFORMED: list[tuple[dict[str, Any], str]] = [
    ({}, "input"),
    ({"input": "x", "wait": -1}, "wait"),
    ({"input": "x", "priority": 0}, "priority"),
    ({"input": "x", "surprise": True}, "surprise"),
    ({"input": "x", "tags": [""]}, "tags.0"),
]


def test_bad_requests_get_problems_that_name_what_is_wrong(
    served: tuple[httpx.Client, FakeLLMThread],
) -> None:
    client, _ = served
    for body, field in MALFORMED:
        response = _create(client, "worker", body)
        assert response.status_code == 422, body
        problem = response.json()
        assert problem["code"] == "invalid_request"
        assert field in [e["field"] for e in problem["errors"]], problem
    assert _create(client, "nobody", {"input": "x"}).json()["code"] == "agent_not_found"
    missing = client.get("/v1/runs/does-not-exist")
    assert missing.status_code == 404 and missing.json()["code"] == "run_not_found"
    run = _create(client, "worker", {"input": "e", "wait": 20}).json()
    bad = client.get(f"/v1/runs/{run['run_id']}/events", headers={"Last-Event-ID": "abc"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_request"
    too_long = _create(client, "worker", {"input": "x", "wait": 100_000})
    assert too_long.status_code == 422
