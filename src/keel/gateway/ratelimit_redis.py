"""The Redis backend of rate limits: every process of a deployment counts in the same place.

Each operation is one atomic Lua script (EVALSHA; the script is loaded on first use and again if
Redis forgets it), so `hit` costs one round trip, and concurrent processes cannot both take the
last request or the last run slot. Time is Redis's own clock (`TIME` inside the scripts), so the
processes' clocks need not agree.

Keys (`prefix` defaults to `keel:rl:`; the limit's name cannot contain `:`):

- `keel:rl:r:<limit>:<subject>`: a requests limit's state, the string `<level>:<microseconds>`
  (GCRA, see keel.gateway.ratelimit), expiring when the level has drained to 0.
- `keel:rl:t:<limit>:<subject>`: the same for a tokens limit.
- `keel:rl:c:<limit>:<subject>`: a concurrent_runs limit's sorted set: run id -> lease expiry
  (microseconds); expired leases are removed by the next acquire, and the key expires with its
  last lease.

Nothing lives longer than its window, its token debt or its last lease. A single Redis (or a
primary with replicas) is expected: the keys of one operation are not given a common hash slot,
so Redis Cluster is not supported.

When Redis does not answer (connection refused, no answer within `socket_timeout`, 0.25 s by
default, or no connection within `connect_timeout`, 1 s), `on_redis_error` decides: `allow` lets the request through, `refuse` answers
`Refusal(unavailable=True, retry_after=1)`. Errors are counted in `stats()` and logged at most
once per 10 s. After a connection error or a timeout, Redis is not asked again for
`retry_interval` seconds (1 s by default): meanwhile every call gets the `on_redis_error` answer
at once, so a dead or unreachable Redis costs requests nothing but that one timeout per second.
A lost `release_run` leaves its slot held until its lease expires; lost `add_tokens` are not
counted.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from keel.config.gateway import RateLimitConfig
from keel.errors import UsageError
from keel.gateway.ratelimit import (
    DEFAULT_LEASE_SECONDS,
    RUN_RETRY_AFTER,
    Limit,
    RateLimiter,
    Refusal,
    Subjects,
    subject_id,
)

logger = logging.getLogger("keel.gateway.ratelimit")

DEFAULT_PREFIX = "keel:rl:"
LOG_INTERVAL = 10.0
"""Seconds between two log lines about Redis errors."""

_US = 1_000_000

# KEYS: requests keys (the first ARGV[1]), then tokens keys. ARGV[2i], ARGV[2i+1]: key i's amount
# and window (microseconds). Returns {0, 0} when counted, else {i, microseconds to wait} for the
# refusing key with the longest wait (and counts nothing).
_HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local counted = tonumber(ARGV[1])
local worst, worst_wait = 0, 0
local levels = {}
for i = 1, #KEYS do
  local amount = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  local level = 0
  local state = redis.call('GET', KEYS[i])
  if state then
    local sep = string.find(state, ':', 1, true)
    local elapsed = now - tonumber(string.sub(state, sep + 1))
    if elapsed < 0 then elapsed = 0 end
    level = tonumber(string.sub(state, 1, sep - 1)) - elapsed * amount / window
    if level < 0 then level = 0 end
  end
  local excess = level + 1 - amount
  if excess > 0 then
    local wait = excess * window / amount
    if wait > worst_wait then
      worst = i
      worst_wait = wait
    end
  end
  levels[i] = level
end
if worst > 0 then
  return {worst, math.ceil(worst_wait)}
end
for i = 1, counted do
  local amount = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  local level = levels[i] + 1
  redis.call('SET', KEYS[i], string.format('%.17g:%.0f', level, now),
    'PX', math.ceil(level * window / amount / 1000) + 1)
end
return {0, 0}
"""

# KEYS: tokens keys. ARGV[1]: tokens; ARGV[2i], ARGV[2i+1]: key i's amount and window (us).
_ADD_TOKENS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tokens = tonumber(ARGV[1])
for i = 1, #KEYS do
  local amount = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  local level = 0
  local state = redis.call('GET', KEYS[i])
  if state then
    local sep = string.find(state, ':', 1, true)
    local elapsed = now - tonumber(string.sub(state, sep + 1))
    if elapsed < 0 then elapsed = 0 end
    level = tonumber(string.sub(state, 1, sep - 1)) - elapsed * amount / window
    if level < 0 then level = 0 end
  end
  level = level + tokens
  redis.call('SET', KEYS[i], string.format('%.17g:%.0f', level, now),
    'PX', math.ceil(level * window / amount / 1000) + 1)
end
return 0
"""

# KEYS: concurrent_runs keys. ARGV[1]: run id; ARGV[2]: lease (us); ARGV[2 + i]: key i's amount.
# Returns {0, 0} when every slot is taken (or renewed), else {i, us until key i's first lease
# expires} for the first full key (and takes nothing).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local run = ARGV[1]
local lease = tonumber(ARGV[2])
local now_s = string.format('%.0f', now)
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now_s)
  if not redis.call('ZSCORE', KEYS[i], run) then
    if redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[2 + i]) then
      local first = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
      return {i, tonumber(first[2]) - now}
    end
  end
end
local expiry = string.format('%.0f', now + lease)
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], expiry, run)
  local last = redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')
  redis.call('PEXPIRE', KEYS[i], math.ceil((tonumber(last[2]) - now) / 1000) + 1)
end
return {0, 0}
"""

# KEYS: concurrent_runs keys. ARGV[1]: run id.
_RELEASE = """
for i = 1, #KEYS do
  redis.call('ZREM', KEYS[i], ARGV[1])
end
return 0
"""

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
_FAILED: Any = object()


class RedisRateLimiter(RateLimiter):
    """Limits shared by every process that uses the same Redis (and `prefix`).

    `url` is a redis:// (or rediss://, unix://) URL. Does not connect until first used. At most
    `max_connections` connections are opened (Redis runs one script at a time anyway); a call
    waits up to `connect_timeout` for a free one or for a new connection, and up to
    `socket_timeout` for Redis's answer."""

    def __init__(
        self,
        url: str,
        limits: Iterable[RateLimitConfig | Limit],
        *,
        on_redis_error: Literal["allow", "refuse"] = "allow",
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout: float = 0.25,
        connect_timeout: float = 1.0,
        retry_interval: float = 1.0,
        max_connections: int = 16,
    ) -> None:
        super().__init__(limits)
        if lease_seconds <= 0:
            raise UsageError("lease_seconds must be more than 0")
        if on_redis_error not in ("allow", "refuse"):
            raise UsageError(f"on_redis_error must be 'allow' or 'refuse', not {on_redis_error!r}")
        try:
            pool = BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=connect_timeout,
                socket_timeout=socket_timeout,
                socket_connect_timeout=connect_timeout,
                retry=Retry(NoBackoff(), 0),
            )
        except ValueError as error:
            raise UsageError(f"not a Redis URL for the rate limiter: {error}") from None
        self._redis = Redis.from_pool(pool)
        self._allow = on_redis_error == "allow"
        self._lease_us = math.ceil(lease_seconds * _US)
        self._prefix = prefix
        self._retry_interval = retry_interval
        self._hit_script: AsyncScript = self._redis.register_script(_HIT)
        self._add_script: AsyncScript = self._redis.register_script(_ADD_TOKENS)
        self._acquire_script: AsyncScript = self._redis.register_script(_ACQUIRE)
        self._release_script: AsyncScript = self._redis.register_script(_RELEASE)
        # ARGV pairs (amount, window in us) per limit, computed once.
        self._rate_args = {lim.name: (lim.amount, math.ceil(lim.window * _US)) for lim in self._rate}
        self._errors = 0
        self._skipped = 0
        self._unlogged = 0
        self._logged_at = -math.inf
        self._down_until = -math.inf
        self._up: bool | None = None
        self._last_error: str | None = None

    def _key(self, lim: Limit, sid: str) -> str:
        kind = "r" if lim.measure == "requests" else "t" if lim.measure == "tokens" else "c"
        return f"{self._prefix}{kind}:{lim.name}:{sid}"

    async def _run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        """The script's answer, or _FAILED (counted and logged) when Redis does not answer."""
        if self._down_until > time.monotonic():
            self._skipped += 1
            return _FAILED
        try:
            result = await script(keys=keys, args=args, client=self._redis)
        except (RedisError, OSError) as error:
            self._failed(error)
            return _FAILED
        if self._up is False:
            logger.info("rate limiter: Redis answers again")
        self._up = True
        return result

    def _failed(self, error: Exception) -> None:
        now = time.monotonic()
        self._errors += 1
        self._unlogged += 1
        self._up = False
        self._last_error = f"{type(error).__name__}: {error}"
        if isinstance(error, _UNREACHABLE):
            self._down_until = now + self._retry_interval
        if now - self._logged_at >= LOG_INTERVAL:
            action = "allowing requests" if self._allow else "refusing requests (503)"
            logger.warning(
                "rate limiter: Redis error (%d since the last report), %s: %s",
                self._unlogged,
                action,
                self._last_error,
            )
            self._logged_at = now
            self._unlogged = 0

    async def hit(self, subjects: Subjects) -> Refusal | None:
        applicable: list[Limit] = []
        keys: list[str] = []
        args: list[str | int] = [0]
        counted = 0
        for lim in self._rate:
            sid = subject_id(lim.per, subjects)
            if sid is None:
                continue
            applicable.append(lim)
            keys.append(self._key(lim, sid))
            args.extend(self._rate_args[lim.name])
            if lim.measure == "requests":
                counted += 1
        if not applicable:
            return None
        args[0] = counted
        result = await self._run(self._hit_script, keys, args)
        if result is _FAILED:
            return None if self._allow else applicable[0].unavailable()
        index, wait_us = int(result[0]), int(result[1])
        if index == 0:
            return None
        return applicable[index - 1].refusal(max(wait_us, 1) / _US)

    async def add_tokens(self, subjects: Subjects, tokens: int) -> None:
        if tokens <= 0:
            return
        keys: list[str] = []
        args: list[str | int] = [int(tokens)]
        for lim, sid in self._applicable(self._tokens, subjects):
            keys.append(self._key(lim, sid))
            args.extend(self._rate_args[lim.name])
        if keys:
            await self._run(self._add_script, keys, args)

    async def acquire_run(self, subjects: Subjects, run_id: str) -> Refusal | None:
        applicable = self._applicable(self._runs, subjects)
        if not applicable:
            return None
        keys = [self._key(lim, sid) for lim, sid in applicable]
        args: list[str | int] = [run_id, self._lease_us, *(lim.amount for lim, _ in applicable)]
        result = await self._run(self._acquire_script, keys, args)
        if result is _FAILED:
            return None if self._allow else applicable[0][0].unavailable()
        index, wait_us = int(result[0]), int(result[1])
        if index == 0:
            return None
        return applicable[index - 1][0].refusal(min(RUN_RETRY_AFTER, max(wait_us, 1) / _US))

    async def release_run(self, subjects: Subjects, run_id: str) -> None:
        keys = [self._key(lim, sid) for lim, sid in self._applicable(self._runs, subjects)]
        if keys and await self._run(self._release_script, keys, [run_id]) is _FAILED:
            logger.warning(
                "rate limiter: run %s could not be released; its slot is held until its lease expires",
                run_id,
            )

    async def ping(self) -> bool:
        """Whether Redis answers now (also updates `stats()["redis_up"]`); ignores the back-off."""
        try:
            await self._redis.ping()
        except (RedisError, OSError) as error:
            self._failed(error)
            return False
        self._up = True
        self._down_until = -math.inf
        return True

    def stats(self) -> dict[str, Any]:
        """`redis_up`: whether the last call to Redis succeeded (None before the first call);
        `redis_errors`: calls that failed; `redis_skipped`: calls not tried because Redis had just
        failed (they got the on_redis_error answer too); `last_error`: the last one, as text."""
        return {
            "backend": "redis",
            "redis_up": self._up,
            "redis_errors": self._errors,
            "redis_skipped": self._skipped,
            "last_error": self._last_error,
            "on_redis_error": "allow" if self._allow else "refuse",
        }

    async def aclose(self) -> None:
        await self._redis.aclose(close_connection_pool=True)


__all__ = ["DEFAULT_PREFIX", "RedisRateLimiter"]
