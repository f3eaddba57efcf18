"""JSON Schemas: the agents' input/output schemas, and the schemas of Keel's own YAML files.

An agent's `input_schema` / `output_schema` is an inline mapping or `{file: schemas/x.json}` (a JSON
or YAML file in the project). Each must be a valid JSON Schema (draft 2020-12); errors point at the
offending keyword inside the schema. Keel adds one keyword, `x-unclear: true` on a property schema
(the runtime lets the model answer "unclear" for it), which must be a boolean. `$ref` must point
inside the schema: nothing is fetched at run time.

`export_json_schemas()` produces the JSON Schemas of `keel.yaml` and of agent files, for editors.
"""

from __future__ import annotations

import copy
import json
import urllib.parse
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from keel.config.files import ProjectFile, ReadProblem, project_file, read_text
from keel.config.schema import AgentConfig, ProjectConfig
from keel.config.yaml_source import Flat, Loc, Pos, flatten, parse_yaml, render, to_plain
from keel.errors import ConfigIssue

UNCLEAR_KEYWORD = "x-unclear"
_META = Draft202012Validator(Draft202012Validator.META_SCHEMA)


def resolve_schema(
    value: Any, doc: Flat, loc: Loc, root: Path
) -> tuple[dict[str, Any] | None, list[ConfigIssue]]:
    """The schema written at `loc` of `doc` (inline or a file reference), checked."""
    if value is None:
        return None, []
    if isinstance(value, dict) and "file" in value:
        extra = [key for key in value if key != "file"]
        if extra:
            message = f"unknown key '{extra[0]}' (a schema file reference takes only 'file')"
            return None, [doc.issue((*loc, extra[0]), message)]
        ref = value["file"]
        if not isinstance(ref, str) or not ref:
            return None, [
                doc.issue((*loc, "file"), f"expected a file path, got {doc.show((*loc, 'file'), ref)}")
            ]
        return _schema_file(root, ref, doc, (*loc, "file"))
    issues = check_json_schema(value, doc, loc)
    return (None if issues else value), issues


def _schema_file(
    root: Path, ref: str, doc: Flat, ref_loc: Loc
) -> tuple[dict[str, Any] | None, list[ConfigIssue]]:
    found = project_file(root, ref)
    if isinstance(found, str):
        return None, [doc.issue(ref_loc, found)]
    if found.path.suffix not in {".json", ".yaml", ".yml"}:
        return None, [
            doc.issue(ref_loc, f"schema files must end in .json, .yaml or .yml, not '{found.path.name}'")
        ]
    schema_doc, issues = load_schema_file(found)
    if schema_doc is None:
        return None, issues
    issues = check_json_schema(schema_doc.data, schema_doc, ())
    return (None if issues else schema_doc.data), issues


def load_schema_file(file: ProjectFile) -> tuple[Flat | None, list[ConfigIssue]]:
    """A JSON or YAML file's data, with line positions (no interpolation: it is not configuration)."""
    text = read_text(file)
    if isinstance(text, ReadProblem):
        return None, [ConfigIssue(file.rel, None, "", text.message)]
    if file.path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return None, [ConfigIssue(file.rel, exc.lineno, "", f"invalid JSON: {exc.msg}")]
        # JSON is (nearly always) YAML too, which gives positions; fall back to none if it is not.
        tree, problems = parse_yaml(text, file.rel)
        duplicates = [p for p in problems if p.message.startswith("duplicate key")]
        if duplicates:  # valid JSON, but one of the values would be silently lost
            return None, duplicates
        if tree is not None and not problems and to_plain(tree) == data:
            return flatten(tree), []
        return Flat(data, {(): Pos(file.rel, 1)}), []
    tree, problems = parse_yaml(text, file.rel)
    if tree is None or problems:
        return None, problems
    return flatten(tree), []


def check_json_schema(schema: Any, doc: Flat, loc: Loc) -> list[ConfigIssue]:
    """Problems of `schema` (found at `loc` in `doc`) as a JSON Schema for Keel."""
    if not isinstance(schema, dict):
        return [doc.issue(loc, f"a JSON Schema must be a mapping, got {render(schema)}")]
    issues = _non_json(schema, doc, loc)
    if issues:
        return issues
    seen: set[tuple[Loc, str]] = set()
    for error in sorted(_META.iter_errors(schema), key=lambda e: [str(p) for p in e.absolute_path]):
        best = best_match(error.context) if error.context else error
        path = (*loc, *best.absolute_path)
        message = _schema_message(best, doc, path)
        if (path, message) not in seen:
            seen.add((path, message))
            issues.append(doc.issue(path, message))
    issues += _check_unclear(schema, doc, loc, is_root=True)
    issues += _check_refs(schema, doc, loc)
    return issues


def _schema_message(error: ValidationError, doc: Flat, path: Loc) -> str:
    if doc.secret_vars(path):
        return f"invalid JSON Schema: {doc.show(path, '')} is not valid here"
    return f"invalid JSON Schema: {error.message}"


def _non_json(value: Any, doc: Flat, loc: Loc) -> list[ConfigIssue]:
    if isinstance(value, dict):
        return [issue for key, item in value.items() for issue in _non_json(item, doc, (*loc, key))]
    if isinstance(value, list):
        return [issue for i, item in enumerate(value) for issue in _non_json(item, doc, (*loc, i))]
    if value is None or isinstance(value, str | int | float | bool):
        return []
    return [doc.issue(loc, f"a JSON Schema holds only JSON values, not {type(value).__name__}")]


def _check_unclear(node: Any, doc: Flat, loc: Loc, *, is_root: bool = False) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    if isinstance(node, dict):
        if UNCLEAR_KEYWORD in node:
            value, here = node[UNCLEAR_KEYWORD], (*loc, UNCLEAR_KEYWORD)
            if not isinstance(value, bool):
                issues.append(
                    doc.issue(here, f"x-unclear must be true or false, got {doc.show(here, value)}")
                )
            elif value and is_root:
                message = "x-unclear belongs on a property schema, not on the whole schema"
                issues.append(doc.issue(here, message))
        for key, item in node.items():
            issues += _check_unclear(item, doc, (*loc, key))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            issues += _check_unclear(item, doc, (*loc, i))
    return issues


def _check_refs(schema: dict[str, Any], doc: Flat, loc: Loc) -> list[ConfigIssue]:
    anchors = set(_collect(schema, "$anchor")) | set(_collect(schema, "$dynamicAnchor"))
    issues: list[ConfigIssue] = []
    for path, ref in _refs(schema, ()):
        here = (*loc, *path, "$ref")
        if not ref.startswith("#"):
            message = f"$ref '{ref}' points outside the schema; only '#...' references are supported"
            issues.append(doc.issue(here, message))
        elif ref.startswith("#/") or ref == "#":
            if not _pointer_exists(schema, ref[1:]):
                issues.append(doc.issue(here, f"$ref '{ref}' points to nothing in this schema"))
        elif urllib.parse.unquote(ref[1:]) not in anchors:
            issues.append(doc.issue(here, f"$ref '{ref}' names no $anchor in this schema"))
    return issues


def _refs(node: Any, path: Loc) -> list[tuple[Loc, str]]:
    found: list[tuple[Loc, str]] = []
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            found.append((path, node["$ref"]))
        for key, item in node.items():
            found += _refs(item, (*path, key))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            found += _refs(item, (*path, i))
    return found


def _collect(node: Any, keyword: str) -> list[str]:
    if isinstance(node, dict):
        own = [node[keyword]] if isinstance(node.get(keyword), str) else []
        return own + [v for item in node.values() for v in _collect(item, keyword)]
    if isinstance(node, list):
        return [v for item in node for v in _collect(item, keyword)]
    return []


def _pointer_exists(schema: Any, pointer: str) -> bool:
    node = schema
    for raw in pointer.split("/")[1:]:
        part = urllib.parse.unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


# --- `keel schema`: JSON Schemas of Keel's own files, for editor completion --------------------

_DRAFT = "https://json-schema.org/draft/2020-12/schema"


def export_json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas for editors: {"keel": <schema of keel.yaml>, "agent": <schema of agents/*.yaml>}.

    `keel schema --out DIR` writes them as DIR/keel.schema.json and DIR/agent.schema.json.

    The agent schema makes every field optional, since `_defaults.yaml` and keel.yaml `defaults:`
    may provide any of them; types, ranges and descriptions are kept.
    """
    agent = _agent_schema()
    project = ProjectConfig.model_json_schema()
    agent_defs = agent.pop("$defs", {})
    defaults = {key: value for key, value in agent.items() if key not in {"$schema", "title"}}
    defaults["properties"] = {k: v for k, v in defaults["properties"].items() if k != "name"}
    defaults["description"] = (
        "Agent fields applied to every agent, below agents/_defaults.yaml and the agent's own file."
    )
    project_defs = project.setdefault("$defs", {})
    project_defs.update(copy.deepcopy(agent_defs))
    project_defs["AgentDefaults"] = defaults
    project["properties"]["defaults"] = {"$ref": "#/$defs/AgentDefaults", "default": {}}
    project = {"$schema": _DRAFT, **project, "title": "Keel project (keel.yaml)"}
    agent = {"$schema": _DRAFT, **agent, "title": "Keel agent (agents/<name>.yaml)", "$defs": agent_defs}
    return {"keel": project, "agent": agent}


def _agent_schema() -> dict[str, Any]:
    schema = AgentConfig.model_json_schema()
    schema.pop("required", None)
    tools = schema["properties"]["tools"]
    pattern = schema["$defs"]["ToolConfig"]["properties"]["function"]["pattern"]
    shorthand = {
        "type": "string",
        "pattern": pattern,
        "description": "Shorthand for {function: 'package.module:function'}.",
    }
    tools["items"] = {"anyOf": [shorthand, tools["items"]]}
    schema["properties"]["name"]["description"] = "Defaults to the file name (without .yaml); must equal it."
    return schema
