"""Which prompt text a run gets: `PromptResolver.resolve(spec, ...) -> ResolvedPrompt | None`.

An agent whose instructions are `{prompt: NAME}` follows a label (its `label`, default
`prompts.deploy_label`). At the start of each run, the label is resolved in the registry for the
run's tenant (the tenant's own label, else the project's; a canary picks a version by the label's
sticky key), and the version's template is rendered with the agent's variables overridden by the
run's. When the registry has no such label (nothing deployed yet, or a server started with
`--reload`, which serves the project's files as they are), the prompt file itself is used and the
run records `NAME@file:<first 12 hex of its content hash>`.

A durable run resolves once, when it is accepted, and carries the result in its workflow input:
a run resumed after a crash uses the same text, whatever has moved since.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from keel.config.project import AgentSpec
from keel.prompts.errors import VariableError
from keel.prompts.registry import PromptRegistry
from keel.store.tenancy import PROJECT_TENANT

DEFAULT_TENANT_KEY = "default"


@dataclass(frozen=True)
class ResolvedPrompt:
    name: str
    version: str  # `1.4.0`, or `file:<hash12>` for the project's file
    label: str | None
    text: str
    model_settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "label": self.label,
            "text": self.text,
            "model_settings": dict(self.model_settings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResolvedPrompt:
        return cls(
            name=str(data["name"]),
            version=str(data["version"]),
            label=data.get("label"),
            text=str(data["text"]),
            model_settings=dict(data.get("model_settings") or {}),
        )


class PromptResolver:
    """Resolves agents' prompts against `registry` (None: always the project's files)."""

    def __init__(self, registry: PromptRegistry | None) -> None:
        self.registry = registry
        self.follow_registry = True  # False under `keel serve --reload`: the files are what is live

    async def resolve(
        self,
        spec: AgentSpec,
        *,
        run_id: str,
        tenant_id: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        variables: Mapping[str, Any] | None = None,
        activation: int | bool | None = False,
    ) -> ResolvedPrompt | None:
        """The prompt for this run of `spec`, or None when its instructions are plain text.
        `activation`: the release activation served (see `PromptRegistry.label`; StaleRelease).

        VariableError (code `prompt_variable_missing` / `prompt_variable_unknown`) when the values
        do not match the version's declared variables; `prompt_variables` when the agent has no
        prompt at all but variables were given."""
        binding = spec.prompt
        if binding is None:
            if variables:
                raise VariableError(
                    f"agent {spec.name!r} has plain instructions, not a prompt: it takes no variables",
                    code="prompt_variable_unknown",
                )
            return None
        values = {**binding.variables, **(variables or {})}
        if self.registry is not None and self.follow_registry:
            found = await self.registry.resolve(
                binding.name,
                binding.label,
                tenant_id=tenant_id or DEFAULT_TENANT_KEY,
                run_id=run_id,
                user_id=user_id,
                session_id=session_id,
                activation=activation,
            )
            if found is not None:
                version, _ = found
                return ResolvedPrompt(
                    binding.name,
                    version.version,
                    binding.label,
                    version.render(_known(values, version.content.variables, variables)),
                    version.content.model_settings,
                )
        content = binding.source.content
        return ResolvedPrompt(
            binding.name,
            f"file:{content.content_hash[:12]}",
            None,
            content.template_object().render(_known(values, content.variables, variables)),
            content.model_settings,
        )


def _known(
    values: Mapping[str, Any], declared: tuple[str, ...], given: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The values to render with: the agent's defaults only where the version declares them (a
    later version may drop a variable the agent still sets), the run's own always (so an unknown
    one is an error)."""
    own = dict(given or {})
    return {k: v for k, v in values.items() if k in declared or k in own}


__all__ = ["PROJECT_TENANT", "PromptResolver", "ResolvedPrompt"]
