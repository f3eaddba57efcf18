"""The gateway's own cost per request: authentication, authorization, rate limit and budget check.

    python -m bench.gateway [--requests N] [--postgres URL] [--redis URL]

Times, one request after another, in one process, against real stores:
- `auth key (cached)`: `Gateway.authenticate` of an API key already verified by this process
  (`gateway.key_cache`, the steady state of a busy client), plus the scope and agent checks;
- `auth key (database)`: the same with `key_cache: 0`: HMAC and one database read every time;
- `rate limit`: `RateLimiter.hit` against two limits (per key, per tenant): in the process on
  SQLite, in Redis on Postgres;
- `budget reserve` and `budget settle`: the ledger's hold before a model request and its
  settlement after, against a per-tenant daily USD budget and a per-run budget;
- `total per request`: authentication (cached) + rate limit + budget reserve, timed together.
Postgres gets a scratch database, dropped afterwards; without a Postgres or Redis answering,
that half is skipped with a note.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

from bench.common import machine_line, percentile, scratch_postgres
from keel.config.gateway import GatewayConfig, RateLimitConfig
from keel.gateway.auth import Gateway
from keel.gateway.budgets import Budget
from keel.gateway.keys import SCOPES
from keel.gateway.ratelimit import MemoryRateLimiter, RateLimiter
from keel.store import upgrade
from keel.store.keys import KeyStore
from keel.store.ledger import BudgetLedger

LIMITS = [
    RateLimitConfig(name="per-key", per="key", requests=10_000_000, window="1m"),
    RateLimitConfig(name="per-tenant", per="tenant", requests=10_000_000, window="1m"),
]


async def timed(label: str, count: int, call: Callable[[int], Awaitable[object]]) -> list[float]:
    for i in range(min(50, count)):  # warm up connections and caches
        await call(-1 - i)
    samples = []
    for i in range(count):
        start = time.perf_counter()
        await call(i)
        samples.append((time.perf_counter() - start) * 1000)
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    print(f"  {label:<24} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms   ({count} requests)")
    return samples


async def measure(backend: str, url: str, limiter: RateLimiter, count: int) -> float:
    print(f"{backend}:")
    upgrade(url)
    async with KeyStore(url) as keys:
        key = (await keys.create("bench", SCOPES, tenant_id="acme")).key
    cached = Gateway(GatewayConfig(), keys=KeyStore(url))
    uncached = Gateway(GatewayConfig(key_cache=0), keys=KeyStore(url))
    ledger = BudgetLedger(url)
    header = f"Bearer {key}"

    async def auth(gateway: Gateway) -> object:
        principal = await gateway.authenticate(header)
        gateway.authorize(principal, "runs:write")
        gateway.check_agent(principal, "inbox")
        return principal

    def budgets(run: int) -> list[Budget]:
        return [
            Budget("tenant", "acme", "usd", "day", Decimal("1000000")),
            Budget("run", f"run-{run}", "usd", "run", Decimal("10"), tenant_id="acme"),
        ]

    async def reserve(i: int) -> object:
        return await ledger.reserve(budgets(i), amount_usd=Decimal("0.002"), tokens=1500, tenant_id="acme")

    subjects = {"key": "bench", "tenant": "acme"}
    try:
        await timed("auth key (cached)", count, lambda _i: auth(cached))
        await timed("auth key (database)", count, lambda _i: auth(uncached))
        await timed("rate limit", count, lambda _i: limiter.hit(subjects))
        holds = []

        async def hold(i: int) -> None:
            holds.append(await reserve(i))

        await timed("budget reserve", count, hold)
        pending = iter(holds)

        async def settle(_i: int) -> None:
            await ledger.settle(next(pending), actual_usd=Decimal("0.0015"), actual_tokens=1200)

        await timed("budget settle", min(count, len(holds) - 50), settle)

        async def whole(i: int) -> None:
            await auth(cached)
            await limiter.hit(subjects)
            await ledger.release(await reserve(10_000_000 + i))

        # release is outside the request's path in production (it happens after the model call);
        # it is timed here with the rest only so the holds do not pile up: see the line below.
        total = await timed("total per request*", count, whole)
        print("  * auth (cached) + rate limit + budget reserve, and the hold's release")
        return percentile(total, 50)
    finally:
        await cached.aclose()
        await uncached.aclose()
        await ledger.close()
        await limiter.aclose()


async def run(args: argparse.Namespace) -> int:
    print(machine_line())
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'gateway.db'}"
        await measure("SQLite, rate limits in the process", url, MemoryRateLimiter(LIMITS), args.requests)
    with scratch_postgres(args.postgres) as pg_url:
        if pg_url is not None:
            from keel.gateway.ratelimit_redis import RedisRateLimiter

            limiter = RedisRateLimiter(args.redis, LIMITS, prefix=f"keel:rl:bench:{uuid.uuid4().hex[:8]}:")
            if not await limiter.ping():
                print(f"postgres + redis: skipped, Redis not reachable at {args.redis}")
                await limiter.aclose()
            else:
                await measure("Postgres, rate limits in Redis", pg_url, limiter, args.requests)
    print(machine_line())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["main"]
