"""Loading valid projects: merge order, resolution, interpolation, hashing, discovery."""

from __future__ import annotations

import json
import sys

import pytest

from keel.config import check_project, load_project
from keel.config.project import ResolvedModel
from keel.errors import ConfigError, ConfigIssue
from tests.config.support import DEFAULT_KEEL_YAML, ProjectDir


def test_merge_order_defaults_then_defaults_file_then_agent(project: ProjectDir) -> None:
    project.keel(
        DEFAULT_KEEL_YAML
        + """\
defaults:
  model: fast
  description: from keel.yaml
  timeouts: {run: 100, model_request: 10, tool_call: 1}
  model_settings: {temperature: 0.1, stop_sequences: [a, b]}
  metadata: {team: core, tier: 1}
"""
    )
    project.write(
        "agents/_defaults.yaml",
        """\
        description: from _defaults.yaml
        timeouts: {model_request: 20}
        model_settings: {stop_sequences: [c]}
        metadata: {tier: 2}
        """,
    )
    project.agent("inbox", "timeouts: {tool_call: 3}\nmetadata: {owner: ana}\n")
    project.agent("other", "description: own\nmodel_settings: {stop_sequences: []}\n")

    loaded = project.load()

    inbox = loaded.agent("inbox")
    assert inbox.config.description == "from _defaults.yaml"
    assert (
        inbox.config.timeouts.run,
        inbox.config.timeouts.model_request,
        inbox.config.timeouts.tool_call,
    ) == (
        100,
        20,
        3,
    )
    assert inbox.config.model_settings.temperature == 0.1
    assert inbox.config.model_settings.stop_sequences == ["c"]  # lists replace, never concatenate
    assert inbox.config.metadata == {"team": "core", "tier": 2, "owner": "ana"}  # mappings merge
    other = loaded.agent("other")
    assert other.config.description == "own"
    assert other.config.model_settings.stop_sequences == []
    assert list(loaded.agents) == ["inbox", "other"]


def test_null_in_a_higher_layer_resets_a_default(project: ProjectDir) -> None:
    project.keel(DEFAULT_KEEL_YAML + "defaults:\n  model: fast\n  timeouts: {run: 5}\n")
    project.agent("a", "timeouts:\n  run: null\n")
    assert project.load().agent("a").config.timeouts.run is None


def test_full_agent_resolution(project: ProjectDir) -> None:
    project.keel(
        """\
        project: demo
        models:
          fast: {provider: openai, model: gpt-4o-mini}
          local:
            provider: openai-compatible
            model: llama3
            base_url: http://localhost:8000/v1
            api_key_env: LOCAL_KEY
            price: {input_per_mtok: 0.1}
        """
    )
    mod = project.tool_module(
        '''\
from pydantic_ai import RunContext


def lookup(ctx: RunContext[None], city: str, days: int = 1) -> str:
    """Look up the weather.

    Longer explanation the model does not need.
    """
    return city


def notify(to: str) -> None:
    return None
'''
    )
    project.write("prompts/inbox.md", "You sort the inbox.\n")
    project.write("schemas/in.yaml", "type: object\nproperties:\n  text: {type: string}\nrequired: [text]\n")
    project.write(
        "schemas/out.json",
        json.dumps({"type": "object", "properties": {"label": {"type": "string", "x-unclear": True}}}),
    )
    project.agent(
        "inbox",
        f"""\
        model: fast
        fallback_models: [local, anthropic:claude-3-5-haiku-latest]
        instructions: {{file: prompts/inbox.md}}
        input_schema: {{file: schemas/in.yaml}}
        output_schema: {{file: schemas/out.json}}
        tools:
          - {mod}:lookup
          - function: {mod}:notify
            name: send-note
            description: Send a note.
            timeout: 2
        """,
    )

    spec = project.load().agent("inbox")

    assert spec.source == project.root / "agents" / "inbox.yaml"
    assert spec.instructions == "You sort the inbox.\n"
    assert spec.model == ResolvedModel("fast", "openai", "gpt-4o-mini", api_key_env="OPENAI_API_KEY")
    local, haiku = spec.fallback_models
    assert (local.provider, local.base_url, local.api_key_env) == (
        "openai-compatible",
        "http://localhost:8000/v1",
        "LOCAL_KEY",
    )
    assert local.price is not None and local.price.input_per_mtok == 0.1
    assert haiku == ResolvedModel(
        "anthropic:claude-3-5-haiku-latest",
        "anthropic",
        "claude-3-5-haiku-latest",
        api_key_env="ANTHROPIC_API_KEY",
    )
    assert spec.input_schema == {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
    }
    assert spec.output_schema is not None
    assert spec.output_schema["properties"]["label"]["x-unclear"] is True  # left for the runtime
    lookup, notify = spec.tools
    assert (lookup.name, lookup.description) == ("lookup", "Look up the weather.")
    assert lookup.function is sys.modules[mod].lookup
    assert (notify.name, notify.description, notify.config.timeout) == ("send-note", "Send a note.", 2)


def test_tool_without_docstring_has_no_description(project: ProjectDir) -> None:
    mod = project.tool_module("def f(x: int) -> int:\n    return x\n")
    project.keel().agent("a", f"model: fast\ntools: [{mod}:f]\n")
    assert project.load().agent("a").tools[0].description is None


def test_tool_module_with_postponed_annotations(project: ProjectDir) -> None:
    mod = project.tool_module(
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pydantic_ai import RunContext\n\n"
        "def f(ctx: RunContext[None], x: Missing) -> int:\n    return 1\n"
    )
    project.keel().agent("a", f"model: fast\ntools: [{mod}:f]\n")
    assert project.load().agent("a").tools[0].name == "f"


def test_python_path_folders_and_sys_path_restored(project: ProjectDir) -> None:
    project.keel(DEFAULT_KEEL_YAML + "python_path: [src]\n")
    project.write(f"src/{project.mod}/__init__.py", "")
    project.write(f"src/{project.mod}/tools.py", "def f(x: int) -> int:\n    return x\n")
    project.agent("a", f"model: fast\ntools: [{project.mod}.tools:f]\n")
    before = list(sys.path)

    spec = project.load().agent("a")

    assert sys.path == before
    assert f"{project.mod}.tools" in sys.modules  # imported modules stay loaded
    assert spec.tools[0].function(2) == 2


def test_sys_path_restored_when_an_import_fails(project: ProjectDir) -> None:
    mod = project.tool_module("raise SystemExit(3)\n")
    project.keel().agent("a", f"model: fast\ntools: [{mod}:f]\n")
    before = list(sys.path)

    issues = project.issues()

    assert sys.path == before
    assert [i.message for i in issues] == [f"importing module '{mod}' raised SystemExit: 3"]


def test_interpolation_defaults_escapes_and_embedding(project: ProjectDir) -> None:
    project.keel(
        """\
        project: demo
        models:
          local:
            provider: openai-compatible
            model: ${MODEL_NAME:-llama3}
            base_url: http://${HOST}:${PORT:-8000}/v1
        server:
          port: ${SERVER_PORT}
        """
    )
    project.agent(
        "a",
        """\
        model: local
        description: literal $${HOME} and ${EMPTY:-fallback} and $$ and $5
        instructions: "Hello ${WHO}"
        """,
    )

    loaded = project.load({"HOST": "gpu-1", "SERVER_PORT": "9000", "WHO": "team", "EMPTY": ""})

    spec = loaded.agent("a")
    assert (spec.model.model, spec.model.base_url) == ("llama3", "http://gpu-1:8000/v1")
    assert loaded.config.server.port == 9000  # numeric strings coerce where numbers are expected
    assert spec.config.description == "literal ${HOME} and fallback and $$ and $5"
    assert spec.instructions == "Hello team"


def test_secrets_never_appear_in_messages(project: ProjectDir) -> None:
    secret = "sk-very-secret-value"
    project.keel(
        DEFAULT_KEEL_YAML + "  other:\n    provider: openai\n    model: gpt-4o\n    api_key_env: ${TOKEN}\n"
    )
    project.agent(
        "a",
        """\
        model: ${TOKEN}
        output_mode: ${TOKEN}
        model_settings: {temperature: "${TOKEN}"}
        output_schema: {type: object, properties: {a: {type: "${TOKEN}", x-unclear: "${TOKEN}"}}}
        """,
    )

    issues = project.issues({"TOKEN": secret})

    assert len(issues) == 6, issues
    assert all(secret not in str(issue) for issue in issues)
    assert all("${TOKEN}" in issue.message or "not the key itself" in issue.message for issue in issues)


def test_errors_from_many_files_are_reported_together(project: ProjectDir) -> None:
    project.keel("project: demo\nmodels:\n  fast: {provider: openai, model: gpt-4o, temprature: 1}\n")
    project.write("agents/_defaults.yaml", "retry_options:\n  attempts: 0\n")
    project.agent("a", "model: fast\ntimeouts: {run: soon}\n")
    project.agent("b", "model: nowhere\n")
    project.agent("c", "model: [broken\n")

    with pytest.raises(ConfigError) as raised:
        project.load()

    assert raised.value.issues == [
        ConfigIssue(
            "keel.yaml",
            3,
            "models.fast.temprature",
            "unknown key 'temprature' (known keys: api_key_env, base_url, model, price, provider)",
        ),
        ConfigIssue("agents/_defaults.yaml", 2, "retry_options.attempts", "must be at least 1, got 0"),
        ConfigIssue("agents/a.yaml", 2, "timeouts.run", "expected a number, got 'soon'"),
        ConfigIssue(
            "agents/b.yaml",
            1,
            "model",
            "unknown model 'nowhere' (named models: fast; or use provider:model with provider one of "
            "openai, anthropic, google)",
        ),
        ConfigIssue("agents/c.yaml", 2, "", raised.value.issues[-1].message),
    ]
    assert raised.value.issues[-1].message.startswith("YAML syntax error")
    assert "5 configuration errors" in str(raised.value)


def test_a_defaults_problem_is_reported_once_for_all_agents(project: ProjectDir) -> None:
    project.keel(DEFAULT_KEEL_YAML + "defaults:\n  model: fast\n  limits: {max_tool_calls: -1}\n")
    for name in ("a", "b", "c"):
        project.agent(name, "description: x\n")
    assert project.issues() == [
        ConfigIssue("keel.yaml", 8, "defaults.limits.max_tool_calls", "must be at least 0, got -1")
    ]


def test_missing_required_field_reports_the_enclosing_mapping(project: ProjectDir) -> None:
    project.keel(DEFAULT_KEEL_YAML + "defaults:\n  model: fast\n")
    project.write("agents/_defaults.yaml", "tools:\n  - timeout: 3\n")
    project.agent("a", "description: x\n")
    assert project.issues() == [
        ConfigIssue("agents/_defaults.yaml", 2, "tools[0].function", "missing required field")
    ]


def test_yaml_anchors_and_merge_keys(project: ProjectDir) -> None:
    project.keel().agent(
        "a",
        """\
        model: fast
        x-base: &base {attempts: 2, initial_delay: 1}
        """,
    )
    assert "unknown key 'x-base'" in project.issues()[0].message
    project.agent("a", "model: fast\nretry_options:\n  <<: {attempts: 2, initial_delay: 1}\n  attempts: 5\n")
    options = project.load().agent("a").config.retry_options
    assert (options.attempts, options.initial_delay) == (5, 1)


def test_config_hash_is_stable_and_tracks_instructions(project: ProjectDir) -> None:
    project.keel().write("prompts/a.md", "Be brief.")
    project.agent("a", "model: fast\ninstructions: {file: prompts/a.md}\ntimeouts: {run: 10, tool_call: 5}\n")
    first = project.load().agent("a").config_hash
    assert len(first) == 64 and int(first, 16) >= 0

    project.agent("a", "timeouts: {tool_call: 5, run: 10}\ninstructions: {file: prompts/a.md}\nmodel: fast\n")
    assert project.load().agent("a").config_hash == first  # key order does not matter

    project.write("prompts/a.md", "Be very brief.")
    changed = project.load().agent("a").config_hash
    assert changed != first

    project.agent("a", "model: fast\ninstructions: {file: prompts/a.md}\ntimeouts: {run: 11, tool_call: 5}\n")
    assert project.load().agent("a").config_hash not in {first, changed}


def test_config_hash_tracks_schemas_and_named_models(project: ProjectDir) -> None:
    project.keel().agent("a", "model: fast\noutput_schema: {type: object}\n")
    base = project.load().agent("a").config_hash
    project.agent("a", "model: fast\noutput_schema: {type: object, required: [x]}\n")
    assert project.load().agent("a").config_hash != base
    project.agent("a", "model: fast\noutput_schema: {type: object}\n")
    project.keel(DEFAULT_KEEL_YAML.replace("gpt-4o-mini", "gpt-4o"))
    assert project.load().agent("a").config_hash != base


def test_root_can_be_the_keel_yaml_file(project: ProjectDir) -> None:
    project.keel().agent("a", "model: fast\n")
    loaded = load_project(str(project.root / "keel.yaml"), environ={})
    assert loaded.root == project.root.resolve()
    assert loaded.config.project == "demo"
    assert check_project(project.root, environ={}) == []


def test_missing_keel_yaml(project: ProjectDir) -> None:
    project.agent("a", "model: openai:gpt-4o\n")
    with pytest.raises(ConfigError) as raised:
        project.load()
    (issue,) = raised.value.issues
    assert (issue.file, issue.line, issue.field) == ("keel.yaml", None, "")
    assert "no keel.yaml in" in issue.message


def test_missing_folder_and_wrong_file(project: ProjectDir) -> None:
    assert "no such project folder" in check_project(project.root / "nowhere")[0].message
    other = project.write("notes.yaml", "a: 1\n")
    assert "give the project folder or its keel.yaml" in check_project(other)[0].message


@pytest.mark.parametrize("layout", ["no-folder", "empty-folder", "only-defaults"])
def test_no_agents(project: ProjectDir, layout: str) -> None:
    project.keel()
    if layout == "empty-folder":
        (project.root / "agents").mkdir()
        project.write("agents/README.md", "notes")
    elif layout == "only-defaults":
        project.write("agents/_defaults.yaml", "model: fast\n")
    assert project.issues() == [
        ConfigIssue("agents/", None, "", "no agents: add one file per agent, agents/<name>.yaml")
    ]


def test_empty_keel_yaml_still_checks_agents(project: ProjectDir) -> None:
    project.keel("")
    project.agent("a", "model: fast\nretry_options: {attempts: 99}\n")
    issues = project.issues()
    assert issues == [
        ConfigIssue("keel.yaml", 1, "", "the file is empty"),
        ConfigIssue("agents/a.yaml", 2, "retry_options.attempts", "must be at most 10, got 99"),
    ]


def test_named_model_invalid_in_keel_yaml_is_not_reported_again(project: ProjectDir) -> None:
    project.keel("project: demo\nmodels:\n  local: {provider: openai-compatible, model: m}\n")
    project.agent("a", "model: local\n")
    assert [(i.file, i.field) for i in project.issues()] == [("keel.yaml", "models.local")]


def test_same_model_under_two_names_is_a_repeat(project: ProjectDir) -> None:
    project.keel(DEFAULT_KEEL_YAML + "  quick: {provider: openai, model: gpt-4o-mini}\n")
    project.agent("a", "model: fast\nfallback_models: [quick]\n")
    (issue,) = project.issues()
    assert (issue.field, issue.message) == (
        "fallback_models[0]",
        "model 'quick' is the same model as the primary model, 'fast' (same provider, model, base_url and "
        "api_key_env): a model may appear only once in the chain",
    )


def test_same_model_with_another_key_is_not_a_repeat(project: ProjectDir) -> None:
    project.keel(
        DEFAULT_KEEL_YAML + "  backup: {provider: openai, model: gpt-4o-mini, api_key_env: BACKUP_KEY}\n"
    )
    project.agent("a", "model: fast\nfallback_models: [backup]\n")
    assert project.load().agent("a").fallback_models[0].api_key_env == "BACKUP_KEY"


def test_local_refs_and_anchors_are_accepted(project: ProjectDir) -> None:
    project.keel().agent(
        "a",
        """\
        model: fast
        output_schema:
          type: object
          $defs:
            money: {type: number, minimum: 0}
            city: {$anchor: city, type: string}
          properties:
            amount: {$ref: "#/$defs/money"}
            town: {$ref: "#city"}
            again: {$ref: "#/properties/amount"}
        """,
    )
    schema = project.load().agent("a").output_schema
    assert schema is not None and schema["properties"]["town"] == {"$ref": "#city"}


def test_unresolvable_anchor_ref(project: ProjectDir) -> None:
    project.keel().agent("a", "model: fast\noutput_schema:\n  properties:\n    x: {$ref: '#nowhere'}\n")
    assert project.issues() == [
        ConfigIssue(
            "agents/a.yaml",
            4,
            "output_schema.properties.x.$ref",
            "$ref '#nowhere' names no $anchor in this schema",
        )
    ]


def test_json_schema_file_that_is_not_yaml_still_gets_checked(project: ProjectDir) -> None:
    project.keel().agent("a", "model: fast\noutput_schema: {file: schemas/out.json}\n")
    project.write("schemas/out.json", '{\n\t"type": "object",\n\t"properties": {"a": {"type": "strng"}}\n}\n')
    (issue,) = project.issues()
    assert (issue.file, issue.line, issue.field) == ("schemas/out.json", 1, "properties.a.type")


def test_instructions_file_from_defaults_is_relative_to_the_project(project: ProjectDir) -> None:
    project.keel().write("prompts/shared.md", "Shared rules.")
    project.write("agents/_defaults.yaml", "model: fast\ninstructions: {file: prompts/shared.md}\n")
    project.agent("a", "description: first\n")
    project.agent("b", "instructions: Own rules.\n")
    loaded = project.load()
    assert loaded.agent("a").instructions == "Shared rules."
    assert loaded.agent("b").instructions == "Own rules."


def test_union_field_with_a_wrong_key_names_the_key(project: ProjectDir) -> None:
    project.keel().agent("a", "model: fast\ninstructions:\n  path: prompts/a.md\n")
    assert project.issues() == [
        ConfigIssue("agents/a.yaml", 2, "instructions.file", "missing required field"),
        ConfigIssue(
            "agents/a.yaml",
            3,
            "instructions.path",
            "unknown key 'path' (known keys: file, label, prompt, variables)",
        ),
    ]
