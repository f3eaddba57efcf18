"""`keel audit list`, and the entries `keel keys create | revoke` leave: filters, pages, clear errors."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from keel.cli import EXIT_OK, EXIT_USAGE, app
from keel.gateway import parse_key
from keel.store import AuditEntry, AuditLog, upgrade

INBOX = Path(__file__).resolve().parents[2] / "examples" / "inbox"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


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


def audit_list(*options: str) -> dict[str, Any]:
    code, out, err = invoke("audit", "list", "-p", str(INBOX), "--json", *options)
    assert code == EXIT_OK, err
    page: dict[str, Any] = json.loads(out)
    return page


def create_key(*extra: str) -> str:
    code, out, err = invoke(
        "keys", "create", "--name", "ci", "--scope", "runs:write", "-p", str(INBOX), *extra
    )
    assert code == EXIT_OK, err
    return out.strip()


def seed(url: str, entries: list[AuditEntry]) -> None:
    upgrade(url)

    async def go() -> None:
        async with AuditLog(url) as audit:
            await audit.append_many(entries)

    asyncio.run(go())


def test_keys_create_and_revoke_leave_audit_entries(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INBOX_CRM_PATH", str(tmp_path / "crm.sqlite"))
    monkeypatch.setenv("KEEL_DATABASE_URL", database_url)
    key = create_key("--tenant", "acme")
    prefix = parse_key(key).prefix
    code, out, _ = invoke("keys", "list", "-p", str(INBOX), "--json")
    key_id = json.loads(out)[0]["id"]

    [created] = audit_list()["entries"]
    assert created["action"] == "key.created"
    assert created["outcome"] == "success"
    assert created["principal"] == "operator:cli"
    assert created["tenant_id"] == "acme"
    assert created["target"] == key_id
    assert created["detail"]["prefix"] == prefix
    assert created["detail"]["scopes"] == ["runs:write"]
    assert created["detail"]["os_user"].startswith("cli")

    code, _, err = invoke("keys", "revoke", prefix, "-p", str(INBOX))
    assert code == EXIT_OK, err
    code, _, err = invoke("keys", "revoke", prefix, "-p", str(INBOX))  # again: changes nothing
    assert code == EXIT_OK, err
    code, _, _ = invoke("keys", "revoke", "key_nope", "--tenant", "acme", "-p", str(INBOX))
    assert code == EXIT_USAGE

    revoked = audit_list("--action", "key.revoked")["entries"]
    assert [(e["outcome"], e["target"]) for e in revoked] == [
        ("failure", "key_nope"),
        ("success", key_id),
        ("success", key_id),
    ]
    assert [e["detail"].get("already_revoked") for e in revoked] == [None, True, False]
    assert revoked[0]["detail"]["reason"] == "unknown key" and revoked[0]["tenant_id"] == "acme"

    # The key itself is nowhere in the log.
    everything = json.dumps(audit_list())
    assert parse_key(key).secret not in everything and key not in everything


def test_a_pasted_key_is_masked_in_the_failed_revocation(database: str) -> None:
    key = create_key()
    invoke("keys", "revoke", key, "-p", str(INBOX))  # the full key instead of its id: unknown
    [failed] = audit_list("--outcome", "failure")["entries"]
    assert failed["target"] == f"keel_{parse_key(key).prefix}_[REDACTED:api_key]"


def test_list_filters_and_pages(database: str) -> None:
    seed(
        database,
        [
            AuditEntry(
                id=f"e{i}",
                action="auth.denied" if i % 2 else "auth.sign_in",
                outcome="denied" if i % 2 else "success",
                principal=f"user:u{i % 3}",
                tenant_id="acme" if i < 6 else "globex",
                recorded_at=T0 + timedelta(minutes=i),
            )
            for i in range(8)
        ],
    )
    assert [e["id"] for e in audit_list()["entries"]] == [f"e{i}" for i in range(7, -1, -1)]
    assert [e["id"] for e in audit_list("--tenant", "globex")["entries"]] == ["e7", "e6"]
    assert [e["id"] for e in audit_list("--tenant", "acme", "--action", "auth.denied")["entries"]] == [
        "e5",
        "e3",
        "e1",
    ]
    assert [e["id"] for e in audit_list("--principal", "user:u0")["entries"]] == ["e6", "e3", "e0"]
    assert [e["id"] for e in audit_list("--since", "2026-03-01T12:05:00Z")["entries"]] == ["e7", "e6", "e5"]
    assert [e["id"] for e in audit_list("--until", "2026-03-01T12:02:00+00:00")["entries"]] == ["e1", "e0"]
    assert audit_list("--since", "1h")["entries"] == []  # a duration ago: these are from 2026-03-01

    seen: list[str] = []
    page = audit_list("--limit", "3")
    while True:
        seen += [e["id"] for e in page["entries"]]
        if page["next_cursor"] is None:
            break
        page = audit_list("--limit", "3", "--cursor", page["next_cursor"])
    assert seen == [f"e{i}" for i in range(7, -1, -1)]


def test_list_prints_one_line_per_entry(database: str) -> None:
    seed(
        database,
        [
            AuditEntry(
                action="auth.failed",
                outcome="failure",
                principal="api_key:aaaaaaaaaaaa",
                tenant_id="acme-corporation-international",
                target="POST /v1/agents/inbox/runs",
                recorded_at=T0 + timedelta(seconds=i),
            )
            for i in range(3)
        ],
    )
    code, out, _ = invoke("audit", "list", "-p", str(INBOX), "--limit", "2")
    assert code == EXIT_OK
    lines = out.splitlines()
    assert lines[0].split() == ["time", "(UTC)", "action", "outcome", "principal", "tenant", "target"]
    # Never folded, even past the terminal's 80 columns: each entry greps as one line.
    assert lines[1].split() == [
        "2026-03-01",
        "12:00:02",
        "auth.failed",
        "failure",
        "api_key:aaaaaaaaaaaa",
        "acme-corporation-international",
        "POST",
        "/v1/agents/inbox/runs",
    ]
    assert len(lines) == 4 and lines[3].startswith("more: keel audit list --cursor ")
    cursor = lines[3].split()[-1]
    code, out, _ = invoke("audit", "list", "-p", str(INBOX), "--limit", "2", "--cursor", cursor)
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["12:00:00"]


def test_control_characters_are_shown_escaped(database: str) -> None:
    seed(database, [AuditEntry(action="auth.failed", principal="user:x", target="GET /\x1b[2K\rfake\nline")])
    code, out, _ = invoke("audit", "list", "-p", str(INBOX))
    assert code == EXIT_OK
    assert "\x1b" not in out and "\r" not in out
    assert len(out.splitlines()) == 2
    assert "GET /\\x1b[2K\\rfake\\nline" in out


def test_an_empty_log_lists_nothing(database: str) -> None:
    assert audit_list() == {"entries": [], "next_cursor": None}
    code, out, _ = invoke("audit", "list", "-p", str(INBOX))
    assert code == EXIT_OK and "more:" not in out


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--action", "auth.hacked"], "--action: unknown audit action 'auth.hacked'"),
        (["--outcome", "maybe"], "--outcome: unknown audit outcome 'maybe'"),
        (["--since", "yesterday"], "--since: expected a duration like 24h or an ISO 8601 time"),
        (["--until", "soon"], "--until: expected a duration"),
        (["--limit", "0"], "--limit: expected a number from 1 to 500, got 0"),
        (["--limit", "501"], "--limit: expected a number from 1 to 500"),
        (["--cursor", "garbage"], "--cursor: invalid cursor"),
        (["--tenant", " "], "--tenant: expected a tenant id"),
    ],
)
def test_bad_options_are_named_without_a_traceback(database: str, options: list[str], named: str) -> None:
    code, out, err = invoke("audit", "list", "-p", str(INBOX), *options)
    assert code == EXIT_USAGE
    assert named in " ".join(err.split())
    assert "Traceback" not in out + err


def test_a_key_is_still_created_when_its_audit_entry_cannot_be_written(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: AuditLog, entry: AuditEntry) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(AuditLog, "append", broken)
    code, out, err = invoke("keys", "create", "--name", "ci", "--scope", "runs:read", "-p", str(INBOX))
    assert code == EXIT_OK
    assert parse_key(out.strip())
    assert "the audit entry for key.created could not be written" in " ".join(err.split())
