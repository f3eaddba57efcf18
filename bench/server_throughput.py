"""Keel's durable HTTP server against a bare FastAPI + pydantic-ai endpoint, over loopback HTTP.

The work is bench.loop_overhead's one-tool agent (the model calls `get_weather`, then answers: two
model requests and one tool call per run) against the fake provider at 0 ms latency, which runs in
its own subprocess. Each server is a subprocess in its own process group, so its CPU is read from
/proc (utime + stime over the measured window):

- bare: bench/bare_server.py under uvicorn, one worker, `POST /run` -> the agent's output. No
  queue, no persistence, no tracing.
- keel: `keel serve` on a throwaway project (tracing on, the default), storage on SQLite or on a
  scratch Postgres database; `POST /v1/agents/weather/runs` with `wait: 30` (200 with the run when
  done, else 202 and the client polls `GET /v1/runs/{id}` until the run is terminal).

Clients are closed loops in this process (httpx.AsyncClient with a keep-alive pool, one connection
per client): each starts its next run as soon as its last one ends. Per cell (server x backend x
concurrency) the bare and keel cells are measured back to back, alternating which goes first. Also
on Postgres: keel with 2 worker processes against 1, at the highest concurrency.

    python -m bench.server_throughput [--runs 400] [--concurrency 1,10,50] [--backends sqlite,postgres]
    python -m bench.server_throughput --quick

Targets (issue #4): keel runs/s >= 0.75x bare; keel p50 latency at concurrency 1 <= 1.5x bare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.common import machine_line, scratch_postgres
from bench.loop_overhead import RULES
from bench.servers import (
    POSTGRES_ADMIN,
    Cell,
    RunOnce,
    ServerError,
    ServerProcess,
    bare_run,
    closed_loop,
    keel_run,
    keel_serve_help,
    log_findings,
    make_client,
    pid_cpu_seconds,
    postgres_cpu_seconds,
    raise_open_files_limit,
    round_robin,
    sigterm_as_interrupt,
    start_bare,
    start_keel,
    write_keel_project,
)
from keel.testing.fake_llm import FakeLLMProcess, start_fake_llm_process

RUNS_PER_S_TARGET = 0.75
P50_TARGET = 1.5


class Bench:
    def __init__(self, args: argparse.Namespace, fake: FakeLLMProcess) -> None:
        self.args = args
        self.fake = fake
        self.cells: list[tuple[str, str, Cell]] = []  # (backend, server label, cell)
        self.notes: list[str] = []

    async def measure(
        self, backend: str, label: str, run_once: RunOnce, concurrency: int, servers: Sequence[ServerProcess]
    ) -> Cell:
        """A fresh connection pool, a short unmeasured warm-up on it, then the measured cell."""
        async with make_client(concurrency) as client:
            await closed_loop(client, run_once, max(2 * concurrency, 10), concurrency, servers)
            self.fake.reset()
            provider_cpu, pg_cpu = pid_cpu_seconds(self.fake.pid), postgres_cpu_seconds()
            cell = await closed_loop(client, run_once, self.args.runs, concurrency, servers, label)
            cell.provider_cpu = pid_cpu_seconds(self.fake.pid) - provider_cpu
            pg_after = postgres_cpu_seconds()
            if backend == "postgres" and pg_cpu is not None and pg_after is not None:
                cell.postgres_cpu = pg_after - pg_cpu
            cell.provider_requests = self.fake.stats().requests
        self.cells.append((backend, label, cell))
        print(f"  {backend:<8} {label:<12} c={concurrency:<3} {_row(cell)}", flush=True)
        return cell

    async def warm_up(self, run_once: RunOnce, servers: Sequence[ServerProcess]) -> None:
        async with make_client(10) as client:
            cell = await closed_loop(client, run_once, self.args.warmup, 10, servers)
        if cell.errors:
            raise ServerError(
                f"warm-up: {cell.errors}/{self.args.warmup} runs failed, e.g. {cell.error_samples[0]}"
            )


def _row(cell: Cell) -> str:
    requests = (
        "-"
        if cell.provider_requests is None
        else f"{cell.provider_requests / max(1, cell.ok + cell.errors):.2f}"
    )
    pg = "-" if cell.postgres_cpu_ms_per_run is None else f"{cell.postgres_cpu_ms_per_run:.2f}"
    return (
        f"{cell.runs_per_s:8.1f} {cell.p50_ms:8.2f} {cell.p99_ms:8.2f} {cell.server_cpu_ms_per_run:9.2f} "
        f"{cell.client_cpu_ms_per_run:9.2f} {cell.provider_cpu_ms_per_run:9.2f} {pg:>9} {cell.errors:6d} {requests:>7}"
    )


HEADER = (
    f"  {'backend':<8} {'server':<12} {'conc':<5} {'runs/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
    f"{'srv cpu':>9} {'cli cpu':>9} {'llm cpu':>9} {'pg cpu':>9} {'errors':>6} {'req/run':>7}"
)
UNITS = f"  {'':<8} {'':<12} {'':<5} {'':>8} {'':>8} {'':>8} {'ms/run':>9} {'ms/run':>9} {'ms/run':>9} {'ms/run':>9}"


async def run_backend(
    bench: Bench,
    backend: str,
    database_url: str,
    project: Path,
    bare: ServerProcess,
    concurrencies: list[int],
) -> None:
    args = bench.args
    bare_once = round_robin(bare_run, [bare.url])
    keel: ServerProcess | None = None
    try:
        try:
            keel = start_keel(project, database_url, name=f"keel-{backend}", ready_timeout=args.ready_timeout)
            keel_once = round_robin(keel_run, [keel.url])
            await bench.warm_up(keel_once, [keel])
        except ServerError as exc:
            tail = f"\nserver output tail:\n{keel.stderr_tail()}" if keel is not None else ""
            bench.notes.append(f"{backend}: keel not measured: {str(exc).splitlines()[0]}")
            print(f"{backend}: keel not measured (bare still is): {exc}{tail}", flush=True)
            if keel is not None:
                keel.stop()
                bench.notes += log_findings(keel)
                keel = None
        await bench.warm_up(bare_once, [bare])
        for i, concurrency in enumerate(concurrencies):
            sides: list[tuple[str, RunOnce, ServerProcess]] = [("bare", bare_once, bare)]
            if keel is not None:
                sides.append(("keel", keel_once, keel))
            for label, run_once, server in sides if i % 2 == 0 else sides[::-1]:
                await bench.measure(backend, label, run_once, concurrency, [server])
    finally:
        if keel is not None:
            keel.stop()
            bench.notes += log_findings(keel)


async def run_scaling(
    bench: Bench, database_url: str, project: Path, concurrency: int, mode: str
) -> list[tuple[str, Cell]]:
    """Keel on Postgres with 1 and then 2 worker processes, at `concurrency`."""
    args = bench.args
    results: list[tuple[str, Cell]] = []
    servers: list[ServerProcess] = []
    try:
        if mode == "api+workers":
            api = start_keel(
                project, database_url, role="api", name="keel-api", ready_timeout=args.ready_timeout
            )
            servers.append(api)
            urls = [api.url]
            for n in (1, 2):
                servers.append(
                    start_keel(
                        project,
                        database_url,
                        role="worker",
                        worker_id=f"bench-worker-{n}",
                        name=f"keel-worker-{n}",
                        ready_timeout=args.ready_timeout,
                    )
                )
                run_once = round_robin(keel_run, urls)
                await bench.warm_up(run_once, servers)
                label = f"api+{n} worker" + ("s" if n > 1 else "")
                results.append(
                    (label, await bench.measure("postgres", label, run_once, concurrency, servers))
                )
        else:
            for n in (1, 2):
                servers.append(
                    start_keel(
                        project,
                        database_url,
                        role="all",
                        worker_id=f"bench-all-{n}",
                        name=f"keel-all-{n}",
                        ready_timeout=args.ready_timeout,
                    )
                )
                run_once = round_robin(keel_run, [s.url for s in servers])
                await bench.warm_up(run_once, servers)
                label = f"{n} x all"
                results.append(
                    (label, await bench.measure("postgres", label, run_once, concurrency, servers))
                )
    finally:
        for server in reversed(servers):
            server.stop()
            bench.notes += log_findings(server)
    return results


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report(
    bench: Bench, backends: list[str], concurrencies: list[int], scaling: list[tuple[str, Cell]]
) -> int:
    print()
    print(
        "server throughput: one-tool agent (2 model requests + 1 tool call per run), fake provider at 0 ms "
        "in a subprocess, closed-loop httpx clients over loopback"
    )
    print(
        f"{bench.args.runs} measured runs per cell; srv cpu = the server process group's CPU (from /proc) per run;"
    )
    print(
        "cli cpu = this client process's CPU per run; llm cpu = the fake provider's; pg cpu = the whole "
        "local Postgres server's (all databases; postgres backend only);\nreq/run = provider requests per run "
        "(expected 2.00)"
    )
    print(HEADER)
    print(UNITS)
    for backend, label, cell in bench.cells:
        if label not in ("bare", "keel"):
            continue
        print(f"  {backend:<8} {label:<12} {cell.concurrency:<5} {_row(cell)}")
    failures = 0
    print()
    print(
        f"keel/bare ratios (targets: runs/s >= {RUNS_PER_S_TARGET:.2f}x; p50 at concurrency 1 <= {P50_TARGET:.2f}x)"
    )
    for backend in backends:
        pairs = {
            (label, cell.concurrency): cell
            for b, label, cell in bench.cells
            if b == backend and label in ("bare", "keel")
        }
        for concurrency in concurrencies:
            bare, keel = pairs.get(("bare", concurrency)), pairs.get(("keel", concurrency))
            if bare is None or keel is None or not bare.runs_per_s:
                continue
            ratio = keel.runs_per_s / bare.runs_per_s
            line = f"  {backend:<8} c={concurrency:<3} runs/s {ratio:5.2f}x {_verdict(ratio >= RUNS_PER_S_TARGET):<6}"
            failures += ratio < RUNS_PER_S_TARGET
            if concurrency == 1:
                p50 = keel.p50_ms / bare.p50_ms
                line += f"   p50 {p50:5.2f}x {_verdict(p50 <= P50_TARGET):<6} ({keel.p50_ms - bare.p50_ms:+.2f} ms)"
                failures += p50 > P50_TARGET
            line += f"   cpu/run {keel.server_cpu_ms_per_run / bare.server_cpu_ms_per_run:5.2f}x"
            print(line)
    if scaling:
        print()
        print(f"keel on postgres, worker processes, concurrency {scaling[0][1].concurrency}:")
        for label, cell in scaling:
            print(f"  {label:<14} {_row(cell)}")
        if len(scaling) == 2 and scaling[0][1].runs_per_s:
            print(
                f"  2 workers / 1 worker: runs/s {scaling[1][1].runs_per_s / scaling[0][1].runs_per_s:.2f}x"
            )
    errors = [(b, label, c) for b, label, c in bench.cells if c.errors]
    for backend, label, cell in errors:
        print(f"errors in {backend} {label} c={cell.concurrency}: {cell.errors}, e.g.")
        for sample in cell.error_samples:
            print(f"    {sample[:300]}")
    odd_requests = [
        (b, label, c)
        for b, label, c in bench.cells
        if c.provider_requests is not None and c.provider_requests != 2 * (c.ok + c.errors)
    ]
    for backend, label, cell in odd_requests:
        print(
            f"note: {backend} {label} c={cell.concurrency}: provider saw {cell.provider_requests} requests "
            f"for {cell.ok + cell.errors} runs"
        )
    for note in bench.notes:
        print(note)
    print(machine_line())
    return 1 if errors or failures else 0


async def main_async(args: argparse.Namespace) -> int:
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    concurrencies = [int(c) for c in args.concurrency.split(",") if c.strip()]
    unknown = set(backends) - {"sqlite", "postgres"}
    if unknown:
        print(f"unknown backend(s): {', '.join(sorted(unknown))}")
        return 2
    raise_open_files_limit()
    print(machine_line())
    print(HEADER)
    scaling: list[tuple[str, Cell]] = []
    measured_backends: list[str] = []
    with contextlib.ExitStack() as stack:
        fake = stack.enter_context(start_fake_llm_process(script={"rules": RULES}))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="keel-bench-")))
        bench = Bench(args, fake)
        bare = start_bare(fake.base_url, ready_timeout=args.ready_timeout)
        stack.callback(lambda: bench.notes.extend(log_findings(bare)))
        stack.callback(bare.stop)
        project = write_keel_project(
            tmp / "project", fake.base_url, worker_concurrency=max(50, *concurrencies)
        )
        for backend in backends:
            url = f"sqlite:///{tmp / 'keel.db'}"
            if backend == "postgres":
                scratch = stack.enter_context(scratch_postgres(args.postgres))
                if scratch is None:
                    continue
                url = scratch
            measured_backends.append(backend)
            await run_backend(bench, backend, url, project, bare, concurrencies)
        if "postgres" in measured_backends and not args.no_scaling:
            mode = args.scale_mode
            if mode == "auto":
                help_text = keel_serve_help()
                mode = "api+workers" if "--role" in help_text else ""
            if not mode:
                bench.notes.append("scaling skipped: `keel serve` has no --role option")
            else:
                scale_url = stack.enter_context(scratch_postgres(args.postgres))
                if scale_url is not None:
                    try:
                        scaling = await run_scaling(bench, scale_url, project, max(concurrencies), mode)
                    except ServerError as exc:
                        bench.notes.append(f"scaling ({mode}) failed: {exc}")
    return report(bench, measured_backends, concurrencies, scaling)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.server_throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=400, help="measured runs per cell")
    parser.add_argument("--warmup", type=int, default=50, help="warm-up runs per server before measuring")
    parser.add_argument("--backends", default="sqlite,postgres", help="keel storage backends to measure")
    parser.add_argument("--concurrency", default="1,10,50", help="closed-loop clients per cell")
    parser.add_argument("--quick", action="store_true", help="100 runs per cell, 20 warm-up runs")
    parser.add_argument("--postgres", default=POSTGRES_ADMIN, help="admin URL for scratch databases")
    parser.add_argument(
        "--scale-mode",
        choices=["auto", "api+workers", "all"],
        default="auto",
        help="worker scaling on postgres: one --role api + N --role worker, or N --role all "
        "behind client round-robin (auto: api+workers)",
    )
    parser.add_argument("--no-scaling", action="store_true", help="skip the 1-vs-2 worker comparison")
    parser.add_argument("--ready-timeout", type=float, default=90.0, help="seconds to wait for /readyz")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.warmup = min(args.runs, 100), min(args.warmup, 20)
    return args


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
