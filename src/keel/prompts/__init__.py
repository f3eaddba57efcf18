"""The prompt registry: prompts as versioned, immutable artifacts with movable labels.

- `keel.prompts.template`: `{{ variable }}` templates, rendered strictly.
- `keel.prompts.source`: prompt files (`prompts/*.md` with YAML front matter).
- `keel.prompts.registry`: the stored registry (versions, labels, moves, links, statistics).
- `keel.prompts.rollout`: which version of a label a run gets (canary splits, sticky by user or session).
See docs/prompts.md.
"""

from keel.prompts.errors import PromptError
from keel.prompts.template import Template

__all__ = ["PromptError", "Template"]
