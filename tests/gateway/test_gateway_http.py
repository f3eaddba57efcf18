"""Rate limits and the audit log through a real `keel serve` on loopback: 429 with Retry-After
naming the limit (counted in the process, or in Redis), and audit entries for refused
credentials, denied permissions, refused rate limits and key changes, readable by admins only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from keel.gateway.keys import SCOPES
from keel.store.audit import AuditLog
from keel.store.keys import KeyStore
from tests.server.harness import KeelServer, fake_provider, write_project

REDIS_URL = "redis://127.0.0.1:6379/0"


def _keys(url: str) -> dict[str, str]:
    async def make() -> dict[str, str]:
        async with KeyStore(url) as store:
            return {
                "admin": (await store.create("admin", SCOPES, tenant_id="acme")).key,
                "reader": (await store.create("reader", ["runs:read"], tenant_id="acme")).key,
                "other": (await store.create("other", ["runs:read"], tenant_id="acme")).key,
                "globex": (await store.create("globex", SCOPES, tenant_id="globex")).key,
            }

    return asyncio.run(make())


@pytest.fixture(params=["memory", "redis"])
def server(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_url: str
) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    shared = request.param == "redis"
    limits = f"""\
        rate_limits:
          {"redis_url_env: TEST_REDIS_URL" if shared else ""}
          limits:
            - {{name: per-key, per: key, requests: 3, window: 1h}}
        """
    env = {"SIDE_FILE": str(tmp_path / "side")}
    if shared:
        env["TEST_REDIS_URL"] = REDIS_URL  # counters are per key prefix: fresh keys, fresh counts
    with fake_provider() as (fake, _script):
        project = write_project(tmp_path / "p", fake.base_url, gateway=limits)
        keel = KeelServer(project, sqlite_url, env)
        keel.start()
        try:
            keys = _keys(sqlite_url)
            with httpx.Client(base_url=keel.url, timeout=30) as client:
                yield client, keys
        finally:
            keel.stop()


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_a_key_over_its_rate_limit_gets_429_naming_the_limit(
    server: tuple[httpx.Client, dict[str, str]],
) -> None:
    client, keys = server
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


def test_security_events_are_audited_and_only_admins_of_the_tenant_read_them(
    server: tuple[httpx.Client, dict[str, str]], sqlite_url: str
) -> None:
    client, keys = server
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
    assert seen["auth.denied"]["outcome"] == "denied" and seen["auth.denied"]["tenant_id"] == "acme"
    assert seen["key.created"]["target"] == made.json()["prefix"]
    assert seen["rate_limit.refused"]["detail"] == {"limit": "per-key", "per": "key"}
    assert all(e["tenant_id"] == "acme" for e in entries)
    assert made.json()["key"] not in str(entries)  # the new key's secret is never in the log

    # Another tenant's admin sees none of it; a non-admin may not read the log at all.
    theirs = client.get("/v1/audit", headers=_auth(keys["globex"])).json()["entries"]
    assert all(e["tenant_id"] == "globex" for e in theirs)
    assert client.get("/v1/audit", headers=_auth(keys["reader"])).status_code == 403

    async def failed() -> list[str]:
        async with AuditLog(sqlite_url) as audit:
            page = await audit.list(tenant_id=None, action="auth.failed")
            return [str(e.detail.get("reason")) for e in page.entries]

    assert "invalid_api_key" in asyncio.run(failed())  # operators see refused credentials
