"""Prompt templates: text with `{{ name }}` placeholders, rendered strictly.

    template = Template("Hello {{ customer }}, about order {{order_id}}.", ["customer", "order_id"])
    template.render({"customer": "Ada", "order_id": 42})

Strict both ways, so a mistake is an error and never an empty string in a live prompt:
- saving: every placeholder must be a declared variable, and every declared variable must be used;
- rendering: every declared variable must be given (or have a default), and nothing else may be.
`{{{{` writes a literal `{{` (and `}}}}` a literal `}}`). Values are inserted as text (`str(value)`;
JSON for lists and mappings), never interpreted again, so a value holding `{{ x }}` stays as it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from keel.prompts.errors import VariableError

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_TOKEN = re.compile(r"\{\{\{\{|\}\}\}\}|\{\{\s*([^{}]*?)\s*\}\}")


def placeholders(text: str) -> list[str]:
    """The placeholder names used in `text`, in order of first use; VariableError for a malformed one."""
    found: list[str] = []
    for match in _TOKEN.finditer(text):
        name = match.group(1)
        if name is None:
            continue  # an escaped brace pair
        if not NAME.match(name):
            raise VariableError(
                f"{{{{ {name} }}}} is not a valid placeholder: a variable name is letters, digits and '_', "
                "not starting with a digit (write {{{{ for a literal '{{')"
            )
        if name not in found:
            found.append(name)
    return found


class Template:
    """A checked template: its placeholders are exactly its declared variables."""

    def __init__(
        self, text: str, variables: Sequence[str] = (), defaults: Mapping[str, Any] | None = None
    ) -> None:
        used = placeholders(text)
        declared = list(dict.fromkeys(variables))
        for name in declared:
            if not NAME.match(name):
                raise VariableError(f"{name!r} is not a valid variable name (letters, digits and '_')")
        undeclared = [n for n in used if n not in declared]
        if undeclared:
            raise VariableError(
                f"the prompt uses {_names(undeclared)} but does not declare "
                f"{'it' if len(undeclared) == 1 else 'them'} in `variables`"
            )
        unused = [n for n in declared if n not in used]
        if unused:
            raise VariableError(f"the prompt declares {_names(unused)} in `variables` but never uses it")
        self.text = text
        self.variables = tuple(declared)
        self.defaults = dict(defaults or {})
        unknown_defaults = [n for n in self.defaults if n not in declared]
        if unknown_defaults:
            raise VariableError(f"defaults for undeclared variables: {_names(unknown_defaults)}")

    def render(self, values: Mapping[str, Any] | None = None) -> str:
        """The text with every placeholder replaced; VariableError if a variable is missing or unknown."""
        given = dict(values or {})
        unknown = sorted(n for n in given if n not in self.variables)
        if unknown:
            raise VariableError(
                f"unknown prompt variable{'s' if len(unknown) > 1 else ''} {_names(unknown)} "
                f"(this prompt declares {_names(list(self.variables)) if self.variables else 'none'})",
                code="prompt_variable_unknown",
            )
        merged = {**self.defaults, **given}
        missing = [n for n in self.variables if n not in merged]
        if missing:
            raise VariableError(
                f"missing prompt variable{'s' if len(missing) > 1 else ''} {_names(missing)}",
                code="prompt_variable_missing",
            )

        def substitute(match: re.Match[str]) -> str:
            token = match.group(0)
            if token == "{{{{":
                return "{{"
            if token == "}}}}":
                return "}}"
            return _text(merged[match.group(1)])

        return _TOKEN.sub(substitute, self.text)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _names(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)
