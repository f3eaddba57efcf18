"""`keel keys create | list | revoke` on a real SQLite database: the key shown once, clear errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli import EXIT_CONFIG, EXIT_OK, EXIT_USAGE, app
from keel.gateway import ApiKeyRefused, parse_key
from keel.store import ApiKeyRecord, KeyStore

INBOX = Path(__file__).resolve().parents[2] / "examples" / "inbox"


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path}/keel.db"
    monkeypatch.setenv("INBOX_CRM_PATH", str(tmp_path / "crm.sqlite"))
    monkeypatch.setenv("KEEL_DATABASE_URL", url)
    monkeypatch.delenv("KEEL_KEY_PEPPER", raising=False)
    return url


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def verify(url: str, key: str) -> ApiKeyRecord:
    async def go() -> ApiKeyRecord:
        async with KeyStore(url) as store:
            return await store.verify(key)

    return asyncio.run(go())


def create(*extra: str) -> tuple[str, str, str]:
    code, out, err = invoke(
        "keys", "create", "--name", "ci", "--scope", "runs:write", "-p", str(INBOX), *extra
    )
    assert code == EXIT_OK, err
    return out, err, out.strip()


def test_create_prints_the_key_once_with_a_warning(database: str) -> None:
    out, err, key = create("--scope", "runs:read", "--tenant", "acme", "--expires", "30d")
    assert out == key + "\n"  # alone on stdout, so KEY=$(keel keys create ...) works
    assert "cannot be shown again" in err
    prefix = parse_key(key).prefix
    assert f"prefix {prefix}" in err
    assert "for tenant acme" in err
    principal = verify(database, key)
    assert principal.scopes == ("runs:write", "runs:read")
    assert principal.tenant_id == "acme"
    assert principal.created_by is not None and principal.created_by.startswith("cli")
    assert principal.expires_at is not None


def test_create_json_includes_the_key_and_record(database: str) -> None:
    code, out, _ = invoke("keys", "create", "--name", "ci", "--scope", "admin", "-p", str(INBOX), "--json")
    assert code == EXIT_OK
    data = json.loads(out)
    assert data["prefix"] == parse_key(data["key"]).prefix
    assert data["scopes"] == ["admin"]
    assert data["state"] == "active"
    assert "cannot be shown again" in data["warning"]
    assert "secret_hash" not in data
    assert verify(database, data["key"]).id == data["id"]


def test_list_never_shows_the_key(database: str) -> None:
    _, _, key = create()
    secret = parse_key(key).secret
    code, out, _ = invoke("keys", "list", "-p", str(INBOX))
    assert code == EXIT_OK
    assert parse_key(key).prefix in out
    assert secret not in out
    code, out, _ = invoke("keys", "list", "-p", str(INBOX), "--json")
    [listed] = json.loads(out)
    assert listed["prefix"] == parse_key(key).prefix
    assert listed["state"] == "active"
    assert secret not in out and "secret_hash" not in listed


def test_list_filters_by_tenant(database: str) -> None:
    create("--tenant", "acme")
    create("--tenant", "globex")
    code, out, _ = invoke("keys", "list", "-p", str(INBOX), "--tenant", "acme", "--json")
    assert code == EXIT_OK
    assert [k["tenant_id"] for k in json.loads(out)] == ["acme"]


def test_revoke_then_verify_fails(database: str) -> None:
    _, _, key = create("--tenant", "acme")
    prefix = parse_key(key).prefix
    code, out, err = invoke("keys", "revoke", prefix, "-p", str(INBOX), "--tenant", "globex")
    assert code == EXIT_USAGE
    assert f"no API key with id or prefix {prefix!r}" in err
    assert verify(database, key).tenant_id == "acme"

    code, out, _ = invoke("keys", "revoke", prefix, "-p", str(INBOX))
    assert code == EXIT_OK
    assert "revoked key key_" in out and prefix in out
    with pytest.raises(ApiKeyRefused) as caught:
        verify(database, key)
    assert caught.value.reason == "revoked"
    code, _, _ = invoke("keys", "revoke", prefix, "-p", str(INBOX))  # idempotent
    assert code == EXIT_OK
    code, out, _ = invoke("keys", "list", "-p", str(INBOX), "--json")
    assert json.loads(out)[0]["state"] == "revoked"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scope", "runs:delete"], "unknown scope 'runs:delete'"),
        (["--scope", "runs:read", "--expires", "soon"], "expected a duration like 30d"),
        (["--scope", "runs:read", "--expires", "2001-01-01"], "expiry must be in the future"),
    ],
)
def test_bad_arguments_are_one_line_errors(database: str, args: list[str], message: str) -> None:
    code, out, err = invoke("keys", "create", "--name", "ci", "-p", str(INBOX), *args)
    assert code == EXIT_USAGE
    assert message in err
    assert "Traceback" not in err + out
    assert out == ""


def test_revoking_an_unknown_key_is_a_usage_error(database: str) -> None:
    code, _, err = invoke("keys", "revoke", "key_nope", "-p", str(INBOX))
    assert code == EXIT_USAGE
    assert "no API key with id or prefix 'key_nope'" in err
    assert "Traceback" not in err


def test_an_unreachable_database_exits_3_without_the_password(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_DATABASE_URL", "postgresql://keel:s3cret@127.0.0.1:1/keel")
    code, out, err = invoke("keys", "list", "-p", str(INBOX))
    assert code == EXIT_CONFIG
    assert "cannot migrate the database" in err
    assert "s3cret" not in err + out
    assert "Traceback" not in err
