"""Keel's run loop versus a bare pydantic-ai Agent doing the same work, in one process.

A one-tool agent (the model calls `get_weather`, then answers; run history and tracing off, as
`bench.history_overhead` measures those) against the fake provider at 0 ms
latency, which runs in a subprocess so that its CPU is not counted here. Both sides make the same
two HTTP requests and one tool call per run; they run in alternating blocks so drift in the
machine's load hits both alike. Reported: runs per second, latency p50/p99, CPU milliseconds per
run (this process only, from the OS), and Keel's ratio to the bare agent.

    python -m bench.loop_overhead [--runs 400] [--block 50] [--concurrency 1]

Target (issue #2): Keel's CPU per run at most 1.10x the bare agent's.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import machine_line, percentile

RULES = [
    {"when": {"last_is_tool_result": True}, "reply": {"text": "It is sunny in Paris today."}},
    {"reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}},
]

TOOL_SOURCE = '''
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}, 21 C"
'''


@dataclass
class Side:
    name: str
    latencies: list[float] = field(default_factory=list)
    cpu: float = 0.0
    wall: float = 0.0
    runs: int = 0
    block_cpu: list[float] = field(default_factory=list)  # CPU seconds per run, per block

    def add(self, latencies: list[float], cpu: float, wall: float) -> None:
        self.block_cpu.append(cpu / len(latencies))
        self.latencies += latencies
        self.cpu += cpu
        self.wall += wall
        self.runs += len(latencies)

    @property
    def cpu_ms_per_run(self) -> float:
        return self.cpu / self.runs * 1000

    @property
    def runs_per_s(self) -> float:
        return self.runs / self.wall

    def row(self) -> str:
        return (
            f"{self.name:<10} {self.runs_per_s:9.1f} runs/s   p50 {percentile(self.latencies, 50) * 1000:7.2f} ms"
            f"   p99 {percentile(self.latencies, 99) * 1000:7.2f} ms   cpu {self.cpu_ms_per_run:6.2f} ms/run"
        )


def write_project(root: Path, base_url: str, *, model_extra: str = "", project_extra: str = "") -> None:
    """The benchmark project: one agent, one tool, the fake provider. `model_extra` is appended
    inside the model's mapping, `project_extra` to keel.yaml."""
    (root / "agents").mkdir(parents=True)
    (root / "bench_tools.py").write_text(TOOL_SOURCE)
    (root / "keel.yaml").write_text(
        "project: bench\nmodels:\n"
        f'  fake: {{provider: openai-compatible, model: bench, base_url: "{base_url}"{model_extra}}}\n'
        + project_extra
    )
    (root / "agents" / "weather.yaml").write_text(
        textwrap.dedent("""
        model: fake
        instructions: You answer questions about the weather.
        tools: [bench_tools:get_weather]
        """)
    )


async def measure(
    run_once: Callable[[], Awaitable[Any]], runs: int, concurrency: int
) -> tuple[list[float], float, float]:
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            t0 = time.perf_counter()
            await run_once()
            latencies.append(time.perf_counter() - t0)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(runs)))
    return latencies, time.process_time() - cpu0, time.perf_counter() - wall0


async def main_async(args: argparse.Namespace) -> int:
    from openai import AsyncOpenAI
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    from keel.config import load_project
    from keel.runtime.runner import Runner
    from keel.testing.fake_llm import start_fake_llm_process

    with start_fake_llm_process(script={"rules": RULES}) as fake, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # The loop alone: storing and tracing have their own benchmark (bench.history_overhead).
        write_project(
            root, fake.base_url, project_extra="storage: {enabled: false}\ntracing: {enabled: false}\n"
        )
        project = load_project(root)
        sys.path.insert(0, str(root))
        from bench_tools import get_weather  # type: ignore[import-not-found]

        client = AsyncOpenAI(base_url=project.agents["weather"].model.base_url, api_key="x", max_retries=0)
        bare = Agent(
            OpenAIChatModel("bench", provider=OpenAIProvider(openai_client=client)),
            instructions="You answer questions about the weather.",
            tools=[get_weather],
        )
        async with Runner(project) as runner:

            async def keel_run() -> None:
                result = await runner.run("weather", "What is the weather in Paris?")
                assert result.succeeded, result.error

            async def bare_run() -> None:
                result = await bare.run("What is the weather in Paris?")
                assert result.output

            sides = {"bare": Side("bare agent"), "keel": Side("keel")}
            runners = {"bare": bare_run, "keel": keel_run}
            for name in runners:  # warm up both: imports, connection pools, caches
                await measure(runners[name], args.warmup, args.concurrency)
            fake.reset()
            blocks = max(1, args.runs // args.block)
            for i in range(blocks):
                order = ["bare", "keel"] if i % 2 == 0 else ["keel", "bare"]
                for name in order:
                    sides[name].add(*await measure(runners[name], args.block, args.concurrency))
            stats = fake.stats()
        await client.close()

    bare_side, keel_side = sides["bare"], sides["keel"]
    expected = 2 * (bare_side.runs + keel_side.runs)
    print(
        f"loop overhead: one-tool agent, fake provider at 0 ms in a subprocess, concurrency {args.concurrency}"
    )
    print(machine_line())
    print(bare_side.row())
    print(keel_side.row())
    ratio = keel_side.cpu_ms_per_run / bare_side.cpu_ms_per_run
    print(
        f"keel/bare: cpu per run {ratio:.3f}x (target <= 1.10x), runs/s {keel_side.runs_per_s / bare_side.runs_per_s:.3f}x, "
        f"p50 overhead {(percentile(keel_side.latencies, 50) - percentile(bare_side.latencies, 50)) * 1000:+.2f} ms"
    )
    block_ratios = [k / b for k, b in zip(keel_side.block_cpu, bare_side.block_cpu, strict=True)]
    print(
        f"cpu ratio per block pair: median {statistics.median(block_ratios):.3f}x, "
        f"min {min(block_ratios):.3f}x, max {max(block_ratios):.3f}x over {len(block_ratios)} pairs"
    )
    print(f"provider saw {stats.requests} requests (expected {expected})")
    print(machine_line())
    return 0 if stats.requests == expected else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1200, help="measured runs per side")
    parser.add_argument("--block", type=int, default=100, help="runs per alternating block")
    parser.add_argument("--warmup", type=int, default=40, help="warm-up runs per side")
    parser.add_argument("--concurrency", type=int, default=1)
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
