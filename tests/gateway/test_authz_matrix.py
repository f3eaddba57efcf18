"""The authorization matrix, generated from the route table: every API route × {no credentials,
another tenant's credentials, a missing scope, the right scope}, against a real `keel serve` on
SQLite and on Postgres, with 0 cross-tenant reads or writes.

The routes come from the app itself (`keel.api.security.check_routes`), so a route added later is
in the matrix automatically; a route with a path parameter this test cannot fill fails the test
until it is taught how, so nothing new goes untested.
"""

from __future__ import annotations

import asyncio
import re
import textwrap
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from keel.api.app import create_app
from keel.api.security import check_routes
from keel.config import load_project
from keel.gateway.keys import SCOPES
from keel.store.identity import IdentityStore
from keel.store.keys import KeyStore
from tests.gateway.servers import running
from tests.server.harness import KeelServer, fake_provider, free_port, wait_all, write_project

TENANT_A, TENANT_B = "tenant-a", "tenant-b"

# Request bodies for routes that need one; a new POST route without a body here is still tested
# for authentication and authorization (an empty body may then be refused with 422).
BODIES: dict[str, dict[str, Any]] = {
    "POST /v1/agents/{agent}/runs": {"input": "matrix", "wait": 20},
    "POST /v1/keys": {"name": "made by the matrix", "scopes": ["keys:admin"]},
    "POST /v1/prompts/{name}/versions": {"template": "made by the matrix {{ x }}", "variables": ["x"]},
    "PUT /v1/prompts/{name}/labels/{label}": {"version": "1.0.0"},
    "POST /v1/runs/{run_id}/case": {"dataset": "matrix"},
    "POST /v1/runs/{run_id}/feedback": {"kind": "thumbs_up"},
    "POST /v1/approvals/{approval_id}/approve": {},
    "POST /v1/approvals/{approval_id}/reject": {"reason": "made by the matrix"},
    "POST /v1/escalations/{escalation_id}/resolve": {"resolution": "made by the matrix"},
}
# The right scope's answers that depend on an earlier route of the matrix: tenant A's approval is
# approved by the approve route (alphabetically first), so rejecting it afterwards is refused.
RIGHT_SCOPE_AFTER_EARLIER_ROUTE = {"POST /v1/approvals/{approval_id}/reject": {409}}

# Routes under a resource of tenant A whose answer to tenant B is not 404, and why: prompt names
# are per tenant, so B creating a version of "its" prompt of that name writes B's own prompt, and B
# may then point B's own label at B's own version (404 while B has none: the routes run in order);
# B's statistics for a name are B's own runs (none). The leak check below still applies, and the
# end of the test checks that tenant A's prompt and labels did not change.
OTHER_TENANT_OWN_NAMESPACE = {
    "POST /v1/prompts/{name}/versions": {201},
    "PUT /v1/prompts/{name}/labels/{label}": {200, 404},
    "GET /v1/prompts/{name}/stats": {200},
}
PROMPT_SECRET = "tenant a's secret prompt"


# Public routes that authenticate the caller themselves (the built-in OAuth2 server: the client by
# its credentials, the user by the session cookie): without those they refuse with an OAuth2 or
# problem answer, 400 or 401, never 200 and never a 5xx.
SELF_AUTHENTICATING = {
    "POST /oauth/token": {400, 401},
    "POST /oauth/revoke": {400, 401},
    "GET /oauth/authorize": {400, 401},
    # Passkey sign-in: the signed-in user by the session cookie; the ceremonies' POSTs need a JSON
    # body and an allowed Origin (CSRF), which the matrix does not send.
    "GET /auth/me": {401},
    "POST /auth/passkeys/register/options": {403, 415},
    "POST /auth/passkeys/register/verify": {403, 415},
    "POST /auth/passkeys/authenticate/options": {403, 415},
    "POST /auth/passkeys/authenticate/verify": {403, 415},
    "POST /auth/sign-out": {403, 415},
}
ISSUER_SECRET_ENV = "KEEL_MATRIX_ISSUER_SECRET"


@dataclass
class World:
    client: httpx.Client
    policies: Mapping[str, str | None]
    keys: dict[str, str]  # label -> full key
    run_a: str  # a run of tenant A
    victim_prefix: str  # a key of tenant A that the matrix may revoke
    database_url: str
    user_a: str = ""  # a user of tenant A
    prompt_a: str = ""  # a prompt only tenant A has (version 1.0.0)
    approval_a: str = ""  # a call of tenant A's run waiting for approval
    escalation_a: str = ""  # an escalated run of tenant A


def _create_keys(url: str) -> dict[str, str]:
    async def make() -> dict[str, str]:
        made: dict[str, str] = {}
        async with KeyStore(url) as store:
            made["a-all"] = (await store.create("a all", SCOPES, tenant_id=TENANT_A)).key
            made["b-all"] = (await store.create("b all", SCOPES, tenant_id=TENANT_B)).key
            for scope in SCOPES:
                others = [s for s in SCOPES if s != scope]
                made[f"a-only:{scope}"] = (await store.create(f"a {scope}", [scope], tenant_id=TENANT_A)).key
                made[f"a-without:{scope}"] = (await store.create("a -", others, tenant_id=TENANT_A)).key
                made[f"b-only:{scope}"] = (await store.create(f"b {scope}", [scope], tenant_id=TENANT_B)).key
            victim = await store.create("victim", ["runs:read"], tenant_id=TENANT_A)
            made["victim"] = victim.key
            made["victim-prefix"] = victim.record.prefix
        return made

    return asyncio.run(make())


@dataclass
class Served:
    """The `keel serve` of one backend that the module's tests share."""

    url: str
    policies: Mapping[str, str | None]
    database_url: str


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory, module_databases: dict[str, str]
) -> Iterator[dict[str, Served]]:
    """One `keel serve` per backend, started together, that the module's tests share."""
    secret = "matrix-issuer-secret-" + "m" * 32
    with pytest.MonkeyPatch.context() as monkeypatch, fake_provider() as (fake, _script):
        monkeypatch.setenv(ISSUER_SECRET_ENV, secret)
        made: dict[str, Served] = {}
        processes: dict[str, KeelServer] = {}
        for backend, database_url in module_databases.items():
            tmp = tmp_path_factory.mktemp(f"authz-{backend}")
            port = free_port()
            project = write_project(
                tmp / "p",
                fake.base_url,
                gateway=f"""\
                    agent_access:
                      private: ["tenant:tenant-b"]
                    issuer:
                      enabled: true
                      issuer: "http://127.0.0.1:{port}"
                      key_secret_env: {ISSUER_SECRET_ENV}
                    passkeys:
                      enabled: true
                      rp_id: localhost
                      origins: ["http://localhost:{port}"]
                    """,
            )
            (project / "agents" / "gated.yaml").write_text(
                textwrap.dedent("""\
                    name: gated
                    model: fake
                    instructions: Record, with a person's approval.
                    tools:
                      - {function: tools.side:record, approval: {}}
                    escalation: {human_request: true}
                    """)
            )
            (project / "agents" / "private.yaml").write_text(
                textwrap.dedent("""\
                    name: private
                    model: fake
                    instructions: Only tenant B may run me.
                    """)
            )
            policies = check_routes(create_app(load_project(project, environ={"FAKE_KEY": "x"})))
            env = {"SIDE_FILE": str(tmp / "side"), ISSUER_SECRET_ENV: secret}
            processes[backend] = KeelServer(project, database_url, env, port=port)
            made[backend] = Served(processes[backend].url, policies, database_url)
        with running(processes):
            yield made


@pytest.fixture
def world(servers: dict[str, Served], module_backend: str) -> Iterator[World]:
    """The module's server on the test's backend, with this test's own keys (so its own victim to
    revoke), run and user."""
    served = servers[module_backend]
    keys = _create_keys(served.database_url)
    with httpx.Client(base_url=served.url, timeout=30) as client:
        created = client.post(
            "/v1/agents/worker/runs",
            json={"input": "tenant a's secret run", "wait": 20},
            headers=_auth(keys["a-all"]),
        )
        assert created.status_code == 200, created.text
        run_a = created.json()["run_id"]
        user_a = asyncio.run(_create_user(served.database_url))
        prompt_a = f"matrix-{uuid.uuid4().hex[:8]}"
        made = client.post(
            f"/v1/prompts/{prompt_a}/versions",
            json={"template": PROMPT_SECRET + " {{ x }}", "variables": ["x"]},
            headers=_auth(keys["a-all"]),
        )
        assert made.status_code == 201 and made.json()["version"] == "1.0.0", made.text
        waiting = client.post(
            "/v1/agents/gated/runs",
            json={"input": "tenant a's secret run", "wait": 20},
            headers=_auth(keys["a-all"]),
        ).json()
        assert waiting["status"] == "waiting_approval", waiting
        escalated = client.post(
            "/v1/agents/gated/runs",
            json={"input": "tenant a's secret run: talk to a human", "wait": 20},
            headers=_auth(keys["a-all"]),
        ).json()
        assert escalated["status"] == "escalated", escalated
        yield World(
            client,
            served.policies,
            keys,
            run_a,
            keys["victim-prefix"],
            served.database_url,
            user_a,
            prompt_a,
            waiting["approvals"][0]["id"],
            escalated["escalation"]["id"],
        )


async def _create_user(url: str) -> str:
    async with IdentityStore(url) as store:
        return (await store.create_user(TENANT_A, "Ada of tenant A")).id


def _auth(key: str | None) -> dict[str, str]:
    return {} if key is None else {"authorization": f"Bearer {key}"}


def _fill(path: str, world: World) -> str:
    values = {
        "agent": "worker",
        "run_id": world.run_a,
        "key_id": world.victim_prefix,
        "user_id": world.user_a,
        "name": world.prompt_a,
        "version": "1.0.0",
        "label": "staging",  # production is protected: tests/prompts cover prompts:deploy
        "approval_id": world.approval_a,
        "escalation_id": world.escalation_a,
    }
    names = re.findall(r"{(\w+)}", path)
    unknown = [n for n in names if n not in values]
    assert not unknown, f"{path}: teach the authorization matrix how to fill {unknown}"
    return re.sub(r"{(\w+)}", lambda m: values[m.group(1)], path)


def _call(world: World, route: str, key: str | None) -> httpx.Response:
    method, path = route.split(" ", 1)
    url = _fill(path, world)
    headers = _auth(key)
    if route.endswith("/events"):  # a finished run's stream ends by itself
        return world.client.request(method, url, headers=headers, params={"after": 0})
    if route.endswith("/diff"):
        return world.client.request(method, url, headers=headers, params={"from": "1.0.0", "to": "1.0.0"})
    return world.client.request(method, url, headers=headers, json=BODIES.get(route))


def _a_secrets(world: World) -> list[str]:
    return [
        world.run_a,
        world.victim_prefix,
        world.user_a,
        TENANT_A,
        "tenant a's secret run",
        PROMPT_SECRET,
        world.approval_a,
        world.escalation_a,
    ]


def test_every_route_against_every_kind_of_caller(world: World) -> None:
    assert "POST /v1/agents/{agent}/runs" in world.policies and "GET /v1/runs/{run_id}" in world.policies
    assert set(SELF_AUTHENTICATING) <= set(world.policies)  # the built-in issuer's routes are in
    outcomes: list[str] = []

    def expect(route: str, case: str, response: httpx.Response, wanted: set[int]) -> None:
        if response.status_code not in wanted:
            outcomes.append(
                f"{route} [{case}]: {response.status_code} not in {sorted(wanted)}: {response.text[:200]}"
            )

    # Mutating calls go last (revoke, cancel), so the reads see the world as it was set up.
    routes = sorted(world.policies, key=lambda r: ("revoke" in r or "cancel" in r, r))
    for route in routes:
        scope = world.policies[route]
        if scope is None:  # public: anyone, with or without credentials
            for key in (None, world.keys["b-all"]):
                expect(route, "public", _call(world, route, key), SELF_AUTHENTICATING.get(route, {200}))
            continue
        no_credentials = _call(world, route, None)
        expect(route, "no credentials", no_credentials, {401})
        assert no_credentials.headers.get("www-authenticate", "").startswith("Bearer")
        expect(route, "garbage credentials", _call(world, route, "keel_notakey"), {401})
        expect(route, "missing scope", _call(world, route, world.keys[f"a-without:{scope}"]), {403})

        other = _call(world, route, world.keys[f"b-only:{scope}"])
        per_resource = any(
            f"{{{name}}}" in route
            for name in ("run_id", "key_id", "user_id", "name", "approval_id", "escalation_id")
        )
        other_wanted = {404} if per_resource else {200, 201, 202}
        expect(route, "other tenant", other, OTHER_TENANT_OWN_NAMESPACE.get(route, other_wanted))
        # A 404 may repeat the id the caller sent in the path: that is not tenant A's data.
        sent = [
            v
            for v in (
                world.run_a,
                world.victim_prefix,
                world.user_a,
                world.prompt_a,
                world.approval_a,
                world.escalation_a,
            )
            if v in _fill(route.split(" ", 1)[1], world)
        ]
        leaked = [s for s in _a_secrets(world) if s not in sent and s in other.text]
        if sent and other.status_code == 404:
            assert set(other.json()) == {"type", "title", "status", "detail", "code"}
        if leaked:
            outcomes.append(f"{route} [other tenant]: tenant A's data in the answer: {leaked}")

        right = _call(world, route, world.keys[f"a-only:{scope}"])
        wanted = (
            {200, 201, 202}
            if route in BODIES or route.startswith(("GET", "DELETE"))
            else {200, 201, 202, 422}
        )
        expect(route, "right scope", right, RIGHT_SCOPE_AFTER_EARLIER_ROUTE.get(route, wanted))
    assert outcomes == [], "\n".join(outcomes)

    # 0 cross-tenant writes: tenant B's attempts changed nothing of tenant A's.
    admin_a = _auth(world.keys["a-all"])
    approval = world.client.get(f"/v1/approvals/{world.approval_a}", headers=admin_a).json()
    decider = world.keys["a-only:approvals:decide"]
    assert approval["status"] == "approved" and decider.startswith(
        "keel_" + approval["decided_by"].split(":", 1)[1] + "_"
    )
    escalation = world.client.get(f"/v1/escalations/{world.escalation_a}", headers=admin_a).json()
    assert escalation["resolution"] == "made by the matrix"
    run = world.client.get(f"/v1/runs/{world.run_a}", headers=admin_a).json()
    assert run["tenant_id"] == TENANT_A and run["status"] == "succeeded"
    deadline = time.monotonic() + 10
    while True:  # the run history is written in the background: tenant B's run is listed soon
        b_runs = world.client.get("/v1/runs", headers=_auth(world.keys["b-all"])).json()["runs"]
        if b_runs or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert b_runs and all(r["tenant_id"] == TENANT_B for r in b_runs)
    prompt = world.client.get(f"/v1/prompts/{world.prompt_a}", headers=admin_a).json()
    assert all(v["tenant_id"] == TENANT_A for v in prompt["versions"])  # B's writes stayed B's
    assert all(label["scope"] == "tenant" for label in prompt["labels"])
    a_keys = world.client.get("/v1/keys", headers=admin_a).json()["keys"]
    assert all(k["tenant_id"] == TENANT_A for k in a_keys)
    b_keys = world.client.get("/v1/keys", headers=_auth(world.keys["b-all"])).json()["keys"]
    assert all(k["tenant_id"] == TENANT_B for k in b_keys)
    assert world.victim_prefix not in {k["prefix"] for k in b_keys}


def test_other_tenant_cannot_cancel_or_revoke_and_owner_can(world: World) -> None:
    a, b = _auth(world.keys["a-all"]), _auth(world.keys["b-all"])
    assert world.client.post(f"/v1/keys/{world.victim_prefix}/revoke", headers=b).status_code == 404
    victim = _auth(world.keys["victim"])  # runs:read only
    assert world.client.get("/v1/keys", headers=victim).status_code == 403
    assert world.client.get("/v1/runs", headers=_auth(world.keys["victim"])).status_code == 200  # still works
    revoked = world.client.post(f"/v1/keys/{world.victim_prefix}/revoke", headers=a)
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    # Revoked in the serving process: refused at once, whatever the key cache holds.
    assert world.client.get("/v1/runs", headers=_auth(world.keys["victim"])).status_code == 401

    queued = world.client.post("/v1/agents/worker/runs", json={"input": "to cancel"}, headers=a).json()
    assert world.client.post(f"/v1/runs/{queued['run_id']}/cancel", headers=b).status_code == 404
    assert world.client.get(f"/v1/runs/{queued['run_id']}", headers=b).status_code == 404
    assert world.client.get(f"/v1/runs/{queued['run_id']}/events", headers=b).status_code == 404
    owner = httpx.Client(base_url=str(world.client.base_url), headers=a, timeout=30)
    with owner:  # the owner's run went on untouched
        assert wait_all(owner, [queued["run_id"]], 30)[queued["run_id"]]["status"] == "succeeded"


def test_agent_access_lists_and_scope_escalation(world: World) -> None:
    a, b = _auth(world.keys["a-all"]), _auth(world.keys["b-all"])
    refused = world.client.post("/v1/agents/private/runs", json={"input": "x"}, headers=a)
    assert refused.status_code == 403 and refused.json()["code"] == "agent_forbidden"
    assert world.client.post("/v1/agents/private/runs", json={"input": "x"}, headers=b).status_code == 202
    assert [x["name"] for x in world.client.get("/v1/agents", headers=a).json()["agents"]] == [
        "gated",
        "worker",
    ]
    assert {x["name"] for x in world.client.get("/v1/agents", headers=b).json()["agents"]} == {
        "gated",
        "worker",
        "private",
    }

    key_admin = _auth(world.keys["a-only:keys:admin"])
    escalate = world.client.post("/v1/keys", json={"name": "x", "scopes": ["admin"]}, headers=key_admin)
    assert escalate.status_code == 403 and escalate.json()["code"] == "scope_escalation"
    made = world.client.post("/v1/keys", json={"name": "x", "scopes": ["keys:admin"]}, headers=key_admin)
    assert made.status_code == 201 and made.json()["tenant_id"] == TENANT_A
    new_key = made.json()["key"]
    assert world.client.get("/v1/keys", headers=_auth(new_key)).status_code == 200
    assert "key" not in world.client.get("/v1/keys", headers=key_admin).json()["keys"][0]
    bad = world.client.post("/v1/keys", json={"name": "x", "scopes": ["root"]}, headers=key_admin)
    assert bad.status_code == 422


def test_a_service_key_may_name_the_end_user_of_its_runs(world: World) -> None:
    """API keys act as services: they may name the end user a run is for (a user principal may
    only submit as itself: tests/gateway/test_jwt_http.py)."""
    a = _auth(world.keys["a-all"])
    run = world.client.post(
        "/v1/agents/worker/runs", json={"input": "u", "user_id": "end-user-7", "wait": 20}, headers=a
    )
    assert run.status_code == 200 and run.json()["user_id"] == "end-user-7"
    assert run.json()["tenant_id"] == TENANT_A


def test_a_route_without_a_policy_stops_the_app_from_being_built() -> None:
    from fastapi import APIRouter, FastAPI

    from keel.api.security import PUBLIC

    app = FastAPI()
    app.get("/ok", dependencies=[PUBLIC])(lambda: {})
    assert check_routes(app) == {"GET /ok": None}
    router = APIRouter(prefix="/v1/new")
    router.get("/thing")(lambda: {})  # forgot requires(...)
    app.include_router(router)
    with pytest.raises(RuntimeError, match="GET /v1/new/thing must declare exactly one access policy"):
        check_routes(app)
