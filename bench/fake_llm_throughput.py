"""Throughput of Keel's fake LLM server: is it ever the bottleneck of a benchmark?

Runs the server in a subprocess (its CPU is not this process's), hammers it from N concurrent
keep-alive clients at zero latency, and prints the requests per second seen by the clients and the
server's own CPU time per request (read from /proc), i.e. what one server core can sustain.

    python bench/fake_llm_throughput.py                      # httpx clients, non-streaming
    python bench/fake_llm_throughput.py --stream             # SSE streaming
    python bench/fake_llm_throughput.py --client raw         # a minimal client, to load the server harder
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

import httpx

from keel.testing.fake_llm import start_fake_llm_process

RULES = {
    "rules": [
        {
            "when": {"tool_offered": "get_weather", "assistant_turns": 0},
            "reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
        },
    ],
    "default": "The weather in Paris is sunny, 21 degrees, with a light breeze from the west.",
}


def _body(stream: bool) -> dict[str, object]:
    return {
        "model": "bench-model",
        "stream": stream,
        "stream_options": {"include_usage": True} if stream else None,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant that answers briefly."},
            {"role": "user", "content": "What is the weather like in Paris today?"},
        ],
    }


def _cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, from /proc (Linux); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _httpx_worker(base_url: str, body: dict[str, object], stream: bool, deadline: float) -> int:
    done = 0
    async with httpx.AsyncClient(base_url=base_url, timeout=30, trust_env=False) as client:
        while time.perf_counter() < deadline:
            if stream:
                async with client.stream("POST", "/chat/completions", json=body) as response:
                    async for _ in response.aiter_bytes():
                        pass
                    response.raise_for_status()
            else:
                response = await client.post("/chat/completions", json=body)
                response.raise_for_status()
            done += 1
    return done


async def _raw_worker(host: str, port: int, body: dict[str, object], stream: bool, deadline: float) -> int:
    """Pre-encoded requests on one keep-alive connection; reads each response fully."""
    payload = json.dumps(body).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    reader, writer = await asyncio.open_connection(host, port)
    done = 0
    try:
        while time.perf_counter() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.decode(errors="replace"))
            if stream:
                await reader.readuntil(b"\r\n0\r\n\r\n")
            else:
                length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
                await reader.readexactly(length)
            done += 1
    finally:
        writer.close()
        await writer.wait_closed()
    return done


async def _run(args: argparse.Namespace, base_url: str) -> int:
    deadline = time.perf_counter() + args.seconds
    body = _body(args.stream)
    if args.client == "raw":
        split = httpx.URL(base_url)
        workers = [
            _raw_worker(split.host, split.port or 80, body, args.stream, deadline)
            for _ in range(args.concurrency)
        ]
    else:
        workers = [_httpx_worker(base_url, body, args.stream, deadline) for _ in range(args.concurrency)]
    return sum(await asyncio.gather(*workers))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--client", choices=["httpx", "raw"], default="httpx")
    args = parser.parse_args()

    with start_fake_llm_process(script=RULES) as server:
        asyncio.run(_run(argparse.Namespace(**{**vars(args), "seconds": 0.5}), server.base_url))  # warm-up
        server.reset()
        cpu_before = _cpu_seconds(server.pid)
        started = time.perf_counter()
        total = asyncio.run(_run(args, server.base_url))
        elapsed = time.perf_counter() - started
        cpu_after = _cpu_seconds(server.pid)
        stats = server.stats()

    mode = "streaming" if args.stream else "non-streaming"
    print(f"fake LLM, {mode}, {args.client} clients x{args.concurrency}, {elapsed:.1f} s")
    print(f"  requests:        {total} ({stats.requests} counted by the server, {stats.ok} ok)")
    print(f"  throughput:      {total / elapsed:,.0f} req/s (limited by whichever side saturates first)")
    if cpu_before is not None and cpu_after is not None and cpu_after > cpu_before:
        per_request = (cpu_after - cpu_before) / total
        print(
            f"  server CPU:      {per_request * 1e6:.0f} us/request, {cpu_after - cpu_before:.2f} s in total"
        )
        print(f"  server capacity: {1 / per_request:,.0f} req/s per core")


if __name__ == "__main__":
    main()
