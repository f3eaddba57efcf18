"""Keel's testing kit, public so users test their own agents with it.

- `keel.testing.fake_llm`: an OpenAI-compatible fake provider over real loopback HTTP, with
  scripted replies, latency and fault injection, and counters of what it saw.
- The pytest plugin (`fake_llm` and `fake_llm_server` fixtures) is installed with Keel.
- `keel.testing.project_fake`: run a project's own fake-model script.
"""

from keel.testing import fake_llm as _fake_llm
from keel.testing.fake_llm import *  # noqa: F403  (the fake provider's public names)

__all__ = list(_fake_llm.__all__)
