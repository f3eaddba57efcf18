"""Prompt files: `prompts/<name>.md`, YAML front matter and a template body.

    ---
    version: 1.2.0            # optional: `keel deploy` numbers new versions itself
    owner: support-team
    description: Triage of incoming customer email
    message: Ask for the order number first   # the change message of this version
    variables:
      customer_tier: {description: gold, silver or bronze, default: bronze}
      team: {}
    model_settings: {temperature: 0.2}
    ---
    You triage email for the {{ team }} team. This customer is {{ customer_tier }}.

A file without front matter is a prompt without variables or settings. The name is the file name
(`prompts/inbox.md` is `inbox`). Problems are `ConfigIssue`s naming the file, the line and the field.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from keel.config.validation import pydantic_issues
from keel.config.yaml_source import YMap, flatten, parse_yaml
from keel.errors import ConfigIssue
from keel.prompts.errors import PromptError
from keel.prompts.template import Template

PROMPTS_DIR = "prompts"
PROMPT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
SEMVER = re.compile(r"^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$")
_FENCE = re.compile(r"^---[ \t]*\r?$", re.MULTILINE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VariableSpec(_Strict):
    description: str | None = None
    default: Any = None


class PromptSettings(_Strict):
    """Model settings a prompt version carries (they override the agent's for runs that use it)."""

    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    max_tokens: Annotated[int | None, Field(ge=1)] = None
    top_p: Annotated[float | None, Field(ge=0, le=1)] = None


class FrontMatter(_Strict):
    version: Annotated[str | None, Field(pattern=SEMVER.pattern)] = None
    owner: str | None = None
    description: str | None = None
    message: str | None = None
    variables: list[str] | dict[str, VariableSpec | None] = []
    model_settings: PromptSettings = PromptSettings()


@dataclass(frozen=True)
class PromptContent:
    """What makes a version: its template, variables (with defaults) and model settings."""

    template: str
    variables: tuple[str, ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)
    model_settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Template(self.template, self.variables, self.defaults)  # raises VariableError

    @property
    def content_hash(self) -> str:
        payload = {
            "template": self.template,
            "variables": list(self.variables),
            "defaults": self.defaults,
            "model_settings": self.model_settings,
        }
        canonical = json.dumps(
            payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def template_object(self) -> Template:
        return Template(self.template, self.variables, self.defaults)

    def variables_document(self) -> list[dict[str, Any]]:
        """The declared variables as stored: name, description and default (when it has one)."""
        out: list[dict[str, Any]] = []
        for name in self.variables:
            item: dict[str, Any] = {"name": name}
            if name in self.descriptions:
                item["description"] = self.descriptions[name]
            if name in self.defaults:
                item["default"] = self.defaults[name]
            out.append(item)
        return out

    @classmethod
    def from_document(
        cls, template: str, variables: list[dict[str, Any]], model_settings: dict[str, Any]
    ) -> PromptContent:
        return cls(
            template=template,
            variables=tuple(str(v["name"]) for v in variables),
            defaults={str(v["name"]): v["default"] for v in variables if "default" in v},
            descriptions={str(v["name"]): str(v["description"]) for v in variables if "description" in v},
            model_settings=dict(model_settings),
        )


@dataclass(frozen=True)
class PromptSource:
    """One prompt file, read and checked."""

    name: str
    path: str  # relative to the project folder
    content: PromptContent
    version: str | None = None
    owner: str | None = None
    description: str | None = None
    message: str | None = None


def read_prompt(root: Path, rel: str) -> PromptSource | list[ConfigIssue]:
    """The prompt file at `rel` (relative to `root`), or every problem found in it."""
    path = root / rel
    name = path.stem
    if not PROMPT_NAME.match(name):
        message = (
            f"the file name '{name}' is not a valid prompt name: a lowercase letter, then up to 62 "
            "lowercase letters, digits, '_' or '-' (rename the file)"
        )
        return [ConfigIssue(rel, None, "", message)]
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        return [ConfigIssue(rel, None, "", "the file is not UTF-8 text")]
    except OSError as exc:
        return [ConfigIssue(rel, None, "", f"cannot read the file: {exc.strerror or exc}")]
    return parse_prompt(text, rel, name)


def parse_prompt(text: str, rel: str, name: str) -> PromptSource | list[ConfigIssue]:
    """A prompt from the text of its file; `rel` names the file in issues."""
    front: dict[str, Any] = {}
    body = text
    body_line = variables_line = 1
    if _FENCE.match(text):
        ends = [m for m in _FENCE.finditer(text) if m.start() > 0]
        if not ends:
            return [
                ConfigIssue(rel, 1, "", "the front matter opened by '---' is never closed by a '---' line")
            ]
        end = ends[0]
        header = text[text.index("\n") + 1 : end.start()]
        body = text[end.end() :].lstrip("\r\n") if end.end() < len(text) else ""
        body_line = text[: end.end()].count("\n") + 2
        if header.strip():
            tree, problems = parse_yaml(header, rel)
            if problems:
                return [_shift(issue, 1) for issue in problems]
            if not isinstance(tree, YMap):
                return [
                    ConfigIssue(rel, 2, "", "the front matter must be a mapping of settings (key: value)")
                ]
            doc = flatten(tree)
            try:
                FrontMatter.model_validate(doc.data)
            except ValidationError as exc:
                return [_shift(p.issue, 1) for p in pydantic_issues(exc, doc, FrontMatter)]
            front = doc.data
            where = doc.pos(("variables",)).line
            variables_line = where + 1 if where is not None else 1
    matter = FrontMatter.model_validate(front)
    variables, defaults, descriptions = variables_of(matter)
    settings = matter.model_settings.model_dump(exclude_none=True)
    if not body.strip():
        return [ConfigIssue(rel, body_line, "", "the prompt is empty: write its text after the front matter")]
    try:
        content = PromptContent(body, variables, defaults, descriptions, settings)
    except PromptError as exc:
        line = body_line if "does not declare" in exc.message else variables_line
        return [ConfigIssue(rel, line, "variables", exc.message)]
    return PromptSource(
        name=name,
        path=rel,
        content=content,
        version=matter.version,
        owner=matter.owner,
        description=matter.description,
        message=matter.message,
    )


def prompt_files(root: Path) -> list[str]:
    """The prompt files of the project at `root` (relative paths, sorted)."""
    folder = root / PROMPTS_DIR
    if not folder.is_dir():
        return []
    return sorted(f"{PROMPTS_DIR}/{p.name}" for p in folder.iterdir() if p.is_file() and p.suffix == ".md")


def variables_of(matter: FrontMatter) -> tuple[tuple[str, ...], dict[str, Any], dict[str, str]]:
    if isinstance(matter.variables, list):
        return tuple(matter.variables), {}, {}
    defaults: dict[str, Any] = {}
    descriptions: dict[str, str] = {}
    for name, spec in matter.variables.items():
        if spec is None:
            continue
        if "default" in spec.model_fields_set:
            defaults[name] = spec.default
        if spec.description is not None:
            descriptions[name] = spec.description
    return tuple(matter.variables), defaults, descriptions


def _shift(issue: ConfigIssue, lines: int) -> ConfigIssue:
    line = None if issue.line is None else issue.line + lines
    return ConfigIssue(issue.file, line, issue.field, issue.message)


def parse_version(version: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a semantic version `X.Y.Z`; PromptError otherwise."""
    match = SEMVER.match(version)
    if match is None:
        raise PromptError(
            f"version {version!r} is not a semantic version X.Y.Z (for example 1.4.0)", code="invalid_version"
        )
    return int(match.group(1)), int(match.group(2)), int(match.group(3))
