"""Every configuration key is documented: the reference in docs/configuration.md cannot fall behind the schema."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path

from pydantic import BaseModel

from keel.config.schema import AgentConfig, ProjectConfig

DOC = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()


def models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated, list, dict):
        return [m for arg in typing.get_args(annotation) for m in models_in(arg)]
    return []


def keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    found = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        found.append(dotted)
        for sub in models_in(field.annotation):
            if sub is not model:
                found += keys(sub, f"{dotted}.")
    return found


def test_every_key_of_keel_yaml_and_agent_files_is_documented() -> None:
    leaves = {key.split(".")[-1] for key in keys(ProjectConfig) + keys(AgentConfig)}
    missing = sorted(leaf for leaf in leaves if not re.search(rf"`(?:[\w]+\.)*{leaf}(?:\.[\w]+)*`", DOC))
    assert missing == []
