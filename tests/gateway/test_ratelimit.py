"""Rate limits: the same behaviour on both backends (in memory, on a fake clock; Redis, on real
time with short windows), then what only Redis does: limits shared by several processes, a run
released by another process, key prefixes and TTLs, one round trip per request, and what
happens when Redis does not answer.

Redis: the server at KEEL_TEST_REDIS_URL (default redis://127.0.0.1:6379/0). Each test uses its
own key prefix and deletes only its own keys afterwards. If the server does not answer, the Redis
tests fail when CI=true and are skipped otherwise.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio

from keel.config.gateway import RateLimitConfig, RateLimitsConfig
from keel.errors import UsageError
from keel.gateway.ratelimit import (
    DEFAULT_LEASE_SECONDS,
    Limit,
    MemoryRateLimiter,
    RateLimiter,
    Refusal,
    build_rate_limiter,
    subject_id,
)
from keel.gateway.ratelimit_redis import RedisRateLimiter
from tests.gateway.ratelimit_worker import SHARED_REQUESTS

REPO = Path(__file__).resolve().parents[2]
REDIS_ENV = "KEEL_TEST_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

ACME_KEY = {"key": "k3v7q2mxa4bz", "user": "alice", "tenant": "acme", "agent": "triage"}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get(REDIS_ENV, DEFAULT_REDIS_URL)
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as error:
        message = f"Redis at {url} does not answer ({error}); set {REDIS_ENV} or start redis-server"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    finally:
        client.close()
    return url


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards (never FLUSHALL)."""
    value = f"keel:rl:test:{uuid.uuid4().hex}:"
    yield value
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{value}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class FakeClock:
    """Monotonic seconds that only move when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Backend:
    """Makes limiters on one backend. `wait` lets time pass: the fake clock moves (memory), or
    the test sleeps (Redis, whose scripts read Redis's clock). `slack` is how much time may pass
    unasked between two calls (none on the fake clock)."""

    def __init__(self, kind: str, redis_url: str | None = None, prefix: str | None = None) -> None:
        self.kind = kind
        self.redis_url = redis_url
        self.prefix = prefix
        self.clock = FakeClock()
        self.slack = 0.0 if kind == "memory" else 0.3
        self.made: list[RateLimiter] = []

    def make(self, *specs: dict[str, Any], lease_seconds: float = DEFAULT_LEASE_SECONDS) -> RateLimiter:
        configs = [RateLimitConfig(**spec) for spec in specs]
        limiter: RateLimiter
        if self.kind == "memory":
            limiter = MemoryRateLimiter(configs, lease_seconds=lease_seconds, clock=self.clock)
        else:
            assert self.redis_url is not None and self.prefix is not None
            limiter = RedisRateLimiter(
                self.redis_url,
                configs,
                lease_seconds=lease_seconds,
                prefix=self.prefix,
                on_redis_error="refuse",
            )
        self.made.append(limiter)
        return limiter

    async def wait(self, seconds: float) -> None:
        if self.kind == "memory":
            self.clock.advance(seconds)
        else:
            await asyncio.sleep(seconds)


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        made = Backend("memory")
    else:
        made = Backend("redis", request.getfixturevalue("redis_url"), request.getfixturevalue("prefix"))
    yield made
    for limiter in made.made:
        if isinstance(limiter, RedisRateLimiter):
            assert limiter.stats()["redis_errors"] == 0, limiter.stats()
        await limiter.aclose()


def assert_refused(refusal: Refusal | None, limit: str, per: str) -> Refusal:
    assert refusal is not None, f"expected a refusal by {limit!r}"
    assert (refusal.limit, refusal.per, refusal.unavailable) == (limit, per, False), refusal
    assert refusal.retry_after > 0
    return refusal


# --- The same behaviour on both backends ---------------------------------------------------------


async def test_n_requests_allowed_then_refused(backend: Backend) -> None:
    limiter = backend.make({"name": "per-key", "per": "key", "requests": 5, "window": "1m"})
    for _ in range(5):
        assert await limiter.hit(ACME_KEY) is None
    refusal = assert_refused(await limiter.hit(ACME_KEY), "per-key", "key")
    # GCRA: the bucket refills one request every 60/5 = 12 s.
    assert 12 - backend.slack <= refusal.retry_after <= 12
    assert refusal.message == "rate limit 'per-key' exceeded: 5 requests per 60 s for this key"
    assert refusal.retry_after_header == "12"
    assert await limiter.hit({**ACME_KEY, "key": "other0000000"}) is None  # another key: its own count


async def test_window_slides(backend: Backend) -> None:
    limiter = backend.make({"name": "burst", "per": "tenant", "requests": 2, "window": 1})
    assert await limiter.hit(ACME_KEY) is None
    assert await limiter.hit(ACME_KEY) is None
    refusal = assert_refused(await limiter.hit(ACME_KEY), "burst", "tenant")
    assert 0.5 - backend.slack <= refusal.retry_after <= 0.5  # one request every 0.5 s
    if backend.kind == "memory":
        backend.clock.advance(refusal.retry_after - 0.001)
        assert_refused(await limiter.hit(ACME_KEY), "burst", "tenant")
        backend.clock.advance(0.001)
    else:
        await backend.wait(refusal.retry_after)
    assert await limiter.hit(ACME_KEY) is None
    assert_refused(await limiter.hit(ACME_KEY), "burst", "tenant")  # only one came back
    await backend.wait(1.0)  # a whole window later, the whole burst is back
    assert await limiter.hit(ACME_KEY) is None
    assert await limiter.hit(ACME_KEY) is None
    assert_refused(await limiter.hit(ACME_KEY), "burst", "tenant")


async def test_two_limits_count_all_or_nothing(backend: Backend) -> None:
    limiter = backend.make(
        {"name": "per-key", "per": "key", "requests": 3, "window": "1m"},
        {"name": "per-tenant", "per": "tenant", "requests": 5, "window": "1m"},
    )
    k1, k2, k3 = ({"key": name, "tenant": "acme"} for name in ("k1", "k2", "k3"))
    for _ in range(3):
        assert await limiter.hit(k1) is None
    for _ in range(4):  # refused by per-key: not counted against per-tenant either
        assert_refused(await limiter.hit(k1), "per-key", "key")
    assert await limiter.hit(k2) is None
    assert await limiter.hit(k2) is None  # acme's 5th
    assert_refused(await limiter.hit(k2), "per-tenant", "tenant")
    for _ in range(4):  # refused by per-tenant: not counted against k3's per-key either
        assert_refused(await limiter.hit(k3), "per-tenant", "tenant")
    for _ in range(3):
        assert await limiter.hit({"key": "k3", "tenant": "globex"}) is None
    assert_refused(await limiter.hit({"key": "k3", "tenant": "globex"}), "per-key", "key")
    # Both refuse k1: the refusal names the one to wait longest for (per-key: 20 s, per-tenant: 12 s).
    both = assert_refused(await limiter.hit(k1), "per-key", "key")
    assert 20 - backend.slack <= both.retry_after <= 20


async def test_users_and_agents_are_counted_per_tenant(backend: Backend) -> None:
    limiter = backend.make(
        {"name": "per-user", "per": "user", "requests": 2, "window": "1m"},
        {"name": "per-agent", "per": "agent", "requests": 3, "window": "1m"},
    )
    alice_acme = {"user": "alice", "tenant": "acme"}
    assert await limiter.hit(alice_acme) is None
    assert await limiter.hit(alice_acme) is None
    assert_refused(await limiter.hit(alice_acme), "per-user", "user")
    assert await limiter.hit({"user": "alice", "tenant": "globex"}) is None  # another tenant's alice
    assert await limiter.hit({"user": "alice"}) is None  # no tenant: the default tenant's alice
    for _ in range(3):
        assert await limiter.hit({"agent": "triage", "tenant": "acme"}) is None
    assert_refused(await limiter.hit({"agent": "triage", "tenant": "acme"}), "per-agent", "agent")
    assert await limiter.hit({"agent": "triage", "tenant": "globex"}) is None
    for _ in range(5):  # no user, no agent in the subjects: neither limit applies
        assert await limiter.hit({"tenant": "acme", "key": "k1"}) is None


async def test_many_requests_at_once_allow_exactly_the_limit(backend: Backend) -> None:
    limiter = backend.make({"name": "per-tenant", "per": "tenant", "requests": 50, "window": "1m"})
    outcomes = await asyncio.gather(*(limiter.hit(ACME_KEY) for _ in range(120)))
    assert sum(1 for o in outcomes if o is None) == 50
    assert {o.limit for o in outcomes if o is not None} == {"per-tenant"}


async def test_concurrent_runs_acquire_and_release(backend: Backend) -> None:
    limiter = backend.make({"name": "runs", "per": "tenant", "concurrent_runs": 2})
    acme = {"tenant": "acme", "user": "alice"}
    assert await limiter.acquire_run(acme, "r1") is None
    assert await limiter.acquire_run(acme, "r2") is None
    refusal = assert_refused(await limiter.acquire_run(acme, "r3"), "runs", "tenant")
    assert refusal.retry_after <= 1.0
    assert refusal.message == "rate limit 'runs' exceeded: 2 concurrent runs for this tenant"
    assert await limiter.acquire_run(acme, "r1") is None  # r1 holds its slot: renewed, not refused
    assert await limiter.acquire_run({"tenant": "globex"}, "g1") is None  # another tenant's slots
    await limiter.release_run(acme, "r1")
    assert await limiter.acquire_run(acme, "r3") is None
    await limiter.release_run(acme, "r1")  # again: nothing happens
    await limiter.release_run(acme, "never-acquired")
    assert_refused(await limiter.acquire_run(acme, "r4"), "runs", "tenant")
    await limiter.release_run(acme, "r2")
    await limiter.release_run(acme, "r3")
    assert await limiter.acquire_run(acme, "r4") is None
    assert await limiter.acquire_run(acme, "r5") is None
    assert await limiter.acquire_run({"user": "alice"}, "x") is None  # per tenant: no tenant, no limit


async def test_concurrent_runs_all_or_nothing(backend: Backend) -> None:
    limiter = backend.make(
        {"name": "user-runs", "per": "user", "concurrent_runs": 1},
        {"name": "tenant-runs", "per": "tenant", "concurrent_runs": 2},
    )
    alice, bob, carol = ({"user": name, "tenant": "acme"} for name in ("alice", "bob", "carol"))
    assert await limiter.acquire_run(alice, "a1") is None
    for run in ("a2", "a3"):  # refused by user-runs: takes no tenant slot
        assert_refused(await limiter.acquire_run(alice, run), "user-runs", "user")
    assert await limiter.acquire_run(bob, "b1") is None
    assert_refused(await limiter.acquire_run(carol, "c1"), "tenant-runs", "tenant")
    await limiter.release_run(bob, "b1")
    assert await limiter.acquire_run(carol, "c1") is None  # carol's refusal took no user slot


async def test_leases_expire(backend: Backend) -> None:
    # Sleeps only ever overshoot: each check that a lease is still held has 0.25 s of margin.
    limiter = backend.make({"name": "runs", "per": "tenant", "concurrent_runs": 2}, lease_seconds=0.6)
    assert await limiter.acquire_run(ACME_KEY, "r1") is None
    await backend.wait(0.3)
    assert await limiter.acquire_run(ACME_KEY, "r2") is None
    refusal = assert_refused(await limiter.acquire_run(ACME_KEY, "r3"), "runs", "tenant")
    assert refusal.retry_after <= 0.3 + 1e-6  # r1's lease ends first
    await backend.wait(0.35)  # r1's lease (a crashed process's run) has expired, r2's not yet
    assert await limiter.acquire_run(ACME_KEY, "r3") is None
    assert_refused(await limiter.acquire_run(ACME_KEY, "r4"), "runs", "tenant")
    assert await limiter.acquire_run(ACME_KEY, "r3") is None  # renewing r3's lease...
    await backend.wait(0.3)  # ...while r2's expires
    assert await limiter.acquire_run(ACME_KEY, "r4") is None
    assert_refused(await limiter.acquire_run(ACME_KEY, "r5"), "runs", "tenant")


async def test_tokens_quota_refuses_once_used_up(backend: Backend) -> None:
    limiter = backend.make(
        {"name": "user-tokens", "per": "user", "tokens": 1000, "window": "1m"},
        {"name": "per-key", "per": "key", "requests": 3, "window": "1m"},
    )
    alice = {"key": "k1", "user": "alice", "tenant": "acme"}
    assert await limiter.hit(alice) is None  # a request counts no token
    await limiter.add_tokens(alice, 600)
    assert await limiter.hit(alice) is None  # 400 tokens left
    await limiter.add_tokens(alice, 500)  # 1100: past the quota (a run's tokens are counted when it ends)
    refusal = assert_refused(await limiter.hit(alice), "user-tokens", "user")
    # 101 tokens to drain (1100 + 1 - 1000) at 1000 per 60 s.
    assert 6.06 - backend.slack <= refusal.retry_after <= 6.06 + 1e-6
    assert refusal.message == "rate limit 'user-tokens' exceeded: 1000 tokens per 60 s for this user"
    for _ in range(3):  # refused by the tokens quota: not counted against per-key
        assert_refused(await limiter.hit(alice), "user-tokens", "user")
    bob = {**alice, "user": "bob"}  # the same key, another user with tokens left
    assert await limiter.hit(bob) is None  # per-key's 3rd
    assert_refused(await limiter.hit(bob), "per-key", "key")
    await limiter.add_tokens({"tenant": "acme"}, 10_000)  # no user: the quota does not apply
    await limiter.add_tokens(bob, 0)
    assert await limiter.hit({"user": "carol", "tenant": "acme"}) is None


async def test_tokens_drain_with_time(backend: Backend) -> None:
    limiter = backend.make({"name": "tokens", "per": "tenant", "tokens": 100, "window": 1})
    await limiter.add_tokens(ACME_KEY, 100)
    refusal = assert_refused(await limiter.hit(ACME_KEY), "tokens", "tenant")
    assert 0.01 - backend.slack <= refusal.retry_after <= 0.01 + 1e-6  # one token: 1/100 s
    await backend.wait(0.02)
    assert await limiter.hit(ACME_KEY) is None


# --- Unit behaviour ------------------------------------------------------------------------------


def test_subject_ids_are_namespaced_by_tenant() -> None:
    subjects = {"key": "k3v7q2mxa4bz", "user": "alice", "tenant": "acme", "agent": "triage"}
    assert subject_id("key", subjects) == "k3v7q2mxa4bz"
    assert subject_id("tenant", subjects) == "acme"
    assert subject_id("user", subjects) == "acme/alice"
    assert subject_id("agent", subjects) == "acme/triage"
    assert subject_id("user", {"user": "alice"}) == "default/alice"
    assert subject_id("user", {"tenant": "acme"}) is None
    assert subject_id("key", {"key": ""}) is None


def test_limit_descriptions_and_header() -> None:
    per_key = Limit.from_config(RateLimitConfig(name="per-key", per="key", requests=100, window="1m"))
    assert per_key.refusal(0.2).message == "rate limit 'per-key' exceeded: 100 requests per 60 s for this key"
    assert per_key.refusal(0.2).retry_after_header == "1"
    assert per_key.refusal(6.01).retry_after_header == "7"
    one = Limit.from_config(RateLimitConfig(name="one", per="agent", concurrent_runs=1))
    assert one.description == "1 concurrent run"
    unavailable = per_key.unavailable()
    assert (unavailable.unavailable, unavailable.retry_after, unavailable.limit) == (True, 1.0, "per-key")


async def test_memory_forgets_drained_subjects() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(
        [RateLimitConfig(name="per-key", per="key", requests=10, window="1m")], clock=clock
    )
    for index in range(1500):
        assert await limiter.hit({"key": f"a{index}"}) is None
    clock.advance(61)  # every one of them has drained
    for index in range(1500):
        assert await limiter.hit({"key": f"b{index}"}) is None
    assert limiter.stats()["entries"] <= 1500
    assert limiter.stats()["forgotten"] == 0
    assert await limiter.ping()


async def test_memory_is_bounded() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(
        [RateLimitConfig(name="per-key", per="key", requests=1, window="1h")], clock=clock, max_entries=100
    )
    hot = {"key": "hot"}
    assert await limiter.hit(hot) is None
    for index in range(1000):
        assert await limiter.hit({"key": f"k{index}"}) is None
        if index % 50 == 0:
            assert_refused(await limiter.hit(hot), "per-key", "key")  # recently counted: kept
    stats = limiter.stats()
    assert stats["entries"] <= 100 and stats["forgotten"] >= 900


async def test_memory_lease_sweep_keeps_live_runs() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(
        [RateLimitConfig(name="runs", per="user", concurrent_runs=1)], clock=clock, lease_seconds=10
    )
    assert await limiter.acquire_run({"user": "keep"}, "live") is None
    clock.advance(5)
    for index in range(3000):
        assert await limiter.acquire_run({"user": f"u{index}"}, "r") is None
        if index == 1000:
            clock.advance(11)  # "keep" and the first 1001 expire, never released
    assert limiter.stats()["run_subjects"] <= 2000
    assert await limiter.acquire_run({"user": "keep"}, "other") is None
    assert_refused(await limiter.acquire_run({"user": "u2999"}, "other"), "runs", "user")


def test_build_rate_limiter(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = [{"name": "per-key", "per": "key", "requests": 5}]
    memory = build_rate_limiter(RateLimitsConfig.model_validate({"limits": limits}), {})
    assert isinstance(memory, MemoryRateLimiter)
    assert [limit.name for limit in memory.limits] == ["per-key"]
    config = RateLimitsConfig.model_validate(
        {"redis_url_env": "KEEL_RL_REDIS", "on_redis_error": "refuse", "limits": limits}
    )
    for environ in ({}, {"KEEL_RL_REDIS": "  "}):
        with pytest.raises(UsageError, match="KEEL_RL_REDIS") as raised:
            build_rate_limiter(config, environ)
        assert "not set" in str(raised.value)
    shared = build_rate_limiter(config, {"KEEL_RL_REDIS": "redis://127.0.0.1:6379/0"})
    assert isinstance(shared, RedisRateLimiter)
    assert shared.stats()["on_redis_error"] == "refuse" and shared.stats()["redis_up"] is None
    with pytest.raises(UsageError, match="not a Redis URL"):
        build_rate_limiter(config, {"KEEL_RL_REDIS": "http://example.com"})


# --- Redis only ----------------------------------------------------------------------------------


async def test_limits_are_shared_by_processes(redis_url: str, prefix: str) -> None:
    """40 requests in each of two other processes and 40 here, at once, against 50: 50 pass."""
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.gateway.ratelimit_worker",
            "hit",
            redis_url,
            prefix,
            "40",
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            ready = await asyncio.wait_for(worker.stdout.readline(), timeout=60)
            assert ready.decode().strip() == "ready"
        from tests.gateway.ratelimit_worker import LIMITS, SUBJECTS

        async with RedisRateLimiter(redis_url, LIMITS, prefix=prefix, on_redis_error="refuse") as limiter:
            assert await limiter.ping()
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write(b"go\n")
                await worker.stdin.drain()
            local = await asyncio.gather(*(limiter.hit(SUBJECTS) for _ in range(40)))
            reports = [await asyncio.wait_for(worker.communicate(), timeout=60) for worker in workers]
            assert [worker.returncode for worker in workers] == [0, 0], reports
            remote = [json.loads(stdout.decode().strip().splitlines()[-1]) for stdout, _ in reports]
            assert not any(o is not None and o.unavailable for o in local)
            allowed = sum(1 for o in local if o is None) + sum(report["allowed"] for report in remote)
            assert allowed == SHARED_REQUESTS
            assert sum(report["refused"] for report in remote) + sum(1 for o in local if o is not None) == 70
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()


async def test_a_run_is_released_by_another_process(redis_url: str, prefix: str) -> None:
    from tests.gateway.ratelimit_worker import LIMITS, SUBJECTS

    async with RedisRateLimiter(redis_url, LIMITS, prefix=prefix, on_redis_error="refuse") as limiter:
        assert await limiter.acquire_run(SUBJECTS, "run-1") is None
        assert_refused(await limiter.acquire_run(SUBJECTS, "run-2"), "runs", "tenant")
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.gateway.ratelimit_worker",
            "release",
            redis_url,
            prefix,
            "run-1",
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(worker.communicate(), timeout=60)
        assert worker.returncode == 0, stderr.decode()
        assert stdout.decode().strip() == "released"
        assert await limiter.acquire_run(SUBJECTS, "run-2") is None


async def test_redis_keys_are_prefixed_and_expire(redis_url: str, prefix: str) -> None:
    limits = [
        RateLimitConfig(name="per-user", per="user", requests=10, window="1m"),
        RateLimitConfig(name="tokens", per="tenant", tokens=1000, window="1h"),
        RateLimitConfig(name="runs", per="tenant", concurrent_runs=3),
    ]
    async with RedisRateLimiter(redis_url, limits, prefix=prefix, lease_seconds=600) as limiter:
        assert await limiter.hit(ACME_KEY) is None
        await limiter.add_tokens(ACME_KEY, 1500)
        assert await limiter.acquire_run(ACME_KEY, "run-1") is None
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = sorted([key async for key in client.scan_iter(match=f"{prefix}*")])
        assert keys == [f"{prefix}c:runs:acme", f"{prefix}r:per-user:acme/alice", f"{prefix}t:tokens:acme"]
        ttls = {key.removeprefix(prefix): await client.pttl(key) for key in keys}
        assert 0 < ttls["r:per-user:acme/alice"] <= 6_001  # one request drains in 6 s
        assert 5_000_000 < ttls["t:tokens:acme"] <= 5_400_001  # 1500 tokens drain in 1.5 h
        assert 590_000 < ttls["c:runs:acme"] <= 600_001  # the last lease
    finally:
        await client.aclose()


async def test_one_round_trip_per_request(redis_url: str, prefix: str) -> None:
    limits = [
        RateLimitConfig(name="per-key", per="key", requests=100, window="1m"),
        RateLimitConfig(name="per-tenant", per="tenant", requests=1000, window="1m"),
        RateLimitConfig(name="tokens", per="user", tokens=100_000, window="1h"),
    ]
    async with RedisRateLimiter(redis_url, limits, prefix=prefix) as limiter:
        assert await limiter.hit(ACME_KEY) is None  # loads the script if Redis does not have it
        commands: list[Any] = []
        execute = limiter._redis.execute_command

        async def counting(*args: Any, **options: Any) -> Any:
            commands.append(args[0])
            return await execute(*args, **options)  # type: ignore[no-untyped-call]

        limiter._redis.execute_command = counting  # type: ignore[method-assign]
        for _ in range(10):
            assert await limiter.hit(ACME_KEY) is None
        assert commands == ["EVALSHA"] * 10
        commands.clear()
        assert await limiter.hit({"agent": "triage"}) is None  # no limit applies: Redis is not asked
        assert commands == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


DOWN_LIMITS = [
    RateLimitConfig(name="per-key", per="key", requests=5, window="1m"),
    RateLimitConfig(name="runs", per="tenant", concurrent_runs=1),
    RateLimitConfig(name="tokens", per="tenant", tokens=100),
]


async def test_redis_down_allow(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    caplog.set_level(logging.WARNING, logger="keel.gateway.ratelimit")
    async with RedisRateLimiter(url, DOWN_LIMITS, on_redis_error="allow", retry_interval=0) as limiter:
        started = time.perf_counter()
        for _ in range(10):
            assert await limiter.hit(ACME_KEY) is None
        assert await limiter.acquire_run(ACME_KEY, "run-1") is None
        await limiter.add_tokens(ACME_KEY, 1000)
        await limiter.release_run(ACME_KEY, "run-1")
        assert time.perf_counter() - started < 2
        assert not await limiter.ping()
        stats = limiter.stats()
    assert stats["redis_up"] is False
    assert stats["redis_errors"] == 14
    assert "ConnectionError" in stats["last_error"]
    errors = [r for r in caplog.records if "Redis error" in r.getMessage()]
    assert len(errors) == 1  # logged at most once per 10 s
    assert "allowing requests" in errors[0].getMessage()


async def test_redis_down_refuse() -> None:
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    async with RedisRateLimiter(url, DOWN_LIMITS, on_redis_error="refuse") as limiter:
        refusal = await limiter.hit(ACME_KEY)
        assert refusal is not None and refusal.unavailable
        assert (refusal.limit, refusal.per, refusal.retry_after) == ("per-key", "key", 1.0)
        assert "Redis" in refusal.message
        again = await limiter.hit(ACME_KEY)  # within the back-off: not asked again
        assert again is not None and again.unavailable
        run = await limiter.acquire_run(ACME_KEY, "run-1")
        assert run is not None and run.unavailable and run.limit == "runs"
        assert await limiter.hit({"agent": "triage"}) is None  # no limit applies: nothing to refuse
        stats = limiter.stats()
    assert stats["redis_errors"] == 1 and stats["redis_skipped"] == 2
    assert stats["redis_up"] is False


async def test_redis_comes_back(redis_url: str, prefix: str) -> None:
    limits = [RateLimitConfig(name="per-key", per="key", requests=5, window="1m")]
    async with RedisRateLimiter(
        redis_url, limits, prefix=prefix, on_redis_error="refuse", retry_interval=0.05
    ) as limiter:
        limiter._failed(ConnectionError("simulated"))  # as if the last call had failed
        refusal = await limiter.hit(ACME_KEY)
        assert refusal is not None and refusal.unavailable
        await asyncio.sleep(0.06)
        assert await limiter.hit(ACME_KEY) is None
        assert limiter.stats()["redis_up"] is True
