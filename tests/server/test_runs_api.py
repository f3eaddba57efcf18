"""The durable runs API over real HTTP against a `keel serve` subprocess (SQLite and Postgres):
idempotency, cancel, resumable events, sessions, signed callbacks with retries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from keel.api.signing import verify
from keel.testing.callback_receiver import CallbackReceiver
from tests.server.harness import KeelServer, fake_provider, wait_all, write_project

SECRET = "whsec-test-secret"


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[tuple[httpx.Client, CallbackReceiver, object]]:
    with fake_provider() as (fake, _script), CallbackReceiver([SECRET], replies=[503, 500]) as receiver:
        extra = f"""\
callbacks:
  endpoints: [{{url: "{receiver.url}/hooks/", secret_env: HOOK_SECRET}}]
  initial_delay: 0.2
  max_delay: 1
"""
        project = write_project(tmp_path / "p", fake.base_url, extra_server=extra)
        server = KeelServer(
            project, database_url, {"SIDE_FILE": str(tmp_path / "side"), "HOOK_SECRET": SECRET}
        )
        server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                yield client, receiver, fake
        finally:
            server.stop()


def test_idempotency_key_returns_the_same_run_and_refuses_another_body(
    served: tuple[httpx.Client, CallbackReceiver, object],
) -> None:
    client, _, _ = served
    first = client.post(
        "/v1/agents/worker/runs", json={"input": "a", "wait": 20}, headers={"Idempotency-Key": "k1"}
    )
    assert first.status_code == 200 and first.json()["status"] == "succeeded"
    again = client.post(
        "/v1/agents/worker/runs", json={"input": "a", "wait": 20}, headers={"Idempotency-Key": "k1"}
    )
    assert again.json()["run_id"] == first.json()["run_id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = client.post("/v1/agents/worker/runs", json={"input": "b"}, headers={"Idempotency-Key": "k1"})
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"


def test_events_resume_after_last_event_id(served: tuple[httpx.Client, CallbackReceiver, object]) -> None:
    client, _, _ = served
    run = client.post("/v1/agents/worker/runs", json={"input": "ev", "wait": 20}).json()
    full = client.get(f"/v1/runs/{run['run_id']}/events").text
    ids = [int(line[4:]) for line in full.splitlines() if line.startswith("id: ")]
    assert ids == list(range(len(ids))) and len(ids) >= 4  # running, tool started/finished, succeeded
    assert "event: tool_finished" in full and '"status": "succeeded"' in full
    resumed = client.get(f"/v1/runs/{run['run_id']}/events", headers={"Last-Event-ID": "1"}).text
    assert [int(line[4:]) for line in resumed.splitlines() if line.startswith("id: ")] == ids[2:]


def test_cancel_a_queued_run(served: tuple[httpx.Client, CallbackReceiver, object]) -> None:
    client, _, fake = served
    fake.set_latency(3000)  # type: ignore[attr-defined]
    first = client.post("/v1/agents/worker/runs", json={"input": "slow", "session_id": "s-cancel"}).json()
    second = client.post("/v1/agents/worker/runs", json={"input": "later", "session_id": "s-cancel"}).json()
    assert client.get(f"/v1/runs/{second['run_id']}").json()["status"] == "queued"
    cancelled = client.post(f"/v1/runs/{second['run_id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    fake.set_latency(0)  # type: ignore[attr-defined]
    views = wait_all(client, [first["run_id"]], 30)
    assert views[first["run_id"]]["status"] == "succeeded"
    assert client.post("/v1/runs/nope/cancel").json()["code"] == "run_not_found"


def test_a_session_runs_one_at_a_time_in_order(served: tuple[httpx.Client, CallbackReceiver, object]) -> None:
    client, _, fake = served
    fake.set_latency(300)  # type: ignore[attr-defined]
    ids = [
        client.post("/v1/agents/worker/runs", json={"input": f"turn {i}", "session_id": "s-1"}).json()[
            "run_id"
        ]
        for i in range(4)
    ]
    views = wait_all(client, ids, 60)
    assert [views[i]["status"] for i in ids] == ["succeeded"] * 4
    spans = sorted((views[i]["started_at"], views[i]["ended_at"]) for i in ids)
    assert [views[i]["started_at"] for i in ids] == [s for s, _ in spans]  # in submission order
    assert all(spans[k][1] <= spans[k + 1][0] for k in range(3))  # never two at once


def test_callback_is_signed_retried_and_every_attempt_recorded(
    served: tuple[httpx.Client, CallbackReceiver, object],
) -> None:
    client, receiver, _ = served
    bad = client.post("/v1/agents/worker/runs", json={"input": "x", "callback_url": "http://evil.example/x"})
    assert bad.status_code == 422 and bad.json()["code"] == "callback_url_not_allowed"
    run = client.post(
        "/v1/agents/worker/runs", json={"input": "cb", "callback_url": f"{receiver.url}/hooks/done"}
    ).json()
    deliveries = receiver.wait_for(3, timeout=30)  # 503, 500, then 200
    assert [d.attempt for d in deliveries] == [1, 2, 3]
    assert all(d.signature_valid for d in deliveries)
    last = deliveries[-1]
    verify([SECRET], last.headers, last.body)
    assert last.json()["run"]["run_id"] == run["run_id"] and last.json()["run"]["status"] == "succeeded"
    deadline = time.monotonic() + 10
    while True:
        attempts = client.get(f"/v1/runs/{run['run_id']}/callbacks").json()["attempts"]
        if len(attempts) == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in attempts] == [
        (1, 503, "retry"),
        (2, 500, "retry"),
        (3, 200, "delivered"),
    ]
