"""How durable state is written to the database: JSON with type tags, never pickle.

DBOS stores every workflow input and output, step output and step error through one
`Serializer`. Pickle would run arbitrary code on load and break when a class changes; plain
`json.dumps` cannot encode pydantic-ai's `ModelResponse` (a step output) or an exception (a
workflow then stays PENDING forever because its error cannot be stored). This serializer is
JSON plus a few tags:

- `{"__type__": "module:Qualname", "v": ...}` for dataclasses and pydantic models of the
  allow-listed packages (pydantic-ai and Keel), through pydantic's `TypeAdapter`, which
  round-trips them exactly (datetimes, Decimals, enums, nested unions).
- `{"__dt__": "..."}` for datetimes, `{"__set__": [...]}` for sets, `{"__tuple__": [...]}` for
  tuples, so replay returns the types the live run saw.
- `{"__exc__": {...}}` for exceptions: the type name, message and Keel error category. They come
  back as `RecordedFailure`, a `RunFailure` with the same category and message, so a run that
  fails on replay ends with the category it had live. No exception class is ever instantiated
  from stored data.

Anything else raises `TypeError` at write time, which is a bug to fix, not data to lose.
"""

from __future__ import annotations

import importlib
import json
from datetime import datetime
from functools import cache
from typing import Any

from dbos import Serializer
from pydantic import TypeAdapter

from keel.errors import ErrorCategory, RunFailure

NAME = "keel_json_v1"
_ALLOWED_PREFIXES = ("pydantic_ai.", "keel.")


class RecordedFailure(RunFailure):
    """An exception read back from durable state: its category and message, not its class."""

    def __init__(self, message: str, *, category: ErrorCategory, type_name: str) -> None:
        super().__init__(message, category=category)
        self.type_name = type_name


class KeelJSONSerializer(Serializer):
    def name(self) -> str:
        return NAME

    def serialize(self, data: Any) -> str:
        return json.dumps(_tag(data), ensure_ascii=False, separators=(",", ":"))

    def deserialize(self, serialized_data: str) -> Any:
        return json.loads(serialized_data, object_hook=_untag)


def _tag(value: Any) -> Any:
    """Replace the values JSON cannot hold by tagged objects (recursively)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(k): _tag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tag(v) for v in value]
    if isinstance(value, tuple):
        return {"__tuple__": [_tag(v) for v in value]}
    if isinstance(value, set | frozenset):
        return {"__set__": [_tag(v) for v in value]}
    if isinstance(value, datetime):
        return {"__dt__": value.isoformat()}
    if isinstance(value, BaseException):
        return {"__exc__": _exception(value)}
    cls = type(value)
    module = cls.__module__ + "."
    if module.startswith(_ALLOWED_PREFIXES):
        return {
            "__type__": f"{cls.__module__}:{cls.__qualname__}",
            "v": _adapter(cls).dump_python(value, mode="json"),
        }
    raise TypeError(f"{cls.__module__}.{cls.__qualname__} cannot be stored as durable state")


def _exception(exc: BaseException) -> dict[str, Any]:
    from keel.runtime.retry import categorize  # the runtime imports durable pieces; keep this lazy

    try:
        category, message = categorize(exc)
    except Exception:  # categorizing must never stop an error from being stored
        category, message = ErrorCategory.INTERNAL, f"{type(exc).__name__}: {exc}"
    return {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "category": category.value,
        "message": message,
    }


def _untag(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if "__dt__" in obj:
            return datetime.fromisoformat(obj["__dt__"])
        if "__tuple__" in obj:
            return tuple(obj["__tuple__"])
        if "__set__" in obj:
            return set(obj["__set__"])
        if "__exc__" in obj:
            data = obj["__exc__"]
            try:
                category = ErrorCategory(data.get("category"))
            except ValueError:
                category = ErrorCategory.INTERNAL
            return RecordedFailure(
                str(data.get("message", "")), category=category, type_name=str(data.get("type"))
            )
    if len(obj) == 2 and "__type__" in obj and "v" in obj:
        return _adapter(_resolve(obj["__type__"])).validate_python(obj["v"])
    return obj


@cache
def _resolve(name: str) -> type[Any]:
    module_name, _, qualname = name.partition(":")
    if not (module_name + ".").startswith(_ALLOWED_PREFIXES):
        raise TypeError(f"refusing to load durable state of type {name!r}")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not isinstance(target, type):
        raise TypeError(f"{name!r} is not a type")
    return target


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(cls: type[Any]) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(cls)
    if adapter is None:
        adapter = _ADAPTERS[cls] = TypeAdapter(cls)
    return adapter
