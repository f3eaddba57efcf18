"""What storing and tracing every run costs: runs/s and CPU per run, on and off, SQLite and Postgres.

The one-tool agent of `bench.loop_overhead` (fake provider at 0 ms in a subprocess) runs in three
configurations in alternating blocks: storage and tracing off; both on with SQLite; both on with
Postgres (a throwaway database on 127.0.0.1:5432, skipped with a notice if none answers). Each
block ends with a flush of the writer, so the database work of its runs is inside its time.

    python -m bench.history_overhead [--runs 600] [--block 100] [--concurrency 10]

Target (issue #3): storing and tracing cost at most 15% of the in-process throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import loop_overhead
from bench.common import machine_line, percentile, scratch_postgres
from bench.loop_overhead import RULES

POSTGRES_ADMIN = os.environ.get("KEEL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class Variant:
    name: str
    database_url: str | None
    latencies: list[float] = field(default_factory=list)
    block_rates: list[float] = field(default_factory=list)
    cpu: float = 0.0
    wall: float = 0.0
    runs: int = 0

    def row(self) -> str:
        return (
            f"{self.name:<16} {self.runs / self.wall:8.1f} runs/s (median block {statistics.median(self.block_rates):7.1f})"
            f"   p50 {percentile(self.latencies, 50) * 1000:6.2f} ms   p99 {percentile(self.latencies, 99) * 1000:6.2f} ms"
            f"   cpu {self.cpu / self.runs * 1000:6.2f} ms/run"
        )


def write_project(root: Path, base_url: str, stored: bool) -> None:
    switch = str(stored).lower()
    loop_overhead.write_project(
        root,
        base_url,
        model_extra=", price: {input_per_mtok: 0.15, output_per_mtok: 0.6}",
        project_extra=f'storage: {{enabled: {switch}}}\ntracing: {{enabled: {switch}, capture_content: "off"}}\n',
    )


async def main_async(args: argparse.Namespace) -> int:
    from keel.config import load_project
    from keel.runtime.runner import Runner
    from keel.testing.fake_llm import start_fake_llm_process

    with (
        start_fake_llm_process(script={"rules": RULES}) as fake,
        tempfile.TemporaryDirectory() as tmp,
        scratch_postgres(POSTGRES_ADMIN) as pg_url,
    ):
        root = Path(tmp)
        write_project(root / "off", fake.base_url, stored=False)
        write_project(root / "on", fake.base_url, stored=True)
        variants = [Variant("off", None), Variant("sqlite", f"sqlite:///{root}/keel.db")]
        if pg_url is not None:
            variants.append(Variant("postgres", pg_url))
        runners = {}
        for variant in variants:
            project = load_project(root / ("off" if variant.database_url is None else "on"))
            runner = Runner(project, database_url=variant.database_url)
            await runner.start()
            runners[variant.name] = runner
        gate = asyncio.Semaphore(args.concurrency)

        async def block(variant: Variant, count: int, measure: bool) -> None:
            runner = runners[variant.name]
            latencies: list[float] = []

            async def one() -> None:
                async with gate:
                    t0 = time.perf_counter()
                    result = await runner.run("weather", "What is the weather in Paris?")
                    latencies.append(time.perf_counter() - t0)
                    assert result.succeeded, result.error

            cpu0, wall0 = time.process_time(), time.perf_counter()
            await asyncio.gather(*(one() for _ in range(count)))
            assert await runner.flush(60)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            if measure:
                variant.latencies += latencies
                variant.cpu += cpu
                variant.wall += wall
                variant.runs += count
                variant.block_rates.append(count / wall)

        for variant in variants:
            await block(variant, args.warmup, measure=False)
        for i in range(max(1, args.runs // args.block)):
            for variant in variants if i % 2 == 0 else list(reversed(variants)):
                await block(variant, args.block, measure=True)
        dropped = {
            name: (r.writer.stats().dropped if r.writer else 0) + r.tracing.dropped
            for name, r in runners.items()
        }
        for runner in runners.values():
            await runner.aclose()

    print(
        f"history overhead: one-tool agent, fake provider at 0 ms in a subprocess, concurrency {args.concurrency}"
    )
    print(machine_line())
    for variant in variants:
        print(variant.row())
    off = variants[0]
    for variant in variants[1:]:
        ratio = (variant.runs / variant.wall) / (off.runs / off.wall)
        block_ratio = statistics.median(variant.block_rates) / statistics.median(off.block_rates)
        cost = (variant.cpu / variant.runs) / (off.cpu / off.runs) - 1
        print(
            f"{variant.name}: throughput {ratio:.3f}x of off (median block {block_ratio:.3f}x; target >= 0.85x), "
            f"cpu per run {cost:+.1%}, records dropped {dropped[variant.name]}"
        )
    print(machine_line())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=600, help="measured runs per variant")
    parser.add_argument("--block", type=int, default=100, help="runs per alternating block")
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=10)
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
