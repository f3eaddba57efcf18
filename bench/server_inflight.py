"""1,000 runs in flight in one server process: memory per in-flight run, errors, completion.

The fake provider (its own subprocess) answers every model request after 5,000 ms, so each run of
bench.loop_overhead's one-tool agent (two model requests, one tool call) takes about 10 s, and all
1,000 runs are in flight at once. Measured per server (each a fresh subprocess in its own process
group): resident memory before the load (after a warm-up at 0 ms latency), peak resident memory
during the load (VmRSS of the process group sampled every 100 ms), memory growth per in-flight
run = (peak - baseline) / runs, errors, runs completed, total time, and the server's CPU time.

- keel, poll: `keel serve` with the agent's `queue.worker_concurrency: 1000`; each run is created
  with `wait: 0` (202), then the client polls `GET /v1/runs/{id}` (first after 2 x latency, then
  every --poll-interval s) until every run is terminal. The server holds runs, not connections.
- keel, hold: the same server, but 1,000 concurrent requests with a long `wait` (200 when done).
- bare: bench/bare_server.py under uvicorn, 1,000 concurrent `POST /run` requests held open.
- floor: bench/dbos_floor_server.py (the bare endpoint on DBOS alone: each request queues a DBOS
  workflow, worker concurrency 1,000, each model request and tool call a step; no Keel code) on
  the same backend as keel, 1,000 concurrent `POST /run` requests held open.

--repeat N measures the list of targets N times in turn (fresh servers each time) and reports
each target's median and range of KB per in-flight run.

    python -m bench.server_inflight [--runs 1000] [--latency-ms 5000] [--backend sqlite|postgres]
                                    [--targets keel-poll,keel-hold,bare,floor] [--repeat 1]

Target (issue #4): memory growth <= 200 KB per in-flight run, 0 errors, all runs completed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import machine_line, scratch_postgres
from bench.loop_overhead import RULES
from bench.servers import (
    AGENT,
    POSTGRES_ADMIN,
    PROMPT,
    TERMINAL,
    RssSampler,
    RunFailed,
    ServerError,
    ServerProcess,
    bare_run,
    check_succeeded,
    closed_loop,
    describe_error,
    keel_run,
    log_findings,
    make_client,
    raise_open_files_limit,
    round_robin,
    sigterm_as_interrupt,
    start_bare,
    start_floor,
    start_keel,
    write_keel_project,
)
from keel.testing.fake_llm import FakeLLMProcess, start_fake_llm_process

GROWTH_TARGET_KB = 200


@dataclass
class Result:
    target: str
    runs: int
    errors: int = 0
    completed: int = 0
    error_samples: list[str] = field(default_factory=list)
    total_s: float = 0.0
    submit_s: float | None = None
    client_spans: list[tuple[float, float]] = field(default_factory=list)  # request sent .. run ended
    server_spans: list[tuple[float, float]] = field(default_factory=list)  # the run's started_at .. ended_at
    baseline_kb: int = 0
    peak_kb: int = 0
    after_kb: int = 0
    hwm_kb: int = 0
    server_cpu_s: float = 0.0
    provider_requests: int = 0
    processes: int = 1
    load_started: float = 0.0  # epoch seconds
    load: float = 0.0  # the machine's 1-minute load average at the end of the load
    notes: list[str] = field(default_factory=list)

    @property
    def growth_kb_per_run(self) -> float:
        return (self.peak_kb - self.baseline_kb) / self.runs

    @property
    def max_in_flight(self) -> int:
        """Most runs alive at once as the client saw them: from sending the request to the run's end."""
        return max_overlap(self.client_spans)

    @property
    def max_running(self) -> int | None:
        """Most runs executing at once by the server's own timestamps (keel only)."""
        return max_overlap(self.server_spans) if self.server_spans else None

    @property
    def last_end_s(self) -> float | None:
        """When the last run ended (its own timestamp if it has one), seconds after the load began."""
        if not self.client_spans:
            return None
        return max(end for _, end in self.client_spans) - self.load_started

    def fail(self, exc: BaseException, phase: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(f"{phase}: {describe_error(exc)}"[:300])

    def finished(self, data: dict[str, Any] | None, sent: float) -> None:
        """A run ended: `data` is its JSON (keel) or None (bare: the response was its end)."""
        now = time.time()
        if data is not None:
            try:
                check_succeeded(data)
            except RunFailed as exc:
                self.fail(exc, "run")
                return
            started, ended = _timestamp(data, "started_at"), _timestamp(data, "ended_at")
            if started is not None and ended is not None:
                self.server_spans.append((started, ended))
            now = ended if ended is not None else now
        self.completed += 1
        self.client_spans.append((sent, now))


def max_overlap(spans: Sequence[tuple[float, float]]) -> int:
    """The most spans open at one instant."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    best = current = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best


def _timestamp(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


async def _gather_bounded(calls: Sequence[Callable[[], Awaitable[None]]], limit: int) -> None:
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[None]]) -> None:
        async with gate:
            await call()

    await asyncio.gather(*(one(c) for c in calls))


async def load_keel_poll(server: ServerProcess, args: argparse.Namespace, result: Result) -> None:
    """Create every run with wait 0 (an Idempotency-Key each, so a submission whose answer was lost
    is retried once without creating a second run), then poll until all are terminal."""
    submitted: dict[str, float] = {}  # run id -> when its POST was sent (epoch seconds)
    started = time.perf_counter()
    async with make_client(args.submit_concurrency, timeout=60) as client:

        async def submit() -> None:
            key, sent = uuid.uuid4().hex, time.time()
            for attempt in (1, 2):
                try:
                    response = await client.post(
                        f"{server.url}/v1/agents/{AGENT}/runs",
                        json={"input": PROMPT, "wait": 0},
                        headers={"Idempotency-Key": key},
                    )
                    if response.status_code not in (200, 202):
                        raise RunFailed(f"HTTP {response.status_code}: {response.text[:200]}")
                    submitted[response.json()["run_id"]] = sent
                    if attempt == 2:
                        replayed = response.headers.get("Idempotent-Replayed") == "true"
                        result.notes.append(
                            "a retried submission "
                            + ("found the run its lost answer had created" if replayed else "created the run")
                        )
                    return
                except (RunFailed, httpx.HTTPError, KeyError, ValueError) as exc:
                    result.fail(exc, "submit")
                    if not isinstance(exc, httpx.TransportError):
                        return

        await _gather_bounded([submit] * result.runs, args.submit_concurrency)
        result.submit_s = time.perf_counter() - started
        first_poll = started + 2 * args.latency_ms / 1000
        await asyncio.sleep(max(0.0, first_poll - time.perf_counter()))
        pending = set(submitted)
        deadline = time.perf_counter() + args.give_up

        def poll(run_id: str) -> Callable[[], Awaitable[None]]:
            async def go() -> None:
                try:
                    response = await client.get(f"{server.url}/v1/runs/{run_id}")
                    if response.status_code != 200:
                        raise RunFailed(f"HTTP {response.status_code}: {response.text[:200]}")
                    data = response.json()
                except (RunFailed, httpx.HTTPError, ValueError) as exc:
                    result.fail(exc, "poll")  # the run stays pending: polled again next round
                    return
                if data.get("status") in TERMINAL:
                    pending.discard(run_id)
                    result.finished(data, submitted[run_id])

            return go

        while pending and time.perf_counter() < deadline:
            round_started = time.perf_counter()
            await _gather_bounded([poll(r) for r in list(pending)], args.submit_concurrency)
            if pending:
                await asyncio.sleep(max(0.0, args.poll_interval - (time.perf_counter() - round_started)))
        for run_id in pending:
            result.fail(RunFailed(f"run {run_id} not terminal after {args.give_up:.0f} s of polling"), "poll")
    result.total_s = time.perf_counter() - started


async def load_held(
    server: ServerProcess,
    run: Callable[[httpx.AsyncClient, str], Awaitable[dict[str, Any] | None]],
    result: Result,
    request_timeout: float,
) -> None:
    """All runs at once, each one request held open until its run is done."""
    started = time.perf_counter()
    async with make_client(result.runs + 10, timeout=request_timeout) as client:

        async def one() -> None:
            sent = time.time()
            try:
                data = await run(client, server.url)
            except (RunFailed, httpx.HTTPError, KeyError, ValueError) as exc:
                result.fail(exc, "request")
            else:
                result.finished(data, sent)

        await asyncio.gather(*(one() for _ in range(result.runs)))
    result.total_s = time.perf_counter() - started


async def measure(
    target: str,
    server: ServerProcess,
    warm: Callable[[httpx.AsyncClient], Awaitable[object]],
    load: Callable[[Result], Awaitable[None]],
    fake: FakeLLMProcess,
    args: argparse.Namespace,
) -> Result:
    result = Result(target, args.runs, processes=server.processes())
    fake.set_latency(0)
    async with make_client(10) as client:
        warm_cell = await closed_loop(client, warm, args.warmup, 10, [server])
    if warm_cell.errors:
        raise ServerError(f"{target}: warm-up failed: {warm_cell.error_samples[0]}")
    fake.set_latency(args.latency_ms)
    fake.reset()
    await asyncio.sleep(1.0)  # let the server settle after the warm-up
    samples = []
    for _ in range(5):
        samples.append(server.rss_kb())
        await asyncio.sleep(0.1)
    result.baseline_kb = int(statistics.median(samples))
    cpu0 = server.cpu_seconds()
    result.load_started = time.time()
    with RssSampler(server.pid, args.sample_interval) as sampler:
        await load(result)
    result.server_cpu_s = server.cpu_seconds() - cpu0
    result.load = os.getloadavg()[0]
    result.peak_kb = sampler.peak_kb
    result.hwm_kb = server.hwm_kb()
    await asyncio.sleep(1.0)
    result.after_kb = server.rss_kb()
    result.provider_requests = fake.stats().requests
    server.check_alive()
    fake.set_latency(0)
    print(f"  {_row(result)}", flush=True)
    return result


HEADER = (
    f"  {'target':<10} {'runs':>5} {'errors':>6} {'done':>5} {'inflight':>8} {'running':>7} {'total s':>8} "
    f"{'submit s':>8} {'last end':>8} {'base MB':>8} {'peak MB':>8} {'after MB':>8} {'KB/run':>7} {'cpu s':>6} "
    f"{'req':>5} {'load':>5}"
)


def _row(r: Result) -> str:
    submit = "-" if r.submit_s is None else f"{r.submit_s:.2f}"
    last_end = "-" if r.last_end_s is None else f"{r.last_end_s:.2f}"
    running = "-" if r.max_running is None else str(r.max_running)
    return (
        f"{r.target:<10} {r.runs:5d} {r.errors:6d} {r.completed:5d} {r.max_in_flight:8d} {running:>7} "
        f"{r.total_s:8.2f} {submit:>8} {last_end:>8} {r.baseline_kb / 1024:8.1f} {r.peak_kb / 1024:8.1f} "
        f"{r.after_kb / 1024:8.1f} {r.growth_kb_per_run:7.1f} {r.server_cpu_s:6.2f} {r.provider_requests:5d} {r.load:5.2f}"
    )


async def main_async(args: argparse.Namespace) -> int:
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(targets) - {"keel-poll", "keel-hold", "bare", "floor"}
    if unknown:
        print(f"unknown target(s): {', '.join(sorted(unknown))}")
        return 2
    limit = raise_open_files_limit()
    print(machine_line())
    print(f"open files limit: {limit}")
    print(HEADER)
    hold_wait = 300.0  # keel's default server.max_wait: one request per run, however slow the server
    results: list[Result] = []
    notes: list[str] = []
    with contextlib.ExitStack() as stack:
        fake = stack.enter_context(start_fake_llm_process(script={"rules": RULES}))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="keel-inflight-")))
        project = write_keel_project(tmp / "project", fake.base_url, worker_concurrency=args.runs)
        for n, target in enumerate(targets * args.repeat):
            server: ServerProcess | None = None
            try:
                if target == "floor":
                    url = f"sqlite:///{tmp / f'floor-{n}.sqlite'}"
                    if args.backend == "postgres":
                        scratch = stack.enter_context(scratch_postgres(args.postgres))
                        if scratch is None:
                            notes.append(f"{target}: skipped, postgres not reachable")
                            continue
                        url = scratch
                    server = start_floor(
                        fake.base_url,
                        url,
                        worker_concurrency=args.runs,
                        name=target,
                        ready_timeout=args.ready_timeout,
                    )
                    warm = round_robin(bare_run, [server.url])

                    async def load(result: Result, server: ServerProcess = server) -> None:
                        await load_held(server, bare_run, result, request_timeout=hold_wait + 30)

                elif target == "bare":
                    server = start_bare(fake.base_url, ready_timeout=args.ready_timeout)
                    warm = round_robin(bare_run, [server.url])

                    async def load(result: Result, server: ServerProcess = server) -> None:
                        await load_held(server, bare_run, result, request_timeout=hold_wait + 30)

                else:
                    url = f"sqlite:///{tmp / f'keel-{n}.db'}"
                    if args.backend == "postgres":
                        scratch = stack.enter_context(scratch_postgres(args.postgres))
                        if scratch is None:
                            notes.append(f"{target}: skipped, postgres not reachable")
                            continue
                        url = scratch
                    server = start_keel(project, url, name=target, ready_timeout=args.ready_timeout)
                    warm = round_robin(keel_run, [server.url])
                    if target == "keel-poll":

                        async def load(result: Result, server: ServerProcess = server) -> None:
                            await load_keel_poll(server, args, result)

                    else:

                        async def held_keel(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
                            return await keel_run(client, url, wait=hold_wait, give_up_after=args.give_up)

                        async def load(result: Result, server: ServerProcess = server) -> None:
                            await load_held(server, held_keel, result, request_timeout=hold_wait + 30)

                results.append(await measure(target, server, warm, load, fake, args))
            except ServerError as exc:
                notes.append(f"{target}: not measured: {exc}")
                print(f"  {target}: not measured: {exc}", flush=True)
            finally:
                if server is not None:
                    server.stop()
                    notes += log_findings(server)

    print()
    print(
        f"in-flight runs: {args.runs} runs of the one-tool agent at once in one server process, fake provider "
        f"at {args.latency_ms:.0f} ms per model request (2 per run), keel storage {args.backend}"
    )
    print(
        "inflight = most runs alive at once (from sending the request to the run's end); running = most runs\n"
        "executing at once by the runs' own started_at/ended_at (keel); total s = until the client saw every run\n"
        "end; submit s = creating all runs (keel-poll); last end = the last run's end, s after the load began;\n"
        "base = RSS after warm-up; peak = max RSS sampled every 100 ms under load; after = RSS 1 s after;\n"
        "KB/run = (peak - base) / runs; cpu s = the server's CPU during the load; req = provider requests seen\n"
        "(expected 2 per run); load = the machine's 1-minute load average when the load ended"
    )
    print(HEADER)
    failures = 0
    for r in results:
        print(f"  {_row(r)}")
    print()
    for r in results:
        ok_growth = r.growth_kb_per_run <= GROWTH_TARGET_KB
        ok = r.errors == 0 and r.completed == r.runs and ok_growth
        failures += not ok
        print(
            f"  {r.target:<10} growth {r.growth_kb_per_run:6.1f} KB/run (target <= {GROWTH_TARGET_KB}) "
            f"{'ok' if ok_growth else 'MISSED'}; errors {r.errors} (must be 0); completed {r.completed}/{r.runs}; "
            f"(peak - base) / max inflight {(r.peak_kb - r.baseline_kb) / max(1, r.max_in_flight):.1f} KB; "
            f"VmHWM {r.hwm_kb / 1024:.1f} MB; {r.processes} process(es)"
        )
        for sample in r.error_samples:
            print(f"      {sample}")
        if r.provider_requests != 2 * r.runs:
            print(f"      note: the provider saw {r.provider_requests} requests, expected {2 * r.runs}")
        for note in r.notes[:5]:
            print(f"      note: {note}")
    if args.repeat > 1:
        print()
        print(f"KB per in-flight run over {args.repeat} alternated runs: median (min-max) [each run]")
        for target in targets:
            growth = [r.growth_kb_per_run for r in results if r.target == target]
            if growth:
                print(
                    f"  {target:<10} {statistics.median(growth):6.1f} ({min(growth):.1f}-{max(growth):.1f}) "
                    f"[{', '.join(f'{g:.1f}' for g in growth)}]"
                )
    for note in notes:
        print(note)
    print(machine_line())
    return 1 if failures or len(results) < len(targets) * args.repeat else 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.server_inflight",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=1000, help="runs in flight at once")
    parser.add_argument("--latency-ms", type=float, default=5000.0, help="provider latency per model request")
    parser.add_argument(
        "--targets", default="keel-poll,keel-hold,bare", help="which servers to load, in order"
    )
    parser.add_argument("--repeat", type=int, default=1, help="measure the targets this many times in turn")
    parser.add_argument(
        "--backend", choices=["sqlite", "postgres"], default="sqlite", help="keel's and the floor's storage"
    )
    parser.add_argument("--postgres", default=POSTGRES_ADMIN, help="admin URL for a scratch database")
    parser.add_argument("--warmup", type=int, default=50, help="warm-up runs at 0 ms latency")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="keel-poll: seconds between rounds")
    parser.add_argument(
        "--submit-concurrency", type=int, default=100, help="keel-poll: concurrent submit/poll requests"
    )
    parser.add_argument("--sample-interval", type=float, default=0.1, help="RSS sampling period, seconds")
    parser.add_argument("--give-up", type=float, default=300.0, help="seconds before a run counts as lost")
    parser.add_argument("--ready-timeout", type=float, default=90.0, help="seconds to wait for /readyz")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with sigterm_as_interrupt():
        try:
            return asyncio.run(main_async(args))
        except KeyboardInterrupt:
            print("interrupted: servers stopped")
            return 130


if __name__ == "__main__":
    sys.exit(main())
