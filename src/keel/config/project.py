"""A loaded, fully resolved project: what the loader produces and the runtime consumes.

Everything here is immutable and already checked: files are read, schemas are valid JSON Schema,
tools are imported and typed, model references are resolved. The runtime never re-reads YAML.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.config.schema import AgentConfig, ModelPrice, ProjectConfig, ProviderName, ToolConfig

if TYPE_CHECKING:
    from keel.prompts.source import PromptSource

# Environment variable that holds the API key when a model is referenced as `provider:model`.
DEFAULT_KEY_ENV: Mapping[str, str | None] = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google": "GEMINI_API_KEY",
    "openai-compatible": None,
}


@dataclass(frozen=True)
class ResolvedModel:
    """A model reference, resolved against `keel.yaml`'s named models."""

    ref: str
    provider: ProviderName
    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    price: ModelPrice | None = None

    @property
    def label(self) -> str:
        """`provider:model`, the name used in results, traces and cost records."""
        return f"{self.provider}:{self.model}"


@dataclass(frozen=True)
class ResolvedTool:
    config: ToolConfig
    function: Callable[..., Any]
    name: str
    description: str | None


@dataclass(frozen=True)
class PromptBinding:
    """An agent's instructions from the prompt registry: which prompt and label, its variables,
    and the prompt's file in the project (used when the registry has no such label)."""

    name: str
    label: str
    variables: Mapping[str, Any]
    source: PromptSource


@dataclass(frozen=True)
class AgentSpec:
    """One agent, ready to run."""

    config: AgentConfig
    source: Path
    instructions: str
    model: ResolvedModel
    fallback_models: tuple[ResolvedModel, ...] = ()
    tools: tuple[ResolvedTool, ...] = ()
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    config_hash: str = ""
    prompt: PromptBinding | None = None

    @property
    def name(self) -> str:
        return self.config.name


@dataclass(frozen=True)
class Project:
    root: Path
    config: ProjectConfig
    agents: Mapping[str, AgentSpec] = field(default_factory=dict)

    def agent(self, name: str) -> AgentSpec:
        from keel.errors import UsageError

        try:
            return self.agents[name]
        except KeyError:
            known = ", ".join(sorted(self.agents)) or "none"
            raise UsageError(f"unknown agent {name!r} (agents in this project: {known})") from None
