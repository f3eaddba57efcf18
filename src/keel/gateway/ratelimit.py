"""Rate limits and quotas: requests and tokens per window, and concurrent runs, per API key, user,
tenant or agent; counted in this process or shared by every process through Redis.

    limiter = build_rate_limiter(config.gateway.rate_limits, os.environ)
    subjects = {"key": "k3v7q2mxa4bz", "user": "alice", "tenant": "acme", "agent": "triage"}
    refusal = await limiter.hit(subjects)               # every request: None or a Refusal (429)
    refusal = await limiter.acquire_run(subjects, run_id)  # a run is accepted
    await limiter.release_run(subjects, run_id)         # the run ended (any process may do it)
    await limiter.add_tokens(subjects, usage.total_tokens)  # the run's tokens, when it ends

**Subjects.** One mapping `per -> id` per request. A limit whose `per` is missing from it (or
empty) does not apply: a request without a key is not counted against per-key limits. Ids are
namespaced where they would otherwise collide: a user or an agent is counted as `<tenant>/<id>`
(tenant `default` when the subjects name none), so user "alice" of tenant A and user "alice" of
tenant B have separate limits, and so do agent "triage" of A and of B. A key prefix is globally
unique and a tenant is itself, so they are used as they are.

**Algorithm: GCRA** (the generic cell rate algorithm; a token bucket stored as one number). A
limit of N per window W lets a subject make a burst of up to N requests, then refills
continuously at N/W: one more request every W/N seconds. State per limit and subject is the
bucket's level (the amount used, draining at N/W) and when it was last updated, so memory and
Redis use are O(1) per subject and a state that has drained is the same as no state (it is
dropped: Redis keys expire exactly then). A request is allowed when the level plus one fits in N;
otherwise `retry_after` is exactly when it would: `(level + 1 - N) * W / N`.

- `requests`: `hit` adds one to every applicable requests limit, all-or-nothing: if any limit
  refuses, none is counted. Refused requests are never counted.
- `tokens`: `add_tokens` adds a run's tokens when it ends (the level may then go past N: the
  excess is debt that drains like the rest). `hit` refuses while less than one token of an
  applicable tokens limit is left, with `retry_after` until one is.
- `concurrent_runs`: `acquire_run` takes a lease on a slot of every applicable limit (again
  all-or-nothing); `release_run` gives it back (idempotent; any process may release a run that
  another acquired). Leases expire after `lease_seconds` (default one hour), so a crashed process
  cannot hold slots forever; calling `acquire_run` again for a run that holds its slots renews
  its lease. A refusal's `retry_after` is 1 s (or less if a lease expires sooner): slots free up
  when runs end, which cannot be predicted.

When several limits refuse, the refusal names the one with the longest `retry_after` (the request
cannot pass before then anyway).

Backends: `MemoryRateLimiter` (this process only; asyncio-safe because it never awaits while
counting; bounded memory: drained subjects are swept and, past `max_entries`, the least recently
seen are forgotten) and `keel.gateway.ratelimit_redis.RedisRateLimiter` (shared by every
process; atomic Lua scripts; see that module). `build_rate_limiter` picks one from the config.

See docs/rate-limits.md.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from types import TracebackType
from typing import Any, Literal, Self

from keel.config.gateway import DEFAULT_TENANT, RateLimitConfig, RateLimitsConfig
from keel.errors import UsageError

Per = Literal["key", "user", "tenant", "agent"]
Measure = Literal["requests", "tokens", "concurrent_runs"]
Subjects = Mapping[str, str]
"""`per -> id` for one request, e.g. {"key": "k3v7q2mxa4bz", "user": "alice", "tenant": "acme"}."""

DEFAULT_LEASE_SECONDS = 3600.0
"""How long a concurrent-run slot is held when its run is never released (a crashed process)."""

DEFAULT_MAX_ENTRIES = 100_000
"""How many (limit, subject) states a MemoryRateLimiter keeps at most."""

RUN_RETRY_AFTER = 1.0
"""The retry_after of a concurrent-runs refusal (a slot frees when a run ends: unpredictable)."""

UNAVAILABLE_RETRY_AFTER = 1.0
"""The retry_after of a refusal because the limiter's Redis does not answer."""

_NAMESPACED: frozenset[str] = frozenset({"user", "agent"})


@dataclass(frozen=True)
class Refusal:
    """Why a request or a run is refused: answer 429 (or 503 when `unavailable`)."""

    limit: str
    """The refusing limit's name (for `unavailable`: the first limit that could not be checked)."""
    per: Per
    retry_after: float
    """Seconds (> 0) until the request could pass; round it up for a Retry-After header."""
    message: str
    unavailable: bool = False
    """True when refused only because Redis does not answer and `on_redis_error` is `refuse`."""

    @property
    def retry_after_header(self) -> str:
        """`retry_after` rounded up to whole seconds (at least 1), for a Retry-After header."""
        return str(max(1, math.ceil(self.retry_after)))


@dataclass(frozen=True)
class Limit:
    """A configured limit, ready to count: `amount` per `window` seconds (or concurrent runs)."""

    name: str
    per: Per
    measure: Measure
    amount: int
    window: float
    """Seconds; for concurrent_runs, unused."""

    @classmethod
    def from_config(cls, config: RateLimitConfig) -> Limit:
        if config.requests is not None:
            return cls(config.name, config.per, "requests", config.requests, config.window_seconds)
        if config.tokens is not None:
            return cls(config.name, config.per, "tokens", config.tokens, config.window_seconds)
        assert config.concurrent_runs is not None  # the config allows exactly one measure
        return cls(config.name, config.per, "concurrent_runs", config.concurrent_runs, 0.0)

    @property
    def description(self) -> str:
        """`100 requests per 60 s`, `50000 tokens per 3600 s`, `5 concurrent runs`."""
        if self.measure == "concurrent_runs":
            return f"{self.amount} concurrent run{'s' if self.amount != 1 else ''}"
        unit = "request" if self.measure == "requests" else "token"
        return f"{self.amount} {unit}{'s' if self.amount != 1 else ''} per {self.window:g} s"

    def refusal(self, retry_after: float) -> Refusal:
        return Refusal(
            limit=self.name,
            per=self.per,
            retry_after=retry_after,
            message=f"rate limit '{self.name}' exceeded: {self.description} for this {self.per}",
        )

    def unavailable(self) -> Refusal:
        return Refusal(
            limit=self.name,
            per=self.per,
            retry_after=UNAVAILABLE_RETRY_AFTER,
            message=f"rate limiter unavailable: Redis does not answer, so rate limit '{self.name}' "
            "cannot be checked",
            unavailable=True,
        )


def subject_id(per: str, subjects: Subjects) -> str | None:
    """The id a limit `per` counts for these subjects, or None when the limit does not apply.
    Users and agents are namespaced by tenant (`acme/alice`); keys and tenants are used as is."""
    value = subjects.get(per)
    if not value:
        return None
    if per in _NAMESPACED:
        return f"{subjects.get('tenant') or DEFAULT_TENANT}/{value}"
    return value


class RateLimiter(ABC):
    """Counts requests, tokens and concurrent runs against the configured limits."""

    def __init__(self, limits: Iterable[RateLimitConfig | Limit]) -> None:
        compiled = [lim if isinstance(lim, Limit) else Limit.from_config(lim) for lim in limits]
        names = [lim.name for lim in compiled]
        if len(set(names)) != len(names):
            raise UsageError(f"rate limit names must be unique: {', '.join(sorted(names))}")
        self.limits: tuple[Limit, ...] = tuple(compiled)
        # What `hit` checks: requests limits first (counted), then tokens limits (only checked).
        self._rate: tuple[Limit, ...] = tuple(
            [lim for lim in compiled if lim.measure == "requests"]
            + [lim for lim in compiled if lim.measure == "tokens"]
        )
        self._tokens: tuple[Limit, ...] = tuple(lim for lim in compiled if lim.measure == "tokens")
        self._runs: tuple[Limit, ...] = tuple(lim for lim in compiled if lim.measure == "concurrent_runs")

    @staticmethod
    def _applicable(limits: tuple[Limit, ...], subjects: Subjects) -> list[tuple[Limit, str]]:
        found = []
        for lim in limits:
            sid = subject_id(lim.per, subjects)
            if sid is not None:
                found.append((lim, sid))
        return found

    @abstractmethod
    async def hit(self, subjects: Subjects) -> Refusal | None:
        """Count one request against every applicable requests limit (all or none), unless one of
        them or an applicable tokens limit (used up) refuses it: then return the Refusal."""

    @abstractmethod
    async def acquire_run(self, subjects: Subjects, run_id: str) -> Refusal | None:
        """Take a slot of every applicable concurrent_runs limit for this run (all or none)."""

    @abstractmethod
    async def release_run(self, subjects: Subjects, run_id: str) -> None:
        """Give back the run's slots (idempotent; the same subjects as acquire_run)."""

    @abstractmethod
    async def add_tokens(self, subjects: Subjects, tokens: int) -> None:
        """Count a run's tokens against every applicable tokens limit."""

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """Counters for /readyz and metrics: the backend, and for Redis its errors and state."""

    async def ping(self) -> bool:
        """Whether the limiter's store answers now (always True in memory)."""
        return True

    async def aclose(self) -> None:  # noqa: B027 (nothing to close by default)
        """Release connections (Redis). The limiter must not be used afterwards."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class MemoryRateLimiter(RateLimiter):
    """Limits counted in this process only (each process of a deployment counts on its own).

    `clock` returns seconds on a monotonic scale (tests pass a fake one). Counting never awaits,
    so concurrent tasks of one event loop cannot interleave inside a check (not thread-safe: use
    it from one event loop). At most about `max_entries` subject states are kept: drained states
    are swept as the table grows, and past the bound the least recently seen (counted or refused)
    are forgotten (which only ever lets more requests through, never fewer)."""

    def __init__(
        self,
        limits: Iterable[RateLimitConfig | Limit],
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        super().__init__(limits)
        if lease_seconds <= 0:
            raise UsageError("lease_seconds must be more than 0")
        if max_entries < 1:
            raise UsageError("max_entries must be at least 1")
        self._lease = float(lease_seconds)
        self._clock = clock
        self._max_entries = max_entries
        self._by_name = {lim.name: lim for lim in self.limits}
        # (limit name, subject) -> (level, when): the amount used at `when`, draining at amount/window.
        self._levels: dict[tuple[str, str], tuple[float, float]] = {}
        # (limit name, subject) -> run id -> lease expiry.
        self._leases: dict[tuple[str, str], dict[str, float]] = {}
        self._sweep_at = min(1024, max_entries)
        self._lease_sweep_at = 1024
        self._forgotten = 0

    def _level(self, lim: Limit, key: tuple[str, str], now: float) -> float:
        state = self._levels.get(key)
        if state is None:
            return 0.0
        level, when = state
        elapsed = now - when
        if elapsed > 0:
            level -= elapsed * lim.amount / lim.window
        return level if level > 0 else 0.0

    def _store(self, key: tuple[str, str], level: float, now: float) -> None:
        # Re-inserting moves the key to the end: the dict's order is least recently seen first.
        self._levels.pop(key, None)
        self._levels[key] = (level, now)
        if len(self._levels) >= self._sweep_at:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        levels = self._levels
        by_name = self._by_name
        for key in [k for k in levels if self._level(by_name[k[0]], k, now) <= 0]:
            del levels[key]
        if len(levels) > self._max_entries * 9 // 10:
            excess = len(levels) - self._max_entries * 8 // 10
            for key in list(islice(levels, excess)):
                del levels[key]
            self._forgotten += excess
        self._sweep_at = max(1, min(max(1024, 2 * len(levels)), self._max_entries))

    async def hit(self, subjects: Subjects) -> Refusal | None:
        now = self._clock()
        worst: Limit | None = None
        worst_wait = 0.0
        counted: list[tuple[tuple[str, str], float]] = []
        for lim in self._rate:
            sid = subject_id(lim.per, subjects)
            if sid is None:
                continue
            key = (lim.name, sid)
            level = self._level(lim, key, now)
            excess = level + 1 - lim.amount
            if excess > 0:
                wait = excess * lim.window / lim.amount
                if wait > worst_wait:
                    worst, worst_wait = lim, wait
            elif lim.measure == "requests":
                counted.append((key, level + 1))
        if worst is not None:
            # Refused subjects count as recently seen too: a client hammering past its limit is the
            # last one to forget when memory is short.
            key = (worst.name, subject_id(worst.per, subjects) or "")
            state = self._levels.pop(key, None)
            if state is not None:
                self._levels[key] = state
            return worst.refusal(worst_wait)
        for key, level in counted:
            self._store(key, level, now)
        return None

    async def add_tokens(self, subjects: Subjects, tokens: int) -> None:
        if tokens <= 0:
            return
        now = self._clock()
        for lim in self._tokens:
            sid = subject_id(lim.per, subjects)
            if sid is not None:
                key = (lim.name, sid)
                self._store(key, self._level(lim, key, now) + tokens, now)

    async def acquire_run(self, subjects: Subjects, run_id: str) -> Refusal | None:
        now = self._clock()
        applicable = self._applicable(self._runs, subjects)
        for lim, sid in applicable:
            leases = self._leases.get((lim.name, sid))
            if leases is None or (run_id in leases and leases[run_id] > now):
                continue
            for run, expiry in list(leases.items()):
                if expiry <= now:
                    del leases[run]
            if len(leases) >= lim.amount:
                return lim.refusal(min(RUN_RETRY_AFTER, min(leases.values()) - now))
        expiry = now + self._lease
        for lim, sid in applicable:
            self._leases.setdefault((lim.name, sid), {})[run_id] = expiry
        if len(self._leases) >= self._lease_sweep_at:
            self._sweep_leases(now)
        return None

    def _sweep_leases(self, now: float) -> None:
        for key, leases in list(self._leases.items()):
            for run, expiry in list(leases.items()):
                if expiry <= now:
                    del leases[run]
            if not leases:
                del self._leases[key]
        self._lease_sweep_at = max(1024, 2 * len(self._leases))

    async def release_run(self, subjects: Subjects, run_id: str) -> None:
        for lim, sid in self._applicable(self._runs, subjects):
            leases = self._leases.get((lim.name, sid))
            if leases is not None and leases.pop(run_id, None) is not None and not leases:
                del self._leases[(lim.name, sid)]

    def stats(self) -> dict[str, Any]:
        return {
            "backend": "memory",
            "entries": len(self._levels),
            "run_subjects": len(self._leases),
            "forgotten": self._forgotten,
        }


def build_rate_limiter(
    config: RateLimitsConfig,
    environ: Mapping[str, str],
    *,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> RateLimiter:
    """The limiter `gateway.rate_limits` describes: shared through Redis when `redis_url_env` is
    set (UsageError naming the variable when it is not set or empty in `environ`), else in memory.
    Does not connect: the first request does."""
    if config.redis_url_env is None:
        return MemoryRateLimiter(config.limits, lease_seconds=lease_seconds)
    url = environ.get(config.redis_url_env, "").strip()
    if not url:
        raise UsageError(
            f"gateway.rate_limits.redis_url_env names the environment variable {config.redis_url_env}, "
            f"which is not set: set {config.redis_url_env} to a redis:// URL, or remove redis_url_env "
            "to count rate limits in each process"
        )
    from keel.gateway.ratelimit_redis import RedisRateLimiter

    return RedisRateLimiter(
        url, config.limits, on_redis_error=config.on_redis_error, lease_seconds=lease_seconds
    )


__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "Limit",
    "Measure",
    "MemoryRateLimiter",
    "Per",
    "RateLimiter",
    "Refusal",
    "Subjects",
    "build_rate_limiter",
    "subject_id",
]
