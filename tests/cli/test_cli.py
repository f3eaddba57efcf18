"""The `keel` command: output, exit codes, and errors that name file, line and field."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli import EXIT_CONFIG, EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, app

INBOX = Path(__file__).resolve().parents[2] / "examples" / "inbox"
EMAIL = json.dumps({"from": "grace@example.com", "subject": "Where is my order?", "body": "Not arrived yet."})


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOX_CRM_PATH", str(tmp_path / "crm.sqlite"))
    monkeypatch.setenv("KEEL_DATABASE_URL", f"sqlite:///{tmp_path}/keel.db")
    monkeypatch.delenv("KEEL_LLM_BASE_URL", raising=False)


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_check_passes_on_the_reference_project() -> None:
    code, out, _ = invoke("check", str(INBOX))
    assert code == EXIT_OK
    assert "ok" in out


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    project = tmp_path / "broken"
    shutil.copytree(INBOX, project, ignore=shutil.ignore_patterns(".keel", "__pycache__"))
    agent = project / "agents" / "inbox.yaml"
    agent.write_text(agent.read_text().replace("output_retries: 2", "output_retries: many\ntemprature: 0.3"))
    return project


def test_check_reports_every_error_with_file_line_and_field(broken: Path) -> None:
    code, _, err = invoke("check", str(broken))
    assert code == EXIT_RUN_FAILED
    lines = (broken / "agents" / "inbox.yaml").read_text().splitlines()
    retries_line = next(i for i, line in enumerate(lines, 1) if line.startswith("output_retries"))
    assert f"agents/inbox.yaml:{retries_line}: output_retries:" in err
    assert f"agents/inbox.yaml:{retries_line + 1}: temprature:" in err
    assert "2 configuration errors" in err


def test_run_on_a_broken_project_exits_3(broken: Path) -> None:
    code, _, err = invoke("run", "inbox", EMAIL, "-p", str(broken), "--with-fake-llm")
    assert code == EXIT_CONFIG
    assert "agents/inbox.yaml" in err


def test_run_prints_output_and_summary() -> None:
    code, out, err = invoke("run", "inbox", EMAIL, "-p", str(INBOX), "--with-fake-llm")
    assert code == EXIT_OK, err
    assert json.loads(out)["intent"] == "order_status"
    assert "succeeded" in err
    assert "2 model requests" in err
    assert "1 tool call" in err


def test_run_json_gives_the_whole_result(tmp_path: Path) -> None:
    email_file = tmp_path / "email.json"
    email_file.write_text(EMAIL)
    code, out, _ = invoke("run", "inbox", f"@{email_file}", "-p", str(INBOX), "--with-fake-llm", "--json")
    assert code == EXIT_OK
    result = json.loads(out)
    assert result["status"] == "succeeded"
    assert result["output"]["customer_id"] == "C1002"


def test_run_with_bad_input_exits_1_with_the_category() -> None:
    code, _, err = invoke("run", "inbox", '{"from": 7}', "-p", str(INBOX), "--with-fake-llm")
    assert code == EXIT_RUN_FAILED
    assert "bad_input" in err


def test_unknown_agent_and_missing_input_file_exit_2(tmp_path: Path) -> None:
    code, _, err = invoke("run", "nope", "hi", "-p", str(INBOX), "--with-fake-llm")
    assert code == EXIT_USAGE
    assert "unknown agent 'nope'" in err
    code, _, err = invoke("run", "inbox", f"@{tmp_path / 'missing.json'}", "-p", str(INBOX))
    assert code == EXIT_USAGE
    assert "cannot read input file" in err


def test_schema_writes_json_schemas(tmp_path: Path) -> None:
    code, _, _ = invoke("schema", "--out", str(tmp_path))
    assert code == EXIT_OK
    keel_schema = json.loads((tmp_path / "keel.schema.json").read_text())
    agent_schema = json.loads((tmp_path / "agent.schema.json").read_text())
    assert "models" in keel_schema["properties"]
    assert "retry_options" in agent_schema["properties"]


def test_agents_lists_the_agents() -> None:
    code, out, _ = invoke("agents", "-p", str(INBOX))
    assert code == EXIT_OK
    assert "inbox" in out


def test_installed_entry_point_runs_in_a_real_process() -> None:
    keel = Path(sys.executable).parent / "keel"
    done = subprocess.run([str(keel), "check", str(INBOX)], capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_OK, done.stderr
    done = subprocess.run([str(keel), "frobnicate"], capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_USAGE


def test_serve_with_an_unreachable_database_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    code, _, err = invoke("serve", str(INBOX))
    assert code == EXIT_CONFIG
    assert "cannot migrate the database" in err
    assert "Traceback" not in err


def test_run_with_an_unreachable_database_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    code, _, err = invoke("run", "inbox", EMAIL, "-p", str(INBOX), "--with-fake-llm")
    assert code == EXIT_CONFIG
    assert "cannot migrate the database" in err
