"""Runs of an agent whose instructions are a registry prompt: which text, which version, recorded."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel

from keel.config import load_project
from keel.config.project import ResolvedModel
from keel.errors import ConfigError
from keel.prompts.registry import PromptRegistry
from keel.prompts.rollout import Share
from keel.releases.deploy import deploy, rollback
from keel.runtime.runner import Runner
from keel.store import RunStore


def echo_instructions(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """The model answers with the instructions it was given and its temperature."""
    temperature = (info.model_settings or {}).get("temperature")
    return ModelResponse(parts=[TextPart(f"{info.instructions}|t={temperature}")])


def factory(model: ResolvedModel) -> Model:
    return FunctionModel(echo_instructions)


def write(root: Path, prompt: str, *, agent_extra: str = "") -> Path:
    (root / "agents").mkdir(parents=True, exist_ok=True)
    (root / "prompts").mkdir(exist_ok=True)
    (root / "keel.yaml").write_text(
        "project: prompts\nmodels:\n  m: {provider: openai-compatible, model: m, base_url: 'http://127.0.0.1:9/v1'}\n"
        "tracing: {enabled: false}\n"
    )
    (root / "agents" / "helper.yaml").write_text(
        "model: m\ninstructions: {prompt: helper, variables: {team: support}}\n" + agent_extra
    )
    (root / "prompts" / "helper.md").write_text(textwrap.dedent(prompt))
    return root


PROMPT_V1 = """\
    ---
    variables:
      team: {}
      tier: {default: bronze}
    model_settings: {temperature: 0.25}
    ---
    Help the {{ team }} team ({{ tier }}).
    """


def run_once(root: Path, url: str, **kwargs: Any) -> Any:
    async def go() -> Any:
        async with Runner(load_project(root), model_factory=factory, database_url=url) as runner:
            result = await runner.run("helper", "hi", **kwargs)
            await runner.flush()
            return result

    return asyncio.run(go())


def stored(url: str, run_id: str) -> Any:
    async def go() -> Any:
        async with RunStore(url) as store:
            return await store.get_run(run_id)

    return asyncio.run(go())


def test_before_any_deploy_the_file_is_used_and_recorded(tmp_path: Path, database_url: str) -> None:
    root = write(tmp_path / "p", PROMPT_V1)
    result = run_once(root, database_url, variables={"tier": "gold"})
    assert result.succeeded, result.error
    assert result.output == "Help the support team (gold).|t=0.25"
    assert result.prompt_version is not None and result.prompt_version.startswith("helper@file:")
    record = stored(database_url, result.run_id)
    assert record.prompt_version == result.prompt_version and record.release is None


def test_the_run_record_holds_the_deployed_version(tmp_path: Path, database_url: str) -> None:
    root = write(tmp_path / "p", PROMPT_V1)
    first = asyncio.run(deploy(root, database_url, actor="operator:cli", message="v1"))
    assert first.release.number == 1 and first.release.prompts == {"helper": "1.0.0"}
    assert run_once(root, database_url).prompt_version == "helper@1.0.0"

    (root / "prompts" / "helper.md").write_text(textwrap.dedent(PROMPT_V1).replace("Help", "Assist"))
    second = asyncio.run(deploy(root, database_url, actor="operator:cli"))
    assert (second.release.number, second.previous, second.new_versions) == (2, 1, ["helper@1.0.1"])
    result = run_once(root, database_url)
    assert result.output == "Assist the support team (bronze).|t=0.25"
    assert stored(database_url, result.run_id).prompt_version == "helper@1.0.1"

    back = asyncio.run(rollback(database_url, None, actor="operator:cli"))
    assert (back.release.number, back.previous) == (1, 2)
    result = run_once(root, database_url)
    assert (result.output, result.prompt_version) == (
        "Help the support team (bronze).|t=0.25",
        "helper@1.0.0",
    )

    again = asyncio.run(deploy(root, database_url, actor="operator:cli"))  # the files are release 2's
    assert (again.release.number, again.created, again.activated) == (2, False, True)


def test_a_label_move_from_the_console_changes_the_next_run(tmp_path: Path, database_url: str) -> None:
    root = write(tmp_path / "p", PROMPT_V1)
    asyncio.run(deploy(root, database_url, actor="operator:cli"))

    async def console() -> None:
        from keel.prompts.source import PromptContent

        async with PromptRegistry(database_url) as registry:
            made, _ = await registry.save(
                "helper",
                PromptContent("Be brief with {{ team }}.", ("team",), model_settings={"temperature": 0.9}),
                author="user:pm",
                message="shorter",
            )
            await registry.move_label("helper", "production", [Share(made.version, 100)], actor="user:pm")

    asyncio.run(console())
    result = run_once(root, database_url)
    assert (result.output, result.prompt_version) == ("Be brief with support.|t=0.9", "helper@1.0.1")


@pytest.mark.parametrize(
    ("variables", "message"),
    [({"colour": "red"}, "unknown prompt variable 'colour'"), ({}, "missing prompt variable 'team'")],
)
def test_wrong_variables_fail_the_run_with_bad_input_before_any_model_call(
    tmp_path: Path, sqlite_url: str, variables: dict[str, Any], message: str
) -> None:
    root = write(tmp_path / "p", PROMPT_V1)
    if not variables:  # the agent no longer provides `team`
        (root / "agents" / "helper.yaml").write_text("model: m\ninstructions: {prompt: helper}\n")
    result = run_once(root, sqlite_url, variables=variables)
    assert result.error is not None and result.error.category.value == "bad_input"
    assert message in result.error.message and result.model_requests == 0


def test_an_agent_naming_a_missing_prompt_or_variable_is_a_config_error(tmp_path: Path) -> None:
    root = write(tmp_path / "p", PROMPT_V1, agent_extra="")
    (root / "agents" / "other.yaml").write_text("model: m\ninstructions: {prompt: nothere}\n")
    (root / "agents" / "third.yaml").write_text(
        "model: m\ninstructions: {prompt: helper, variables: {x: 1}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_project(root)
    found = {(i.file, i.line, i.field): i.message for i in caught.value.issues}
    assert (
        found[("agents/other.yaml", 2, "instructions.prompt")]
        == "no prompt file prompts/nothere.md for prompt 'nothere'"
    )
    assert (
        "'x' are not declared by prompt 'helper'" in found[("agents/third.yaml", 2, "instructions.variables")]
    )


def test_a_canary_over_2000_runs_lands_on_target_with_per_version_statistics(
    tmp_path: Path, sqlite_url: str
) -> None:
    root = write(tmp_path / "p", PROMPT_V1)
    asyncio.run(deploy(root, sqlite_url, actor="operator:cli"))
    (root / "prompts" / "helper.md").write_text(textwrap.dedent(PROMPT_V1).replace("Help", "Assist"))
    asyncio.run(deploy(root, sqlite_url, actor="operator:cli"))  # 1.0.1 is production

    async def go() -> tuple[list[Any], list[Any], list[dict[str, Any]]]:
        async with PromptRegistry(sqlite_url) as registry:
            await registry.move_label(
                "helper", "production", [Share("1.0.1", 80), Share("1.0.0", 20)], actor="cli", sticky="user"
            )
        async with Runner(load_project(root), model_factory=factory, database_url=sqlite_url) as runner:
            gate = asyncio.Semaphore(25)

            async def one(user: str) -> Any:
                async with gate:
                    return await runner.run("helper", "hi", user_id=user)

            results = await asyncio.gather(*(one(f"user-{i}") for i in range(2000)))
            again = await asyncio.gather(*(one(f"user-{i}") for i in range(0, 2000, 20)))
            await runner.flush()
        async with PromptRegistry(sqlite_url) as registry:
            stats = await registry.stats("helper", tenant_id=None)
        return results, again, stats

    results, again, stats = asyncio.run(go())
    assert all(r.succeeded for r in results)
    canary = sum(1 for r in results if r.prompt_version == "helper@1.0.0") / len(results)
    assert abs(canary - 0.20) <= 0.03, canary
    for result in results:  # the text each run got is its version's
        expected = "Help" if result.prompt_version == "helper@1.0.0" else "Assist"
        assert result.output.startswith(expected)
    first = {r.user_id: r.prompt_version for r in results}
    assert all(first[r.user_id] == r.prompt_version for r in again)  # each user stays on one version
    by_version = {s["version"]: s for s in stats}
    assert by_version["1.0.0"]["runs"] + by_version["1.0.1"]["runs"] == 2100
    assert by_version["1.0.0"]["success_rate"] == 1.0 and by_version["1.0.0"]["latency_ms_p50"] is not None
    print(f"canary share over 2,000 runs: {canary:.3f} (target 0.200)")
