"""`keel runs`, `keel runs show`, `keel runs stats` and `keel db upgrade` over a real SQLite history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli import EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, app

INBOX = Path(__file__).resolve().parents[2] / "examples" / "inbox"
GOOD = json.dumps({"from": "ada@example.com", "subject": "Refund", "body": "Refund the 120 USD please."})


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """Two runs of the inbox agent, one good, one with bad input: (database URL, good id, bad id)."""
    tmp = tmp_path_factory.mktemp("history")
    url = f"sqlite:///{tmp}/keel.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INBOX_CRM_PATH", str(tmp / "crm.sqlite"))
        mp.setenv("KEEL_DATABASE_URL", url)
        mp.delenv("KEEL_LLM_BASE_URL", raising=False)
        code, out, _ = invoke("run", "inbox", GOOD, "-p", str(INBOX), "--with-fake-llm", "--json")
        assert code == EXIT_OK
        good = json.loads(out)["run_id"]
        code, out, _ = invoke("run", "inbox", '{"from": 1}', "-p", str(INBOX), "--with-fake-llm", "--json")
        assert code == EXIT_RUN_FAILED
        bad = json.loads(out)["run_id"]
    return url, good, bad


@pytest.fixture
def ids(history: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """The good and bad run ids, with KEEL_DATABASE_URL pointing at their history."""
    url, good, bad = history
    monkeypatch.setenv("KEEL_DATABASE_URL", url)
    return good, bad


def test_runs_lists_newest_first_and_filters(ids: tuple[str, str]) -> None:
    good, bad = ids
    code, out, _ = invoke("runs", "-p", str(INBOX), "--json")
    assert code == EXIT_OK
    assert [r["id"] for r in json.loads(out)["runs"]] == [bad, good]
    code, out, _ = invoke("runs", "-p", str(INBOX), "--json", "--status", "failed", "--error", "bad_input")
    assert [r["id"] for r in json.loads(out)["runs"]] == [bad]
    code, out, _ = invoke("runs", "-p", str(INBOX), "--json", "--limit", "1")
    page = json.loads(out)
    assert [r["id"] for r in page["runs"]] == [bad]
    code, out, _ = invoke("runs", "-p", str(INBOX), "--json", "--limit", "1", "--cursor", page["next_cursor"])
    assert [r["id"] for r in json.loads(out)["runs"]] == [good]
    code, out, _ = invoke("runs", "-p", str(INBOX))
    assert code == EXIT_OK
    assert "inbox" in out


def test_show_prints_the_trace_tree(ids: tuple[str, str]) -> None:
    good, _ = ids
    code, out, _ = invoke("runs", "show", good, "-p", str(INBOX))
    assert code == EXIT_OK
    assert "invoke_agent inbox" in out
    assert out.count("chat fake-inbox") == 3
    assert "execute_tool lookup_customer" in out
    assert "execute_tool propose_crm_update" in out
    code, out, _ = invoke("runs", "show", good, "-p", str(INBOX), "--json")
    data = json.loads(out)
    assert data["run"]["id"] == good
    assert len(data["spans"]) == 6


def test_stats_per_agent(ids: tuple[str, str]) -> None:
    code, out, _ = invoke("runs", "stats", "-p", str(INBOX), "--json")
    assert code == EXIT_OK
    [inbox] = json.loads(out)
    assert (inbox["agent"], inbox["runs"], inbox["succeeded"]) == ("inbox", 2, 1)
    assert inbox["error_categories"] == {"bad_input": 1}
    assert {t["tool"] for t in inbox["tools"]} == {"lookup_customer", "propose_crm_update"}


def test_bad_arguments_exit_2(ids: tuple[str, str]) -> None:
    code, _, err = invoke("runs", "-p", str(INBOX), "--since", "yesterday")
    assert code == EXIT_USAGE
    assert "--since" in err
    code, _, err = invoke("runs", "show", "no-such-run", "-p", str(INBOX))
    assert code == EXIT_USAGE
    assert "no run with id" in err
    code, _, err = invoke("runs", "-p", str(INBOX), "--cursor", "garbage!")
    assert code == EXIT_USAGE
    code, _, err = invoke("runs", "-p", str(INBOX), "--limit", "0")
    assert code == EXIT_USAGE


def test_db_upgrade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_DATABASE_URL", f"sqlite:///{tmp_path}/fresh.db")
    code, out, _ = invoke("db", "upgrade", "-p", str(INBOX))
    assert code == EXIT_OK
    assert "up to date" in out
    assert (tmp_path / "fresh.db").exists()


def test_usage_totals(ids: tuple[str, str]) -> None:
    code, out, _ = invoke("runs", "usage", "-p", str(INBOX), "--by", "model", "--json")
    assert code == EXIT_OK
    [model] = json.loads(out)
    assert model["key"] == "openai-compatible:fake-inbox"
    assert model["requests"] == 3
    code, out, _ = invoke("runs", "usage", "-p", str(INBOX), "--by", "day")
    assert code == EXIT_OK
    code, _, err = invoke("runs", "usage", "-p", str(INBOX), "--by", "planet")
    assert code == EXIT_USAGE
    assert "--by" in err
