"""Keel's durable HTTP server against a bare FastAPI + pydantic-ai endpoint, over loopback HTTP.

The work is bench.loop_overhead's one-tool agent (the model calls `get_weather`, then answers: two
model requests and one tool call per run) against the fake provider at 0 ms latency, which runs in
its own subprocess. Each server is a subprocess in its own process group, so its CPU is read from
/proc (utime + stime over the measured window):

- bare: bench/bare_server.py under uvicorn, one worker, `POST /run` -> the agent's output. No
  queue, no persistence, no tracing.
- floor: bench/dbos_floor_server.py, the same endpoint run the way issue #4 mandates with no Keel
  code: each request queues a DBOS workflow and waits for it, the agent runs with pydantic-ai's
  `DBOSDurability` and each model request and tool call is a DBOS step (SQLite WAL or Postgres,
  queue wake-ups, Keel's JSON serializer). What DBOS + pydantic-ai cost before any Keel code.
- keel: `keel serve` on a throwaway project (tracing on, the default), storage on SQLite or on a
  scratch Postgres database; `POST /v1/agents/weather/runs` with `wait: 30` (200 with the run when
  done, else 202 and the client polls `GET /v1/runs/{id}` until the run is terminal).

Clients are closed loops in this process (httpx.AsyncClient with a keep-alive pool, one connection
per client): each starts its next run as soon as its last one ends. Per cell (server x backend x
concurrency) the bare, floor and keel cells are measured back to back, rotating which goes first;
the whole sweep is repeated --rounds times, and the summary gives each cell's median over the
rounds and each ratio's median and range over the rounds (a ratio is taken within one round, from
cells measured minutes apart). Also on Postgres: keel with 2 worker processes against 1, at the
highest concurrency (--no-scaling skips it).

    python -m bench.server_throughput [--runs 400] [--rounds 2] [--concurrency 1,10,50]
                                      [--backends sqlite,postgres] [--servers bare,floor,keel]
    python -m bench.server_throughput --quick

Targets (issue #4): keel runs/s >= 0.75x bare; keel p50 latency at concurrency 1 <= 1.5x bare.
The same targets are checked for the floor: if the floor misses them, no Keel code can meet them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
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
    floor_database_url,
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
    start_floor,
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
        self.cells: list[tuple[str, str, int, Cell]] = []  # (backend, server label, round, cell)
        self.notes: list[str] = []

    async def measure(
        self,
        backend: str,
        label: str,
        run_once: RunOnce,
        concurrency: int,
        servers: Sequence[ServerProcess],
        round_: int = 0,
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
        self.cells.append((backend, label, round_, cell))
        print(f"  {backend:<8} {label:<12} {concurrency:<5} {round_ + 1:<5} {_row(cell)}", flush=True)
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
        f" {cell.load:5.2f}"
    )


HEADER = (
    f"  {'backend':<8} {'server':<12} {'conc':<5} {'round':<5} {'runs/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
    f"{'srv cpu':>9} {'cli cpu':>9} {'llm cpu':>9} {'pg cpu':>9} {'errors':>6} {'req/run':>7} {'load':>5}"
)
UNITS = (
    f"  {'':<8} {'':<12} {'':<5} {'':<5} {'':>8} {'':>8} {'':>8} {'ms/run':>9} {'ms/run':>9} {'ms/run':>9} "
    f"{'ms/run':>9} {'':>6} {'':>7} {'1 min':>5}"
)
SIDES = ("bare", "floor", "keel")


async def run_backend(
    bench: Bench,
    backend: str,
    database_url: str,
    floor_url: str,
    project: Path,
    bare: ServerProcess,
    concurrencies: list[int],
) -> None:
    """Every concurrency, --rounds times, with bare, floor and keel measured back to back (the
    order rotating from cell to cell, so drift in the machine's load hits each side alike)."""
    args = bench.args
    wanted = set(args.server_list)
    started: dict[str, tuple[RunOnce, ServerProcess]] = {}
    try:
        for label in ("floor", "keel"):
            if label not in wanted:
                continue
            server: ServerProcess | None = None
            try:
                if label == "keel":
                    server = start_keel(
                        project, database_url, name=f"keel-{backend}", ready_timeout=args.ready_timeout
                    )
                    run_once = round_robin(keel_run, [server.url])
                else:
                    server = start_floor(
                        bench.fake.base_url,
                        floor_url,
                        worker_concurrency=max(50, *concurrencies),
                        name=f"floor-{backend}",
                        ready_timeout=args.ready_timeout,
                    )
                    run_once = round_robin(bare_run, [server.url])
                await bench.warm_up(run_once, [server])
                started[label] = (run_once, server)
            except ServerError as exc:
                tail = f"\nserver output tail:\n{server.stderr_tail()}" if server is not None else ""
                bench.notes.append(f"{backend}: {label} not measured: {str(exc).splitlines()[0]}")
                print(f"{backend}: {label} not measured (the others still are): {exc}{tail}", flush=True)
                if server is not None:
                    server.stop()
                    bench.notes += log_findings(server)
        if "bare" in wanted:
            bare_once = round_robin(bare_run, [bare.url])
            await bench.warm_up(bare_once, [bare])
            started["bare"] = (bare_once, bare)
        sides = [label for label in SIDES if label in started]
        cell_number = 0
        for round_ in range(args.rounds):
            for concurrency in concurrencies:
                shift = cell_number % max(1, len(sides))
                cell_number += 1
                for label in sides[shift:] + sides[:shift]:
                    run_once, server = started[label]
                    await bench.measure(backend, label, run_once, concurrency, [server], round_)
    finally:
        for label, (_, server) in started.items():
            if label != "bare":
                server.stop()
                bench.notes += log_findings(server)


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


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _spread(values: list[float]) -> str:
    """`median (min-max)` of per-round values, or the one value."""
    if len(values) == 1:
        return f"{values[0]:5.2f}x"
    return f"{_median(values):5.2f}x ({min(values):.2f}-{max(values):.2f})"


def report(
    bench: Bench, backends: list[str], concurrencies: list[int], scaling: list[tuple[str, Cell]]
) -> int:
    args = bench.args
    print()
    print(
        "server throughput: one-tool agent (2 model requests + 1 tool call per run), fake provider at 0 ms "
        "in a subprocess, closed-loop httpx clients over loopback"
    )
    print(
        f"{args.runs} measured runs per cell, {args.rounds} round(s); srv cpu = the server process group's CPU "
        "(from /proc) per run;"
    )
    print(
        "cli cpu = this client process's CPU per run; llm cpu = the fake provider's; pg cpu = the whole "
        "local Postgres server's (all databases; postgres backend only);\nreq/run = provider requests per run "
        "(expected 2.00); load = the machine's 1-minute load average at the cell's end"
    )
    print(
        "bare = FastAPI + pydantic-ai; floor = the same on DBOS alone (queue + a step per model request and"
    )
    print("tool call, no Keel code); keel = `keel serve`")
    print(HEADER)
    print(UNITS)
    for backend, label, round_, cell in bench.cells:
        if label in SIDES:
            print(f"  {backend:<8} {label:<12} {cell.concurrency:<5} {round_ + 1:<5} {_row(cell)}")

    def cells_of(backend: str, label: str, concurrency: int) -> dict[int, Cell]:
        return {
            r: c
            for b, lab, r, c in bench.cells
            if b == backend and lab == label and c.concurrency == concurrency and c.ok
        }

    print()
    print("medians over the rounds (runs/s, p50, p99, server CPU per run):")
    print(f"  {'backend':<8} {'conc':<5} " + " ".join(f"{s:>36}" for s in SIDES))
    for backend in backends:
        for concurrency in concurrencies:
            parts = []
            for label in SIDES:
                got = list(cells_of(backend, label, concurrency).values())
                if not got:
                    parts.append(f"{'-':>36}")
                    continue
                parts.append(
                    f"{_median([c.runs_per_s for c in got]):7.1f}/s {_median([c.p50_ms for c in got]):7.1f} "
                    f"{_median([c.p99_ms for c in got]):7.1f} ms {_median([c.server_cpu_ms_per_run for c in got]):6.1f} ms"
                )
            print(f"  {backend:<8} {concurrency:<5} " + " ".join(parts))

    failures = 0
    print()
    print(
        f"ratios, each taken within one round, median (range) over the rounds; targets: runs/s >= "
        f"{RUNS_PER_S_TARGET:.2f}x bare, p50 at concurrency 1 <= {P50_TARGET:.2f}x bare"
    )
    for num, den in (("floor", "bare"), ("keel", "bare"), ("keel", "floor")):
        checked = den == "bare"
        for backend in backends:
            for concurrency in concurrencies:
                a, b = cells_of(backend, num, concurrency), cells_of(backend, den, concurrency)
                rounds = sorted(set(a) & set(b))
                if not rounds:
                    continue
                rps = [a[r].runs_per_s / b[r].runs_per_s for r in rounds]
                cpu = [a[r].server_cpu_ms_per_run / b[r].server_cpu_ms_per_run for r in rounds]
                line = f"  {num + '/' + den:<11} {backend:<8} c={concurrency:<3} runs/s {_spread(rps):<20}"
                if checked:
                    ok = _median(rps) >= RUNS_PER_S_TARGET
                    line += f" {_verdict(ok):<6}"
                    failures += num == "keel" and not ok
                if concurrency == 1:
                    p50 = [a[r].p50_ms / b[r].p50_ms for r in rounds]
                    extra = _median([a[r].p50_ms - b[r].p50_ms for r in rounds])
                    line += f"  p50 {_spread(p50):<20}"
                    if checked:
                        ok = _median(p50) <= P50_TARGET
                        line += f" {_verdict(ok):<6}"
                        failures += num == "keel" and not ok
                    line += f" ({extra:+.1f} ms)"
                line += f"  cpu/run {_spread(cpu)}"
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
    errors = [(b, label, c) for b, label, _, c in bench.cells if c.errors]
    for backend, label, cell in errors:
        print(f"errors in {backend} {label} c={cell.concurrency}: {cell.errors}, e.g.")
        for sample in cell.error_samples:
            print(f"    {sample[:300]}")
    odd_requests = [
        (b, label, c)
        for b, label, _, c in bench.cells
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
    unknown_servers = set(args.server_list) - set(SIDES)
    if unknown or unknown_servers:
        print(f"unknown backend(s) or server(s): {', '.join(sorted(unknown | unknown_servers))}")
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
            floor_url = floor_database_url(url)
            if backend == "postgres":
                scratch = stack.enter_context(scratch_postgres(args.postgres))
                floor_scratch = stack.enter_context(scratch_postgres(args.postgres))
                if scratch is None or floor_scratch is None:
                    continue
                url, floor_url = scratch, floor_scratch
            measured_backends.append(backend)
            await run_backend(bench, backend, url, floor_url, project, bare, concurrencies)
        if "postgres" in measured_backends and "keel" in args.server_list and not args.no_scaling:
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
    parser.add_argument("--rounds", type=int, default=2, help="times the whole sweep is repeated")
    parser.add_argument("--servers", default="bare,floor,keel", help="which servers to measure")
    parser.add_argument("--quick", action="store_true", help="100 runs per cell, 20 warm-up runs, 1 round")
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
    args.server_list = [name.strip() for name in args.servers.split(",") if name.strip()]
    if args.quick:
        args.runs, args.warmup, args.rounds = min(args.runs, 100), min(args.warmup, 20), 1
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
