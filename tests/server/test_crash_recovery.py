"""SIGKILL a real `keel serve` in the middle of 200 runs, three times; every run must complete,
and no model request or tool call that had been checkpointed may happen again.

What counts as "checkpointed" is read from DBOS's own tables right after each kill: that is
exactly what survived. The fake provider (in this process, so it outlives the server) counts
requests per run and kind; the tool appends its idempotency key to a side file.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from keel.durable.engine import system_database_url
from tests.server.harness import KeelServer, fake_provider, wait_all, write_project

RUNS = 200


def _checkpoints(database_url: str) -> dict[str, tuple[int, bool]]:
    """Per run: completed model steps, and whether its tool step completed."""
    url = system_database_url(database_url)
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    table = "operation_outputs" if url.startswith("sqlite") else "dbos.operation_outputs"
    try:
        with engine.connect() as c:
            rows = c.execute(sa.text(f"SELECT workflow_uuid, function_name FROM {table}")).all()
    finally:
        engine.dispose()
    models: collections.Counter[str] = collections.Counter()
    tools: set[str] = set()
    for workflow, name in rows:
        if name.endswith("__model.request"):
            models[workflow] += 1
        elif name == "keel.tool.record":
            tools.add(workflow)
    return {run: (models[run], run in tools) for run in set(models) | tools}


def _tool_executions(side: Path) -> collections.Counter[str]:
    if not side.exists():
        return collections.Counter()
    return collections.Counter(line.split(":")[0] for line in side.read_text().splitlines() if line)


def test_sigkill_three_times_during_200_runs(tmp_path: Path, database_url: str) -> None:
    side = tmp_path / "side.txt"
    with fake_provider() as (fake, script):
        fake.set_latency(1500)  # every model request is in flight for 1.5 s: kills land mid-run
        project = write_project(
            tmp_path / "project", fake.base_url, queue="queue: {worker_concurrency: 250}\n"
        )
        server = KeelServer(project, database_url, {"SIDE_FILE": str(side)}, worker_id="crash-worker")
        server.start()
        run_of: dict[str, str] = {}
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                for i in range(RUNS):
                    marker = f"item-{i}"
                    response = client.post(
                        "/v1/agents/worker/runs", json={"input": marker}, headers={"Idempotency-Key": marker}
                    )
                    assert response.status_code == 202, response.text
                    run_of[response.json()["run_id"]] = marker
            snapshots: list[
                tuple[
                    dict[str, tuple[int, bool]],
                    collections.Counter[tuple[str, int]],
                    collections.Counter[str],
                ]
            ] = []
            for kill_after in (1.0, 2.2, 1.2):
                time.sleep(kill_after)
                server.kill()
                done = _checkpoints(database_url)  # what survived the kill
                seen = script.snapshot()
                tools = _tool_executions(side)
                server.start()
                time.sleep(0.3)
                snapshots.append((done, seen, tools))  # compared below, once everything has finished
            with httpx.Client(base_url=server.url, timeout=30) as client:
                views = wait_all(client, list(run_of), timeout=120)
                assert len(views) == RUNS, f"{RUNS - len(views)} runs did not finish:\n{server.tail()}"
                assert {v["status"] for v in views.values()} == {"succeeded"}
                # Re-submitting with the same keys returns the same runs and runs nothing again.
                before = sum(script.snapshot().values())
                again = client.post(
                    "/v1/agents/worker/runs", json={"input": "item-0"}, headers={"Idempotency-Key": "item-0"}
                )
                assert again.status_code == 200 and again.json()["run_id"] in run_of
                assert sum(script.snapshot().values()) == before
        finally:
            server.stop()
        final_seen = script.snapshot()
        final_tools = _tool_executions(side)

    repeated: list[str] = []
    for done, seen, tools in snapshots:
        for run_id, (model_steps, tool_done) in done.items():
            marker = run_of[run_id]
            for kind in (1, 2)[:model_steps]:
                if final_seen[(marker, kind)] != seen[(marker, kind)]:
                    repeated.append(f"{marker}: model request {kind} repeated after its checkpoint")
            if tool_done and final_tools[run_id] != tools[run_id]:
                repeated.append(f"{marker}: tool repeated after its checkpoint")
    assert repeated == []
    # Every run made each request at least once and its tool call at least once.
    assert all(final_seen[(m, 1)] >= 1 and final_seen[(m, 2)] >= 1 for m in run_of.values())
    assert all(final_tools[r] >= 1 for r in run_of)
    assert sum(1 for done, _, _ in snapshots if done) >= 2, "the kills landed before any checkpoint"
