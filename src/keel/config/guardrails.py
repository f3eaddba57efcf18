"""Checks of guardrail settings that need the rest of the project (each guardrail's own settings
are checked by `keel.guardrails.builtin.parse_spec` when its file is validated):

- `grounding`: `judge` names an agent of the project;
- `json_schema`: `schema_file` is a JSON or YAML file of the project holding a valid JSON Schema;
- `spend_cap` with `per_tenant_day`: storage is on (the totals are kept in the database, shared by
  every process).

Used for agent files (`guardrails:`) and for keel.yaml's `tenants: {<id>: {guardrails: [...]}}`;
every problem names its file, line and field.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from keel.config.files import project_file
from keel.config.json_schemas import check_json_schema, load_schema_file
from keel.config.yaml_source import Flat, Loc
from keel.errors import ConfigIssue

SPEND_NEEDS_STORAGE = (
    "per_tenant_day needs storage (its totals are kept in the database, shared by every process): "
    "turn storage.enabled on, or use per_run only"
)


def guardrail_issues(
    raw: Any,
    doc: Flat,
    loc: Loc,
    root: Path,
    *,
    agents: Collection[str] | None,
    storage: bool | None,
) -> list[ConfigIssue]:
    """Problems of the guardrails list `raw` (at `loc` in `doc`) against the project. `agents`:
    the project's agent names (None: unknown, not checked); `storage`: whether storage is on."""
    issues: list[ConfigIssue] = []
    for index, item in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(item, dict):
            continue
        at: Loc = (*loc, index)
        kind = item.get("type")
        if kind in ("grounding", "injection_judge") and agents is not None:
            judge = item.get("judge")
            if isinstance(judge, str) and judge not in agents:
                known = ", ".join(sorted(agents)) or "none"
                message = f"{kind}: judge: no agent named {judge!r} in the project (agents: {known})"
                issues.append(doc.issue((*at, "judge"), message))
        elif kind == "json_schema":
            ref = item.get("schema_file")
            if isinstance(ref, str) and ref:
                issues += schema_file_issues(ref, doc, (*at, "schema_file"), root)
        elif kind == "spend_cap" and storage is False and item.get("per_tenant_day") is not None:
            issues.append(doc.issue((*at, "per_tenant_day"), f"spend_cap: {SPEND_NEEDS_STORAGE}"))
    return issues


def schema_file_issues(ref: str, doc: Flat, loc: Loc, root: Path) -> list[ConfigIssue]:
    """Problems of the schema file `ref` (named at `loc`), checked as agents' schema files are."""
    found = project_file(root, ref)
    if isinstance(found, str):
        return [doc.issue(loc, found)]
    if found.path.suffix not in {".json", ".yaml", ".yml"}:
        return [doc.issue(loc, f"schema files must end in .json, .yaml or .yml, not '{found.path.name}'")]
    schema_doc, issues = load_schema_file(found)
    if schema_doc is None:
        return issues
    return check_json_schema(schema_doc.data, schema_doc, ())
