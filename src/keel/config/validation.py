"""Turn pydantic validation errors into located, human-readable `ConfigIssue`s.

pydantic reports a `loc` such as ("instructions", "FileRef", "extra"); union branch tags
("FileRef", "str", "dict[str,any]") are removed so the path is the one written in YAML, the
alternatives of a union collapse into one message ("expected a string or a mapping, got 5"), and
each error type gets a sentence a person understands.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from keel.config.yaml_source import Flat, Loc
from keel.errors import ConfigIssue

if TYPE_CHECKING:
    from keel.config.schema import ProjectConfig

_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "none_required": "null",
}

# Fields whose value is never repeated in a message: someone may have pasted a secret there.
_NEVER_SHOWN = {"api_key_env"}

_PATTERNS = {
    r"^[a-z][a-z0-9_-]{0,62}$": "must start with a lowercase letter, followed by up to 62 lowercase "
    "letters, digits, '_' or '-'",
    r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$": "must be an import path like 'package.module:function'",
    r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$": "must start with a letter or '_', followed by up to 63 letters, "
    "digits, '_' or '-'",
    r"^[A-Za-z_][A-Za-z0-9_]*$": "must be the name of an environment variable (letters, digits and '_'), "
    "not the key itself",
    r"^[A-Za-z0-9_.-]{1,64}$": "must be 1 to 64 letters, digits, '.', '_' or '-'",
}

_MISSING = object()


@dataclass(frozen=True)
class LocatedIssue:
    loc: Loc
    issue: ConfigIssue


@dataclass
class _Error:
    loc: Loc
    branch: tuple[Loc, str] | None  # (union point, branch tag) when a union alternative failed
    type: str
    msg: str
    input: Any
    ctx: dict[str, Any]


def pydantic_issues(
    exc: ValidationError,
    doc: Flat,
    model: type[BaseModel],
    ignore: Iterable[Loc] = (),
    *,
    ignore_missing: bool = False,
) -> list[LocatedIssue]:
    """One issue per distinct problem in `exc`, which came from `model.model_validate(doc.data)`.

    Errors at or under a path in `ignore` are dropped (already reported otherwise), and so are
    missing fields with `ignore_missing` (when a layer that could provide them is unreadable).
    Values whose interpolation failed (`doc.failed`) are always ignored.
    """
    ignored = {*ignore, *doc.failed}
    errors = [_clean(e, doc.data, model) for e in exc.errors(include_url=False)]
    out: list[LocatedIssue] = []
    for error in _collapse_unions(errors):
        if any(error.loc[: len(loc)] == loc for loc in ignored):
            continue
        if ignore_missing and error.type == "missing":
            continue
        message = _message(error, doc, model)
        out.append(LocatedIssue(error.loc, doc.issue(error.loc, message)))
    return out


def _clean(error: ErrorDetails, data: Any, model: type[BaseModel]) -> _Error:
    loc: list[str | int] = []
    branch: tuple[Loc, str] | None = None
    current: Any = data
    for part in error["loc"]:
        if isinstance(part, int) and isinstance(current, list) and 0 <= part < len(current):
            loc.append(part)
            current = current[part]
            continue
        if isinstance(part, str) and isinstance(current, dict):
            if part in current:
                loc.append(part)
                current = current[part]
                continue
            if part in field_names_at(model, tuple(loc)):
                loc.append(part)
                current = _MISSING
                continue
        if branch is None:  # a union branch or validator tag, not something written in YAML
            branch = (tuple(loc), str(part))
    ctx = dict(error.get("ctx") or {})
    return _Error(tuple(loc), branch, error["type"], error["msg"], error["input"], ctx)


def _is_mismatch(error: _Error) -> bool:
    return error.branch is not None and error.loc == error.branch[0] and error.type in _EXPECTED


def _collapse_unions(errors: list[_Error]) -> list[_Error]:
    """Keep the errors of the union alternative that fits best; merge plain type mismatches."""
    points: dict[Loc, list[_Error]] = {}
    for error in errors:
        if error.branch is not None:
            points.setdefault(error.branch[0], []).append(error)
    out: list[_Error] = []
    done: set[Loc] = set()
    for error in errors:
        if error.branch is None:
            out.append(error)
            continue
        point = error.branch[0]
        group = points[point]
        if len({e.branch[1] for e in group if e.branch is not None}) < 2:
            out.append(error)
            continue
        if point in done:
            continue
        done.add(point)
        specific = [e for e in group if not _is_mismatch(e)]
        if specific:
            out.extend(specific)
        else:
            expected = list(dict.fromkeys(_EXPECTED[e.type] for e in group))
            out.append(_Error(point, None, "union_type", " or ".join(expected), group[0].input, {}))
    return out


def _message(error: _Error, doc: Flat, model: type[BaseModel]) -> str:
    loc = error.loc
    hidden = bool(loc) and loc[-1] in _NEVER_SHOWN
    got = "" if hidden else f", got {doc.show(loc, error.input)}"
    kind, ctx = error.type, error.ctx
    if kind == "missing":
        return "missing required field"
    if kind == "extra_forbidden":
        return unknown_key_message(
            str(loc[-1]), field_names_at(model, loc[:-1]), _nested_names(model, loc[:-1])
        )
    if kind == "union_type":
        return f"expected {error.msg}{got}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}{got}"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "less_than_equal": ("at most", "le"),
        "greater_than": ("greater than", "gt"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {_number(ctx.get(key))}{got}"
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        text = f"must be one of {', '.join(repr(o) for o in options)}{got}"
        close = (
            difflib.get_close_matches(str(error.input), options, n=1) if isinstance(error.input, str) else []
        )
        return text + (f" (did you mean '{close[0]}'?)" if close and not doc.secret_vars(loc) else "")
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return _PATTERNS.get(pattern, f"must match the pattern {pattern}") + got
    if kind == "string_too_short":
        return "must not be empty"
    if kind in {"value_error", "assertion_error"}:
        return re.sub(r"^(Value|Assertion) error, ", "", error.msg)
    return error.msg[:1].lower() + error.msg[1:]


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def unknown_key_message(key: str, known: Iterable[str], nested: Iterable[str] = ()) -> str:
    """ "unknown key" with the closest known key; else a close key one level down (`nested`, dotted)."""
    names = sorted(known)
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return f"unknown key '{key}' (did you mean '{close[0]}'?)"
    deeper = {path.rsplit(".", 1)[-1]: path for path in sorted(nested)}
    close = difflib.get_close_matches(key, list(deeper), n=1, cutoff=0.75)
    if close:
        return f"unknown key '{key}' (did you mean '{deeper[close[0]]}'?)"
    if names:
        return f"unknown key '{key}' (known keys: {', '.join(names)})"
    return f"unknown key '{key}'"


def _nested_names(model: type[BaseModel], loc: Loc) -> list[str]:
    """ "section.key" for the keys of the sections (sub-models) at `loc`."""
    out: list[str] = []
    for name in sorted(field_names_at(model, loc)):
        out += [f"{name}.{child}" for child in sorted(field_names_at(model, (*loc, name)))]
    return out


def field_names_at(model: type[BaseModel], loc: Loc) -> set[str]:
    """The keys the models at `loc` (a path from `model`) accept; empty where any key is allowed."""
    candidates: list[Any] = [model]
    for part in loc:
        following: list[Any] = []
        for tp in _alternatives(candidates):
            origin = get_origin(tp)
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                if isinstance(part, str) and part in tp.model_fields:
                    following.append(tp.model_fields[part].annotation)
            elif origin in (list, tuple) and isinstance(part, int):
                following.extend(get_args(tp)[:1])
            elif origin is dict and isinstance(part, str):
                following.extend(get_args(tp)[1:2])
        candidates = following
    names: set[str] = set()
    for tp in _alternatives(candidates):
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            names.update(tp.model_fields)
    return names


def _alternatives(types_: list[Any]) -> list[Any]:
    out: list[Any] = []
    for tp in types_:
        origin = get_origin(tp)
        if origin is Annotated:
            out.extend(_alternatives([get_args(tp)[0]]))
        elif origin is Union or origin is types.UnionType:
            out.extend(_alternatives(list(get_args(tp))))
        else:
            out.append(tp)
    return out


BUDGETS_NEED_STORAGE = (
    "hard budgets need storage: their ledger (spend, reservations) is kept in the database. "
    "Set storage.enabled to true, or remove gateway.budgets.limits"
)


def storage_issues(config: ProjectConfig, doc: Flat | None = None) -> list[ConfigIssue]:
    """Settings that need storage while `storage.enabled` is false: `gateway.budgets.limits`.

    `doc` (the flattened keel.yaml) locates the issue at its line; without it, at the field.
    """
    if config.storage.enabled or not config.gateway.budgets.limits:
        return []
    loc: Loc = ("gateway", "budgets", "limits")
    if doc is not None:
        return [doc.issue(loc, BUDGETS_NEED_STORAGE)]
    return [ConfigIssue("keel.yaml", None, "gateway.budgets.limits", BUDGETS_NEED_STORAGE)]
