"""Fixtures for the project-loader tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.config.support import ProjectDir


@pytest.fixture
def project(tmp_path: Path) -> ProjectDir:
    """An empty project folder (written on demand) with a tool module name unique to the test."""
    return ProjectDir(tmp_path / "proj")
