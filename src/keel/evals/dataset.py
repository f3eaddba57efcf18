"""Datasets: versioned sets of cases, as YAML or JSONL files in the project (and in the database).

YAML (`evals/golden.yaml`):

    agent: inbox                     # the agent evaluated (`keel eval --agent` overrides it)
    description: The inbox agent's golden set
    repeat: 1                        # default attempts per case
    threshold: 1.0                   # default share of attempts that must pass
    evaluators:                      # applied to every case, after `succeeded`
      - {type: json_schema}
      - {type: fields}
    cases:
      - id: refund-small
        input: {from: ada@example.com, subject: Refund, body: Please refund 20 USD}
        expected: {intent: refund, needs_human: false}
        expect:                      # this case's own evaluators
          - {type: tools, calls: [{name: lookup_customer}]}
        tags: [happy, refund]
        repeat: 3
        threshold: 0.67

JSONL (`evals/regressions.jsonl`): one case per line, the same keys; a first line
`{"dataset": {...}}` may hold the dataset's settings (agent, description, repeat, threshold,
evaluators). Problems are `ConfigIssue`s with the file, line and field; every problem is reported.
The content hash covers the cases and settings, so a changed dataset is a new version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from keel.config.validation import pydantic_issues
from keel.config.yaml_source import Flat, YMap, flatten, parse_yaml
from keel.errors import ConfigError, ConfigIssue
from keel.evals.evaluators import EvaluatorConfigError, parse_spec
from keel.evals.model import Case

MAX_CASES = 100_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CaseConfig(_Strict):
    id: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    input: Any
    expected: Any = None
    expect: list[dict[str, Any]] = []
    tags: list[Annotated[str, Field(min_length=1, max_length=100)]] = []
    repeat: Annotated[int | None, Field(ge=1, le=100)] = None
    threshold: Annotated[float | None, Field(ge=0, le=1)] = None
    variables: dict[str, Any] = {}
    metadata: dict[str, Any] = {}


class DatasetSettings(_Strict):
    name: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")] = None
    agent: str | None = None
    description: str = ""
    repeat: Annotated[int, Field(ge=1, le=100)] = 1
    threshold: Annotated[float, Field(ge=0, le=1)] = 1.0
    evaluators: list[dict[str, Any]] = []


class DatasetFile(DatasetSettings):
    cases: list[Any]


@dataclass(frozen=True)
class Dataset:
    name: str
    path: str
    agent: str | None
    description: str
    evaluators: tuple[dict[str, Any], ...]
    cases: tuple[Case, ...]

    @property
    def content_hash(self) -> str:
        canonical = json.dumps(
            self.document(), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def document(self) -> dict[str, Any]:
        """The dataset as plain data (what is stored in the database and hashed)."""
        return {
            "name": self.name,
            "agent": self.agent,
            "description": self.description,
            "evaluators": list(self.evaluators),
            "cases": [
                {
                    "id": c.id,
                    "input": c.input,
                    "expected": c.expected,
                    "expect": list(c.expect),
                    "tags": list(c.tags),
                    "repeat": c.repeat,
                    "threshold": c.threshold,
                    "variables": c.variables,
                    "metadata": c.metadata,
                }
                for c in self.cases
            ],
        }

    def only(self, tags: list[str]) -> Dataset:
        """The cases with any of `tags`."""
        kept = tuple(c for c in self.cases if set(c.tags) & set(tags))
        return Dataset(self.name, self.path, self.agent, self.description, self.evaluators, kept)


def load_dataset(path: Path, *, display: str | None = None) -> Dataset:
    """The dataset in `path` (.yaml, .yml or .jsonl); ConfigError with every problem otherwise."""
    rel = display or str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(rel, None, "", "no such dataset file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(rel, None, "", f"cannot read the file: {exc}")]) from None
    name = path.stem
    if path.suffix == ".jsonl":
        return _jsonl(text, rel, name)
    if path.suffix not in (".yaml", ".yml"):
        raise ConfigError([ConfigIssue(rel, None, "", "a dataset is a .yaml, .yml or .jsonl file")])
    return _yaml(text, rel, name)


def _yaml(text: str, rel: str, name: str) -> Dataset:
    tree, problems = parse_yaml(text, rel)
    if problems or tree is None:
        raise ConfigError(problems or [ConfigIssue(rel, None, "", "the file is empty")])
    if not isinstance(tree, YMap):
        raise ConfigError([ConfigIssue(rel, 1, "", "a dataset file is a mapping with `cases`")])
    doc = flatten(tree)
    try:
        parsed = DatasetFile.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError([p.issue for p in pydantic_issues(exc, doc, DatasetFile)]) from None
    issues: list[ConfigIssue] = []
    _check_evaluators(parsed.evaluators, doc, ("evaluators",), issues)
    cases: list[Case] = []
    for index, raw in enumerate(parsed.cases):
        case = _case(raw, index, parsed, doc, ("cases", index), issues)
        if case is not None:
            cases.append(case)
    return _finish(parsed, name, rel, cases, issues)


def _jsonl(text: str, rel: str, name: str) -> Dataset:
    issues: list[ConfigIssue] = []
    settings = DatasetSettings()
    raw_cases: list[tuple[int, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            issues.append(ConfigIssue(rel, number, "", f"not JSON: {exc.msg} (column {exc.colno})"))
            continue
        if isinstance(value, dict) and set(value) == {"dataset"} and not raw_cases:
            try:
                settings = DatasetSettings.model_validate(value["dataset"])
            except ValidationError as exc:
                doc = Flat(value["dataset"])
                issues += [
                    _at(p.issue, number, "dataset.") for p in pydantic_issues(exc, doc, DatasetSettings)
                ]
            continue
        raw_cases.append((number, value))
    file_doc = Flat(settings.model_dump())
    _check_evaluators(settings.evaluators, file_doc, ("evaluators",), issues, line=1)
    cases: list[Case] = []
    for index, (number, raw) in enumerate(raw_cases):
        doc = Flat({"cases": [raw]})
        before = len(issues)
        case = _case(raw, index, settings, doc, ("cases", 0), issues, line=number)
        for i in range(before, len(issues)):
            issues[i] = _at(issues[i], number, "")
        if case is not None:
            cases.append(case)
    return _finish(settings, name, rel, cases, issues)


def _case(
    raw: Any,
    index: int,
    settings: DatasetSettings,
    doc: Flat,
    loc: tuple[str | int, ...],
    issues: list[ConfigIssue],
    *,
    line: int | None = None,
) -> Case | None:
    if not isinstance(raw, dict):
        issues.append(doc.issue(loc, "a case is a mapping with at least `input`"))
        return None
    try:
        case = CaseConfig.model_validate(raw)
    except ValidationError as exc:
        wrapped = Flat(
            raw,
            {
                (): doc.pos(loc),
                **{k[len(loc) :]: v for k, v in doc.positions.items() if k[: len(loc)] == loc},
            },
        )
        for problem in pydantic_issues(exc, wrapped, CaseConfig):
            issue = problem.issue
            issues.append(
                ConfigIssue(
                    issue.file, issue.line, f"cases[{index}].{issue.field}".rstrip("."), issue.message
                )
            )
        expect = raw.get("expect")
        if isinstance(expect, list) and all(isinstance(e, dict) for e in expect):  # still report these
            _check_evaluators(expect, doc, (*loc, "expect"), issues, prefix=f"cases[{index}].expect")
        return None
    _check_evaluators(case.expect, doc, (*loc, "expect"), issues, prefix=f"cases[{index}].expect")
    where = doc.pos(loc).line if line is None else line
    return Case(
        id=case.id or f"case-{index + 1}",
        input=case.input,
        expected=case.expected,
        expect=tuple(case.expect),
        tags=tuple(case.tags),
        repeat=case.repeat or settings.repeat,
        threshold=case.threshold if case.threshold is not None else settings.threshold,
        variables=dict(case.variables),
        metadata=dict(case.metadata),
        line=where,
    )


def _check_evaluators(
    specs: list[dict[str, Any]],
    doc: Flat,
    loc: tuple[str | int, ...],
    issues: list[ConfigIssue],
    *,
    prefix: str | None = None,
    line: int | None = None,
) -> None:
    for index, spec in enumerate(specs):
        try:
            parse_spec(spec)
        except EvaluatorConfigError as exc:
            where = doc.pos((*loc, index))
            name = f"{prefix or '.'.join(str(p) for p in loc)}[{index}]" + (
                f".{exc.field}" if exc.field else ""
            )
            issues.append(ConfigIssue(where.file or "", line or where.line, name, exc.message))


def _finish(
    settings: DatasetSettings, name: str, rel: str, cases: list[Case], issues: list[ConfigIssue]
) -> Dataset:
    seen: dict[str, int | None] = {}
    for case in cases:
        if case.id in seen:
            issues.append(
                ConfigIssue(
                    rel, case.line, "id", f"case id {case.id!r} is used twice (first at line {seen[case.id]})"
                )
            )
        seen.setdefault(case.id, case.line)
    if not cases and not issues:
        issues.append(ConfigIssue(rel, None, "cases", "the dataset has no cases"))
    if len(cases) > MAX_CASES:
        issues.append(ConfigIssue(rel, None, "cases", f"more than {MAX_CASES:,} cases"))
    if issues:
        raise ConfigError([ConfigIssue(i.file or rel, i.line, i.field, i.message) for i in issues])
    return Dataset(
        name=settings.name or name,
        path=rel,
        agent=settings.agent,
        description=settings.description,
        evaluators=tuple(settings.evaluators),
        cases=tuple(cases),
    )


def _at(issue: ConfigIssue, line: int, prefix: str) -> ConfigIssue:
    return ConfigIssue(
        issue.file, line, f"{prefix}{issue.field}" if issue.field else prefix.rstrip("."), issue.message
    )


def dataset_from_document(document: dict[str, Any], *, path: str = "(database)") -> Dataset:
    """A dataset stored in the database (its `document()`)."""
    cases = tuple(
        Case(
            id=c["id"],
            input=c["input"],
            expected=c.get("expected"),
            expect=tuple(c.get("expect") or ()),
            tags=tuple(c.get("tags") or ()),
            repeat=int(c.get("repeat") or 1),
            threshold=float(c.get("threshold") if c.get("threshold") is not None else 1.0),
            variables=dict(c.get("variables") or {}),
            metadata=dict(c.get("metadata") or {}),
        )
        for c in document["cases"]
    )
    return Dataset(
        name=document["name"],
        path=path,
        agent=document.get("agent"),
        description=document.get("description", ""),
        evaluators=tuple(document.get("evaluators") or ()),
        cases=cases,
    )
