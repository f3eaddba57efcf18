"""Rate limits and the audit log through a real `keel serve` on loopback: 429 with Retry-After
naming the limit (counted in the process, or in Redis), and audit entries for refused
credentials, denied permissions, refused rate limits and key changes, readable by admins only."""

from __future__ import annotations

import asyncio
import itertools
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest

from keel.gateway.keys import SCOPES
from keel.store.audit import AuditLog
from keel.store.keys import KeyStore
from keel.testing.fake_llm import FakeLLMThread
from tests.gateway.servers import running
from tests.server.harness import KeelServer, fake_provider, write_project

REDIS_URL = "redis://127.0.0.1:6379/0"


def _keys(url: str, acme: str = "acme", globex: str = "globex") -> dict[str, str]:
    async def make() -> dict[str, str]:
        async with KeyStore(url) as store:
            return {
                "admin": (await store.create("admin", SCOPES, tenant_id=acme)).key,
                "reader": (await store.create("reader", ["runs:read"], tenant_id=acme)).key,
                "other": (await store.create("other", ["runs:read"], tenant_id=acme)).key,
                "writer": (await store.create("writer", ["runs:write", "runs:read"], tenant_id=acme)).key,
                "globex": (await store.create("globex", SCOPES, tenant_id=globex)).key,
            }

    return asyncio.run(make())


@dataclass
class Served:
    client: httpx.Client
    keys: dict[str, str]
    acme: str  # the test's own tenant, with the keys admin, reader, other and writer
    globex: str  # another tenant of the test's own, with the key globex
    database_url: str


# The module's servers: one per set of limits and kind of counter (in the process, or in Redis).
LIMITS = {
    "requests": "- {name: per-key, per: key, requests: 3, window: 1h}",
    "runs": """\
        - {name: one-at-a-time, per: tenant, concurrent_runs: 1}
        - {name: token-quota, per: key, tokens: 1, window: 1h}
        """,
}


@dataclass
class Process:
    url: str
    database_url: str
    fake: FakeLLMThread


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str], Process]]:
    """Every server of the module, started together (and stopped together), by (limits, counter).
    Tests share them: fresh keys have fresh counts, and each test has tenants of its own."""
    with ExitStack() as stack:
        made: dict[tuple[str, str], Process] = {}
        processes: dict[tuple[str, str], KeelServer] = {}
        for limits, counter in itertools.product(LIMITS, ("memory", "redis")):
            tmp_path = tmp_path_factory.mktemp(f"{limits}-{counter}")
            sqlite_url = f"sqlite:///{tmp_path / 'keel.db'}"
            gateway = (
                "rate_limits:\n"
                + ("  redis_url_env: TEST_REDIS_URL\n" if counter == "redis" else "")
                + "  limits:\n"
                + textwrap.indent(textwrap.dedent(LIMITS[limits]).strip() + "\n", " " * 4)
            )
            env = {"SIDE_FILE": str(tmp_path / "side")}
            if counter == "redis" or limits == "runs":
                env["TEST_REDIS_URL"] = REDIS_URL  # counters are per key prefix: fresh keys, fresh counts
            fake, _script = stack.enter_context(fake_provider())
            project = write_project(tmp_path / "p", fake.base_url, gateway=gateway)
            processes[(limits, counter)] = KeelServer(project, sqlite_url, env)
            made[(limits, counter)] = Process(processes[(limits, counter)].url, sqlite_url, fake)
        stack.enter_context(running(processes))
        yield made


@pytest.fixture(scope="module", params=["memory", "redis"])
def counter(request: pytest.FixtureRequest) -> str:
    """Where the servers count: in the process, or in Redis (shared by processes)."""
    kind: str = request.param
    return kind


def _served(process: Process) -> Iterator[Served]:
    """A server with keys of this test's own tenants (fresh keys: fresh counts; own tenants: an
    audit log, and a concurrency slot, of this test's only)."""
    suffix = uuid.uuid4().hex[:8]
    acme, globex = f"acme-{suffix}", f"globex-{suffix}"
    keys = _keys(process.database_url, acme, globex)
    with httpx.Client(base_url=process.url, timeout=30) as client:
        yield Served(client, keys, acme, globex, process.database_url)


@pytest.fixture
def server(servers: dict[tuple[str, str], Process], counter: str) -> Iterator[Served]:
    """The server limiting requests (3 per key and hour)."""
    yield from _served(servers[("requests", counter)])


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_a_key_over_its_rate_limit_gets_429_naming_the_limit(server: Served) -> None:
    client, keys = server.client, server.keys
    for _ in range(3):
        assert client.get("/v1/runs", headers=_auth(keys["reader"])).status_code == 200
    refused = client.get("/v1/runs", headers=_auth(keys["reader"]))
    assert refused.status_code == 429
    body = refused.json()
    assert body["code"] == "rate_limited" and body["limit"] == "per-key" and body["per"] == "key"
    assert int(refused.headers["retry-after"]) >= 1
    assert "per-key" in body["detail"]
    # Another key has its own count; health probes are never limited.
    assert client.get("/v1/runs", headers=_auth(keys["other"])).status_code == 200
    assert client.get("/livez").status_code == 200
    assert "rate_limits" in client.get("/readyz").json()["gateway"]


def test_security_events_are_audited_and_only_admins_of_the_tenant_read_them(server: Served) -> None:
    client, keys = server.client, server.keys
    assert client.get("/v1/runs", headers=_auth("keel_aaaaaaaaaaaa_" + "A" * 43)).status_code == 401
    assert client.get("/v1/keys", headers=_auth(keys["reader"])).status_code == 403  # auth.denied
    made = client.post("/v1/keys", json={"name": "ci", "scopes": ["runs:read"]}, headers=_auth(keys["admin"]))
    assert made.status_code == 201
    for _ in range(3):
        client.get("/v1/runs", headers=_auth(keys["other"]))
    assert client.get("/v1/runs", headers=_auth(keys["other"])).status_code == 429

    seen: dict[str, dict[str, object]] = {}
    for _ in range(50):  # entries are written in the background
        entries = client.get("/v1/audit", headers=_auth(keys["admin"]), params={"limit": 100}).json()[
            "entries"
        ]
        seen = {e["action"]: e for e in entries}
        if {"auth.denied", "key.created", "rate_limit.refused"} <= set(seen):
            break
        time.sleep(0.1)
    assert seen["auth.denied"]["outcome"] == "denied" and seen["auth.denied"]["tenant_id"] == server.acme
    assert seen["key.created"]["target"] == made.json()["prefix"]
    assert seen["rate_limit.refused"]["detail"] == {"limit": "per-key", "per": "key"}
    assert all(e["tenant_id"] == server.acme for e in entries)
    assert made.json()["key"] not in str(entries)  # the new key's secret is never in the log

    # Another tenant's admin sees none of it; a non-admin may not read the log at all.
    theirs = client.get("/v1/audit", headers=_auth(keys["globex"])).json()["entries"]
    assert all(e["tenant_id"] == server.globex for e in theirs)
    assert client.get("/v1/audit", headers=_auth(keys["reader"])).status_code == 403

    async def failed() -> list[str]:
        async with AuditLog(server.database_url) as audit:
            page = await audit.list(tenant_id=None, action="auth.failed")
            return [str(e.detail.get("reason")) for e in page.entries]

    assert "invalid_api_key" in asyncio.run(failed())  # operators see refused credentials


@pytest.fixture
def limited(
    servers: dict[tuple[str, str], Process], counter: str
) -> Iterator[tuple[httpx.Client, dict[str, str], object]]:
    """The server limiting runs (1 at a time per tenant) and tokens (1 per key and hour)."""
    process = servers[("runs", counter)]
    for served in _served(process):
        yield served.client, served.keys, process.fake


def test_concurrent_runs_and_token_quotas(limited: tuple[httpx.Client, dict[str, str], object]) -> None:
    client, keys, fake = limited
    fake.set_latency(1500)  # type: ignore[attr-defined]
    first = client.post("/v1/agents/worker/runs", json={"input": "a"}, headers=_auth(keys["admin"]))
    assert first.status_code == 202
    second = client.post("/v1/agents/worker/runs", json={"input": "b"}, headers=_auth(keys["writer"]))
    assert second.status_code == 429 and second.json()["limit"] == "one-at-a-time"
    assert second.json()["per"] == "tenant"
    # Another tenant has its own slot.
    elsewhere = client.post(
        "/v1/agents/worker/runs", json={"input": "c", "wait": 20}, headers=_auth(keys["globex"])
    )
    assert elsewhere.status_code == 200, elsewhere.text
    fake.set_latency(0)  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while True:  # polled with another key: the submitting key's token quota is spent once it ends
        view = client.get(f"/v1/runs/{first.json()['run_id']}", headers=_auth(keys["other"])).json()
        if view["status"] in ("succeeded", "failed"):
            break
        assert time.monotonic() < deadline, view
        time.sleep(0.1)
    assert view["status"] == "succeeded", view
    # The ended run gave its slot back (released by the process that ran it) ...
    third = None
    for _ in range(50):
        third = client.post(
            "/v1/agents/worker/runs", json={"input": "d", "wait": 20}, headers=_auth(keys["writer"])
        )
        if third.status_code != 429 or third.json()["limit"] != "one-at-a-time":
            break
        time.sleep(0.1)
    assert third is not None and third.status_code == 200, third.text if third is not None else ""
    # ... and its tokens were counted against the key that submitted it: that key's quota is spent.
    spent = client.get("/v1/runs", headers=_auth(keys["admin"]))
    assert spent.status_code == 429 and spent.json()["limit"] == "token-quota"
