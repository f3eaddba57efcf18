"""Importing the Python functions an agent uses as tools, and checking they can be tools.

`package.module:function` is imported with the project's `python_path` folders at the front of
`sys.path`; `sys.path` is restored afterwards, while the imported modules stay in `sys.modules`.
A tool's parameters are what the model fills in, so each needs a type annotation; the first one
may instead be the run context (`ctx: RunContext[...]`). `*args` and `**kwargs` are not allowed.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, get_origin

from keel.config.project import ResolvedTool
from keel.config.schema import ToolConfig
from keel.config.yaml_source import Flat, Loc
from keel.errors import ConfigIssue

_TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_RUN_CONTEXT_TEXT = re.compile(r"^(?:[\w.]+\.)?RunContext(?:\[.*\])?$", re.DOTALL)


@contextmanager
def python_path(folders: Sequence[Path]) -> Iterator[None]:
    """`folders` at the front of sys.path for the duration; sys.path is restored afterwards."""
    saved = list(sys.path)
    sys.path[:0] = [str(folder) for folder in folders]
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path[:] = saved


class Importer:
    """Imports tool modules once per load; remembers failures so each is reported the same way."""

    def __init__(self, search_path: Sequence[str]) -> None:
        self._search = ", ".join(search_path)
        self._modules: dict[str, ModuleType | str] = {}

    def module(self, name: str) -> ModuleType | str:
        if name not in self._modules:
            self._modules[name] = self._import(name)
        return self._modules[name]

    def _import(self, name: str) -> ModuleType | str:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
                return f"cannot import module '{name}': no module named '{exc.name}' (python_path: {self._search})"
            return f"cannot import module '{name}': {exc}"
        except SyntaxError as exc:
            where = f"{Path(exc.filename).name}, line {exc.lineno}" if exc.filename else f"line {exc.lineno}"
            return f"cannot import module '{name}': SyntaxError ({where}): {exc.msg}"
        except ImportError as exc:
            return f"cannot import module '{name}': {exc}"
        except (Exception, SystemExit) as exc:
            return f"importing module '{name}' raised {type(exc).__name__}: {exc}"


def resolve_tools(
    tools: Sequence[tuple[int, ToolConfig]], importer: Importer, doc: Flat
) -> tuple[tuple[ResolvedTool, ...], list[ConfigIssue]]:
    """Import and check each (index, tool); tool names must be unique within the agent."""
    resolved: list[ResolvedTool] = []
    issues: list[ConfigIssue] = []
    names: dict[str, int] = {}
    for index, config in tools:
        function_loc: Loc = ("tools", index, "function")
        function = _load(config.function, importer)
        if isinstance(function, str):
            issues.append(doc.issue(function_loc, function))
            continue
        problems = signature_problems(function)
        if problems:
            issues += [doc.issue(function_loc, problem) for problem in problems]
            continue
        name = config.name or getattr(function, "__name__", None)
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            message = f"{config.function} has no usable name ({name!r}); set 'name' for this tool"
            issues.append(doc.issue(function_loc, message))
            continue
        name_loc: Loc = ("tools", index, "name") if config.name else function_loc
        if name in names:
            issues.append(doc.issue(name_loc, f"tool name '{name}' is already used by tools[{names[name]}]"))
            continue
        names[name] = index
        description = config.description if config.description is not None else docstring_summary(function)
        resolved.append(ResolvedTool(config=config, function=function, name=name, description=description))
    return tuple(resolved), issues


def _load(path: str, importer: Importer) -> Callable[..., Any] | str:
    module_name, _, attribute = path.partition(":")
    module = importer.module(module_name)
    if isinstance(module, str):
        return module
    if not hasattr(module, attribute):
        return f"module '{module_name}' has no attribute '{attribute}'"
    function = getattr(module, attribute)
    if not callable(function):
        return f"{path} is not callable (it is a {type(function).__name__})"
    return function  # type: ignore[no-any-return]


def signature_problems(function: Callable[..., Any]) -> list[str]:
    """Why `function` cannot be a tool: untyped parameters, *args/**kwargs, a misplaced context."""
    try:
        try:
            signature = inspect.signature(function, eval_str=True)
        except Exception:  # annotations that cannot be evaluated here (e.g. TYPE_CHECKING imports)
            signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        return [f"cannot read the function's signature: {exc}"]
    problems: list[str] = []
    for position, param in enumerate(signature.parameters.values()):
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            problems.append(f"*{param.name} is not allowed: a tool's parameters must be named")
        elif param.kind is inspect.Parameter.VAR_KEYWORD:
            problems.append(f"**{param.name} is not allowed: a tool's parameters must be named")
        elif param.annotation is inspect.Parameter.empty:
            problems.append(f"parameter '{param.name}' has no type annotation (the model needs its type)")
        elif is_run_context(param.annotation) and position != 0:
            problems.append(f"parameter '{param.name}': the RunContext parameter must come first")
    return problems


def is_run_context(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return _RUN_CONTEXT_TEXT.match(annotation.strip()) is not None
    from pydantic_ai import RunContext

    return annotation is RunContext or get_origin(annotation) is RunContext


def docstring_summary(function: Callable[..., Any]) -> str | None:
    """The first paragraph of the docstring, on one line; None without a docstring."""
    doc = inspect.getdoc(function)
    if not doc or not doc.strip():
        return None
    paragraph = re.split(r"\n\s*\n", doc.strip(), maxsplit=1)[0]
    return " ".join(line.strip() for line in paragraph.splitlines())
