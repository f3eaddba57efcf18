"""Start the fake provider for a project: `keel serve/run --with-fake-llm`, and tests of a project.

A project scripts its fake model with `fake_llm.py` (a function `script(request) -> Reply`) or
`fake-llm.yaml` (rules) at its root. The fake runs in a background thread of the current process
and listens on a free loopback port.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from keel.config.loader import find_root
from keel.testing.fake_llm import FakeLLMThread, Script, load_script

SCRIPT_FILES = ("fake_llm.py", "fake-llm.yaml", "fake-llm.yml", "fake-llm.json")


def project_script(project: str | Path) -> Script | None:
    """The project's fake-model script, or None (the fake then answers a fixed text)."""
    root = find_root(project)
    for name in SCRIPT_FILES:
        candidate = root / name
        if candidate.is_file():
            return load_script(candidate)
    return None


@contextmanager
def start_project_fake_llm(project: str | Path, *, seed: int = 0) -> Iterator[str]:
    """Run the project's fake provider for the duration of the block; yields its base URL."""
    with FakeLLMThread(project_script(project), seed=seed) as fake:
        yield fake.base_url
