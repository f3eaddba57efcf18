"""One agent: its merged configuration validated and resolved into an `AgentSpec`.

Every check runs even when another field is invalid, so one `keel check` shows all the problems
of an agent: a field with a pydantic error is skipped by the later resolution steps, nothing else.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from keel.config.files import ReadProblem, project_file, read_text
from keel.config.guardrails import guardrail_issues
from keel.config.json_schemas import resolve_schema
from keel.config.model_refs import resolve_chain
from keel.config.project import AgentSpec, PromptBinding, ResolvedModel, ResolvedTool
from keel.config.schema import AgentConfig, FileRef, ModelConfig, PromptRef, ToolConfig
from keel.config.tools import Importer, resolve_tools
from keel.config.validation import pydantic_issues
from keel.config.yaml_source import Flat, Loc, YMap, flatten
from keel.errors import ConfigIssue

AGENT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


@dataclass
class ProjectContext:
    """What an agent is resolved against. `importer` is None when python_path itself is invalid."""

    root: Path
    named_models: Mapping[str, ModelConfig] = field(default_factory=dict)
    broken_models: frozenset[str] = frozenset()
    """Models named in keel.yaml that are invalid there (reported once, in keel.yaml)."""
    importer: Importer | None = None
    deploy_label: str = "production"
    """The label agents follow when their `instructions: {prompt: ...}` names none."""
    agent_names: frozenset[str] | None = None
    """The project's agents (file names), for settings that name one (a grounding judge)."""
    storage_enabled: bool | None = None
    """Whether keel.yaml turns storage on (None: unknown, keel.yaml is invalid)."""
    project_unreadable: bool = False
    """keel.yaml could not be read: its models and defaults are unknown, so checks that depend on
    them (named models, required fields a default may provide) are skipped instead of misleading."""

    def skip_model(self, ref: str) -> bool:
        return ref in self.broken_models or (self.project_unreadable and ref not in self.named_models)


def build_agent(
    source: Path, merged: YMap, ctx: ProjectContext
) -> tuple[AgentSpec | None, list[ConfigIssue]]:
    """The agent from `source` (its merged layers in `merged`), or None and the problems found."""
    doc = flatten(merged)
    issues, ignore = _name_issues(doc, source.stem)
    error_locs: list[Loc] = list(doc.failed)
    config: AgentConfig | None = None
    try:
        config = AgentConfig.model_validate(doc.data)
    except ValidationError as exc:
        for located in pydantic_issues(
            exc, doc, AgentConfig, ignore=ignore, ignore_missing=ctx.project_unreadable
        ):
            issues.append(located.issue)
            error_locs.append(located.loc)

    def clean(*loc: str | int) -> bool:
        return not any(bad[: len(loc)] == loc for bad in error_locs)

    data: dict[str, Any] = doc.data
    binding: PromptBinding | None = None
    instructions: str | ConfigIssue | None = None
    if clean("instructions"):
        raw = data.get("instructions", "")
        if isinstance(raw, dict) and "prompt" in raw:
            found = _prompt_binding(raw, doc, ctx)
            if isinstance(found, ConfigIssue):
                instructions = found
            else:
                binding, instructions = found, found.source.content.template
        else:
            instructions = _instructions(raw, doc, ctx.root)
    if isinstance(instructions, ConfigIssue):
        issues.append(instructions)
    schemas: dict[str, dict[str, Any] | None] = {}
    for key in ("input_schema", "output_schema"):
        if clean(key):
            schemas[key], problems = resolve_schema(data.get(key), doc, (key,), ctx.root)
            issues += problems
    primary = data.get("model") if clean("model") else None
    fallbacks = data.get("fallback_models") if clean("fallback_models") else None
    names = [*ctx.named_models, *ctx.broken_models]
    model, fallback_models, problems = resolve_chain(
        primary, fallbacks, ctx.named_models, ctx.skip_model, doc, names=names
    )
    issues += problems
    if isinstance(data.get("guardrails"), list):  # each guardrail whose own settings are valid
        valid = [g if clean("guardrails", i) else None for i, g in enumerate(data["guardrails"])]
        issues += guardrail_issues(
            valid,
            doc,
            ("guardrails",),
            ctx.root,
            agents=ctx.agent_names,
            storage=ctx.storage_enabled,
        )
    tools: tuple[ResolvedTool, ...] = ()
    if ctx.importer is not None:
        candidates = [(i, tool) for i, tool in _tool_configs(data.get("tools")) if clean("tools", i)]
        tools, problems = resolve_tools(candidates, ctx.importer, doc)
        issues += problems

    if issues or config is None or model is None or not isinstance(instructions, str):
        return None, issues
    spec = AgentSpec(
        config=config,
        source=source,
        instructions=instructions,
        model=model,
        fallback_models=fallback_models,
        tools=tools,
        input_schema=schemas.get("input_schema"),
        output_schema=schemas.get("output_schema"),
        config_hash=config_hash(config, instructions, schemas, tools, (model, *fallback_models)),
        prompt=binding,
    )
    return spec, []


def _name_issues(doc: Flat, stem: str) -> tuple[list[ConfigIssue], set[Loc]]:
    """The agent's name defaults to the file name; if written, it must equal it."""
    data: dict[str, Any] = doc.data
    if "name" not in data:
        data["name"] = stem
        if AGENT_NAME.match(stem):
            return [], set()
        message = (
            f"the file name '{stem}' is not a valid agent name: it must start with a lowercase letter, "
            "followed by up to 62 lowercase letters, digits, '_' or '-' (rename the file)"
        )
        return [doc.issue(("name",), message)], {("name",)}
    written = data["name"]
    if isinstance(written, str) and written != stem:
        message = f"name {doc.show(('name',), written)} must equal the file name '{stem}' (or be left out)"
        return [doc.issue(("name",), message)], {("name",)}
    return [], set()


def _instructions(value: Any, doc: Flat, root: Path) -> str | ConfigIssue:
    if isinstance(value, str):
        return value
    ref = FileRef.model_validate(value)
    loc: Loc = ("instructions", "file")
    found = project_file(root, ref.file)
    if isinstance(found, str):
        return doc.issue(loc, found)
    text = read_text(found)
    if isinstance(text, ReadProblem):
        return doc.issue(loc, text.message)
    return text


def _prompt_binding(value: dict[str, Any], doc: Flat, ctx: ProjectContext) -> PromptBinding | ConfigIssue:
    """`instructions: {prompt: NAME}`: the prompt's file must exist and accept the given variables."""
    from keel.prompts.errors import PromptError
    from keel.prompts.source import PROMPTS_DIR, read_prompt

    ref = PromptRef.model_validate(value)
    rel = f"{PROMPTS_DIR}/{ref.prompt}.md"
    if not (ctx.root / rel).is_file():
        return doc.issue(("instructions", "prompt"), f"no prompt file {rel} for prompt '{ref.prompt}'")
    source = read_prompt(ctx.root, rel)
    if isinstance(source, list):
        problems = "; ".join(str(issue) for issue in source)
        return doc.issue(("instructions", "prompt"), f"prompt '{ref.prompt}' has problems: {problems}")
    declared = source.content.variables
    unknown = [name for name in ref.variables if name not in declared]
    if unknown:
        message = (
            f"variables {', '.join(repr(n) for n in unknown)} are not declared by prompt '{ref.prompt}' "
            f"({rel} declares {', '.join(repr(n) for n in declared) or 'none'})"
        )
        return doc.issue(("instructions", "variables"), message)
    try:
        source.content.template_object()
    except PromptError as exc:  # pragma: no cover - read_prompt checked it
        return doc.issue(("instructions", "prompt"), exc.message)
    return PromptBinding(ref.prompt, ref.label or ctx.deploy_label, dict(ref.variables), source)


def _tool_configs(raw: Any) -> list[tuple[int, ToolConfig]]:
    out: list[tuple[int, ToolConfig]] = []
    for index, item in enumerate(raw if isinstance(raw, list) else []):
        try:
            out.append(
                (index, ToolConfig.model_validate({"function": item} if isinstance(item, str) else item))
            )
        except ValidationError:
            continue  # already reported by the agent's validation
    return out


def config_hash(
    config: AgentConfig,
    instructions: str,
    schemas: Mapping[str, dict[str, Any] | None],
    tools: tuple[ResolvedTool, ...],
    models: tuple[ResolvedModel, ...],
) -> str:
    """sha256 of everything that defines the agent's behaviour, canonical (independent of key order)."""
    payload = {
        "config": config.model_dump(mode="json"),
        "instructions": instructions,
        "input_schema": schemas.get("input_schema"),
        "output_schema": schemas.get("output_schema"),
        "tools": [
            {"function": t.config.function, "name": t.name, "description": t.description} for t in tools
        ],
        "models": [[m.provider, m.model, m.base_url, m.api_key_env] for m in models],
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
