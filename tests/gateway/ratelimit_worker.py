"""A worker process of the shared rate limit tests, on its own Redis connections.

- `python -m tests.gateway.ratelimit_worker hit URL PREFIX COUNT`: prints `ready` once Redis
  answers, waits for a line on stdin, makes COUNT requests at once against the `shared` limit
  (SHARED_REQUESTS per minute for tenant `acme`) and prints `{"allowed": n, "refused": m}`.
- `python -m tests.gateway.ratelimit_worker release URL PREFIX RUN_ID`: releases the run's slot of
  the `runs` limit (RUN_LIMIT concurrent runs for tenant `acme`) and prints `released`.
"""

from __future__ import annotations

import asyncio
import json
import sys

from keel.config.gateway import RateLimitConfig
from keel.gateway.ratelimit_redis import RedisRateLimiter

SHARED_REQUESTS = 50
RUN_LIMIT = 1
SUBJECTS = {"tenant": "acme"}
LIMITS = [
    RateLimitConfig(name="shared", per="tenant", requests=SHARED_REQUESTS, window="1m"),
    RateLimitConfig(name="runs", per="tenant", concurrent_runs=RUN_LIMIT),
]


async def hit(url: str, prefix: str, count: int) -> None:
    async with RedisRateLimiter(url, LIMITS, prefix=prefix, on_redis_error="refuse") as limiter:
        assert await limiter.ping()
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        outcomes = await asyncio.gather(*(limiter.hit(SUBJECTS) for _ in range(count)))
        assert not any(o is not None and o.unavailable for o in outcomes), limiter.stats()
    allowed = sum(1 for outcome in outcomes if outcome is None)
    print(json.dumps({"allowed": allowed, "refused": count - allowed}), flush=True)


async def release(url: str, prefix: str, run_id: str) -> None:
    async with RedisRateLimiter(url, LIMITS, prefix=prefix, on_redis_error="refuse") as limiter:
        await limiter.release_run(SUBJECTS, run_id)
        assert limiter.stats()["redis_errors"] == 0, limiter.stats()
    print("released", flush=True)


if __name__ == "__main__":
    mode, url, prefix, arg = sys.argv[1:5]
    if mode == "hit":
        asyncio.run(hit(url, prefix, int(arg)))
    else:
        asyncio.run(release(url, prefix, arg))
