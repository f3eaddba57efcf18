"""The built-in OAuth2 authorization server through a real `keel serve` (SQLite and PostgreSQL):
discovery and JWKS, client credentials tokens accepted on /v1 with their tenant and scopes, wrong
secrets, authorization code with PKCE for a signed-in user, refresh rotation and reuse detection,
revocation, key rotation by the CLI, the audit log, and interoperability: the same tokens verified
by `keel.gateway.jwt.JwtVerifier` configured against this server's discovery over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from joserfc import jws, jwt

from keel.config.gateway import JwtIssuerConfig
from keel.errors import UsageError
from keel.gateway.jwt import JwtVerifier, TokenRefused
from keel.gateway.oauth.crypto import signing_secret
from keel.gateway.oauth.keys import SigningKeys
from keel.gateway.sessions import SESSION_COOKIE, start_session
from keel.store import upgrade
from keel.store.audit import AuditLog
from keel.store.identity import IdentityStore
from tests.gateway.oauth_support import (
    OTHER_REDIRECT,
    REDIRECT,
    SECRET,
    SECRET_ENV,
    auth,
    authorize_params,
    gateway_yaml,
    issuer_config,
    pkce,
    redirect_query,
)
from tests.gateway.servers import running
from tests.server.harness import KeelServer, fake_provider, free_port, write_project


@dataclass
class World:
    http: httpx.Client
    issuer: str
    database_url: str
    project: Path
    service: tuple[str, str]  # client_id, secret: runs:read runs:write, tenant acme
    reader: tuple[str, str]  # runs:read only, tenant acme
    public: str  # authorization_code client of acme, no secret
    ada: str  # user id, acme, role operator
    ada_cookie: str
    eve_cookie: str  # a user of globex


def _setup(url: str) -> dict[str, Any]:
    async def make() -> dict[str, Any]:
        async with IdentityStore(url) as store:
            service = await store.create_client(
                "billing",
                tenant_id="acme",
                grant_type="client_credentials",
                scopes=["runs:read", "runs:write"],
            )
            reader = await store.create_client(
                "reports", tenant_id="acme", grant_type="client_credentials", scopes=["runs:read"]
            )
            public = await store.create_client(
                "cli",
                tenant_id="acme",
                grant_type="authorization_code",
                redirect_uris=[REDIRECT, OTHER_REDIRECT],
            )
            ada = await store.create_user("acme", "Ada", roles=["operator"])
            eve = await store.create_user("globex", "Eve", roles=["operator", "auditor"])
            return {
                "service": (service.client.id, service.secret),
                "reader": (reader.client.id, reader.secret),
                "public": public.client.id,
                "ada": ada.id,
                "ada_cookie": await start_session(store, ada, 3600),
                "eve_cookie": await start_session(store, eve, 3600),
            }

    return asyncio.run(make())


@pytest.fixture(scope="module")
def worlds(
    tmp_path_factory: pytest.TempPathFactory, module_databases: dict[str, str]
) -> Iterator[dict[str, World]]:
    """One server per backend, started together, each with its clients and users."""
    with fake_provider() as (fake, _script):
        made: dict[str, World] = {}
        processes: dict[str, KeelServer] = {}
        for backend, url in module_databases.items():
            tmp = tmp_path_factory.mktemp(f"oauth-{backend}")
            port = free_port()
            issuer = f"http://127.0.0.1:{port}"
            project = write_project(tmp / "p", fake.base_url, gateway=gateway_yaml(issuer))
            upgrade(url)
            setup = _setup(url)
            env = {"SIDE_FILE": str(tmp / "side"), SECRET_ENV: SECRET}
            processes[backend] = KeelServer(project, url, env, port=port)
            http = httpx.Client(base_url=processes[backend].url, timeout=30)
            made[backend] = World(http=http, issuer=issuer, database_url=url, project=project, **setup)
        try:
            with running(processes):
                yield made
        finally:
            for world in made.values():
                world.http.close()


@pytest.fixture
def world(worlds: dict[str, World], module_backend: str) -> World:
    """The module's server on each backend in turn (the tests share it, as they did in order)."""
    return worlds[module_backend]


def _client_token(world: World, client: tuple[str, str], **form: str) -> httpx.Response:
    return world.http.post("/oauth/token", data={"grant_type": "client_credentials", **form}, auth=client)


def _code(world: World, challenge: str, cookie: str | None = None, **overrides: str) -> httpx.Response:
    return world.http.get(
        "/oauth/authorize",
        params=authorize_params(world.public, challenge, **overrides),
        headers=_session(cookie or world.ada_cookie),
    )


def _session(cookie: str) -> dict[str, str]:
    return {"cookie": f"{SESSION_COOKIE}={cookie}"}


def _exchange(world: World, code: str, verifier: str, redirect_uri: str = REDIRECT) -> httpx.Response:
    return world.http.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": world.public,
            "code_verifier": verifier,
        },
    )


def _user_tokens(world: World, **overrides: str) -> dict[str, Any]:
    verifier, challenge = pkce()
    query = redirect_query(_code(world, challenge, **overrides))
    tokens = _exchange(world, query["code"], verifier)
    assert tokens.status_code == 200, tokens.text
    body: dict[str, Any] = tokens.json()
    return body


def _refresh(world: World, refresh_token: str, **form: str) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": world.public, **form}
    return world.http.post("/oauth/token", data=data)


def _claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    compact = jws.extract_compact(token.encode())
    return dict(compact.headers()), json.loads(compact.payload)


def _audit(world: World, action: str, principal: str, wanted: int = 1) -> list[Any]:
    async def read() -> list[Any]:
        async with AuditLog(world.database_url) as log:
            page = await log.list(tenant_id=None, action=action, principal=principal, limit=100)
        return page.entries

    deadline = time.monotonic() + 10
    entries = asyncio.run(read())
    while len(entries) < wanted and time.monotonic() < deadline:  # entries are written in the background
        time.sleep(0.1)
        entries = asyncio.run(read())
    return entries


# -- discovery and keys ----------------------------------------------------------------------------


def test_discovery_and_jwks(world: World) -> None:
    metadata = world.http.get("/.well-known/oauth-authorization-server")
    assert metadata.status_code == 200
    document = metadata.json()
    AuthorizationServerMetadata(document).validate()  # RFC 8414, checked by Authlib
    assert document["issuer"] == world.issuer and document["jwks_uri"] == f"{world.issuer}/oauth/jwks"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert set(document["grant_types_supported"]) == {
        "client_credentials",
        "authorization_code",
        "refresh_token",
    }
    assert world.http.get("/.well-known/openid-configuration").json() == document
    jwks = world.http.get("/oauth/jwks")
    keys = jwks.json()["keys"]
    assert jwks.headers["content-type"].startswith("application/jwk-set+json") and keys
    assert all(k["kty"] == "EC" and k["alg"] == "ES256" and "d" not in k and k["kid"] for k in keys)


# -- client credentials ------------------------------------------------------------------------------


def test_a_client_credentials_token_acts_for_its_tenant_with_its_scopes(world: World) -> None:
    response = _client_token(world, world.service, scope="runs:read runs:write")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900 and "refresh_token" not in body
    header, claims = _claims(body["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256" and header["kid"]
    client_id = world.service[0]
    assert claims["iss"] == world.issuer and claims["aud"] == "keel" and claims["tenant"] == "acme"
    assert (
        claims["sub"] == claims["client_id"] == client_id and claims["scope"] == "runs:write runs:read"
    )  # in SCOPES order
    assert claims["exp"] - claims["iat"] == 900 and claims["jti"]

    run = world.http.post(
        "/v1/agents/worker/runs", json={"input": "cc", "wait": 20}, headers=auth(body["access_token"])
    )
    assert run.status_code == 200, run.text
    assert run.json()["tenant_id"] == "acme" and run.json()["user_id"] is None
    assert world.http.get("/v1/keys", headers=auth(body["access_token"])).status_code == 403

    # All of the client's scopes when none is asked for; never more than the client's.
    read_only = _client_token(world, world.reader).json()
    assert read_only["scope"] == "runs:read"
    listed = world.http.get("/v1/runs", headers=auth(read_only["access_token"]))
    assert listed.status_code == 200 and all(r["tenant_id"] == "acme" for r in listed.json()["runs"])
    refused = world.http.post(
        "/v1/agents/worker/runs", json={"input": "x"}, headers=auth(read_only["access_token"])
    )
    assert refused.status_code == 403 and refused.json()["code"] == "missing_scope"
    assert _client_token(world, world.reader, scope="runs:write").json()["error"] == "invalid_scope"
    assert _client_token(world, world.reader, scope="runs:read runs:write").json()["scope"] == "runs:read"


def test_a_token_for_another_audience_or_issuer_is_refused(world: World) -> None:
    async def forge() -> dict[str, str]:
        async with IdentityStore(world.database_url) as store:
            key = await SigningKeys(
                store,
                rotation=30 * 86_400,
                access_token_ttl=900,
                secret=signing_secret(issuer_config(world.issuer), {SECRET_ENV: SECRET}),
            ).current()
        now = int(time.time())
        claims = {
            "iss": world.issuer,
            "aud": "keel",
            "sub": world.service[0],
            "client_id": world.service[0],
            "tenant": "acme",
            "scope": "runs:read",
            "jti": f"forged-{now}",
            "iat": now,
            "exp": now + 300,
        }
        header = {"alg": "ES256", "typ": "at+jwt", "kid": key.kid}
        return {
            "good": jwt.encode(header, claims, key.key),  # signed with the server's own key: fine
            "audience": jwt.encode(header, {**claims, "aud": "another-api"}, key.key),
            "issuer": jwt.encode(header, {**claims, "iss": "https://elsewhere.example"}, key.key),
        }

    tokens = asyncio.run(forge())
    assert world.http.get("/v1/runs", headers=auth(tokens["good"])).status_code == 200
    for case in ("audience", "issuer"):
        response = world.http.get("/v1/runs", headers=auth(tokens[case]))
        assert response.status_code == 401 and response.json()["detail"] == "invalid token", case


def test_wrong_client_credentials_are_refused_and_audited(world: World) -> None:
    client_id, secret = world.service
    wrong = _client_token(world, (client_id, secret[:-2] + "xx"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert "access_token" not in wrong.json()
    posted = world.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": "nope"},
    )
    assert posted.json()["error"] == "invalid_client"
    unknown = _client_token(world, ("kc_doesnotexist", "secret"))
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"
    public = world.http.post(
        "/oauth/token", data={"grant_type": "client_credentials", "client_id": world.public}
    )
    assert public.json()["error"] in ("invalid_client", "unauthorized_client")

    failed = _audit(world, "auth.failed", f"service:{client_id}", wanted=2)
    assert len(failed) >= 2 and all(e.outcome == "failure" and e.tenant_id == "acme" for e in failed)
    assert secret not in str([e.detail for e in failed])
    assert _audit(world, "auth.failed", "anonymous:unknown")
    assert _client_token(world, world.service).status_code == 200
    signed_in = _audit(world, "auth.sign_in", f"service:{client_id}")
    assert signed_in and signed_in[0].detail["grant_type"] == "client_credentials"


# -- authorization code + PKCE ------------------------------------------------------------------------


def test_authorization_code_with_pkce(world: World) -> None:
    verifier, challenge = pkce()
    params = authorize_params(world.public, challenge)
    nobody = world.http.get("/oauth/authorize", params=params)
    assert nobody.status_code == 401 and nobody.json()["code"] == "sign_in_required"

    granted = _code(world, challenge, state="s-1")
    query = redirect_query(granted)
    assert granted.headers["location"].startswith(REDIRECT + "?") and query["state"] == "s-1"
    tokens = _exchange(world, query["code"], verifier)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["scope"] == "runs:write runs:read"  # admin asked for, but ada's role does not grant it
    _, claims = _claims(body["access_token"])
    assert (
        claims["sub"] == world.ada and claims["client_id"] == world.public and claims["roles"] == ["operator"]
    )
    run = world.http.post(
        "/v1/agents/worker/runs", json={"input": "u", "wait": 20}, headers=auth(body["access_token"])
    )
    assert run.status_code == 200 and run.json()["user_id"] == world.ada and run.json()["tenant_id"] == "acme"
    assert _audit(world, "auth.sign_in", f"user:{world.ada}")

    # The code again: refused, and what it gave is revoked.
    again = _exchange(world, query["code"], verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert _refresh(world, body["refresh_token"]).json()["error"] == "invalid_grant"
    assert world.http.get("/v1/runs", headers=auth(body["access_token"])).status_code == 401

    # A wrong verifier, or another (registered) redirect URI than the authorization's: refused.
    other_verifier, other_challenge = pkce()
    code = redirect_query(_code(world, other_challenge))["code"]
    wrong = _exchange(world, code, verifier)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    code = redirect_query(_code(world, other_challenge))["code"]
    mismatch = _exchange(world, code, other_verifier, redirect_uri=OTHER_REDIRECT)
    assert mismatch.status_code == 400 and mismatch.json()["error"] == "invalid_grant"


def test_authorization_requests_that_are_refused(world: World) -> None:
    _, challenge = pkce()
    unregistered = _code(world, challenge, redirect_uri="http://127.0.0.1:8765/evil")
    assert (
        unregistered.status_code == 400 and "location" not in unregistered.headers
    )  # never redirected there
    assert unregistered.json()["code"] == "invalid_authorization_request"
    unknown = world.http.get(
        "/oauth/authorize",
        params=authorize_params("kc_nobody", challenge),
        headers=_session(world.ada_cookie),
    )
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_client"
    for overrides in (
        {"code_challenge": ""},
        {"code_challenge_method": "plain"},
        {"code_challenge_method": ""},
    ):
        refused = redirect_query(_code(world, challenge, **overrides))
        assert refused["error"] == "invalid_request" and "code" not in refused, overrides
    other_tenant = redirect_query(_code(world, challenge, cookie=world.eve_cookie))
    assert other_tenant["error"] == "access_denied"
    assert redirect_query(_code(world, challenge, scope="bogus"))["error"] == "invalid_scope"


# -- refresh tokens --------------------------------------------------------------------------------------


def test_refresh_tokens_rotate_and_a_reused_one_revokes_the_family(world: World) -> None:
    first = _user_tokens(world)
    second = _refresh(world, first["refresh_token"])
    assert second.status_code == 200, second.text
    second_body = second.json()
    assert (
        second_body["refresh_token"] != first["refresh_token"]
        and second_body["scope"] == "runs:write runs:read"
    )
    narrower = _refresh(world, second_body["refresh_token"], scope="runs:read").json()
    assert narrower["scope"] == "runs:read"
    assert (
        _refresh(world, narrower["refresh_token"], scope="runs:write admin").json()["error"]
        == "invalid_scope"
    )
    # invalid_scope did not use the token up; the reuse of an old one revokes the whole family.
    assert world.http.get("/v1/runs", headers=auth(narrower["access_token"])).status_code == 200
    reused = _refresh(world, first["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert _refresh(world, narrower["refresh_token"]).json()["error"] == "invalid_grant"
    assert world.http.get("/v1/runs", headers=auth(narrower["access_token"])).status_code == 401
    failures = _audit(world, "auth.failed", f"service:{world.public}")
    assert any("family" in str(e.detail.get("reason", "")) for e in failures)


def test_revocation(world: World) -> None:
    tokens = _user_tokens(world)
    revoked = world.http.post(
        "/oauth/revoke",
        data={
            "token": tokens["refresh_token"],
            "token_type_hint": "refresh_token",
            "client_id": world.public,
        },
    )
    assert revoked.status_code == 200
    assert _refresh(world, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert world.http.get("/v1/runs", headers=auth(tokens["access_token"])).status_code == 401

    access = _client_token(world, world.service).json()["access_token"]
    assert world.http.get("/v1/runs", headers=auth(access)).status_code == 200
    # Another client may not revoke it; its own client may.
    stranger = world.http.post("/oauth/revoke", data={"token": access}, auth=world.reader)
    assert stranger.status_code == 400 and stranger.json()["error"] == "invalid_grant"
    assert world.http.get("/v1/runs", headers=auth(access)).status_code == 200
    assert world.http.post("/oauth/revoke", data={"token": access}, auth=world.service).status_code == 200
    assert world.http.get("/v1/runs", headers=auth(access)).status_code == 401
    unknown = world.http.post("/oauth/revoke", data={"token": "not-a-token"}, auth=world.service)
    assert unknown.status_code == 200  # RFC 7009: an unknown token is not an error
    bad_client = world.http.post("/oauth/revoke", data={"token": access}, auth=(world.service[0], "wrong"))
    assert bad_client.status_code == 401


# -- keys and interoperability ------------------------------------------------------------------------


def test_a_rotated_key_signs_new_tokens_and_old_tokens_stay_valid(world: World) -> None:
    old = _client_token(world, world.service).json()["access_token"]
    old_kid = _claims(old)[0]["kid"]
    env = {**os.environ, SECRET_ENV: SECRET, "KEEL_DATABASE_URL": world.database_url, "FAKE_KEY": "x"}
    rotated = subprocess.run(
        [sys.executable, "-m", "keel", "oauth", "rotate-key", "-p", str(world.project), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rotated.returncode == 0, rotated.stderr
    new_kid = json.loads(rotated.stdout)["kid"]
    assert new_kid != old_kid
    assert {k["kid"] for k in world.http.get("/oauth/jwks").json()["keys"]} >= {old_kid, new_kid}
    assert world.http.get("/v1/runs", headers=auth(old)).status_code == 200

    async def sign_with_the_new_key() -> str:  # as another server process would, right away
        async with IdentityStore(world.database_url) as store:
            keys = SigningKeys(
                store,
                rotation=30 * 86_400,
                access_token_ttl=900,
                secret=signing_secret(issuer_config(world.issuer), {SECRET_ENV: SECRET}),
            )
            key = await keys.current()
        assert key.kid == new_kid
        now = int(time.time())
        claims = {
            "iss": world.issuer,
            "aud": "keel",
            "sub": "kc_x",
            "client_id": "kc_x",
            "tenant": "acme",
            "scope": "runs:read",
            "jti": f"new-{now}",
            "iat": now,
            "exp": now + 300,
        }
        return jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": key.kid}, claims, key.key)

    fresh = asyncio.run(sign_with_the_new_key())
    assert world.http.get("/v1/runs", headers=auth(fresh)).status_code == 200  # unknown kid: keys re-read


def test_tokens_verify_with_the_jwt_verifier_against_this_servers_discovery(world: World) -> None:
    service = _client_token(world, world.service, scope="runs:read").json()["access_token"]
    user = _user_tokens(world)["access_token"]

    async def verify() -> None:
        config = JwtIssuerConfig(issuer=world.issuer, audience="keel", algorithms=["ES256"])
        verifier = JwtVerifier([config], {})
        try:
            as_service = await verifier.authenticate(service)
            assert (as_service.kind, as_service.id, as_service.tenant_id) == (
                "service",
                world.service[0],
                "acme",
            )
            assert as_service.scopes == frozenset({"runs:read"})
            as_user = await verifier.authenticate(user)
            assert (as_user.kind, as_user.id, as_user.roles) == ("user", world.ada, ("operator",))
            assert as_user.scopes == frozenset({"runs:read", "runs:write"})
        finally:
            await verifier.aclose()
        elsewhere = JwtVerifier([JwtIssuerConfig(issuer=world.issuer, audience="another-api")], {})
        try:
            with pytest.raises(TokenRefused) as refused:
                await elsewhere.authenticate(service)
            assert refused.value.reason == "wrong_audience"
        finally:
            await elsewhere.aclose()

    asyncio.run(verify())


def test_a_server_without_the_key_secret_does_not_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`create_app` refuses with a UsageError naming the setting, which `keel serve` prints as one line
    and exits 3 (as for every UsageError at start-up)."""
    from keel.api.app import create_app
    from keel.config import load_project

    issuer = "http://127.0.0.1:9"
    project = write_project(tmp_path / "p", issuer, gateway=gateway_yaml(issuer))
    monkeypatch.setenv("KEEL_DATABASE_URL", f"sqlite:///{tmp_path / 'k.db'}")
    monkeypatch.delenv(SECRET_ENV, raising=False)
    loaded = load_project(project, environ={"FAKE_KEY": "x"})
    with pytest.raises(UsageError, match=f"key_secret_env: the environment variable {SECRET_ENV} is not set"):
        create_app(loaded)
    monkeypatch.setenv(SECRET_ENV, "too short")
    with pytest.raises(UsageError, match="at least 32"):
        create_app(loaded)
    public = write_project(tmp_path / "q", issuer, gateway=gateway_yaml("http://keel.example.com"))
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with pytest.raises(UsageError, match="must be an https URL"):
        create_app(load_project(public, environ={"FAKE_KEY": "x"}))
