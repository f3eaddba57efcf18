"""Helpers for the project-loader tests: small Keel projects written into tmp_path."""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Mapping
from pathlib import Path

from keel.config import check_project, load_project
from keel.config.project import Project
from keel.errors import ConfigIssue

DEFAULT_KEEL_YAML = """\
project: demo
models:
  fast:
    provider: openai
    model: gpt-4o-mini
"""


class ProjectDir:
    """A project folder under tmp_path. `mod` is a module name unique to this test, for tools."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mod = f"keel_test_tools_{uuid.uuid4().hex[:12]}"

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).replace("{mod}", self.mod), encoding="utf-8")
        return path

    def keel(self, text: str = DEFAULT_KEEL_YAML) -> ProjectDir:
        self.write("keel.yaml", text)
        return self

    def agent(self, name: str, text: str) -> ProjectDir:
        self.write(f"agents/{name}.yaml", text)
        return self

    def tool_module(self, source: str) -> str:
        """Write `source` as this test's tool module; returns its import name."""
        self.write(f"{self.mod}.py", source)
        return self.mod

    def load(self, env: Mapping[str, str] | None = None) -> Project:
        return load_project(self.root, environ=env or {})

    def issues(self, env: Mapping[str, str] | None = None) -> list[ConfigIssue]:
        return check_project(self.root, environ=env or {})
