"""Fair share and priority of queued runs, against a real `keel serve` subprocess (SQLite and Postgres).

- Fairness (`fairness: user`, the default): user A queues 1,000 runs on an agent limited to two at a
  time; user B's one run, submitted afterwards, starts within a few seconds, while hundreds of A's
  runs (all submitted before it) are still queued. In submission order B would wait minutes.
- Priority (`fairness: none`, one at a time): runs submitted later with a lower `priority` number
  run before earlier runs with the default priority (1000), lowest number first.
- Fairness groups (`fairness: tenant` / `user` / `none`), unit level: the partition key of a run and
  the DBOS queue options each setting produces.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from keel.config.loader import load_project
from keel.config.schema import QueueConfig
from keel.durable.queues import partition_key, queue_name, queue_settings
from keel.testing.fake_llm import ChatRequest, FakeLLMThread, Reply
from tests.server.harness import CountingScript, KeelServer, wait_all, write_project

LATENCY_MS = 200  # per model request; a run makes two (tool call, then answer)
CONCURRENCY = 2  # max_concurrent_runs and worker_concurrency of the fairness test's agent
BACKLOG = 1_000  # user A's runs
SUBMITTERS = 20  # concurrent HTTP requests while queueing A's backlog
# A slot frees about every RUN_S / CONCURRENCY seconds (at best: it is a lower bound on FIFO time).
RUN_S = 2 * LATENCY_MS / 1000
SLOT_S = RUN_S / CONCURRENCY
# At each freed slot the worker visits the queue's groups in random order, so B takes the slot with
# probability 1/2: the expected start delay is a poll interval plus ~2 slots (~0.5 s). 40 slots
# (8 s) leaves B a 2^-40 chance of losing every draw, and room for a loaded 2-core machine whose
# runs take two or three times their nominal time.
START_BOUND_S = 40 * SLOT_S
# In submission order B would start only after every A run queued before it: at least this many
# remain for the test to be able to fail (their FIFO time, >= queued * SLOT_S, is 3x the bound).
MIN_BACKLOG = 300

FAIR_QUEUE = f"queue: {{max_concurrent_runs: {CONCURRENCY}, worker_concurrency: {CONCURRENCY}}}\n"
PRIORITY_QUEUE = "queue: {max_concurrent_runs: 1, worker_concurrency: 1, fairness: none}\n"


class StartOrder(CountingScript):
    """The harness's script (call `record`, then answer), also noting when each run (by its input)
    first reached the model: the moment it started, as seen from outside the server."""

    def __init__(self) -> None:
        super().__init__()
        self.first_seen: dict[str, float] = {}  # input -> time.monotonic(); insertion = start order
        self._seen_lock = threading.Lock()

    def __call__(self, request: ChatRequest) -> Reply:
        marker = (request.last_user or "").strip()
        with self._seen_lock:
            self.first_seen.setdefault(marker, time.monotonic())
        return super().__call__(request)

    def started(self) -> dict[str, float]:
        with self._seen_lock:
            return dict(self.first_seen)

    def wait_started(self, marker: str, timeout: float) -> float | None:
        """When the run with input `marker` first reached the model, or None after `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.started().get(marker)
            if seen is not None:
                return seen
            time.sleep(0.02)
        return self.started().get(marker)


@contextmanager
def serve(
    tmp_path: Path, database_url: str, queue: str
) -> Iterator[tuple[KeelServer, FakeLLMThread, StartOrder]]:
    script = StartOrder()
    with FakeLLMThread(script) as fake:
        project = write_project(tmp_path / "p", fake.base_url, queue=queue)
        server = KeelServer(project, database_url, {"SIDE_FILE": str(tmp_path / "side")})
        server.start()
        try:
            yield server, fake, script
        finally:
            server.stop()  # runs still queued are left behind; the database is thrown away


def client_for(server: KeelServer) -> httpx.Client:
    # Short keep-alive: never reuse a connection the server may be closing after an idle spell.
    return httpx.Client(base_url=server.url, timeout=30, limits=httpx.Limits(keepalive_expiry=1.0))


async def submit_many(url: str, inputs: list[str], user_id: str, parallel: int) -> list[str]:
    """Create one run per input, at most `parallel` requests at a time; their run ids, in order."""
    limits = httpx.Limits(max_connections=parallel, max_keepalive_connections=parallel, keepalive_expiry=1.0)
    gate = asyncio.Semaphore(parallel)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def one(text: str) -> str:
            async with gate:
                response = await client.post(
                    "/v1/agents/worker/runs", json={"input": text, "user_id": user_id}
                )
            assert response.status_code == 202, response.text
            run_id: str = response.json()["run_id"]
            return run_id

        return list(await asyncio.gather(*(one(text) for text in inputs)))


def worker_queue(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/v1/queues")
    assert response.status_code == 200, response.text
    (stats,) = [q for q in response.json()["queues"] if q["agent"] == "worker"]
    assert isinstance(stats, dict)
    return stats


def test_a_second_user_starts_promptly_behind_a_thousand_queued_runs(
    tmp_path: Path, database_url: str
) -> None:
    with serve(tmp_path, database_url, FAIR_QUEUE) as (server, fake, script):
        fake.set_latency(LATENCY_MS)
        a_inputs = [f"a-{i}" for i in range(BACKLOG)]
        began = time.monotonic()
        a_ids = asyncio.run(submit_many(server.url, a_inputs, "alice", SUBMITTERS))
        queued_all = time.monotonic()
        assert len(set(a_ids)) == BACKLOG

        with client_for(server) as client:
            before = worker_queue(client)
            submitted = time.monotonic()
            submitted_utc = datetime.now(UTC)
            response = client.post("/v1/agents/worker/runs", json={"input": "b-0", "user_id": "bob"})
            assert response.status_code == 202, response.text
            b_id = response.json()["run_id"]

            seen = script.wait_started("b-0", timeout=START_BOUND_S + 10)
            asked = time.monotonic()
            after = worker_queue(client)  # right after B started: A's backlog, wait times
            observed = time.monotonic()
            started = script.started()
            cutoff = seen if seen is not None else observed
            a_started_before_b = sum(1 for m, at in started.items() if m.startswith("a-") and at < cutoff)
            report = (
                f"[{database_url.split(':')[0]}] queued {BACKLOG} runs in {queued_all - began:.1f} s "
                f"({BACKLOG / (queued_all - began):.0f}/s); A queued when B was submitted: "
                f"{before['queued']}; B started after "
                f"{'never' if seen is None else f'{seen - submitted:.2f} s'} (bound {START_BOUND_S:.1f} s), "
                f"with {BACKLOG - a_started_before_b} of A's runs not started; /v1/queues then: {after}"
            )
            print(report)

            # Enough of A's runs were queued ahead of B that submission order would make B wait
            # far longer than the bound: the check below can fail.
            assert before["queued"] >= MIN_BACKLOG, report
            assert before["queued"] * SLOT_S >= 3 * START_BOUND_S, report
            assert seen is not None and seen - submitted <= START_BOUND_S, report
            assert BACKLOG - a_started_before_b >= MIN_BACKLOG, report

            # The queue statistics show the backlog, the concurrency limit and real waits.
            assert after["queued"] >= MIN_BACKLOG, report
            assert 1 <= after["running"] <= CONCURRENCY, report
            assert after["fairness"] == "user" and after["max_concurrent_runs"] == CONCURRENCY, report
            # The oldest queued run is one of A's: created after `began`, before A's last was queued.
            # (DBOS's SQLite timestamps are whole seconds on Python < 3.12: up to 1 s more.)
            assert asked - queued_all - 0.5 <= after["oldest_queued_s"] <= observed - began + 1.5, report
            assert after["wait_p50_s"] is not None and after["wait_p95_s"] is not None, report
            assert after["wait_p95_s"] >= after["wait_p50_s"] > 0, report
            assert after["wait_p95_s"] > 1.0, report  # A's started runs had queued behind each other

            # B's run completes, and its own record places its start within the bound.
            views = wait_all(client, [b_id], timeout=30)
            assert b_id in views, f"B's run did not finish: {client.get(f'/v1/runs/{b_id}').json()}"
            view = views[b_id]
            assert view["status"] == "succeeded" and view["user_id"] == "bob", view
            server_delay = (datetime.fromisoformat(view["started_at"]) - submitted_utc).total_seconds()
            assert -1 < server_delay <= START_BOUND_S + 1, (server_delay, report)


def test_a_lower_priority_number_runs_first(tmp_path: Path, database_url: str) -> None:
    with (
        serve(tmp_path, database_url, PRIORITY_QUEUE) as (server, fake, script),
        client_for(server) as client,
    ):
        # The first run holds the only slot (a 3 s model request) while the others queue behind it.
        fake.set_latency(3000)
        blocker = client.post("/v1/agents/worker/runs", json={"input": "p-block"}).json()["run_id"]
        assert script.wait_started("p-block", timeout=20) is not None
        submissions: list[tuple[str, int | None]] = [
            ("p-d0", None),
            ("p-d1", None),
            ("p-urgent", 1),
            ("p-d2", None),
            ("p-mid", 500),
            ("p-d3", None),
        ]
        ids = [blocker]
        for text, priority in submissions:
            body: dict[str, Any] = (
                {"input": text} if priority is None else {"input": text, "priority": priority}
            )
            response = client.post("/v1/agents/worker/runs", json=body)
            assert response.status_code == 202, response.text
            ids.append(response.json()["run_id"])
        # Precondition: all were queued while the blocker still held the slot.
        assert client.get(f"/v1/runs/{blocker}").json()["status"] == "running"
        assert set(script.started()) == {"p-block"}
        fake.set_latency(20)

        views = wait_all(client, ids, timeout=60)
        assert [views.get(i, {}).get("status") for i in ids] == ["succeeded"] * len(ids)
        expected = ["p-block", "p-urgent", "p-mid", "p-d0", "p-d1", "p-d2", "p-d3"]
        assert list(script.started()) == expected  # the order the runs reached the model
        by_start = sorted(views.values(), key=lambda v: v["started_at"])
        assert [v["input"] for v in by_start] == expected  # and the order the server recorded
        ends = [(v["started_at"], v["ended_at"]) for v in by_start]
        assert all(ends[k][1] <= ends[k + 1][0] for k in range(len(ends) - 1))  # one at a time


@pytest.mark.parametrize(
    ("fairness", "groups"),
    [
        # Submissions as (tenant, user); the expected key of each.
        ("user", ["t1/u1", "t1/u2", "t2/u1", "t1/-", "-/u1", "-/-"]),
        ("tenant", ["t1", "t1", "t2", "t1", "-", "-"]),
        ("none", [None] * 6),
    ],
)
def test_fairness_groups(fairness: str, groups: list[str | None]) -> None:
    config = QueueConfig.model_validate({"fairness": fairness})
    submitters = [("t1", "u1"), ("t1", "u2"), ("t2", "u1"), ("t1", None), (None, "u1"), (None, None)]
    assert [partition_key(config, tenant, user) for tenant, user in submitters] == groups


@pytest.mark.parametrize("fairness", ["user", "tenant", "none"])
def test_queue_options_per_fairness(tmp_path: Path, fairness: str) -> None:
    queue = f"queue: {{max_concurrent_runs: 8, worker_concurrency: 4, max_concurrent_per_group: 3, fairness: {fairness}}}\n"
    project = load_project(
        write_project(tmp_path, "http://127.0.0.1:9/v1", queue=queue), environ={"FAKE_KEY": "x"}
    )
    settings = queue_settings(project.agents["worker"], poll_interval=0.05)
    assert settings.name == queue_name("worker")
    expected: dict[str, Any] = {
        "worker_concurrency": 4,
        "global_concurrency": 8,
        "polling_interval_sec": 0.05,
    }
    if fairness != "none":  # a group holds at most 3 slots, and at most 3 of one worker's 4
        expected |= {"partition_concurrency": 3, "partition_worker_concurrency": 3}
    assert settings.options == expected
