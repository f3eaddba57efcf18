"""Structured output: the agent's JSON Schema, validated strictly, corrected by the model.

pydantic-ai's `StructuredDict` hands the schema to the model but only checks that the result is
an object, so Keel validates every output against the full schema with `jsonschema` and sends the
errors back to the model as a correction request, up to `output_retries` times; after that the
run fails as `invalid_output`.

The `x-unclear: true` extension on a property lets the model answer the literal string
`"unclear"` instead of guessing a value it cannot know.
"""

from __future__ import annotations

import copy
from typing import Any

from jsonschema import Draft202012Validator
from pydantic_ai import ModelRetry, NativeOutput, PromptedOutput, RunContext, ToolOutput
from pydantic_ai.output import OutputSpec, StructuredDict

UNCLEAR = "unclear"
_MAX_REPORTED_ERRORS = 8


def expand_unclear(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite every `x-unclear: true` subschema as `anyOf: [original, "unclear"]`."""
    expanded: dict[str, Any] = _expand(copy.deepcopy(schema))
    return expanded


def _expand(node: Any) -> Any:
    if isinstance(node, list):
        return [_expand(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _expand(value) for key, value in node.items()}
    if out.pop("x-unclear", False) is True:
        description = out.pop("description", None)
        wrapped: dict[str, Any] = {"anyOf": [out, {"const": UNCLEAR}]}
        if description:
            wrapped["description"] = f'{description} Answer "{UNCLEAR}" if it cannot be determined.'
        return wrapped
    return out


def output_spec(schema: dict[str, Any], mode: str, agent_name: str) -> OutputSpec[dict[str, Any]]:
    structured = StructuredDict(schema, name=f"{agent_name.replace('-', '_')}_output")
    if mode == "native":
        return NativeOutput(structured)
    if mode == "prompted":
        return PromptedOutput(structured)
    return ToolOutput(structured)


class OutputValidator:
    """Checks output against the full JSON Schema; asks the model for a correction on failure."""

    def __init__(self, schema: dict[str, Any]) -> None:
        Draft202012Validator.check_schema(schema)
        self._validator = Draft202012Validator(schema)

    def __call__(self, ctx: RunContext[Any], output: dict[str, Any]) -> dict[str, Any]:
        errors = sorted(self._validator.iter_errors(output), key=lambda e: list(e.absolute_path))
        if not errors:
            return output
        lines = [f"- {_where(list(e.absolute_path))}: {e.message}" for e in errors[:_MAX_REPORTED_ERRORS]]
        if len(errors) > _MAX_REPORTED_ERRORS:
            lines.append(f"- ... and {len(errors) - _MAX_REPORTED_ERRORS} more")
        raise ModelRetry("The output does not match the required JSON Schema:\n" + "\n".join(lines))


def _where(path: list[Any]) -> str:
    if not path:
        return "(root)"
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
