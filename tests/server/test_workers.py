"""Several `keel serve` workers on one PostgreSQL database, as real subprocesses on loopback.

1. A global concurrency limit holds exactly across two worker processes: `max_concurrent_runs: 3`
   with `worker_concurrency: 10`, so either worker alone would run more. Concurrency is measured
   from outside Keel: the fake provider (in this process) sees when each run sends its first model
   request and its final one; a run is certainly executing from the first until the final answer
   has been sent. Cross-checked with the runs' own started_at / ended_at.
2. A worker that dies and never comes back has its runs adopted by another worker once its
   heartbeat is older than `server.worker_timeout`: every run succeeds, and no model request or
   tool call that had been checkpointed before the kill happens again.

PostgreSQL only: on SQLite one process serves everything (a second one is refused), so neither
property can be exercised there. The harness's project sets heartbeat_interval 0.5, worker_timeout 2.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from keel.testing.fake_llm import ChatRequest, FakeLLMThread, Reply, ToolCallReply
from tests.server.harness import KeelServer, wait_all, write_project

pytestmark = pytest.mark.postgres

QUEUE = "keel.agent.worker"


# -- helpers ----------------------------------------------------------------------------------------


def _in_parallel(servers: Sequence[KeelServer], action: Callable[[KeelServer], None]) -> None:
    """Start or stop several servers at once (each action is bounded by KeelServer itself)."""
    with ThreadPoolExecutor(len(servers)) as pool:
        for future in [pool.submit(action, server) for server in servers]:
            future.result()


def _stop_all(servers: Sequence[KeelServer]) -> None:
    _in_parallel(servers, KeelServer.stop)


def _submit(client: httpx.Client, marker: str, user: str) -> str:
    response = client.post("/v1/agents/worker/runs", json={"input": marker, "user_id": user})
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    return run_id


def _max_overlap(intervals: Sequence[tuple[float, float]]) -> int:
    """The most intervals [start, end) open at one instant (an end before a start at a tie)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    open_now = peak = 0
    for _, delta in events:
        open_now += delta
        peak = max(peak, open_now)
    return peak


def _workflows(url: str, run_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Per run: (DBOS status, executor_id) from DBOS's own workflow_status table."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
        rows = connection.execute(
            "SELECT workflow_uuid, status, executor_id FROM dbos.workflow_status WHERE workflow_uuid = ANY(%s)",
            (list(run_ids),),
        ).fetchall()
    return {str(run): (str(status), str(executor)) for run, status, executor in rows}


def _checkpoints(url: str) -> dict[str, tuple[int, bool]]:
    """Per run: completed model-request steps, and whether its tool step completed."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
        rows = connection.execute(
            "SELECT workflow_uuid, function_name FROM dbos.operation_outputs"
        ).fetchall()
    models: collections.Counter[str] = collections.Counter()
    tools: set[str] = set()
    for workflow, name in rows:
        if str(name).endswith("__model.request"):
            models[str(workflow)] += 1
        elif name == "keel.tool.record":
            tools.add(str(workflow))
    return {run: (models[run], run in tools) for run in set(models) | tools}


def _tool_executions(side: Path) -> collections.Counter[str]:
    """Tool executions per run id (the tool appends its idempotency key, `<run id>:...`)."""
    if not side.exists():
        return collections.Counter()
    return collections.Counter(line.split(":")[0] for line in side.read_text().splitlines() if line)


def _worker_rows(url: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
        cursor = connection.execute(
            "SELECT worker_id, role, heartbeat_at, stopped_at, recovered_by, recovered_at FROM keel_workers"
        )
        names = [column.name for column in cursor.description or ()]
        return {str(row[0]): dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def _logs(*servers: KeelServer) -> str:
    return "\n".join(f"--- {s.role} {s.worker_id} ---\n{s.tail(30)}" for s in servers)


def _wait_until(condition: Callable[[], bool], timeout: float, what: str, logs: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs()}")
        time.sleep(0.05)


class _Script:
    """First request of a run: call `record`; after the tool result: answer. Records, in this
    process's clock, when each request of each run (by its input, the marker) arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[tuple[str, int], list[float]] = collections.defaultdict(list)
        self._lock = threading.Lock()

    def __call__(self, request: ChatRequest) -> Reply:
        marker = (request.last_user or "").strip()
        kind = 2 if request.tool_results else 1
        with self._lock:
            self.arrivals[(marker, kind)].append(time.time())
            self.arrived(marker, kind)
        if kind == 1:
            return Reply(tool_calls=[ToolCallReply(name="record", arguments={"n": 1})])
        return Reply(text=f"done {marker}")

    def arrived(self, marker: str, kind: int) -> None:
        """Hook, called under the lock."""

    def counts(self) -> collections.Counter[tuple[str, int]]:
        with self._lock:
            return collections.Counter({key: len(times) for key, times in self.arrivals.items()})

    def times(self, marker: str, kind: int) -> list[float]:
        with self._lock:
            return list(self.arrivals.get((marker, kind), []))


# -- 1. a global concurrency limit across two workers ------------------------------------------------

RUNS = 24
LIMIT = 3
LATENCY_MS = 400


def test_two_workers_hold_a_global_concurrency_limit_exactly(tmp_path: Path, postgres_url: str) -> None:
    script = _Script()
    with FakeLLMThread(script) as fake:
        fake.set_latency(LATENCY_MS)
        project = write_project(
            tmp_path / "project",
            fake.base_url,
            queue=f"queue: {{max_concurrent_runs: {LIMIT}, worker_concurrency: 10}}\n",
        )
        env = {"SIDE_FILE": str(tmp_path / "side.txt")}
        api = KeelServer(project, postgres_url, env, role="api", worker_id="api-1")
        workers = [
            KeelServer(project, postgres_url, env, role="worker", worker_id=f"worker-{n}") for n in (1, 2)
        ]
        run_of: dict[str, str] = {}
        try:
            api.start()  # first, alone: it migrates the database
            _in_parallel(workers, KeelServer.start)
            with httpx.Client(base_url=api.url, timeout=30) as client:
                for i in range(RUNS):
                    # Four fairness groups: the limit must hold across partitions too.
                    run_of[_submit(client, f"item-{i}", f"user-{i % 4}")] = f"item-{i}"
                views = wait_all(client, list(run_of), timeout=90)
        finally:
            _stop_all([*workers, api])
    logs = _logs(api, *workers)
    assert len(views) == RUNS, f"{RUNS - len(views)} runs did not finish\n{logs}"
    assert {v["status"] for v in views.values()} == {"succeeded"}, logs

    # Independent of Keel: each run asked the model exactly twice; it was executing at least from
    # its first request until its final answer was sent (the answer leaves LATENCY_MS after the
    # request arrives; 90% of it, so that only certain overlap counts).
    counts = script.counts()
    assert all(counts[(m, 1)] == 1 and counts[(m, 2)] == 1 for m in run_of.values()), counts
    held = LATENCY_MS / 1000 * 0.9
    provider_spans = [(script.times(m, 1)[0], script.times(m, 2)[0] + held) for m in run_of.values()]
    seen_at_once = _max_overlap(provider_spans)
    assert seen_at_once <= LIMIT, f"the provider saw {seen_at_once} runs in flight at once (limit {LIMIT})"
    assert seen_at_once == LIMIT, f"the limit was never reached: at most {seen_at_once} runs at once"

    # The runs' own view agrees.
    run_spans = [
        (
            datetime.fromisoformat(v["started_at"]).timestamp(),
            datetime.fromisoformat(v["ended_at"]).timestamp(),
        )
        for v in views.values()
    ]
    assert _max_overlap(run_spans) == LIMIT

    # Both workers took part (and the api process ran nothing).
    executors = collections.Counter(
        executor for _, executor in _workflows(postgres_url, list(run_of)).values()
    )
    assert set(executors) == {"worker-1", "worker-2"}, executors
    assert sum(executors.values()) == RUNS


# -- 2. a dead worker's runs adopted by another ------------------------------------------------------

ADOPTED = 6
HOLD_MS = 120_000  # a run's second model request on worker A never gets its answer before the kill


class _HoldSecondRequests(_Script):
    """Once every run has sent its first request, answer later requests only after HOLD_MS: each
    run on worker A is then stuck in its second model request, its first one and its tool call
    checkpointed. The test lowers the latency again before the kill, for the adopting worker."""

    def __init__(self, runs: int) -> None:
        super().__init__()
        self.runs = runs
        self.fake: FakeLLMThread | None = None

    def arrived(self, marker: str, kind: int) -> None:
        firsts = sum(1 for (_, k) in self.arrivals if k == 1)
        if kind == 1 and firsts == self.runs and self.fake is not None:
            self.fake.set_latency(HOLD_MS)  # the server's lock is re-entrant: we are inside it


def test_a_dead_worker_s_runs_are_adopted_after_its_heartbeat_stops(
    tmp_path: Path, postgres_url: str
) -> None:
    side = tmp_path / "side.txt"
    script = _HoldSecondRequests(ADOPTED)
    with FakeLLMThread(script) as fake:
        script.fake = fake
        fake.set_latency(1000)
        project = write_project(
            tmp_path / "project", fake.base_url, queue="queue: {worker_concurrency: 50}\n"
        )
        env = {"SIDE_FILE": str(side)}
        api = KeelServer(project, postgres_url, env, role="api", worker_id="api-1")
        a = KeelServer(project, postgres_url, env, role="worker", worker_id="worker-a")
        b = KeelServer(project, postgres_url, env, role="worker", worker_id="worker-b")

        def logs() -> str:
            return _logs(api, a, b)

        try:
            api.start()
            with httpx.Client(base_url=api.url, timeout=30) as client:
                # Queued before A starts: A claims them all in one poll, so their first requests
                # arrive together, well within the first request's latency.
                run_of = {_submit(client, f"job-{i}", "user-1"): f"job-{i}" for i in range(ADOPTED)}
                a.start()
                # Every run is on A, past its first request and tool call, stuck in its second request.
                _wait_until(
                    lambda: all(script.counts()[(m, 2)] == 1 for m in run_of.values()),
                    30,
                    "every run to send its second model request",
                    logs,
                )
                on_a = _workflows(postgres_url, list(run_of))
                assert on_a == dict.fromkeys(run_of, ("PENDING", "worker-a")), on_a
                b.start()  # B cannot take them: they are PENDING, not ENQUEUED
                fake.set_latency(200)  # for B; A's requests keep their 120 s
                time.sleep(1.0)  # B heartbeats and polls; A is alive, so nothing moves
                assert _workflows(postgres_url, list(run_of)) == on_a

                killed_at = time.time()
                a.kill()  # and never restarted
                done = _checkpoints(postgres_url)  # what survived the kill
                seen = script.counts()
                tools = _tool_executions(side)
                assert done == dict.fromkeys(run_of, (1, True)), done

                views = wait_all(client, list(run_of), timeout=45)
                assert len(views) == ADOPTED, f"{ADOPTED - len(views)} runs did not finish\n{logs()}"
                assert {v["status"] for v in views.values()} == {"succeeded"}, logs()
                assert a.proc is not None and a.proc.poll() is not None  # A stayed dead throughout
        finally:
            _stop_all([b, api])
            a.kill()
    final = script.counts()
    final_tools = _tool_executions(side)

    # Adopted by B, through the heartbeat mechanism.
    after = _workflows(postgres_url, list(run_of))
    assert after == dict.fromkeys(run_of, ("SUCCESS", "worker-b")), after
    workers = _worker_rows(postgres_url)
    assert set(workers) == {"worker-a", "worker-b"}, workers
    dead = workers["worker-a"]
    assert dead["recovered_by"] == "worker-b" and dead["stopped_at"] is None, dead
    silent = (dead["recovered_at"] - dead["heartbeat_at"]).total_seconds()
    assert silent > 2.0, f"worker-a was claimed after only {silent:.2f}s of silence (worker_timeout 2)"
    assert workers["worker-b"]["recovered_by"] is None
    assert f"worker worker-a is dead: resumed its {ADOPTED} unfinished runs here" in b.log_path.read_text(
        errors="replace"
    )
    resumed_after = [script.times(m, 2)[-1] - killed_at for m in run_of.values()]
    assert min(resumed_after) > 1.0, f"runs resumed {min(resumed_after):.2f}s after the kill"

    # Nothing checkpointed ran again: the first request and the tool call once each; only the
    # second request, in flight at the kill, was sent again.
    repeated: list[str] = []
    for run_id, (model_steps, tool_done) in done.items():
        marker = run_of[run_id]
        for kind in (1, 2)[:model_steps]:
            if final[(marker, kind)] != seen[(marker, kind)]:
                repeated.append(f"{marker}: model request {kind} repeated after its checkpoint")
        if tool_done and final_tools[run_id] != tools[run_id]:
            repeated.append(f"{marker}: tool call repeated after its checkpoint")
    assert repeated == []
    assert all(final[(m, 1)] == 1 and final[(m, 2)] == 2 for m in run_of.values()), final
    assert all(final_tools[r] == 1 for r in run_of), final_tools
