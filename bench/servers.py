"""Shared machinery of the server benchmarks (bench.server_throughput, bench.server_inflight).

- Servers in subprocesses, each in its own process group: the bare FastAPI endpoint
  (bench/bare_server.py under uvicorn), the same endpoint on DBOS alone (bench/dbos_floor_server.py)
  and `keel serve` on a throwaway project. Start-up waits for
  `/readyz` (bounded; a server that does not come up is an error quoting its stderr), and
  `stop()` ends the whole group (SIGTERM, then SIGKILL).
- What the OS says about a server: CPU seconds (utime + stime from /proc/<pid>/stat) and resident
  memory (VmRSS from /proc/<pid>/status), summed over its process group, and a sampler thread
  that tracks peak RSS every 100 ms.
- The clients: one run over HTTP against either server, and a closed-loop load generator.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from bench.common import percentile
from bench.loop_overhead import TOOL_SOURCE

PROMPT = "What is the weather in Paris?"
AGENT = "weather"
TERMINAL = frozenset({"succeeded", "failed", "timed_out", "cancelled"})
REPO_ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
POSTGRES_ADMIN = os.environ.get("KEEL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


class ServerError(RuntimeError):
    """A benchmark server did not start, or died."""


class RunFailed(RuntimeError):
    """One run over HTTP did not succeed."""


# --- the OS's view of a process group -------------------------------------------------------------


def _stat_fields(pid: int | str) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def group_pids(pgid: int) -> list[int]:
    """The live processes of a process group."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(entry)
            if fields is not None and int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(entry))
    return pids


def group_cpu_seconds(pgid: int) -> float:
    """utime + stime of every live process in the group, plus what the leader reaped from children."""
    total = 0
    for pid in group_pids(pgid):
        fields = _stat_fields(pid)
        if fields is None:
            continue
        total += int(fields[11]) + int(fields[12])
        if pid == pgid:
            total += int(fields[13]) + int(fields[14])
    return total / CLK_TCK


def pid_cpu_seconds(pid: int) -> float:
    """utime + stime of one process."""
    fields = _stat_fields(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / CLK_TCK


def postgres_cpu_seconds() -> float | None:
    """CPU of the local Postgres server, all databases: its live processes plus what the postmaster
    reaped from exited backends. None if no `postgres` process is visible."""
    processes: dict[str, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if raw[raw.find("(") + 1 : raw.rfind(")")] == "postgres":
            processes[entry] = raw.rsplit(")", 1)[1].split()
    if not processes:
        return None
    total = 0
    for fields in processes.values():
        total += int(fields[11]) + int(fields[12])
        if fields[1] not in processes:  # the postmaster: add its reaped backends
            total += int(fields[13]) + int(fields[14])
    return total / CLK_TCK


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def hwm_kb(pid: int) -> int:
    """VmHWM: the process's peak resident set since it started (kernel-tracked)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def group_rss_kb(pgid: int) -> int:
    return sum(rss_kb(pid) for pid in group_pids(pgid))


class RssSampler:
    """Samples a process group's resident memory every `interval` seconds in a thread (so a busy
    event loop in this process does not delay the samples). Use as a context manager."""

    def __init__(self, pgid: int, interval: float = 0.1) -> None:
        self.pgid = pgid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        start = time.perf_counter()
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - start, group_rss_kb(self.pgid)))
            self._stop.wait(self.interval)

    @property
    def peak_kb(self) -> int:
        return max((kb for _, kb in self.samples), default=0)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


# --- servers in subprocesses -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_open_files_limit(wanted: int = 65536) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards `wanted` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, so `finally` blocks stop the servers as Ctrl-C does."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class ServerProcess:
    """A server in its own process group (`pgid == pid`), listening on 127.0.0.1:`port`."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    stderr: IO[bytes]
    stopped: bool = False
    final_output: bytes | None = None  # the output kept at stop() (its temporary file is gone then)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        return group_cpu_seconds(self.pid)

    def rss_kb(self) -> int:
        return group_rss_kb(self.pid)

    def hwm_kb(self) -> int:
        return sum(hwm_kb(pid) for pid in group_pids(self.pid))

    def processes(self) -> int:
        return len(group_pids(self.pid))

    def _output(self) -> bytes | None:
        if self.final_output is not None:
            return self.final_output
        try:
            self.stderr.flush()
            with open(self.stderr.name, "rb") as f:
                return f.read()
        except (OSError, ValueError):
            return None

    def stderr_tail(self, lines: int = 30) -> str:
        data = self._output()
        if data is None:
            return "(stderr unavailable)"
        return "\n".join(data.decode(errors="replace").splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise ServerError(
                f"{self.name} exited with code {self.process.returncode}; stderr tail:\n{self.stderr_tail()}"
            )

    def wait_ready(self, timeout: float, path: str = "/readyz") -> float:
        """Poll `path` until it answers 200; returns the seconds it took."""
        started = time.perf_counter()
        deadline = started + timeout
        last = "no answer"
        with httpx.Client(timeout=2, trust_env=False) as client:
            while time.perf_counter() < deadline:
                self.check_alive()
                try:
                    response = client.get(self.url + path)
                    if response.status_code == 200:
                        return time.perf_counter() - started
                    last = f"HTTP {response.status_code}: {response.text[:200]}"
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                time.sleep(0.1)
        raise ServerError(
            f"{self.name} did not answer {path} with 200 within {timeout:.0f} s (last: {last}); "
            f"stderr tail:\n{self.stderr_tail()}"
        )

    def _wait_gone(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.process.poll()  # reaps the leader once it exits
            if not group_pids(self.pid):
                return True
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the whole process group, SIGKILL after `timeout`. Safe to call twice."""
        if self.stopped:
            return
        self.stopped = True
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                break
            if self._wait_gone(wait):
                break
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        output = self._output()
        self.final_output = b"" if output is None else output[-4_000_000:]
        self.stderr.close()


def spawn(
    name: str,
    argv: Sequence[str],
    port: int,
    *,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    ready_timeout: float = 60.0,
) -> ServerProcess:
    """Start a server in a new session (its own process group) and wait for /readyz."""
    stderr = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log")  # noqa: SIM115
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), full_env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=stderr,
        stderr=stderr,
        env=full_env,
        cwd=cwd,
        start_new_session=True,
    )
    server = ServerProcess(name, process, port, stderr)
    try:
        server.wait_ready(ready_timeout)
    except BaseException:
        server.stop()
        raise
    return server


def start_bare(fake_base_url: str, *, ready_timeout: float = 60.0) -> ServerProcess:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "bench.bare_server:app", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--workers", "1", "--log-level", "warning", "--no-access-log"]
    return spawn(
        "bare",
        argv,
        port,
        env={"BENCH_FAKE_BASE_URL": fake_base_url},
        cwd=REPO_ROOT,
        ready_timeout=ready_timeout,
    )


def start_floor(
    fake_base_url: str,
    database_url: str,
    *,
    worker_concurrency: int = 50,
    name: str = "floor",
    ready_timeout: float = 60.0,
) -> ServerProcess:
    """bench/dbos_floor_server.py under uvicorn: the bare endpoint, each run a DBOS workflow on a
    queue with its model requests and tool call as steps (no Keel code), on `database_url`."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "bench.dbos_floor_server:app", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--workers", "1", "--log-level", "warning", "--no-access-log"]
    env = {
        "BENCH_FAKE_BASE_URL": fake_base_url,
        "FLOOR_DATABASE_URL": database_url,
        "FLOOR_WORKER_CONCURRENCY": str(worker_concurrency),
    }
    return spawn(name, argv, port, env=env, cwd=REPO_ROOT, ready_timeout=ready_timeout)


def floor_database_url(keel_url: str) -> str:
    """The floor server's DBOS database for a Keel database URL: a file of its own next to it on
    SQLite (`x.db` -> `x.floor.sqlite`), the same URL on Postgres (give it a database of its own)."""
    if keel_url.startswith("sqlite:///"):
        path = Path(keel_url.removeprefix("sqlite:///"))
        return f"sqlite:///{path.with_name(path.stem + '.floor.sqlite')}"
    return keel_url


def log_findings(server: ServerProcess, limit: int = 8) -> list[str]:
    """Warning, error and traceback lines from a server's output, for the report."""
    lines = server.stderr_tail(1_000_000).splitlines()
    hits = [line for line in lines if any(k in line for k in ("ERROR", "WARNING", "Traceback", "Error"))]
    if not hits:
        return []
    head = f"{server.name}: {len(hits)} warning/error lines in its output, first {min(limit, len(hits))}:"
    return [head] + [f"    {line[:220]}" for line in hits[:limit]]


def keel_command() -> list[str]:
    script = Path(sys.executable).with_name("keel")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from keel.cli import main; main()"]


def write_keel_project(root: Path, fake_base_url: str, *, worker_concurrency: int = 50) -> Path:
    """The benchmark project for `keel serve`: the `weather` agent of bench.loop_overhead, with
    storage and tracing at their defaults (on), and its queue's per-worker concurrency."""
    (root / "agents").mkdir(parents=True, exist_ok=True)
    (root / "bench_tools.py").write_text(TOOL_SOURCE)
    (root / "keel.yaml").write_text(
        "project: bench\nmodels:\n"
        f'  fake: {{provider: openai-compatible, model: bench, base_url: "{fake_base_url}"}}\n'
        # The throughput benchmarks measure runs; the gateway's own cost is bench.gateway's.
        "gateway: {auth: 'off'}\n"
    )
    (root / "agents" / f"{AGENT}.yaml").write_text(
        textwrap.dedent(f"""
        model: fake
        instructions: You answer questions about the weather.
        tools: [bench_tools:get_weather]
        queue:
          worker_concurrency: {worker_concurrency}
        """)
    )
    return root


def start_keel(
    project: Path,
    database_url: str,
    *,
    role: str | None = None,
    worker_id: str | None = None,
    name: str = "keel",
    ready_timeout: float = 90.0,
) -> ServerProcess:
    """`keel serve PROJECT --host 127.0.0.1 --port P [--role R --worker-id ID]` on `database_url`."""
    port = free_port()
    argv = [*keel_command(), "serve", str(project), "--host", "127.0.0.1", "--port", str(port)]
    if role is not None:
        argv += ["--role", role]
    if worker_id is not None:
        argv += ["--worker-id", worker_id]
    env = {"KEEL_DATABASE_URL": database_url}
    return spawn(name, argv, port, env=env, cwd=project, ready_timeout=ready_timeout)


def keel_serve_help() -> str:
    result = subprocess.run(
        [*keel_command(), "serve", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    return result.stdout + result.stderr


# --- clients ---------------------------------------------------------------------------------------

RunOnce = Callable[[httpx.AsyncClient], Awaitable[object]]


def _describe(response: httpx.Response) -> str:
    return f"HTTP {response.status_code} from {response.request.method} {response.request.url.path}: {response.text[:300]}"


async def bare_run(client: httpx.AsyncClient, url: str) -> None:
    response = await client.post(f"{url}/run", json={"input": PROMPT})
    if response.status_code != 200 or not response.json().get("output"):
        raise RunFailed(_describe(response))


async def keel_poll(
    client: httpx.AsyncClient, url: str, run_id: str, *, interval: float, give_up_after: float
) -> dict[str, Any]:
    """GET /v1/runs/{run_id} every `interval` seconds until the run is terminal (bounded)."""
    deadline = time.perf_counter() + give_up_after
    while True:
        response = await client.get(f"{url}/v1/runs/{run_id}")
        if response.status_code != 200:
            raise RunFailed(_describe(response))
        data: dict[str, Any] = response.json()
        if data.get("status") in TERMINAL:
            return data
        if time.perf_counter() > deadline:
            raise RunFailed(f"run {run_id} still {data.get('status')!r} after {give_up_after:.0f} s")
        await asyncio.sleep(interval)


def check_succeeded(data: dict[str, Any]) -> None:
    if data.get("status") != "succeeded" or not data.get("output"):
        raise RunFailed(f"run {data.get('run_id')} ended {data.get('status')!r}: {data.get('error')}")


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc) or repr(exc)}"


async def keel_run(
    client: httpx.AsyncClient,
    url: str,
    *,
    wait: float = 30.0,
    poll_interval: float = 0.05,
    give_up_after: float = 120.0,
) -> dict[str, Any]:
    """Create a run with `wait`; if it is not done by then (202), poll it until it is. Returns the
    finished run's JSON; raises RunFailed unless it succeeded."""
    response = await client.post(f"{url}/v1/agents/{AGENT}/runs", json={"input": PROMPT, "wait": wait})
    if response.status_code == 200:
        data: dict[str, Any] = response.json()
    elif response.status_code == 202:
        run_id = response.json()["run_id"]
        data = await keel_poll(client, url, run_id, interval=poll_interval, give_up_after=give_up_after)
    else:
        raise RunFailed(_describe(response))
    check_succeeded(data)
    return data


def round_robin(run: Callable[[httpx.AsyncClient, str], Awaitable[object]], urls: Sequence[str]) -> RunOnce:
    """A RunOnce that sends successive runs to `urls` in turn."""
    cycle = itertools.cycle(urls)

    async def run_once(client: httpx.AsyncClient) -> object:
        return await run(client, next(cycle))

    return run_once


def make_client(connections: int, timeout: float = 120.0) -> httpx.AsyncClient:
    """A keep-alive pool of `connections`. Idle connections are dropped after 2 s: httpx's default
    (5 s) equals uvicorn's `timeout_keep_alive`, and a busy server closing an idle connection just
    as the client reuses it shows up as a ReadError that no run caused."""
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=2.0
    )
    return httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False)


@dataclass
class Cell:
    """One measured cell: `runs` closed-loop runs at `concurrency` against a set of servers."""

    label: str
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    wall: float = 0.0
    server_cpu: float = 0.0  # seconds, summed over the servers' process groups
    client_cpu: float = 0.0  # seconds, this process
    provider_cpu: float = 0.0  # seconds, the fake provider's process
    postgres_cpu: float | None = None  # seconds, the whole local Postgres server
    provider_requests: int | None = None
    load: float = 0.0  # the machine's 1-minute load average at the cell's end

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def runs_per_s(self) -> float:
        return self.ok / self.wall if self.wall else 0.0

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000

    @property
    def server_cpu_ms_per_run(self) -> float:
        return self.server_cpu / max(1, self.ok + self.errors) * 1000

    @property
    def client_cpu_ms_per_run(self) -> float:
        return self.client_cpu / max(1, self.ok + self.errors) * 1000

    @property
    def postgres_cpu_ms_per_run(self) -> float | None:
        if self.postgres_cpu is None:
            return None
        return self.postgres_cpu / max(1, self.ok + self.errors) * 1000

    @property
    def provider_cpu_ms_per_run(self) -> float:
        return self.provider_cpu / max(1, self.ok + self.errors) * 1000


async def closed_loop(
    client: httpx.AsyncClient,
    run_once: RunOnce,
    runs: int,
    concurrency: int,
    servers: Sequence[ServerProcess],
    label: str = "",
) -> Cell:
    """`concurrency` clients, each starting its next run as soon as its last one ends, until `runs`
    runs are done. Measures wall time, latencies, and the servers' and this process's CPU."""
    cell = Cell(label, concurrency)
    tickets = iter(range(runs))

    async def worker() -> None:
        for _ in tickets:
            started = time.perf_counter()
            try:
                await run_once(client)
            except (RunFailed, httpx.HTTPError, KeyError, ValueError) as exc:
                cell.errors += 1
                if len(cell.error_samples) < 5:
                    cell.error_samples.append(describe_error(exc))
            else:
                cell.latencies.append(time.perf_counter() - started)

    cpu0 = [s.cpu_seconds() for s in servers]
    client0 = time.process_time()
    wall0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cell.wall = time.perf_counter() - wall0
    cell.client_cpu = time.process_time() - client0
    cell.server_cpu = sum(s.cpu_seconds() - c for s, c in zip(servers, cpu0, strict=True))
    cell.load = os.getloadavg()[0]
    for server in servers:
        server.check_alive()
    return cell
