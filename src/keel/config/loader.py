"""Load a Keel project folder: `keel.yaml`, `agents/_defaults.yaml` and `agents/*.yaml`.

Every file is read and checked even after a problem is found, and all problems are raised
together in one `ConfigError`, each with its file (relative to the project folder), line and field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from keel.config.agents import ProjectContext, build_agent
from keel.config.guardrails import guardrail_issues
from keel.config.interpolate import interpolate
from keel.config.merge import merge_layers
from keel.config.project import AgentSpec, Project
from keel.config.schema import ModelConfig, ProjectConfig
from keel.config.tools import Importer, python_path
from keel.config.validation import pydantic_issues, storage_issues
from keel.config.yaml_source import Flat, YEntry, YMap, YNode, flatten, issue_at, parse_yaml, with_prefix
from keel.errors import ConfigError, ConfigIssue

KEEL_YAML = "keel.yaml"
AGENTS_DIR = "agents"
DEFAULTS_FILE = "_defaults.yaml"


def load_project(path: str | Path, *, environ: Mapping[str, str] | None = None) -> Project:
    """Read, validate and resolve the project at `path` (its folder, or its keel.yaml).

    `environ` is used for `${VAR}` interpolation (default: `os.environ`). Raises `ConfigError` with
    every problem found in the project.
    """
    root = find_root(path).resolve()
    env = os.environ if environ is None else environ
    loading = _Loading(root, env)
    project = loading.run()
    if loading.issues or project is None:
        raise ConfigError(_ordered(loading.issues))
    return project


def load_settings(
    path: str | Path, *, environ: Mapping[str, str] | None = None
) -> tuple[Path, ProjectConfig]:
    """The project folder and its `keel.yaml` settings alone (agents are not read): for commands
    that must work while an agent file is broken, such as `keel rollback`. ConfigError for
    problems in keel.yaml itself."""
    root = find_root(path).resolve()
    loading = _Loading(root, os.environ if environ is None else environ)
    config, _, _ = loading._project_file()
    if loading.issues or config is None:
        raise ConfigError(_ordered(loading.issues))
    return root, config


def check_project(path: str | Path, *, environ: Mapping[str, str] | None = None) -> list[ConfigIssue]:
    """Every problem of the project at `path`; an empty list when it loads."""
    try:
        load_project(path, environ=environ)
    except ConfigError as exc:
        return exc.issues
    return []


def find_root(path: str | Path) -> Path:
    """The project folder for `path` (the folder itself or its keel.yaml), or a ConfigError."""
    given = Path(path)
    if given.is_file():
        if given.name != KEEL_YAML:
            message = f"{given} is not a Keel project: give the project folder or its {KEEL_YAML}"
            raise ConfigError([ConfigIssue(str(given), None, "", message)])
        return given.parent
    if not given.is_dir():
        raise ConfigError([ConfigIssue(str(given), None, "", f"no such project folder: {given}")])
    if not (given / KEEL_YAML).is_file():
        message = f"no {KEEL_YAML} in {given} (a Keel project is a folder with {KEEL_YAML} and {AGENTS_DIR}/)"
        raise ConfigError([ConfigIssue(KEEL_YAML, None, "", message)])
    return given


@dataclass
class _Loading:
    root: Path
    environ: Mapping[str, str]
    issues: list[ConfigIssue] = field(default_factory=list)
    project_doc: Flat | None = None
    python_path_setting: list[str] | None = None

    def run(self) -> Project | None:
        config, defaults, ctx = self._project_file()
        agent_files, defaults_file = self._agent_files()
        ctx.agent_names = frozenset(path.stem for path in agent_files)
        if config is not None:
            ctx.storage_enabled = config.storage.enabled
            self._tenant_issues(config, ctx.agent_names)
        local_defaults = self._read_defaults(defaults_file) if defaults_file is not None else None
        agents: dict[str, AgentSpec] = {}
        folders = self._python_path()
        if folders is not None:
            ctx.importer = Importer([self.rel_or_abs(folder) for folder in folders])
        with python_path(folders or []):
            for source in agent_files:
                tree = self._read_mapping(source, "an agent file")
                if tree is None:
                    continue
                merged = merge_layers(defaults, local_defaults, tree)
                assert isinstance(merged, YMap)
                spec, problems = build_agent(source, merged, ctx)
                self.issues += problems
                if spec is not None:
                    agents[spec.name] = spec
        if config is None:
            return None
        return Project(root=self.root, config=config, agents=dict(sorted(agents.items())))

    def _tenant_issues(self, config: ProjectConfig, agents: frozenset[str]) -> None:
        """keel.yaml `tenants.<id>.guardrails`: what needs the project (judges, schema files, storage)."""
        if self.project_doc is None:
            return
        for tenant, settings in config.tenants.items():
            self.issues += guardrail_issues(
                settings.guardrails,
                self.project_doc,
                ("tenants", tenant, "guardrails"),
                self.root,
                agents=agents,
                storage=config.storage.enabled,
            )

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _read_mapping(self, path: Path, what: str) -> YMap | None:
        """The file parsed and interpolated; None (with issues recorded) if it is not a mapping."""
        rel = self.rel(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            self.issues.append(ConfigIssue(rel, None, "", "the file is not UTF-8 text"))
            return None
        except OSError as exc:
            self.issues.append(ConfigIssue(rel, None, "", f"cannot read the file: {exc.strerror or exc}"))
            return None
        tree, problems = parse_yaml(text, rel)
        self.issues += problems
        if tree is None:
            return None
        if not isinstance(tree, YMap):
            self.issues.append(issue_at(tree.pos, (), f"{what} must be a mapping of settings (key: value)"))
            return None
        self.issues += interpolate(tree, self.environ)
        return tree

    def _project_file(self) -> tuple[ProjectConfig | None, YNode | None, ProjectContext]:
        ctx = ProjectContext(root=self.root)
        tree = self._read_mapping(self.root / KEEL_YAML, KEEL_YAML)
        if tree is None:
            ctx.project_unreadable = True
            return None, None, ctx
        defaults = self._defaults_section(tree)
        doc = self.project_doc = flatten(tree)
        try:
            config = ProjectConfig.model_validate(doc.data)
        except ValidationError as exc:
            problems = pydantic_issues(exc, doc, ProjectConfig)
            self.issues += [p.issue for p in problems]
            ctx.named_models, ctx.broken_models = _named_models(doc.data.get("models"))
            if not any(p.loc[:1] == ("python_path",) for p in problems):
                self.python_path_setting = _python_path_setting(doc.data)
            return None, defaults, ctx
        self.issues += storage_issues(config, doc)  # settings that need storage while it is off
        ctx.named_models = dict(config.models)
        ctx.deploy_label = config.prompts.deploy_label
        self.python_path_setting = list(config.python_path)
        return config, defaults, ctx

    def _defaults_section(self, tree: YMap) -> YNode | None:
        entry = tree.entries.get("defaults")
        if entry is None or not isinstance(entry.value, YMap):
            return None  # a wrong type is reported by ProjectConfig validation
        return self._without_name(with_prefix(entry.value, ("defaults",)))

    def _without_name(self, node: YMap) -> YMap:
        """Defaults apply to every agent, so they cannot set the name (it is the file name)."""
        entry = node.entries.get("name")
        if entry is None:
            return node
        message = "'name' cannot be set in defaults: each agent's name is its file name"
        self.issues.append(issue_at(entry.key_pos, ("name",), message))
        entries: dict[str, YEntry] = {k: v for k, v in node.entries.items() if k != "name"}
        return YMap(entries, node.pos)

    def _python_path(self) -> list[Path] | None:
        """The python_path folders, or None when they are unknown (keel.yaml invalid there)."""
        if self.python_path_setting is None or self.project_doc is None:
            return None
        folders: list[Path] = []
        for index, folder in enumerate(self.python_path_setting):
            path = (self.root / folder).resolve()
            if path.is_dir():
                folders.append(path)
            else:
                self.issues.append(
                    self.project_doc.issue(("python_path", index), f"folder not found: {folder}")
                )
        return folders

    def rel_or_abs(self, folder: Path) -> str:
        try:
            return folder.relative_to(self.root).as_posix() or "."
        except ValueError:
            return str(folder)

    def _agent_files(self) -> tuple[list[Path], Path | None]:
        folder = self.root / AGENTS_DIR
        if not folder.is_dir():
            self.issues.append(ConfigIssue(f"{AGENTS_DIR}/", None, "", _NO_AGENTS))
            return [], None
        agents: list[Path] = []
        defaults: Path | None = None
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            suffix = path.suffix.lower()
            if suffix not in {".yaml", ".yml"}:
                continue  # READMEs, notes, editor files
            rel = self.rel(path)
            if path.name == DEFAULTS_FILE:
                defaults = path
            elif path.suffix != ".yaml":
                message = f"agent files end in '.yaml': rename {path.name} to {path.stem}.yaml"
                self.issues.append(ConfigIssue(rel, None, "", message))
            elif path.name.startswith("_"):
                message = f"names starting with '_' are reserved; only {DEFAULTS_FILE} is read here"
                self.issues.append(ConfigIssue(rel, None, "", message))
            else:
                agents.append(path)
        if not agents:
            self.issues.append(ConfigIssue(f"{AGENTS_DIR}/", None, "", _NO_AGENTS))
        return agents, defaults

    def _read_defaults(self, path: Path) -> YNode | None:
        tree = self._read_mapping(path, DEFAULTS_FILE)
        return None if tree is None else self._without_name(tree)


_NO_AGENTS = f"no agents: add one file per agent, {AGENTS_DIR}/<name>.yaml"


def _named_models(raw: Any) -> tuple[dict[str, ModelConfig], frozenset[str]]:
    """The valid named models of an invalid keel.yaml, and the names of the invalid ones."""
    if not isinstance(raw, dict):
        return {}, frozenset()
    named: dict[str, ModelConfig] = {}
    for name, value in raw.items():
        try:
            named[name] = ModelConfig.model_validate(value)
        except ValidationError:
            continue
    return named, frozenset(set(raw) - set(named))


def _python_path_setting(data: dict[str, Any]) -> list[str]:
    value = data.get("python_path", ["."])
    return [str(v) for v in value] if isinstance(value, list) else ["."]


def _ordered(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    """Without duplicates (a default's problem shows once, not once per agent), grouped by file."""
    unique = list(dict.fromkeys(issues))
    rank: dict[str, int] = {KEEL_YAML: 0, f"{AGENTS_DIR}/{DEFAULTS_FILE}": 1}
    for issue in unique:
        rank.setdefault(issue.file, len(rank))
    return sorted(unique, key=lambda i: (rank[i.file], i.line or 0))
