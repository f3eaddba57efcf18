"""`keel eval` end to end: 100 cases at concurrency 10 with a progress bar and reports; the CI gate."""

from __future__ import annotations

import asyncio
import json
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli import app
from keel.evals.store import EvalStore
from keel.prompts.registry import PromptRegistry
from keel.prompts.source import PromptContent
from keel.releases.deploy import deploy
from keel.testing.fake_llm import ChatRequest, FakeLLMThread, Reply


def follows_the_prompt(request: ChatRequest) -> Reply:
    """A fake model that does what its instructions say: shout when told to, else repeat."""
    system = next((m.content for m in request.messages if m.role == "system"), "")
    text = request.last_user or ""
    if "Answer in capitals." in system:
        return Reply(text=text.upper())
    return Reply(text=text)


@pytest.fixture
def fake() -> Iterator[FakeLLMThread]:
    with FakeLLMThread(follows_the_prompt) as server:
        yield server


def project(root: Path, base_url: str, cases: int) -> Path:
    (root / "agents").mkdir(parents=True)
    (root / "prompts").mkdir()
    (root / "evals").mkdir()
    (root / "keel.yaml").write_text(
        f"project: evals\nmodels:\n  m: {{provider: openai-compatible, model: m, base_url: '{base_url}', api_key_env: FAKE_KEY}}\n"
        "tracing: {enabled: false}\n"
    )
    (root / "agents" / "shout.yaml").write_text("model: m\ninstructions: {prompt: shout}\n")
    (root / "prompts" / "shout.md").write_text("You are loud. Answer in capitals.\n")
    lines = ["agent: shout", "evaluators: [{type: exact, ignore_case: false}]", "cases:"]
    for i in range(cases):
        lines += [f"  - id: case-{i:03d}", f"    input: hello number {i}", f"    expected: HELLO NUMBER {i}"]
        if i % 10 == 0:
            lines += ["    tags: [sample]"]
    (root / "evals" / "golden.yaml").write_text("\n".join(lines) + "\n")
    return root


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_KEY", "x")
    monkeypatch.setenv("COLUMNS", "200")


def test_100_cases_at_concurrency_10_with_progress_and_reports(
    tmp_path: Path, fake: FakeLLMThread, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_DATABASE_URL", database_url)
    root = project(tmp_path / "p", fake.base_url, 100)
    junit, report = tmp_path / "report.xml", tmp_path / "report.json"
    code, out, err = invoke(
        "eval", "evals/golden.yaml", "-p", str(root), "--concurrency", "10",
        "--junit-out", str(junit), "--json-out", str(report),
    )  # fmt: skip
    assert code == 0, out + err
    assert "100/100" in err  # the progress bar
    assert "100/100 cases passed (100.0%)" in out and "gate passed" in out
    suite = ET.parse(junit).getroot()  # a standard parser
    assert (suite.tag, suite.get("tests"), suite.get("failures")) == ("testsuite", "100", "0")
    assert len(suite.findall("testcase")) == 100
    written = json.loads(report.read_text())
    assert written["summary"]["cases"] == 100 and len(written["cases"]) == 100
    assert written["summary"]["evaluators"]["exact"]["pass_rate"] == 1.0

    async def stored() -> tuple[int, int]:
        async with EvalStore(database_url) as store:
            found = await store.get(written["id"], tenant_id=None)
            assert found is not None and found.status == "passed"
            return found.summary["cases"], found.summary["attempts"]

    assert asyncio.run(stored()) == (100, 100)


def test_the_ci_gate_fails_a_worse_prompt_and_passes_the_baseline(
    tmp_path: Path, fake: FakeLLMThread, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_DATABASE_URL", sqlite_url)
    root = project(tmp_path / "p", fake.base_url, 30)
    asyncio.run(
        deploy(root, sqlite_url, actor="operator:test", environ={"FAKE_KEY": "x"})
    )  # shout@1.0.0 live

    async def candidate() -> None:  # a "cleanup" that drops the instruction that mattered
        async with PromptRegistry(sqlite_url) as registry:
            await registry.save(
                "shout", PromptContent("You are loud.\n"), author="user:intern", message="tidy"
            )

    asyncio.run(candidate())
    worse = invoke(
        "eval", "evals/golden.yaml", "-p", str(root), "--prompt-version", "1.0.1", "--baseline", "live"
    )
    assert worse[0] == 1, worse
    assert "gate failed" in worse[1] and "regressed from 100.0%" in worse[1]
    same = invoke(
        "eval", "evals/golden.yaml", "-p", str(root), "--prompt-version", "1.0.0", "--baseline", "live"
    )
    assert same[0] == 0 and "gate passed" in same[1]
    last = invoke(
        "eval", "evals/golden.yaml", "-p", str(root), "--prompt-version", "1.0.1", "--baseline", "last"
    )
    assert last[0] == 1
    floor = invoke(
        "eval", "evals/golden.yaml", "-p", str(root), "--prompt-version", "1.0.1", "--min-pass-rate", "0.9"
    )
    assert floor[0] == 1 and "below the minimum 90.0%" in floor[1]

    async def links() -> list[dict[str, object]]:
        async with PromptRegistry(sqlite_url) as registry:
            return await registry.links("shout", "1.0.1", tenant_id=None)

    linked = asyncio.run(links())
    assert linked and all(link["kind"] == "eval_run" and link["detail"]["gate"] is False for link in linked)  # type: ignore[index]


def test_bad_datasets_and_options_are_clear_errors(
    tmp_path: Path, fake: FakeLLMThread, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_DATABASE_URL", sqlite_url)
    root = project(tmp_path / "p", fake.base_url, 3)
    (root / "evals" / "broken.yaml").write_text(
        textwrap.dedent("""\
        agent: shout
        cases:
          - id: a
            expect: [{type: fields, min_score: 2}]
        """)
    )
    code, _, err = invoke("eval", "evals/broken.yaml", "-p", str(root))
    assert code == 3 and "evals/broken.yaml:3: cases[0].input: missing required field" in err
    assert "cases[0].expect[0].min_score" in err
    code, _, err = invoke("eval", "evals/nothere.yaml", "-p", str(root))
    assert code == 3 and "no such dataset file" in err
    code, _, err = invoke("eval", "evals/golden.yaml", "-p", str(root), "--agent", "ghost")
    assert code == 2 and "unknown agent 'ghost'" in err
    code, _, err = invoke("eval", "evals/golden.yaml", "-p", str(root), "--baseline", "nope")
    assert code == 2 and "no evaluation run 'nope'" in err
    code, out, _ = invoke("eval", "evals/golden.yaml", "-p", str(root), "--tag", "sample", "--json")
    assert code == 0 and json.loads(out)["summary"]["cases"] == 1


def test_keel_deploy_refuses_a_release_that_fails_its_gate(
    tmp_path: Path, fake: FakeLLMThread, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_DATABASE_URL", sqlite_url)
    root = project(tmp_path / "p", fake.base_url, 20)
    with (root / "keel.yaml").open("a") as f:
        f.write("evals:\n  deploy_gate: {dataset: evals/golden.yaml, baseline: live, min_pass_rate: 0.9}\n")
    code, out, err = invoke("deploy", str(root), "--json")
    assert code == 0, out + err
    first = json.loads(out)
    assert first["release"]["number"] == 1 and first["gate"]["passed"] is True

    (root / "prompts" / "shout.md").write_text("You are loud.\n")  # the instruction that mattered is gone
    code, out, err = invoke("deploy", str(root))
    assert code == 1 and "the deploy gate failed" in err and "nothing was deployed" in err
    code, out, _ = invoke("releases", "-p", str(root), "--json")
    assert [r["number"] for r in json.loads(out)["releases"]] == [1]  # no new release
    code, out, _ = invoke("prompts", "list", "-p", str(root), "--json")
    assert json.loads(out)["prompts"][0]["labels"][0]["rollout"] == [{"version": "1.0.0", "weight": 100.0}]
    code, out, _ = invoke("audit", "list", "-p", str(root), "--json")
    assert any(
        e["outcome"] == "denied" and e["action"] == "config.deployed" for e in json.loads(out)["entries"]
    )

    code, out, _ = invoke("deploy", str(root), "--skip-gate", "--json")  # an operator's override
    assert code == 0 and json.loads(out)["gate"] == {"skipped": True}


def test_a_recorded_run_becomes_a_case_in_one_call(
    tmp_path: Path, fake: FakeLLMThread, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_DATABASE_URL", sqlite_url)
    root = project(tmp_path / "p", fake.base_url, 3)
    code, out, _ = invoke("run", "shout", "make me a case", "-p", str(root), "--json")
    assert code == 0, out
    run_id = json.loads(out)["run_id"]
    code, out, err = invoke("add-case", run_id, "--dataset", "regressions", "--tag", "prod", "-p", str(root))
    assert code == 0 and "version 1" in out, out + err
    code, out, _ = invoke(
        "add-case", run_id, "--dataset", "regressions", "--expected", '"corrected"', "-p", str(root)
    )
    assert code == 0 and "version 2" in out
    code, out, _ = invoke("eval", "db:regressions", "-p", str(root), "--json")
    summary = json.loads(out)["summary"]
    assert code == 0 and summary["cases"] == 2  # each case checks only that its run succeeds
    jsonl = tmp_path / "cases.jsonl"
    code, out, _ = invoke("add-case", run_id, "--dataset", str(jsonl), "-p", str(root))
    assert code == 0 and json.loads(jsonl.read_text())["expected"] == "MAKE ME A CASE"
    assert invoke("add-case", "nope", "--dataset", "regressions", "-p", str(root))[0] == 2
    assert invoke("eval", "db:ghost", "-p", str(root))[0] == 2
