"""One distinct configuration mistake per case, each located by file, line and field path.

Every case is a complete project (keel.yaml defaults to a valid one naming the model `fast`);
`{mod}` in a file is replaced with a tool module name unique to the test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.config.support import DEFAULT_KEEL_YAML, ProjectDir


@dataclass(frozen=True)
class Case:
    id: str
    files: dict[str, str]
    at: tuple[str, int | None, str]  # the issue's file, line and field
    message: str
    env: dict[str, str] = field(default_factory=dict)
    count: int = 1  # how many issues the whole project has: no follow-on noise


VALID_AGENT = "model: fast\n"

CASES = [
    # --- unknown keys -------------------------------------------------------------------------
    Case(
        "unknown-key-agent-top-level",
        {"agents/a.yaml": "model: fast\ntemprature: 0.2\n"},
        ("agents/a.yaml", 2, "temprature"),
        "unknown key 'temprature' (did you mean 'model_settings.temperature'?)",
    ),
    Case(
        "unknown-key-nested",
        {"agents/a.yaml": "model: fast\nmodel_settings:\n  temprature: 0.2\n"},
        ("agents/a.yaml", 3, "model_settings.temprature"),
        "unknown key 'temprature' (did you mean 'temperature'?)",
    ),
    Case(
        "unknown-key-in-tool",
        {
            "agents/a.yaml": "model: fast\ntools:\n  - function: {mod}:f\n    tmeout: 3\n",
            "{mod}.py": "def f(x: int) -> int:\n    return x\n",
        },
        ("agents/a.yaml", 4, "tools[0].tmeout"),
        "unknown key 'tmeout' (did you mean 'timeout'?)",
    ),
    Case(
        "unknown-key-keel-yaml",
        {"keel.yaml": DEFAULT_KEEL_YAML + "sever:\n  port: 8080\n", "agents/a.yaml": VALID_AGENT},
        ("keel.yaml", 6, "sever"),
        "unknown key 'sever' (did you mean 'server'?)",
    ),
    # --- types and ranges ---------------------------------------------------------------------
    Case(
        "wrong-type-number",
        {"agents/a.yaml": "model: fast\nmodel_settings:\n  temperature: fast\n"},
        ("agents/a.yaml", 3, "model_settings.temperature"),
        "expected a number, got 'fast'",
    ),
    Case(
        "wrong-type-list",
        {"agents/a.yaml": "model: fast\nfallback_models: openai:gpt-4o\n"},
        ("agents/a.yaml", 2, "fallback_models"),
        "expected a list, got 'openai:gpt-4o'",
    ),
    Case(
        "wrong-type-union",
        {"agents/a.yaml": "model: fast\ninstructions: 5\n"},
        ("agents/a.yaml", 2, "instructions"),
        "expected a string or a mapping, got 5",
    ),
    Case(
        "fractional-integer",
        {"agents/a.yaml": "model: fast\noutput_retries: 1.5\n"},
        ("agents/a.yaml", 2, "output_retries"),
        "expected a whole number, got 1.5",
    ),
    Case(
        "out-of-range-high",
        {"agents/a.yaml": "model: fast\nretry_options:\n  attempts: 11\n"},
        ("agents/a.yaml", 3, "retry_options.attempts"),
        "must be at most 10, got 11",
    ),
    Case(
        "out-of-range-low",
        {"agents/a.yaml": "model: fast\nretry_options:\n  attempts: 0\n"},
        ("agents/a.yaml", 3, "retry_options.attempts"),
        "must be at least 1, got 0",
    ),
    Case(
        "bad-literal",
        {"agents/a.yaml": "model: fast\noutput_mode: tol\n"},
        ("agents/a.yaml", 2, "output_mode"),
        "must be one of 'tool', 'native', 'prompted', got 'tol' (did you mean 'tool'?)",
    ),
    # --- required fields ----------------------------------------------------------------------
    Case(
        "missing-model",
        {"agents/a.yaml": "description: no model here\n"},
        ("agents/a.yaml", 1, "model"),
        "missing required field",
    ),
    Case(
        "missing-tool-function",
        {"agents/a.yaml": "model: fast\ntools:\n  - name: lookup\n"},
        ("agents/a.yaml", 3, "tools[0].function"),
        "missing required field",
    ),
    Case(
        "missing-project-name",
        {"keel.yaml": "server:\n  port: 8080\n", "agents/a.yaml": "model: openai:gpt-4o\n"},
        ("keel.yaml", 1, "project"),
        "missing required field",
    ),
    # --- files --------------------------------------------------------------------------------
    Case(
        "missing-instructions-file",
        {"agents/a.yaml": "model: fast\ninstructions:\n  file: prompts/a.md\n"},
        ("agents/a.yaml", 3, "instructions.file"),
        "file not found: prompts/a.md",
    ),
    Case(
        "instructions-path-traversal",
        {"agents/a.yaml": "model: fast\ninstructions: {file: ../secrets.txt}\n", "../secrets.txt": "x"},
        ("agents/a.yaml", 2, "instructions.file"),
        "'../secrets.txt' points outside the project folder",
    ),
    Case(
        "instructions-absolute-path",
        {"agents/a.yaml": "model: fast\ninstructions: {file: /etc/hostname}\n"},
        ("agents/a.yaml", 2, "instructions.file"),
        "must be a path relative to the project folder",
    ),
    # --- models -------------------------------------------------------------------------------
    Case(
        "unknown-model",
        {"agents/a.yaml": "model: fats\n"},
        ("agents/a.yaml", 1, "model"),
        "unknown model 'fats' (named models: fast; or use provider:model with provider one of "
        "openai, anthropic, google)",
    ),
    Case(
        "unknown-provider-prefix",
        {"agents/a.yaml": "model: fast\nfallback_models:\n  - azure:gpt-4o\n"},
        ("agents/a.yaml", 3, "fallback_models[0]"),
        "unknown model 'azure:gpt-4o'",
    ),
    Case(
        "duplicate-fallback",
        {"agents/a.yaml": "model: fast\nfallback_models:\n  - openai:gpt-4o\n  - openai:gpt-4o\n"},
        ("agents/a.yaml", 4, "fallback_models[1]"),
        "model 'openai:gpt-4o' is listed twice in the chain (also fallback_models[0])",
    ),
    Case(
        "primary-repeated-as-fallback",
        {"agents/a.yaml": "model: fast\nfallback_models: [openai:gpt-4o-mini]\n"},
        ("agents/a.yaml", 2, "fallback_models[0]"),
        "model 'openai:gpt-4o-mini' is the same model as the primary model, 'fast' (same provider, model, "
        "base_url and api_key_env): a model may appear only once in the chain",
    ),
    Case(
        "primary-listed-again",
        {"agents/a.yaml": "model: fast\nfallback_models:\n  - openai:gpt-4o\n  - fast\n"},
        ("agents/a.yaml", 4, "fallback_models[1]"),
        "model 'fast' is listed twice in the chain (also the primary model)",
    ),
    Case(
        "openai-compatible-without-base-url",
        {
            "keel.yaml": "project: demo\nmodels:\n  local:\n    provider: openai-compatible\n    model: llama3\n",
            "agents/a.yaml": "model: openai:gpt-4o\n",
        },
        ("keel.yaml", 3, "models.local"),
        "provider 'openai-compatible' needs a base_url",
    ),
    Case(
        "api-key-env-invalid",
        {
            "keel.yaml": "project: demo\nmodels:\n  fast:\n    provider: openai\n    model: gpt-4o\n"
            "    api_key_env: sk-live-123\n",
            "agents/a.yaml": "model: openai:gpt-4o\n",
        },
        ("keel.yaml", 6, "models.fast.api_key_env"),
        "must be the name of an environment variable (letters, digits and '_'), not the key itself",
    ),
    Case(
        "unknown-provider-in-keel-yaml",
        {
            "keel.yaml": "project: demo\nmodels:\n  fast:\n    provider: azure\n    model: gpt-4o\n",
            "agents/a.yaml": "model: fast\n",
        },
        ("keel.yaml", 4, "models.fast.provider"),
        "must be one of 'openai', 'anthropic', 'google', 'openai-compatible', got 'azure'",
    ),
    # --- tools --------------------------------------------------------------------------------
    Case(
        "tool-bad-import-path",
        {"agents/a.yaml": "model: fast\ntools:\n  - just_a_function\n"},
        ("agents/a.yaml", 3, "tools[0]"),
        "must be an import path like 'package.module:function', got 'just_a_function'",
    ),
    Case(
        "tool-module-not-importable",
        {"agents/a.yaml": "model: fast\ntools:\n  - no_such_pkg_for_keel.tools:f\n"},
        ("agents/a.yaml", 3, "tools[0].function"),
        "cannot import module 'no_such_pkg_for_keel.tools': no module named 'no_such_pkg_for_keel'",
    ),
    Case(
        "tool-module-raises",
        {
            "agents/a.yaml": "model: fast\ntools:\n  - {mod}:f\n",
            "{mod}.py": "raise RuntimeError('database not configured')\n",
        },
        ("agents/a.yaml", 3, "tools[0].function"),
        "raised RuntimeError: database not configured",
    ),
    Case(
        "tool-module-syntax-error",
        {"agents/a.yaml": "model: fast\ntools:\n  - {mod}:f\n", "{mod}.py": "def f(:\n"},
        ("agents/a.yaml", 3, "tools[0].function"),
        "SyntaxError",
    ),
    Case(
        "tool-attribute-missing",
        {"agents/a.yaml": "model: fast\ntools:\n  - {mod}:nope\n", "{mod}.py": "X = 1\n"},
        ("agents/a.yaml", 3, "tools[0].function"),
        "has no attribute 'nope'",
    ),
    Case(
        "tool-not-callable",
        {"agents/a.yaml": "model: fast\ntools:\n  - {mod}:X\n", "{mod}.py": "X = 1\n"},
        ("agents/a.yaml", 3, "tools[0].function"),
        "is not callable (it is a int)",
    ),
    Case(
        "tool-untyped-parameter",
        {
            "agents/a.yaml": "model: fast\ntools:\n  - function: {mod}:f\n",
            "{mod}.py": "def f(city: str, days):\n    return city\n",
        },
        ("agents/a.yaml", 3, "tools[0].function"),
        "parameter 'days' has no type annotation",
    ),
    Case(
        "tool-star-args",
        {
            "agents/a.yaml": "model: fast\ntools: [{mod}:f]\n",
            "{mod}.py": "def f(*args: int) -> int:\n    return 0\n",
        },
        ("agents/a.yaml", 2, "tools[0].function"),
        "*args is not allowed",
    ),
    Case(
        "tool-star-kwargs",
        {
            "agents/a.yaml": "model: fast\ntools: [{mod}:f]\n",
            "{mod}.py": "def f(**kw: int) -> int:\n    return 0\n",
        },
        ("agents/a.yaml", 2, "tools[0].function"),
        "**kw is not allowed",
    ),
    Case(
        "tool-run-context-not-first",
        {
            "agents/a.yaml": "model: fast\ntools: [{mod}:f]\n",
            "{mod}.py": "from pydantic_ai import RunContext\n\n"
            "def f(q: str, ctx: RunContext[None]) -> str:\n    return q\n",
        },
        ("agents/a.yaml", 2, "tools[0].function"),
        "parameter 'ctx': the RunContext parameter must come first",
    ),
    Case(
        "duplicate-tool-names",
        {
            "agents/a.yaml": "model: fast\ntools:\n  - {mod}:f\n  - function: {mod}:g\n    name: f\n",
            "{mod}.py": "def f(x: int) -> int:\n    return x\n\ndef g(x: int) -> int:\n    return x\n",
        },
        ("agents/a.yaml", 5, "tools[1].name"),
        "tool name 'f' is already used by tools[0]",
    ),
    # --- JSON Schemas -------------------------------------------------------------------------
    Case(
        "invalid-inline-json-schema",
        {
            "agents/a.yaml": "model: fast\noutput_schema:\n  type: object\n  properties:\n"
            "    label:\n      type: strin\n"
        },
        ("agents/a.yaml", 6, "output_schema.properties.label.type"),
        "invalid JSON Schema: 'strin' is not one of",
    ),
    Case(
        "invalid-json-schema-in-file",
        {
            "agents/a.yaml": "model: fast\ninput_schema: {file: schemas/in.json}\n",
            "schemas/in.json": '{\n  "type": "object",\n  "required": "city"\n}\n',
        },
        ("schemas/in.json", 3, "required"),
        "invalid JSON Schema: 'city' is not of type 'array'",
    ),
    Case(
        "invalid-json-file",
        {
            "agents/a.yaml": "model: fast\ninput_schema: {file: schemas/in.json}\n",
            "schemas/in.json": '{\n  "type": "object",\n  "properties": {,}\n}\n',
        },
        ("schemas/in.json", 3, ""),
        "invalid JSON: Expecting property name",
    ),
    Case(
        "duplicate-key-in-json-file",
        {
            "agents/a.yaml": "model: fast\ninput_schema: {file: schemas/in.json}\n",
            "schemas/in.json": '{\n  "type": "object",\n  "type": "array"\n}\n',
        },
        ("schemas/in.json", 3, "type"),
        "duplicate key 'type' (first written on line 2)",
    ),
    Case(
        "schema-file-extra-key",
        {"agents/a.yaml": "model: fast\noutput_schema:\n  file: schemas/out.json\n  strict: true\n"},
        ("agents/a.yaml", 4, "output_schema.strict"),
        "unknown key 'strict' (a schema file reference takes only 'file')",
    ),
    Case(
        "bad-x-unclear-value",
        {
            "agents/a.yaml": "model: fast\noutput_schema:\n  type: object\n  properties:\n"
            "    city: {type: string, x-unclear: 'yes'}\n"
        },
        ("agents/a.yaml", 5, "output_schema.properties.city.x-unclear"),
        "x-unclear must be true or false, got 'yes'",
    ),
    Case(
        "x-unclear-on-whole-schema",
        {"agents/a.yaml": "model: fast\noutput_schema:\n  type: object\n  x-unclear: true\n"},
        ("agents/a.yaml", 4, "output_schema.x-unclear"),
        "x-unclear belongs on a property schema",
    ),
    Case(
        "remote-ref",
        {
            "agents/a.yaml": "model: fast\noutput_schema:\n  type: object\n  properties:\n"
            "    a: {$ref: 'https://example.com/a.json'}\n"
        },
        ("agents/a.yaml", 5, "output_schema.properties.a.$ref"),
        "points outside the schema",
    ),
    # --- interpolation ------------------------------------------------------------------------
    Case(
        "missing-env-var",
        {"agents/a.yaml": "model: fast\nmodel_settings:\n  seed: ${KEEL_TEST_SEED}\n"},
        ("agents/a.yaml", 3, "model_settings.seed"),
        "environment variable 'KEEL_TEST_SEED' is not set",
    ),
    Case(
        "malformed-reference",
        {"agents/a.yaml": "model: fast\ndescription: costs ${1DOLLAR}\n"},
        ("agents/a.yaml", 2, "description"),
        "invalid variable reference '${1DOLLAR}'",
    ),
    # --- YAML ---------------------------------------------------------------------------------
    Case(
        "yaml-syntax-error",
        {"agents/a.yaml": "model: fast\ntools: [a:b\ndescription: x\n"},
        ("agents/a.yaml", 3, ""),
        "YAML syntax error",
    ),
    Case(
        "duplicate-key",
        {"agents/a.yaml": "model: fast\ndescription: one\nmodel: openai:gpt-4o\n"},
        ("agents/a.yaml", 3, "model"),
        "duplicate key 'model' (first written on line 1)",
    ),
    Case(
        "empty-agent-file",
        {"agents/a.yaml": "# nothing yet\n", "agents/b.yaml": VALID_AGENT},
        ("agents/a.yaml", 1, ""),
        "the file is empty",
    ),
    Case(
        "agent-file-not-a-mapping",
        {"agents/a.yaml": "- model: fast\n"},
        ("agents/a.yaml", 1, ""),
        "an agent file must be a mapping of settings",
    ),
    Case(
        "unsupported-tag",
        {"agents/a.yaml": "model: fast\ndescription: !env DESCRIPTION\n"},
        ("agents/a.yaml", 2, "description"),
        "unsupported YAML tag '!env'",
    ),
    # --- names and files ----------------------------------------------------------------------
    Case(
        "name-not-file-stem",
        {"agents/inbox.yaml": "name: triage\nmodel: fast\n"},
        ("agents/inbox.yaml", 1, "name"),
        "name 'triage' must equal the file name 'inbox'",
    ),
    Case(
        "bad-agent-name-from-file",
        {"agents/Inbox.yaml": "model: fast\n"},
        ("agents/Inbox.yaml", 1, "name"),
        "the file name 'Inbox' is not a valid agent name",
    ),
    Case(
        "bad-agent-name-written",
        {"agents/In_box.yaml": "model: fast\nname: In_box\n"},
        ("agents/In_box.yaml", 2, "name"),
        "must start with a lowercase letter",
    ),
    Case(
        "yml-extension",
        {"agents/a.yml": VALID_AGENT, "agents/b.yaml": VALID_AGENT},
        ("agents/a.yml", None, ""),
        "rename a.yml to a.yaml",
    ),
    Case(
        "reserved-file-name",
        {"agents/_shared.yaml": VALID_AGENT, "agents/b.yaml": VALID_AGENT},
        ("agents/_shared.yaml", None, ""),
        "names starting with '_' are reserved",
    ),
    Case(
        "python-path-missing-folder",
        {"keel.yaml": DEFAULT_KEEL_YAML + "python_path:\n  - .\n  - src\n", "agents/a.yaml": VALID_AGENT},
        ("keel.yaml", 8, "python_path[1]"),
        "folder not found: src",
    ),
    # --- defaults layers ----------------------------------------------------------------------
    Case(
        "error-from-defaults-file",
        {"agents/_defaults.yaml": "timeouts:\n  run: -5\n", "agents/a.yaml": VALID_AGENT},
        ("agents/_defaults.yaml", 2, "timeouts.run"),
        "must be greater than 0, got -5",
    ),
    Case(
        "error-from-keel-yaml-defaults",
        {
            "keel.yaml": DEFAULT_KEEL_YAML + "defaults:\n  limits:\n    max_model_requests: 0\n",
            "agents/a.yaml": VALID_AGENT,
        },
        ("keel.yaml", 8, "defaults.limits.max_model_requests"),
        "must be at least 1, got 0",
    ),
    Case(
        "name-in-defaults",
        {"agents/_defaults.yaml": "name: shared\n", "agents/a.yaml": VALID_AGENT},
        ("agents/_defaults.yaml", 1, "name"),
        "'name' cannot be set in defaults",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_invalid_configuration_is_located(project: ProjectDir, case: Case) -> None:
    files = dict(case.files)
    files.setdefault("keel.yaml", DEFAULT_KEEL_YAML)
    for rel, text in files.items():
        target = rel.replace("{mod}", project.mod)
        if target.startswith("../"):
            project.root.mkdir(parents=True, exist_ok=True)
            (project.root.parent / target[3:]).write_text(text)
        else:
            project.write(target, text)

    issues = project.issues(case.env)

    located = [(i.file, i.line, i.field) for i in issues]
    assert case.at in located, issues
    match = issues[located.index(case.at)]
    assert case.message in match.message, match
    assert len(issues) == case.count, issues


def test_the_cases_are_distinct() -> None:
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)
    assert len({(tuple(sorted(c.files.items())), c.message) for c in CASES}) == len(CASES)
