"""The crash scenario shared by the SIGKILL test and `bench.server_crash`.

A real `keel serve` gets `runs` runs (each: a model request that calls the `record` tool, the
tool, a second model request that answers), each with an Idempotency-Key. While they are in
flight the server is SIGKILLed several times and restarted with the same worker id. Right after
each kill, what survived is read from DBOS's own tables (the completed model and tool steps); at
the end, the fake provider's counters (in this process, so they outlive the server) and the tool's
side file tell whether any of those completed steps happened again. Steps that were in flight at
a kill may run again: that is the at-least-once contract, and it is counted separately.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from keel.durable.engine import system_database_url
from tests.server.harness import KeelServer, fake_provider, wait_all, write_project

Checkpoints = dict[str, tuple[int, bool]]  # run id -> (completed model steps, tool step completed)


def checkpoints(database_url: str) -> Checkpoints:
    """Per run: completed model steps, and whether its tool step completed, from DBOS's table."""
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


def stored_events(database_url: str) -> collections.Counter[tuple[str, str]]:
    """(run id, event type) -> how many of the run's step events Keel's `run_events` table holds."""
    from keel.store.engine import sync_engine
    from keel.store.tables import run_events

    engine = sync_engine(database_url)
    try:
        with engine.connect() as c:
            rows = c.execute(sa.select(run_events.c.workflow_id, run_events.c.event)).all()
    finally:
        engine.dispose()
    return collections.Counter((workflow, str(event.get("type"))) for workflow, event in rows)


def tool_executions(side: Path) -> collections.Counter[str]:
    """Executions of the `record` tool per run id (the tool appends `<run_id>:<call id>`)."""
    if not side.exists():
        return collections.Counter()
    return collections.Counter(line.split(":")[0] for line in side.read_text().splitlines() if line)


@dataclass
class CrashReport:
    runs: int
    kills: int
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    unfinished: int = 0
    repeated: list[str] = field(default_factory=list)  # completed steps that happened again
    missing: list[str] = field(default_factory=list)  # runs that never made one of their steps
    runs_checkpointed_at_kill: list[int] = field(default_factory=list)
    model_requests: int = 0  # what the provider saw, in all
    tool_executions: int = 0
    restart_s: list[float] = field(default_factory=list)  # restart until /readyz answers
    drain_s: float = 0.0  # from the last restart until every run had ended
    replay_same_run: bool = False  # a repeated Idempotency-Key returned the same run...
    replay_new_requests: int = -1  # ...and caused this many provider requests (0 expected)
    # Runs under way at a kill (a model step checkpointed) whose result says they started after it:
    # their start, which their timeout budget counts from, was lost in the recovery.
    restarted_starts: list[str] = field(default_factory=list)
    # Runs whose tool step completed but whose stored events lack its tool_started or tool_finished
    # (a completed step is not executed again, so events it had not stored would be lost for good).
    lost_events: list[str] = field(default_factory=list)
    server_tail: str = ""

    @property
    def succeeded(self) -> int:
        return self.statuses.get("succeeded", 0)

    @property
    def reexecuted(self) -> tuple[int, int]:
        """Model requests and tool calls made more than once: steps in flight at a kill."""
        return self.model_requests - 2 * self.runs, self.tool_executions - self.runs


def run_crash_scenario(
    workdir: Path,
    database_url: str,
    *,
    runs: int = 200,
    kill_after: Sequence[float] = (1.0, 2.2, 1.2),
    latency_ms: float = 1500,
    timeout: float = 120,
) -> CrashReport:
    """Submit `runs` runs, SIGKILL the server after each delay in `kill_after` (restarting it each
    time), wait for every run to end, and report what happened."""
    side = workdir / "side.txt"
    report = CrashReport(runs=runs, kills=len(kill_after))
    snapshots: list[tuple[Checkpoints, collections.Counter[tuple[str, int]], collections.Counter[str]]] = []
    killed_at: list[datetime] = []
    views: dict[str, dict[str, Any]] = {}
    run_of: dict[str, str] = {}
    with fake_provider() as (fake, script):
        fake.set_latency(latency_ms)  # every model request is in flight a while: kills land mid-run
        project = write_project(
            workdir / "project", fake.base_url, queue=f"queue: {{worker_concurrency: {runs + 50}}}\n"
        )
        server = KeelServer(project, database_url, {"SIDE_FILE": str(side)}, worker_id="crash-worker")
        server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                for i in range(runs):
                    marker = f"item-{i}"
                    response = client.post(
                        "/v1/agents/worker/runs", json={"input": marker}, headers={"Idempotency-Key": marker}
                    )
                    response.raise_for_status()
                    run_of[response.json()["run_id"]] = marker
            restarted = time.monotonic()
            for delay in kill_after:
                time.sleep(delay)
                server.kill()
                killed_at.append(datetime.now(UTC))
                snapshots.append((checkpoints(database_url), script.snapshot(), tool_executions(side)))
                restarted = time.monotonic()
                server.start()
                report.restart_s.append(time.monotonic() - restarted)
            with httpx.Client(base_url=server.url, timeout=30) as client:
                views = wait_all(client, list(run_of), timeout=timeout)
                report.drain_s = time.monotonic() - restarted
                report.statuses.update(v["status"] for v in views.values())
                report.unfinished = runs - len(views)
                before = sum(script.snapshot().values())
                again = client.post(
                    "/v1/agents/worker/runs", json={"input": "item-0"}, headers={"Idempotency-Key": "item-0"}
                )
                report.replay_same_run = again.status_code == 200 and again.json().get("run_id") in run_of
                report.replay_new_requests = sum(script.snapshot().values()) - before
        finally:
            report.server_tail = server.tail()
            server.stop()
        final_seen = script.snapshot()
    final_tools = tool_executions(side)
    for (done, seen, tools), killed in zip(snapshots, killed_at, strict=True):
        report.runs_checkpointed_at_kill.append(sum(1 for model_steps, _ in done.values() if model_steps))
        for run_id, (model_steps, tool_done) in done.items():
            marker = run_of[run_id]
            started = (views.get(run_id) or {}).get("started_at")
            if model_steps and started and datetime.fromisoformat(started) > killed:
                report.restarted_starts.append(
                    f"{marker}: started {started}, under way at the kill at {killed}"
                )
            for kind in (1, 2)[:model_steps]:
                if final_seen[(marker, kind)] != seen[(marker, kind)]:
                    report.repeated.append(f"{marker}: model request {kind} repeated after its checkpoint")
            if tool_done and final_tools[run_id] != tools[run_id]:
                report.repeated.append(f"{marker}: tool call repeated after its checkpoint")
    events = stored_events(database_url)
    for run_id, marker in run_of.items():
        if events[(run_id, "tool_started")] < 1 or events[(run_id, "tool_finished")] < 1:
            report.lost_events.append(marker)
    for run_id, marker in run_of.items():
        if final_seen[(marker, 1)] < 1 or final_seen[(marker, 2)] < 1 or final_tools[run_id] < 1:
            report.missing.append(marker)
    report.model_requests = sum(
        count for (marker, _), count in final_seen.items() if marker in run_of.values()
    )
    report.tool_executions = sum(final_tools[run_id] for run_id in run_of)
    return report
