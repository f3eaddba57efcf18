"""Releases and prompts against a real `keel serve`: rollback under load, label permissions, tenants."""

from __future__ import annotations

import asyncio
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def _keys(url: str) -> dict[str, str]:
    from keel.store.keys import KeyStore

    async def make() -> dict[str, str]:
        async with KeyStore(url) as store:
            made = {
                "writer": await store.create(
                    "w", ["prompts:read", "prompts:write", "runs:write"], tenant_id="acme"
                ),
                "deployer": await store.create(
                    "d", ["prompts:read", "prompts:write", "prompts:deploy"], tenant_id="acme"
                ),
                "reader": await store.create("r", ["prompts:read"], tenant_id="acme"),
                "other": await store.create(
                    "o", ["prompts:read", "prompts:write", "runs:write"], tenant_id="globex"
                ),
                "admin": await store.create("a", ["admin"], tenant_id="acme"),
            }
            return {name: created.key for name, created in made.items()}

    return asyncio.run(make())


def test_prompt_api_permissions_protected_labels_and_tenants(tmp_path: Path, sqlite_url: str) -> None:
    with FakeLLMThread(echo_system) as fake:
        root = write_project(tmp_path / "p", fake.base_url, gateway="auth: required")
        set_prompt(root, "---\nvariables: [team]\n---\nHelp {{ team }}.")
        (root / "agents" / "helper.yaml").write_text(
            "model: fake\ninstructions: {prompt: helper, variables: {team: ops}}\n"
        )
        asyncio.run(deploy(root, sqlite_url, actor="operator:test", environ={"FAKE_KEY": "x"}))
        keys = _keys(sqlite_url)
        server = KeelServer(root, sqlite_url, {})
        server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:

                def as_(who: str) -> dict[str, str]:
                    return {"authorization": f"Bearer {keys[who]}"}

                listed = client.get("/v1/prompts", headers=as_("reader")).json()["prompts"]
                assert [(p["name"], p["latest"]) for p in listed] == [("helper", "1.0.0")]
                body = {"template": "Assist {{ team }} quickly.", "variables": ["team"], "message": "faster"}
                assert (
                    client.post("/v1/prompts/helper/versions", json=body, headers=as_("reader")).status_code
                    == 403
                )
                made = client.post("/v1/prompts/helper/versions", json=body, headers=as_("writer"))
                assert (
                    made.status_code == 201
                    and made.json()["version"] == "1.0.0"
                    and made.json()["scope"] == "tenant"
                )
                bad = client.post(
                    "/v1/prompts/helper/versions",
                    json={"template": "{{ a }}", "variables": []},
                    headers=as_("writer"),
                )
                assert bad.status_code == 422 and bad.json()["code"] == "prompt_variables"

                # production is protected: prompts:write is not enough, prompts:deploy is.
                move = {"version": "1.0.0", "reason": "canary passed"}
                refused = client.put("/v1/prompts/helper/labels/production", json=move, headers=as_("writer"))
                assert refused.status_code == 403 and refused.json()["code"] == "label_protected"
                staging = client.put("/v1/prompts/helper/labels/staging", json=move, headers=as_("writer"))
                assert staging.status_code == 200 and staging.json()["scope"] == "tenant"
                moved = client.put("/v1/prompts/helper/labels/production", json=move, headers=as_("deployer"))
                assert moved.status_code == 200, moved.text

                # acme's runs now get acme's version; globex still gets the project's.
                def run(who: str, **extra: object) -> httpx.Response:
                    return client.post(
                        "/v1/agents/helper/runs", json={"input": "x", "wait": 20, **extra}, headers=as_(who)
                    )

                acme = run("writer").json()
                assert (acme["output"], acme["prompt_version"]) == ("Assist ops quickly.", "helper@1.0.0")
                globex = run("other").json()
                assert (globex["output"], globex["release"]) == ("Help ops.", 1)
                history = client.get("/v1/prompts/helper", headers=as_("reader")).json()
                assert {m["moved_by"].split(":")[0] for m in history["moves"]} == {"service", "operator"}
                assert len(client.get("/v1/prompts/helper", headers=as_("other")).json()["moves"]) == 1
                assert (
                    client.get("/v1/prompts/helper/versions/1.0.0", headers=as_("other")).json()["scope"]
                    == "project"
                )
                diff = client.get(
                    "/v1/prompts/helper/diff", params={"from": "1.0.0", "to": "1.0.0"}, headers=as_("reader")
                )
                assert diff.status_code == 200
                stats = client.get("/v1/prompts/helper/stats", headers=as_("reader")).json()
                assert stats["name"] == "helper"

                # Variables are checked when the run is accepted.
                unknown = run("writer", variables={"colour": "red"})
                assert unknown.status_code == 422 and unknown.json()["code"] == "prompt_variable_unknown"

                # Releases: admins only.
                assert client.get("/v1/releases", headers=as_("reader")).status_code == 403
                releases = client.get("/v1/releases", headers=as_("admin")).json()
                assert releases["live"]["release"] == 1 and releases["serving"] == 1
        finally:
            server.stop()


def test_serve_reload_makes_a_changed_prompt_file_live_within_2_seconds(
    tmp_path: Path, sqlite_url: str
) -> None:
    with FakeLLMThread(echo_system) as fake:
        root = write_project(tmp_path / "p", fake.base_url)
        set_prompt(root, "Version A of the prompt.")
        # A deployed release exists, but --reload serves the files, not the release.
        asyncio.run(deploy(root, sqlite_url, actor="operator:test", environ={"FAKE_KEY": "x"}))
        server = KeelServer(root, sqlite_url, {}, args=("--reload",))
        server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:

                def answer() -> dict[str, Any]:
                    response = client.post("/v1/agents/helper/runs", json={"input": "x", "wait": 20})
                    assert response.status_code == 200, response.text
                    return dict(response.json())

                first = answer()
                assert first["output"] == "Version A of the prompt." and first["prompt_version"].startswith(
                    "helper@file:"
                )
                assert first["release"] is None
                set_prompt(root, "Version B of the prompt.")
                changed = time.monotonic()
                while True:
                    view = answer()
                    if view["output"] == "Version B of the prompt.":
                        live_after = time.monotonic() - changed
                        break
                    assert time.monotonic() - changed < 10, "the changed prompt never went live"
                    time.sleep(0.05)
                # A broken change is refused: the last good version stays live.
                set_prompt(root, "---\nvariables: [nope]\n---\nNo placeholder here.")
                time.sleep(1.5)
                assert answer()["output"] == "Version B of the prompt."
        finally:
            server.stop()
    print(f"--reload: the changed prompt was live after {live_after:.2f} s")
    assert live_after <= 2.0, f"live after {live_after:.2f} s"
