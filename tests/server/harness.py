"""Real `keel serve` processes on loopback, for the server tests.

A test project with one agent, `worker`: its model asks for the `record` tool, then answers.
The tool appends its call's idempotency key to a side file, so a test can count executions. The
fake provider runs in the test process (a `FakeLLMThread`) and counts requests per run and kind
(1: the first request, 2: the one after the tool result), so it survives server kills.
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from keel.testing.fake_llm import ChatRequest, FakeLLMThread, Reply, ToolCallReply

TOOL = '''
import os
from pydantic_ai import RunContext


def record(ctx: RunContext, n: int) -> str:
    """Record that item n was handled."""
    with open(os.environ["SIDE_FILE"], "a") as f:
        f.write(ctx.deps.idempotency_key(ctx) + "\\n")
    return f"recorded {n}"
'''


class CountingScript:
    """First request: call `record`; after the tool result: answer. Counts (run marker, kind)."""

    def __init__(self) -> None:
        self.counts: collections.Counter[tuple[str, int]] = collections.Counter()
        self._lock = threading.Lock()

    def __call__(self, request: ChatRequest) -> Reply:
        marker = (request.last_user or "").strip()
        kind = 2 if request.tool_results else 1
        with self._lock:
            self.counts[(marker, kind)] += 1
        if kind == 1:
            return Reply(tool_calls=[ToolCallReply(name="record", arguments={"n": 1})])
        return Reply(text=f"done {marker}")

    def snapshot(self) -> collections.Counter[tuple[str, int]]:
        with self._lock:
            return collections.Counter(self.counts)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_project(
    root: Path,
    base_url: str,
    *,
    queue: str = "",
    extra_server: str = "",
    gateway: str = "auth: off\nanonymous: {scopes: [runs:write, runs:read, admin]}",
) -> Path:
    """The test project; `gateway` is its `gateway:` section (authentication off by default: the
    server tests are about runs; tests/gateway covers who may call)."""
    (root / "agents").mkdir(parents=True, exist_ok=True)
    (root / "tools").mkdir(exist_ok=True)
    lines = [
        "project: servertest",
        "models:",
        "  fake:",
        "    provider: openai-compatible",
        "    model: fake-model",
        f"    base_url: {base_url}",
        "    api_key_env: FAKE_KEY",
        "server:",
        "  poll_interval: 0.05",
        "  heartbeat_interval: 0.5",
        "  worker_timeout: 2",
        "  shutdown_grace: 1",
        *("  " + line for line in textwrap.dedent(extra_server).splitlines() if line.strip()),
        "gateway:",
        *("  " + line for line in textwrap.dedent(gateway).splitlines() if line.strip()),
    ]
    (root / "keel.yaml").write_text("\n".join(lines) + "\n")
    (root / "tools" / "__init__.py").write_text("")
    (root / "tools" / "side.py").write_text(TOOL)
    (root / "agents" / "worker.yaml").write_text(
        textwrap.dedent(
            """\
            name: worker
            model: fake
            instructions: Handle the item.
            tools: [tools.side:record]
            timeouts: {run: 120, model_request: 60}
            retry_options: {attempts: 2, initial_delay: 0.1}
            """
        )
        + textwrap.dedent(queue)
    )
    return root


class KeelServer:
    """One `keel serve` subprocess; `kill()` sends SIGKILL, `start()` starts it (again)."""

    def __init__(
        self,
        project: Path,
        database_url: str,
        env: dict[str, str],
        *,
        role: str = "all",
        worker_id: str | None = None,
        port: int | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.project, self.database_url, self.role, self.worker_id = project, database_url, role, worker_id
        self.args = args  # more `keel serve` options, e.g. ("--reload",)
        self.port = port or free_port()
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = project / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        cmd = [
            sys.executable,
            "-m",
            "keel",
            "serve",
            str(self.project),
            "--port",
            str(self.port),
            "--role",
            self.role,
        ]
        if self.worker_id:
            cmd += ["--worker-id", self.worker_id]
        cmd += self.args
        env = {**os.environ, **self.env, "KEEL_DATABASE_URL": self.database_url, "FAKE_KEY": "x"}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"keel serve exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"keel serve did not become ready within {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def fake_provider() -> Iterator[tuple[FakeLLMThread, CountingScript]]:
    script = CountingScript()
    with FakeLLMThread(script) as fake:
        yield fake, script


def wait_all(client: httpx.Client, run_ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Poll until every run has ended; returns their views."""
    deadline = time.monotonic() + timeout
    views: dict[str, dict[str, Any]] = {}
    pending = list(run_ids)
    while pending and time.monotonic() < deadline:
        still: list[str] = []
        for run_id in pending:
            response = client.get(f"/v1/runs/{run_id}")
            view = response.json() if response.status_code == 200 else {}
            if view.get("status") in ("succeeded", "failed", "timed_out", "cancelled"):
                views[run_id] = view
            else:
                still.append(run_id)
        pending = still
        if pending:
            time.sleep(0.2)
    return views
