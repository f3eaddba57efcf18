"""Human approval through a real `keel serve`: runs wait without a worker, people decide over HTTP,
an approved call runs exactly once, across SIGKILLs and restarts, on SQLite and Postgres.

The fake model is adversarial: it calls the gated `transfer` tool again after every answer, each
time with other arguments (amount 1, 2, 3, ...), until it has had four answers.
"""

from __future__ import annotations

import json
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from keel.testing.callback_receiver import CallbackReceiver
from keel.testing.fake_llm import ChatRequest, FakeLLMThread, Reply, ToolCallReply
from tests.server.harness import KeelServer

TOOL = '''
import os
from pydantic_ai import RunContext


def transfer(ctx: RunContext, amount: int, to: str) -> str:
    """Move money."""
    with open(os.environ["SIDE_FILE"], "a") as f:
        f.write(f"{amount} {ctx.deps.idempotency_key(ctx)}\\n")
    return f"transferred {amount} to {to}"
'''


def adversary(request: ChatRequest) -> Reply:
    """Tries `transfer` again after every tool answer, with other arguments, four times."""
    answers = [m for m in request.messages if m.role == "tool"]
    last = request.last_user or ""
    if "handed this run to a person" in last:  # the summary agent
        return Reply(text="SUMMARY: the user wants a person; nothing was tried")
    if "talk to a human" in last:
        return Reply(text="ok")
    if len(answers) >= 4:
        return Reply(text="finished: " + " | ".join(a.content[:40] for a in answers))
    n = len(answers) + 1
    return Reply(tool_calls=[ToolCallReply(name="transfer", arguments={"amount": n, "to": f"acct-{n}"})])


def write_project(
    root: Path, base_url: str, *, approval: str = "{reason: money leaves the company}", extra: str = ""
) -> Path:
    (root / "agents").mkdir(parents=True, exist_ok=True)
    (root / "tools").mkdir(exist_ok=True)
    (root / "keel.yaml").write_text(
        textwrap.dedent(
            f"""\
            project: approvals
            models:
              fake: {{provider: openai-compatible, model: fake-model, base_url: "{base_url}", api_key_env: FAKE_KEY}}
            server: {{poll_interval: 0.05, heartbeat_interval: 0.5, worker_timeout: 2, shutdown_grace: 1}}
            gateway:
              auth: off
              anonymous: {{scopes: [runs:write, runs:read, approvals:decide, admin]}}
            """
        )
        + extra
    )
    (root / "tools" / "__init__.py").write_text("")
    (root / "tools" / "money.py").write_text(TOOL)
    (root / "agents" / "payer.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: payer
            model: fake
            instructions: Pay what you are asked to pay.
            tools:
              - {{function: tools.money:transfer, approval: {approval}}}
            timeouts: {{run: 120, model_request: 30}}
            escalation: {{human_request: true, summary_agent: summarizer}}
            """
        )
    )
    (root / "agents" / "summarizer.yaml").write_text(
        "name: summarizer\nmodel: fake\ninstructions: Summarize the run for the person taking over.\n"
    )
    return root


class Env:
    def __init__(self, root: Path, server: KeelServer, fake: FakeLLMThread) -> None:
        self.root, self.server, self.fake = root, server, fake
        self.side = root / "side.txt"

    @property
    def url(self) -> str:
        return self.server.url

    def executions(self) -> list[str]:
        return self.side.read_text().splitlines() if self.side.exists() else []

    def submit(self, text: str = "pay acct") -> str:
        answer = httpx.post(f"{self.url}/v1/agents/payer/runs", json={"input": text, "wait": 0}, timeout=10)
        assert answer.status_code in (200, 202), answer.text
        return str(answer.json()["run_id"])

    def run(self, run_id: str) -> dict[str, Any]:
        answer = httpx.get(f"{self.url}/v1/runs/{run_id}", timeout=10)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def wait_for(
        self, run_id: str, status: str, *, pending: int | None = None, timeout: float = 30
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        view: dict[str, Any] = {}
        while time.monotonic() < deadline:
            view = self.run(run_id)
            waiting = [a for a in view.get("approvals", []) if a["status"] == "pending"]
            if view["status"] == status and (pending is None or len(waiting) == pending):
                return view
            time.sleep(0.1)
        raise AssertionError(f"run {run_id} did not reach {status}: {view}\n{self.server.tail()}")

    def pending(self, run_id: str) -> dict[str, Any]:
        view = self.wait_for(run_id, "waiting_approval", pending=1)
        return next(a for a in view["approvals"] if a["status"] == "pending")

    def decide(self, approval_id: str, action: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.post(f"{self.url}/v1/approvals/{approval_id}/{action}", json=body or {}, timeout=10)


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> Iterator[Env]:
    with FakeLLMThread(adversary) as fake:
        root = write_project(tmp_path / "project", fake.base_url)
        server = KeelServer(root, database_url, {"SIDE_FILE": str(tmp_path / "project" / "side.txt")})
        server.start()
        try:
            yield Env(root, server, fake)
        finally:
            server.stop()


def test_adversarial_model_across_restarts_runs_the_approved_call_exactly_once(env: Env) -> None:
    run_id = env.submit()
    first = env.pending(run_id)
    assert (first["tool"], first["args"], first["reason"]) == (
        "transfer",
        {"amount": 1, "to": "acct-1"},
        "money leaves the company",
    )
    assert env.executions() == []

    assert env.decide(first["id"], "reject", {"reason": "wrong account"}).status_code == 200
    second = env.pending(run_id)
    assert second["args"]["amount"] == 2 and second["id"] != first["id"]

    env.server.kill()  # the run waits in the database only
    env.server.start()
    assert env.pending(run_id)["id"] == second["id"]
    assert env.executions() == []

    # A decision cannot be changed, nor made on a call that is no longer waiting.
    changed = env.decide(first["id"], "approve")
    assert changed.status_code == 409 and changed.json()["code"] == "approval_already_decided"
    assert env.decide(second["id"], "reject", {"reason": "no"}).status_code == 200
    assert env.decide(second["id"], "reject", {"reason": "no"}).status_code == 200  # the same again: fine
    third = env.pending(run_id)
    assert third["args"]["amount"] == 3
    assert env.executions() == []

    # Two reviewers approve at once: one decision, one continuation, one execution.
    answers: list[int] = []
    threads = [
        threading.Thread(target=lambda: answers.append(env.decide(third["id"], "approve").status_code))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200, 200, 200, 200]
    fourth = env.pending(run_id)  # the model tries once more after its transfer went through
    assert fourth["args"]["amount"] == 4
    assert [line.split()[0] for line in env.executions()] == ["3"]

    env.server.kill()
    env.server.start()
    assert env.decide(fourth["id"], "reject", {"reason": "enough"}).status_code == 200
    final = env.wait_for(run_id, "succeeded")
    assert final["output"].startswith("finished:")
    assert "transferred 3 to acct-3" in final["output"]
    assert [line.split()[0] for line in env.executions()] == ["3"]  # exactly one, the approved one
    statuses = [c["status"] for c in final["tool_calls"]]
    assert statuses.count("ok") == 1 and statuses.count("rejected") == 3
    assert final["model_requests"] == 5


def test_edit_cancel_events_and_bad_input(env: Env) -> None:
    run_id = env.submit()
    waiting = env.pending(run_id)
    bad = env.decide(waiting["id"], "approve", {"args": {"amount": "lots"}})
    assert (
        bad.status_code == 422
        and bad.json()["code"] == "invalid_arguments"
        and "amount" in bad.json()["detail"]
    )
    assert env.decide(waiting["id"], "reject", {}).status_code == 422  # a reason is required
    assert env.decide("ap_nope", "approve").status_code == 404
    inbox = httpx.get(f"{env.url}/v1/approvals", timeout=10).json()["approvals"]
    assert [a["id"] for a in inbox] == [waiting["id"]]
    listed = httpx.get(f"{env.url}/v1/runs", params={"status": "waiting_approval"}, timeout=10).json()["runs"]
    assert [(r["run_id"], r["approvals"][0]["id"]) for r in listed] == [(run_id, waiting["id"])]

    edited = env.decide(waiting["id"], "approve", {"args": {"amount": 7, "to": "acct-7"}, "comment": "fixed"})
    assert edited.status_code == 200 and edited.json()["edited_args"] == {"amount": 7, "to": "acct-7"}
    nxt = env.pending(run_id)
    assert [line.split()[0] for line in env.executions()] == ["7"]

    # The run's events, read from the start: the first stop, then what happened after it.
    with httpx.stream("GET", f"{env.url}/v1/runs/{run_id}/events", timeout=10) as stream:
        seen: list[tuple[int, dict[str, Any]]] = []
        event_id = None
        for line in stream.iter_lines():
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                seen.append((event_id or 0, json.loads(line[6:])))
                statuses = [e.get("status") for _, e in seen if e.get("type") == "status"]
                if statuses.count("waiting_approval") == 2:
                    break
    ids = [i for i, _ in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert any(e.get("type") == "tool_finished" and e.get("status") == "ok" for _, e in seen)

    cancelled = httpx.post(f"{env.url}/v1/runs/{run_id}/cancel", timeout=10)
    assert cancelled.status_code == 200, cancelled.text
    view = env.wait_for(run_id, "cancelled")
    assert view["error"]["category"] == "cancelled"
    assert env.decide(nxt["id"], "approve").status_code == 409  # cancelled with its run
    assert [line.split()[0] for line in env.executions()] == ["7"]


def test_timeout_rejects(tmp_path: Path, database_url: str) -> None:
    timeout_policy(tmp_path, database_url, "reject")


@pytest.mark.parametrize("policy", ["approve", "escalate"])
def test_timeout_approves_or_escalates(tmp_path: Path, sqlite_url: str, policy: str) -> None:
    """The sweeper's policies do not depend on the backend: SQLite only."""
    timeout_policy(tmp_path, sqlite_url, policy)


def timeout_policy(tmp_path: Path, database_url: str, policy: str) -> None:
    with CallbackReceiver(secrets=["hook-secret"]) as receiver, FakeLLMThread(adversary) as fake:
        extra = textwrap.dedent(
            f"""\
            approvals:
              sweep_interval: 0.2
              webhook: {{url: "{receiver.url}/review", secret_env: REVIEW_SECRET}}
            """
        )
        root = write_project(
            tmp_path / "p", fake.base_url, approval=f"{{timeout: 0.5, on_timeout: {policy}}}", extra=extra
        )
        side = tmp_path / "p" / "side.txt"
        server = KeelServer(root, database_url, {"SIDE_FILE": str(side), "REVIEW_SECRET": "hook-secret"})
        server.start()
        try:
            e = Env(root, server, fake)
            run_id = e.submit()
            if policy == "escalate":
                view = e.wait_for(run_id, "escalated")
                assert "within its timeout" in view["escalation"]["reason"]
                listed = httpx.get(f"{e.url}/v1/escalations", timeout=10).json()["escalations"]
                assert [x["run_id"] for x in listed] == [run_id]
                assert listed[0]["summary"].startswith("SUMMARY:")
                # The summary agent was given the record's summary: the request and where it got stuck.
                asked = [
                    r.last_user or "" for r in fake.requests() if "handed this run" in (r.last_user or "")
                ]
                assert asked and "pay acct" in asked[0] and "within its timeout" in asked[0]
                resolved = httpx.post(
                    f"{e.url}/v1/escalations/{listed[0]['id']}/resolve",
                    json={"resolution": "paid by phone"},
                    timeout=10,
                )
                assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
                assert e.executions() == []
            elif policy == "reject":
                view = e.wait_for(run_id, "succeeded", timeout=60)
                assert e.executions() == []  # every attempt timed out, rejected
                rejected = [c for c in view["tool_calls"] if c["status"] == "rejected"]
                assert len(rejected) == 4 and "by timeout" in rejected[0]["error"]
            else:
                view = e.wait_for(run_id, "succeeded", timeout=60)
                assert [line.split()[0] for line in e.executions()] == ["1", "2", "3", "4"]
            deliveries = receiver.wait_for(1, timeout=10)
            body = json.loads(deliveries[0].body)
            assert deliveries[0].signature_valid is True
            assert (
                body["type"] == "approval.requested"
                and body["run_id"] == run_id
                and body["tool"] == "transfer"
            )
            assert body["args"] == {"amount": 1, "to": "acct-1"}
        finally:
            server.stop()


def test_user_asking_for_a_person_is_escalated(env: Env) -> None:
    run_id = env.submit("I want to talk to a human about my transfer")
    view = env.wait_for(run_id, "escalated")
    assert view["escalation"]["trigger"] == "human_request"
    assert view["output"] is None and view["model_requests"] == 0
    listed = httpx.get(f"{env.url}/v1/escalations", timeout=10).json()["escalations"]
    # The summary agent rewrote the summary made from the run's record.
    assert listed[0]["run_id"] == run_id and listed[0]["summary"].startswith(
        "SUMMARY: the user wants a person"
    )
    assert view["escalation"]["summary"] == listed[0]["summary"]


def test_tool_allowlist_of_the_principal_who_asked(tmp_path: Path, sqlite_url: str) -> None:
    """The caller's principal reaches the run's guardrails: here the anonymous caller may not
    transfer at all (refused before any approval is asked), anyone else could."""
    with FakeLLMThread(adversary) as fake:
        root = write_project(tmp_path / "p", fake.base_url)
        agent = root / "agents" / "payer.yaml"
        agent.write_text(
            agent.read_text()
            + "guardrails:\n  - type: tools\n    principals:\n"
            + "      'anonymous:anonymous': {deny: [transfer]}\n      '*': {}\n"
        )
        server = KeelServer(root, sqlite_url, {"SIDE_FILE": str(tmp_path / "side.txt")})
        server.start()
        try:
            e = Env(root, server, fake)
            view = e.wait_for(e.submit(), "succeeded")
            assert "not allowed for anonymous:anonymous" in view["tool_calls"][0]["error"]
            assert view.get("approvals") is None and e.executions() == []
        finally:
            server.stop()
