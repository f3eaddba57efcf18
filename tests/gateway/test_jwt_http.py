"""JWT access tokens through a real `keel serve`: a token from a configured issuer is a principal
of its tenant with its scopes (and its roles' scopes); a refused token is a 401 that says nothing
more; a user may only submit runs as itself, while a service may name the end user."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.gateway.issuer import AUDIENCE, OidcIssuer
from tests.server.harness import KeelServer, fake_provider, write_project


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, OidcIssuer]]:
    """One server for the module's tests: none changes what another sees (tokens carry everything)."""
    tmp_path = tmp_path_factory.mktemp("jwt-http")
    sqlite_url = f"sqlite:///{tmp_path / 'keel.db'}"
    with OidcIssuer() as idp, fake_provider() as (fake, _script):
        gateway = f"""\
            roles:
              operator: [runs:read, admin]
            jwt:
              - issuer: "{idp.issuer}"
                audience: "{AUDIENCE}"
            """
        project = write_project(tmp_path / "p", fake.base_url, gateway=gateway)
        server = KeelServer(project, sqlite_url, {"SIDE_FILE": str(tmp_path / "side")})
        server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                yield client, idp
        finally:
            server.stop()


def _auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_a_users_token_runs_as_that_user_in_its_tenant(served: tuple[httpx.Client, OidcIssuer]) -> None:
    client, idp = served
    ada = _auth(idp.token(sub="ada", tenant="acme"))
    run = client.post("/v1/agents/worker/runs", json={"input": "hi", "wait": 20}, headers=ada)
    assert run.status_code == 200, run.text
    assert run.json()["user_id"] == "ada" and run.json()["tenant_id"] == "acme"
    mismatch = client.post("/v1/agents/worker/runs", json={"input": "x", "user_id": "bob"}, headers=ada)
    assert mismatch.status_code == 403 and mismatch.json()["code"] == "user_mismatch"
    # Another tenant's user cannot see it; a role grants its scopes.
    bob = _auth(idp.token(sub="bob", tenant="globex", scope="runs:read"))
    assert client.get(f"/v1/runs/{run.json()['run_id']}", headers=bob).status_code == 404
    assert client.get("/v1/queues", headers=bob).status_code == 403
    operator = _auth(idp.token(sub="olga", tenant="globex", scope="", roles=["operator"]))
    assert client.get("/v1/queues", headers=operator).status_code == 200


def test_a_service_token_may_name_the_end_user(served: tuple[httpx.Client, OidcIssuer]) -> None:
    client, idp = served
    service = _auth(idp.token(sub="billing", client_id="billing", tenant="acme"))
    run = client.post(
        "/v1/agents/worker/runs", json={"input": "x", "user_id": "cust-9", "wait": 20}, headers=service
    )
    assert run.status_code == 200 and run.json()["user_id"] == "cust-9"


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": 1},  # expired
        {"aud": "someone-else"},
        {"tenant": None},  # no tenant claim
        {"iss": "https://evil.example"},
    ],
)
def test_refused_tokens_are_a_plain_401(
    served: tuple[httpx.Client, OidcIssuer], claims: dict[str, object]
) -> None:
    client, idp = served
    response = client.get("/v1/runs", headers=_auth(idp.token(**claims)))
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated" and response.json()["detail"] == "invalid token"
