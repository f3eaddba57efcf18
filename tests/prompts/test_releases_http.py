"""Releases and prompts against a real `keel serve`: rollback under load, label permissions, tenants."""

from __future__ import annotations

import asyncio
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from keel.releases.deploy import deploy, rollback
from keel.testing.fake_llm import ChatRequest, FakeLLMThread, Reply
from keel.testing.fake_llm.latency import Latency
from tests.server.harness import KeelServer, wait_all

TEXTS = {1: "Release one speaks.", 2: "Release two speaks."}


def echo_system(request: ChatRequest) -> Reply:
    """The fake model answers with the system prompt it was sent."""
    system = next((m.content for m in request.messages if m.role == "system"), "")
    return Reply(text=system.strip())


def write_project(
    root: Path,
    base_url: str,
    gateway: str = "auth: off\nanonymous: {scopes: [runs:write, runs:read, admin, prompts:read]}",
) -> Path:
    (root / "agents").mkdir(parents=True, exist_ok=True)
    (root / "prompts").mkdir(exist_ok=True)
    lines = [
        "project: releasetest",
        "models:",
        f"  fake: {{provider: openai-compatible, model: fake-model, base_url: '{base_url}', api_key_env: FAKE_KEY}}",
        "server: {poll_interval: 0.05, heartbeat_interval: 0.5, worker_timeout: 5, shutdown_grace: 1}",
        "prompts: {refresh_interval: 0.2}",
        "gateway:",
        *("  " + line for line in textwrap.dedent(gateway).splitlines() if line.strip()),
    ]
    (root / "keel.yaml").write_text("\n".join(lines) + "\n")
    (root / "agents" / "helper.yaml").write_text(
        "model: fake\ninstructions: {prompt: helper}\nretry_options: {attempts: 2, initial_delay: 0.1}\n"
    )
    return root


def set_prompt(root: Path, text: str) -> None:
    (root / "prompts" / "helper.md").write_text(text + "\n")


@dataclass
class Submitted:
    at: float
    run_id: str
    status: int


def test_rollback_under_load_keeps_in_flight_runs_on_their_release(tmp_path: Path, database_url: str) -> None:
    with FakeLLMThread(echo_system, latency=Latency(ms=400)) as fake:
        root = write_project(tmp_path / "p", fake.base_url)
        for number in (1, 2):
            set_prompt(root, TEXTS[number])
            made = asyncio.run(deploy(root, database_url, actor="operator:test", environ={"FAKE_KEY": "x"}))
            assert made.release.number == number
        server = KeelServer(root, database_url, {})
        server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                assert client.get("/readyz").json()["release"] == 2
                submitted: list[Submitted] = []
                stop = threading.Event()

                def submit() -> None:
                    with httpx.Client(base_url=server.url, timeout=30) as own:
                        while not stop.is_set():
                            response = own.post("/v1/agents/helper/runs", json={"input": "go"})
                            run_id = response.json().get("run_id", "") if response.status_code < 500 else ""
                            submitted.append(Submitted(time.monotonic(), run_id, response.status_code))
                            time.sleep(0.03)

                worker = threading.Thread(target=submit)
                worker.start()
                time.sleep(2.0)
                rolled_at = time.monotonic()
                back = asyncio.run(rollback(database_url, None, actor="operator:test"))
                assert (back.release.number, back.previous) == (1, 2)
                time.sleep(2.5)
                stop.set()
                worker.join(30)

                assert submitted and all(s.status == 202 for s in submitted), [s.status for s in submitted]
                views = wait_all(client, [s.run_id for s in submitted], 90)
                assert len(views) == len(submitted)
        finally:
            server.stop()

    problems = []
    for item in submitted:
        view = views[item.run_id]
        release = view.get("release")
        if view["status"] != "succeeded":
            problems.append(f"{item.run_id}: {view['status']} {view.get('error')}")
        elif release not in TEXTS or view["output"] != TEXTS[release]:
            problems.append(f"{item.run_id}: release {release} answered {view['output']!r}")
        elif view["prompt_version"] != f"helper@1.0.{release - 1}":
            problems.append(f"{item.run_id}: release {release} recorded {view['prompt_version']}")
    assert problems == []
    before = [views[s.run_id] for s in submitted if s.at < rolled_at]
    after = [views[s.run_id] for s in submitted if s.at > rolled_at + 1.0]
    assert before and all(v["release"] == 2 for v in before)
    assert after and all(v["release"] == 1 for v in after)
    # Runs accepted on release 2 that were still running when release 1 became live finished on 2.
    from datetime import datetime

    rollback_wall = max(datetime.fromisoformat(v["ended_at"]) for v in before if v["release"] == 2)
    in_flight = [v for v in before if datetime.fromisoformat(v["ended_at"]) >= rollback_wall]
    assert in_flight and all(v["release"] == 2 for v in in_flight)
