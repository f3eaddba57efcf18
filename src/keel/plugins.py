"""Small helpers for what users plug into Keel by name: `module:callable` references and dotted
paths into JSON values (evaluators and guardrails both take them)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


class PluginError(Exception):
    """A `module:callable` reference that cannot be imported or is not callable."""


def import_callable(ref: str, root: Path | str | None = None) -> Callable[..., Any]:
    """The callable `ref` names (`package.module:function`), imported with `root` (the project
    folder) on the import path."""
    module_name, _, attribute = ref.partition(":")
    if root is not None:
        folder = str(Path(root).resolve())
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"cannot import {ref}: {exc}") from None
    if not callable(found):
        raise PluginError(f"{ref} is not callable")
    return found  # type: ignore[no-any-return]


def get_path(value: Any, path: str | None) -> Any:
    """`value` at a dotted path (`a.b.0`: keys of mappings, indexes of lists); None where it breaks."""
    if not path:
        return value
    current = value
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current
