"""Start the fake provider for a project: `keel serve/run --with-fake-llm`, and tests of a project.

A project scripts its fake model with `fake_llm.py` (a function `script(request) -> Reply`) or
`fake-llm.yaml` (rules) at its root. The fake runs in a background thread of the current process
and listens on a free loopback port.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

from keel.config.loader import find_root
from keel.errors import ConfigError, ConfigIssue
from keel.testing.fake_llm import ChatRequest, FakeLLMThread, FunctionScript, Reply, Script, load_rules

SCRIPT_FILES = ("fake_llm.py", "fake-llm.yaml", "fake-llm.yml", "fake-llm.json")


def load_script_file(path: str | Path, function: str = "script") -> Script:
    """A script from a rules file (YAML/JSON) or from a Python file defining `script(request) -> Reply`."""
    path = Path(path)
    if path.suffix != ".py":
        return load_rules(path)
    module_name = f"_keel_fake_script_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError([ConfigIssue(str(path), None, "", "cannot load this file as a Python module")])
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's script failed at import: report it, no traceback
        del sys.modules[module_name]
        raise ConfigError(
            [ConfigIssue(str(path), None, "", f"importing it failed: {type(exc).__name__}: {exc}")]
        ) from None
    candidate = getattr(module, function, None)
    if not callable(candidate):
        raise ConfigError([ConfigIssue(str(path), None, function, f"no function {function!r} in this file")])
    return FunctionScript(cast(Callable[[ChatRequest], Reply], candidate))


def project_script(project: str | Path) -> Script | None:
    root = find_root(project)
    for name in SCRIPT_FILES:
        candidate = root / name
        if candidate.is_file():
            return load_script_file(candidate)
    return None


@contextmanager
def start_project_fake_llm(project: str | Path, *, seed: int = 0) -> Iterator[str]:
    """Run the project's fake provider for the duration of the block; yields its base URL."""
    with FakeLLMThread(project_script(project), seed=seed) as fake:
        yield fake.base_url
