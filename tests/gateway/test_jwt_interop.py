"""Interoperability: JwtVerifier accepts JWT access tokens from an independently written OpenID
provider, panva's oidc-provider (Node.js), run locally on loopback.

The provider (tests/gateway/interop/oidc_provider.mjs) issues RFC 9068 JWT access tokens by the
client credentials grant for one resource indicator, Keel's audience. oidc-provider is installed
with npm, once, into `$KEEL_TEST_CACHE` or `~/.cache/keel-tests/oidc-provider-<version>`.

Skipped when `node` or `npm` is missing, unless CI=true, where that is a failure.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from keel.config.gateway import JwtIssuerConfig
from keel.gateway.jwt import JwtVerifier, TokenRefused

OIDC_PROVIDER_VERSION = "8.8.1"  # 8.x supports Node 18, 20 and 22
SCRIPT = Path(__file__).parent / "interop" / "oidc_provider.mjs"
AUDIENCE = "https://keel.test/api"
CLIENT_ID = "keel-interop-client"
CLIENT_SECRET = "interop-secret-not-for-production"  # a local, throwaway provider's client
TENANT = "acme"
START_TIMEOUT = 20.0
INSTALL_TIMEOUT = 180.0


def _tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if path is None)
        message = f"the oidc-provider interoperability test needs Node.js: {missing} not found on PATH"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return node, npm


def _install(npm: str) -> Path:
    """A folder with oidc-provider in its node_modules: from the cache, or installed there now."""
    base = Path(os.environ.get("KEEL_TEST_CACHE") or Path.home() / ".cache" / "keel-tests")
    folder = base / f"oidc-provider-{OIDC_PROVIDER_VERSION}"
    if (folder / "node_modules" / "oidc-provider" / "package.json").is_file():
        return folder
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="oidc-provider-", dir=base))
    package = {"private": True, "dependencies": {"oidc-provider": OIDC_PROVIDER_VERSION}}
    (staging / "package.json").write_text(json.dumps(package))
    done = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=staging,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        pytest.fail(f"npm install oidc-provider@{OIDC_PROVIDER_VERSION} failed:\n{done.stderr[-2000:]}")
    try:
        staging.rename(folder)  # atomic: a concurrent run may have won, which is as good
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


@dataclass
class Provider:
    issuer: str
    token_endpoint: str
    alg: str

    def token(self, scope: str = "runs:read runs:write") -> str:
        answer = httpx.post(
            self.token_endpoint,
            auth=(CLIENT_ID, CLIENT_SECRET),
            data={"grant_type": "client_credentials", "resource": AUDIENCE, "scope": scope},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["token_type"].lower() == "bearer"
        return str(body["access_token"])


@pytest.fixture(scope="module")
def provider_folder() -> Path:
    _, npm = _tools()
    folder = _install(npm)
    script = folder / SCRIPT.name
    staged = folder / f".{SCRIPT.name}.{os.getpid()}"
    staged.write_text(SCRIPT.read_text())
    staged.replace(script)  # always this checkout's script, written atomically
    return folder


@pytest.fixture(scope="module", params=["RS256", "PS256", "ES256", "EdDSA"])
def provider(request: pytest.FixtureRequest, provider_folder: Path) -> Iterator[Provider]:
    node, _ = _tools()
    alg: str = request.param
    env = {
        **os.environ,
        "KEEL_AUDIENCE": AUDIENCE,
        "KEEL_CLIENT_ID": CLIENT_ID,
        "KEEL_CLIENT_SECRET": CLIENT_SECRET,
        "KEEL_TENANT": TENANT,
        "KEEL_ALG": alg,
        "NODE_ENV": "test",
    }
    # stderr goes to a file, not a pipe: nobody reads it while the provider runs
    with (
        tempfile.TemporaryFile("w+") as errors,
        subprocess.Popen(
            [node, SCRIPT.name],
            cwd=provider_folder,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        ) as process,
    ):
        stdout, stdin = process.stdout, process.stdin
        assert stdout is not None and stdin is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            try:
                first = lines.get(timeout=START_TIMEOUT)
            except queue.Empty:
                first = ""
            if not first:
                process.kill()
                process.wait(timeout=5)
                errors.seek(0)
                pytest.fail(f"oidc-provider did not start:\n{errors.read()[-2000:]}")
            started = json.loads(first)
            yield Provider(issuer=started["issuer"], token_endpoint=started["token_endpoint"], alg=alg)
        finally:
            stdin.close()  # the script exits when its stdin closes
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@pytest.fixture
async def verifier(provider: Provider) -> AsyncIterator[JwtVerifier]:
    config = JwtIssuerConfig.model_validate(
        {"issuer": provider.issuer, "audience": AUDIENCE, "algorithms": [provider.alg]}
    )
    verifier = JwtVerifier([config], {})
    yield verifier
    await verifier.aclose()


async def test_a_client_credentials_token_is_a_service_principal(
    provider: Provider, verifier: JwtVerifier
) -> None:
    principal = await verifier.authenticate(provider.token())
    assert principal.kind == "service"  # sub == client_id: the client credentials grant
    assert principal.id == CLIENT_ID
    assert principal.tenant_id == TENANT
    assert principal.scopes == {"runs:read", "runs:write"}
    assert principal.issuer == provider.issuer
    assert principal.credential == "jwt"
    assert principal.claims["aud"] == AUDIENCE

    narrower = await verifier.authenticate(provider.token(scope="runs:read"))
    assert narrower.scopes == {"runs:read"}


async def test_its_tokens_are_refused_for_another_audience_or_when_altered(provider: Provider) -> None:
    token = provider.token()
    elsewhere = JwtVerifier(
        [
            JwtIssuerConfig(
                issuer=provider.issuer, audience="https://other.test/api", algorithms=[provider.alg]
            )
        ],
        {},
    )
    try:
        with pytest.raises(TokenRefused) as refused:
            await elsewhere.authenticate(token)
        assert refused.value.reason == "wrong_audience"
    finally:
        await elsewhere.aclose()

    strict = JwtVerifier(
        [JwtIssuerConfig(issuer=provider.issuer, audience=AUDIENCE, algorithms=["RS256"])], {}
    )
    try:
        header, payload, signature = token.split(".")
        with pytest.raises(TokenRefused) as refused:
            await strict.authenticate(f"{header}.{payload}.{signature[:-6]}AAAAAA")
        expected = "bad_signature" if provider.alg == "RS256" else "algorithm_not_allowed"
        assert refused.value.reason == expected
    finally:
        await strict.aclose()
