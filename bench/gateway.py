"""The gateway's own cost per request: authentication, authorization, rate limit and budget check.

    python -m bench.gateway [--requests N] [--postgres URL] [--redis URL]

Times, one request after another, in one process, against real stores:
- `auth key (cached)`: `Gateway.authenticate` of an API key already verified by this process
  (`gateway.key_cache`, the steady state of a busy client), plus the scope and agent checks;
- `auth key (database)`: the same with `key_cache: 0`: HMAC and one database read every time;
- `rate limit`: `RateLimiter.hit` against two limits (per key, per tenant): in the process on
  SQLite, in Redis on Postgres;
- `budget reserve`: the ledger's hold before a model request, against a per-tenant daily USD
  budget and a per-run USD budget. Runs of `RUN_REQUESTS` (10) model requests each, as an agent
  loop makes them; every request is settled after it (timed apart). Three cases:
  `lease held` (requests 2-10 of a run: the ledger's leases have room, no database round trip),
  `new run, prepared` (a run's first request, when the run's start opened its leases in the
  background, as `BudgetGuard.for_run` does; the bench waits for that before the request), and
  `new run, cold` (a run's first request with no lease on its run budget yet: one transaction,
  the database path every request took before leases);
- `budget settle`: the settlement after the model call (a transaction; requests settling at the
  same time share one);
- `run start: leases`: how long the background opening of a new run's leases takes (off the
  request path);
- `total per request`: authentication (cached) + rate limit + budget reserve, timed together,
  per case;
- `burst`: 100 runs reserving their first request at once, cold: each request's wait, and the
  transactions the ledger needed for them.
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
from keel.gateway.budgets import Budget, Reservation
from keel.gateway.keys import SCOPES
from keel.gateway.ratelimit import MemoryRateLimiter, RateLimiter
from keel.store import upgrade
from keel.store.keys import KeyStore
from keel.store.ledger import BudgetLedger

LIMITS = [
    RateLimitConfig(name="per-key", per="key", requests=10_000_000, window="1m"),
    RateLimitConfig(name="per-tenant", per="tenant", requests=10_000_000, window="1m"),
]
RUN_REQUESTS = 10
ESTIMATE = Decimal("0.002")
ACTUAL = Decimal("0.0015")
BURSTS = 5
BURST_RUNS = 100


def report(label: str, samples: list[float]) -> float:
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    print(f"  {label:<30} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms   ({len(samples)} requests)")
    return p50


async def timed(label: str, count: int, call: Callable[[int], Awaitable[object]]) -> list[float]:
    for i in range(min(50, count)):  # warm up connections and caches
        await call(-1 - i)
    samples = []
    for i in range(count):
        start = time.perf_counter()
        await call(i)
        samples.append((time.perf_counter() - start) * 1000)
    report(label, samples)
    return samples


def budgets(run: str) -> list[Budget]:
    return [
        Budget("tenant", "acme", "usd", "day", Decimal("1000000")),
        Budget("run", run, "usd", "run", Decimal("10"), tenant_id="acme"),
    ]


async def measure(backend: str, url: str, limiter: RateLimiter, count: int) -> None:
    print(f"{backend}:")
    upgrade(url)
    async with KeyStore(url) as keys:
        key = (await keys.create("bench", SCOPES, tenant_id="acme")).key
    cached = Gateway(GatewayConfig(), keys=KeyStore(url))
    uncached = Gateway(GatewayConfig(key_cache=0), keys=KeyStore(url))
    ledger = BudgetLedger(url)
    header = f"Bearer {key}"
    subjects = {"key": "bench", "tenant": "acme"}

    async def auth(gateway: Gateway) -> object:
        principal = await gateway.authenticate(header)
        gateway.authorize(principal, "runs:write")
        gateway.check_agent(principal, "inbox")
        return principal

    try:
        await timed("auth key (cached)", count, lambda _i: auth(cached))
        await timed("auth key (database)", count, lambda _i: auth(uncached))
        await timed("rate limit", count, lambda _i: limiter.hit(subjects))
        await requests(ledger, cached, limiter, auth, subjects, count)
        await burst(ledger)
    finally:
        await cached.aclose()
        await uncached.aclose()
        await ledger.close()
        await limiter.aclose()


async def requests(
    ledger: BudgetLedger,
    gateway: Gateway,
    limiter: RateLimiter,
    auth: Callable[[Gateway], Awaitable[object]],
    subjects: dict[str, str],
    count: int,
) -> None:
    """Runs of RUN_REQUESTS requests, each: auth + rate limit + reserve (timed together and the
    reserve alone), then its settlement (timed apart). Odd runs are prepared at their start."""
    reserve: dict[str, list[float]] = {"lease held": [], "new run, prepared": [], "new run, cold": []}
    total: dict[str, list[float]] = {case: [] for case in reserve}
    settle: list[float] = []
    opening: list[float] = []
    warm_up = 5 * RUN_REQUESTS
    tag = uuid.uuid4().hex[:6]
    started = ledger.transactions
    for i in range(-warm_up, count):
        run, step = divmod(i + warm_up, RUN_REQUESTS)
        run_budgets = budgets(f"run-{tag}-{run}")
        case = "lease held"
        if step == 0:
            case = "new run, cold"
            if run % 2:
                case = "new run, prepared"
                began = time.perf_counter()
                ledger.prepare(run_budgets, amount_usd=ESTIMATE, tokens=1500)
                await ledger.flush()  # the run's setup happens meanwhile, in a real run
                if i >= 0:
                    opening.append((time.perf_counter() - began) * 1000)
        start = time.perf_counter()
        await auth(gateway)
        await limiter.hit(subjects)
        held = time.perf_counter()
        reservation: Reservation = await ledger.reserve(
            run_budgets, amount_usd=ESTIMATE, tokens=1500, tenant_id="acme"
        )
        done = time.perf_counter()
        await ledger.settle(reservation, actual_usd=ACTUAL, actual_tokens=1200)
        settled = time.perf_counter()
        if i >= 0:
            reserve[case].append((done - held) * 1000)
            total[case].append((done - start) * 1000)
            settle.append((settled - done) * 1000)
    for case, samples in reserve.items():
        report(f"budget reserve: {case}", samples)
    report("budget settle", settle)
    report("run start: leases (background)", opening)
    for case, samples in total.items():
        report(f"total*: {case}", samples)
    everything = [sample for samples in total.values() for sample in samples]
    report(f"total*: all (runs of {RUN_REQUESTS})", everything)
    print("  * auth (cached) + rate limit + budget reserve; the settlement is after the model call")
    used = ledger.transactions - started
    print(f"  ledger transactions: {used} for {count + warm_up} requests and their settlements")


async def burst(ledger: BudgetLedger) -> None:
    """BURST_RUNS runs reserving their first request at once (no lease on their run budgets)."""
    waits: list[float] = []
    transactions = 0
    for index in range(BURSTS):
        tag = f"burst-{uuid.uuid4().hex[:6]}-{index}"
        before = ledger.transactions

        async def one(run: int, tag: str = tag) -> Reservation:
            start = time.perf_counter()
            held = await ledger.reserve(budgets(f"{tag}-{run}"), amount_usd=ESTIMATE, tokens=1500)
            waits.append((time.perf_counter() - start) * 1000)
            return held

        held = await asyncio.gather(*(one(run) for run in range(BURST_RUNS)))
        transactions += ledger.transactions - before
        await asyncio.gather(*(ledger.settle(h, actual_usd=ACTUAL, actual_tokens=1200) for h in held))
    report(f"burst: {BURST_RUNS} new runs at once", waits)
    print(f"  ledger transactions: {transactions / BURSTS:.1f} per burst of {BURST_RUNS} reservations")


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
