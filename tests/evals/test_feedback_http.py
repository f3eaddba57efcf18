"""Feedback and the online time series over a real `keel serve` (authentication required, two
tenants): runs are scored in the background, feedback is recorded explicit or implicit, another
tenant's run answers exactly like a missing one, bad input is a 4xx problem with a stable code."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from keel.testing.fake_llm import ChatRequest, FakeLLMThread, Reply
from tests.server.harness import KeelServer


def answer(request: ChatRequest) -> Reply:
    return Reply(text=f"done: {request.last_user}")


def write_project(root: Path, base_url: str) -> Path:
    (root / "agents").mkdir(parents=True, exist_ok=True)
    (root / "keel.yaml").write_text(
        textwrap.dedent(
            f"""\
            project: feedbacktest
            models:
              fake: {{provider: openai-compatible, model: fake-model, base_url: '{base_url}', api_key_env: FAKE_KEY}}
            server: {{poll_interval: 0.05, heartbeat_interval: 0.5, worker_timeout: 5, shutdown_grace: 1}}
            gateway:
              auth: required
              agent_access:
                private: ["tenant:globex"]
            """
        )
    )
    (root / "agents" / "helper.yaml").write_text(
        textwrap.dedent(
            """\
            model: fake
            instructions: Help.
            evals:
              online:
                sample_rate: 1.0
                evaluators:
                  - {type: succeeded}
                  - {type: regex, name: starts-done, pattern: '^done'}
            """
        )
    )
    (root / "agents" / "private.yaml").write_text("model: fake\ninstructions: Only for globex.\n")
    return root


def make_keys(url: str) -> dict[str, str]:
    from keel.store.keys import KeyStore

    async def make() -> dict[str, str]:
        async with KeyStore(url) as store:
            made = {
                "writer": await store.create("w", ["runs:write", "runs:read"], tenant_id="acme"),
                "reader": await store.create("r", ["runs:read"], tenant_id="acme"),
                "other": await store.create("o", ["runs:write", "runs:read"], tenant_id="globex"),
            }
            return {name: created.key for name, created in made.items()}

    return asyncio.run(make())


def eventually(probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll `probe` until it returns something truthy (background work: scores, the run history)."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_feedback_and_the_online_series_over_http(tmp_path: Path, database_url: str) -> None:
    with FakeLLMThread(answer) as fake:
        root = write_project(tmp_path / "p", fake.base_url)
        from keel.store import upgrade

        upgrade(database_url)
        keys = make_keys(database_url)
        server = KeelServer(root, database_url, {})
        server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                check(client, keys)
        finally:
            server.stop()


def check(client: httpx.Client, keys: dict[str, str]) -> None:
    def as_(who: str) -> dict[str, str]:
        return {"authorization": f"Bearer {keys[who]}"}

    made = client.post(
        "/v1/agents/helper/runs", json={"input": "refund 20", "wait": 20}, headers=as_("writer")
    )
    assert made.status_code == 200, made.text
    run_id = made.json()["run_id"]
    url = f"/v1/runs/{run_id}/feedback"

    # The run is scored in the background: both evaluators, once.
    def scores() -> list[dict[str, Any]]:
        return list(client.get(url, headers=as_("reader")).json()["scores"])

    scored = eventually(lambda: len(scores()) == 2 and scores())
    assert {(s["evaluator"], s["passed"]) for s in scored} == {("succeeded", True), ("starts-done", True)}

    # Explicit and implicit feedback.
    up = client.post(url, json={"kind": "thumbs_up", "comment": "spot on"}, headers=as_("writer"))
    assert up.status_code == 201, up.text
    assert up.json()["source"] == "explicit" and up.json()["created_by"].startswith("service:")
    rejected = client.post(
        url, json={"kind": "rejected", "comment": "the CRM refused the update"}, headers=as_("writer")
    )
    assert rejected.status_code == 201 and rejected.json()["source"] == "implicit"
    fixed = {"kind": "correction", "correction": {"intent": "refund", "amount": 20}, "value": 0.5}
    corrected = client.post(url, json=fixed, headers=as_("writer"))
    assert corrected.status_code == 201 and corrected.json()["correction"] == {
        "intent": "refund",
        "amount": 20,
    }
    listed = client.get(url, headers=as_("reader")).json()
    assert [(f["kind"], f["source"]) for f in listed["feedback"]] == [
        ("thumbs_up", "explicit"),
        ("rejected", "implicit"),
        ("correction", "explicit"),
    ]

    # Scopes and bad input: a clear 4xx with a stable code.
    def refused(who: str, body: Any, path: str = url) -> tuple[int, str]:
        response = client.post(path, json=body, headers=as_(who))
        assert response.headers["content-type"].startswith("application/problem+json")
        return response.status_code, response.json()["code"]

    assert refused("reader", {"kind": "thumbs_up"}) == (403, "missing_scope")
    assert refused("writer", {"kind": "meh"}) == (422, "invalid_request")
    assert refused("writer", {"kind": "thumbs_up", "colour": "red"}) == (422, "invalid_request")
    assert refused("writer", {"kind": "correction"}) == (422, "invalid_request")
    assert refused("writer", {"kind": "thumbs_up", "correction": "x"}) == (422, "invalid_request")
    assert refused("writer", {"kind": "edited", "correction": "x" * 70_000}) == (422, "invalid_request")
    assert refused("writer", {"kind": "thumbs_up", "value": "high"}) == (422, "invalid_request")
    assert client.post(url, json={"kind": "thumbs_up"}).status_code == 401

    # Another tenant's run is a run that does not exist: the same answer, body or not.
    missing = "0" * 32
    for method, body in (("POST", {"kind": "thumbs_down"}), ("POST", None), ("GET", None)):
        theirs = client.request(method, url, json=body, headers=as_("other"))
        nothing = client.request(method, f"/v1/runs/{missing}/feedback", json=body, headers=as_("other"))
        assert theirs.status_code == nothing.status_code == 404
        assert theirs.json() == {
            **nothing.json(),
            "detail": nothing.json()["detail"].replace(missing, run_id),
        }
        assert theirs.json()["code"] == "run_not_found"
    assert len(client.get(url, headers=as_("reader")).json()["feedback"]) == 3  # nothing added

    # The time series: per prompt version and hour, scores and feedback; globex sees none of it.
    def series() -> list[dict[str, Any]]:
        body = client.get("/v1/evals/online", params={"agent": "helper"}, headers=as_("reader")).json()
        return (
            list(body["series"])
            if sum(s["totals"]["feedback"].get("correction", 0) for s in body["series"])
            else []
        )

    [version] = eventually(series)
    assert version["agent"] == "helper" and version["prompt_version"] is None
    assert version["totals"]["runs_scored"] == 1
    assert version["totals"]["evaluators"]["succeeded"] == {"count": 1, "mean_score": 1.0, "pass_rate": 1.0}
    assert version["totals"]["feedback"] == {"correction": 1, "rejected": 1, "thumbs_up": 1}
    assert len(version["buckets"]) == 1 and version["buckets"][0]["start"].endswith(":00:00Z")
    whole = client.get(
        "/v1/evals/online", params={"hours": 48, "bucket": "day"}, headers=as_("reader")
    ).json()
    assert whole["sampling"]["helper"] == {"sample_rate": 1.0, "evaluators": ["succeeded", "starts-done"]}
    assert "private" not in whole["sampling"]  # acme may not run it
    assert [s["agent"] for s in whole["series"]] == ["helper"]
    theirs = client.get("/v1/evals/online", headers=as_("other")).json()
    assert theirs["series"] == [] and run_id not in str(theirs)

    def problem(params: dict[str, Any], who: str = "reader") -> tuple[int, str]:
        response = client.get("/v1/evals/online", params=params, headers=as_(who))
        return response.status_code, response.json()["code"]

    assert problem({"agent": "nobody"}) == (404, "agent_not_found")
    assert problem({"agent": "private"}) == (403, "agent_forbidden")
    assert (
        client.get("/v1/evals/online", params={"agent": "private"}, headers=as_("other")).status_code == 200
    )
    assert problem({"bucket": "week"}) == (422, "invalid_request")
    assert problem({"hours": 0}) == (422, "invalid_request")
    assert problem({"hours": 24 * 91}) == (422, "invalid_request")

    # The scorer's counters are in /readyz.
    counters = client.get("/readyz").json()["online_evals"]
    assert counters["sampled"] == counters["scored"] == 1
    assert (counters["dropped"], counters["failed"], counters["skipped"]) == (0, 0, 0)
