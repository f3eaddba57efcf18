"""`keel deploy`, `keel releases`, `keel rollback` and `keel prompts` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli import app


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def project(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "p"
    (root / "agents").mkdir(parents=True)
    (root / "prompts").mkdir()
    (root / "keel.yaml").write_text(
        "project: cli\nmodels:\n  m: {provider: openai-compatible, model: m, base_url: 'http://127.0.0.1:9/v1'}\n"
    )
    (root / "agents" / "helper.yaml").write_text("model: m\ninstructions: {prompt: helper}\n")
    (root / "prompts" / "helper.md").write_text("First words.\n")
    monkeypatch.setenv("KEEL_DATABASE_URL", sqlite_url)
    return root


def test_deploy_releases_rollback_and_history(project: Path) -> None:
    code, out, _ = invoke("deploy", str(project), "-m", "first")
    assert code == 0 and "new prompt version helper@1.0.0" in out and "release 1" in out
    assert "nothing changed: release 1 is live" in invoke("deploy", str(project))[1]
    (project / "prompts" / "helper.md").write_text("Second words.\n")
    code, out, _ = invoke("deploy", str(project), "--json")
    made = json.loads(out)
    assert code == 0 and made["release"]["number"] == 2 and made["new_versions"] == ["helper@1.0.1"]

    code, out, _ = invoke("releases", "-p", str(project), "--json")
    listed = json.loads(out)
    assert [r["number"] for r in listed["releases"]] == [2, 1] and listed["live"]["release"] == 2
    code, out, _ = invoke("rollback", "-p", str(project))
    assert code == 0 and "release 1 is live (was 2)" in out
    code, out, _ = invoke("rollback", "2", "-p", str(project))
    assert code == 0 and "release 2 is live (was 1)" in out
    code, _, err = invoke("rollback", "9", "-p", str(project))
    assert code == 2 and "no release 9" in err

    code, out, _ = invoke("prompts", "history", "helper", "-p", str(project), "--json")
    history = json.loads(out)
    assert [v["version"] for v in history["versions"]] == ["1.0.1", "1.0.0"]
    assert [m["rollout"][0]["version"] for m in history["moves"]] == ["1.0.1", "1.0.0", "1.0.1", "1.0.0"]
    code, out, _ = invoke("prompts", "diff", "helper", "1.0.0", "1.0.1", "-p", str(project))
    assert "-First words." in out and "+Second words." in out


def test_versions_and_labels_from_the_cli(project: Path, tmp_path: Path) -> None:
    invoke("deploy", str(project))
    draft = tmp_path / "draft.md"
    draft.write_text("---\nversion: 2.0.0\nmessage: rewrite\n---\nNew words.\n")
    code, out, _ = invoke("prompts", "create", "helper", "--file", str(draft), "-p", str(project))
    assert code == 0 and "new version helper@2.0.0" in out
    code, out, _ = invoke(
        "prompts", "label", "helper", "production", "1.0.0=90", "2.0.0=10", "-p", str(project)
    )
    assert code == 0 and "helper:production -> 1.0.0:90%/2.0.0:10%" in out
    code, _, err = invoke("prompts", "label", "helper", "production", "1.0.0=90", "-p", str(project))
    assert code == 2 and "add up to 90, not 100" in err
    code, _, err = invoke("prompts", "label", "helper", "staging", "7.0.0", "-p", str(project))
    assert code == 2 and "no version 7.0.0" in err
    code, out, _ = invoke("prompts", "list", "-p", str(project))
    assert "helper  latest 2.0.0  production=1.0.0:90%/2.0.0:10%" in out


def test_a_broken_project_deploys_nothing_and_names_file_line_and_field(project: Path) -> None:
    (project / "prompts" / "helper.md").write_text("---\nvariables: [who]\n---\nNo placeholder.\n")
    code, _, err = invoke("deploy", str(project))
    assert code == 3 and "agents/helper.yaml:2: instructions.prompt:" in err
    assert "prompts/helper.md:2: variables:" in err
    code, out, _ = invoke("releases", "-p", str(project))
    assert code == 0 and "no releases yet" in out


def test_rollback_works_while_the_project_files_are_broken(project: Path) -> None:
    invoke("deploy", str(project))
    (project / "prompts" / "helper.md").write_text("Second words.\n")
    invoke("deploy", str(project))
    (project / "agents" / "helper.yaml").write_text("model: m\ninstructions: {prompt: missing}\n")
    code, out, _ = invoke("rollback", "-p", str(project))
    assert code == 0 and "release 1 is live (was 2)" in out
    assert invoke("releases", "-p", str(project))[0] == 0
