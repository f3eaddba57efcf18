"""Build agents in code for runtime tests (the YAML loader has its own suite)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic_ai.models import Model

from keel.config.project import AgentSpec, Project, ResolvedModel, ResolvedTool
from keel.config.schema import AgentConfig, ModelPrice, ProjectConfig
from keel.runtime.runner import Runner


def make_project(
    *,
    tools: dict[str, Callable[..., Any]] | None = None,
    tool_config: dict[str, dict[str, Any]] | None = None,
    fallbacks: int = 0,
    base_url: str | None = None,
    price: ModelPrice | None = None,
    project_config: dict[str, Any] | None = None,
    **config: Any,
) -> Project:
    """One agent named `agent`, with the given tools and AgentConfig fields."""
    tools = tools or {}
    tool_config = tool_config or {}
    config.setdefault("model", "primary")
    config["tools"] = [{"function": f"tests:{name}", **tool_config.get(name, {})} for name in tools]
    config["fallback_models"] = [f"fallback{i}" for i in range(1, fallbacks + 1)]
    cfg = AgentConfig.model_validate({"name": "agent", **config})
    resolved_tools = tuple(
        ResolvedTool(tc, fn, name, fn.__doc__)
        for tc, (name, fn) in zip(cfg.tools, tools.items(), strict=True)
    )

    def model(ref: str) -> ResolvedModel:
        return ResolvedModel(
            ref=ref,
            provider="openai-compatible",
            model=ref,
            base_url=base_url or "http://unused",
            price=price,
        )

    spec = AgentSpec(
        config=cfg,
        source=Path("agents/agent.yaml"),
        instructions="You are a test agent.",
        model=model("primary"),
        fallback_models=tuple(model(ref) for ref in cfg.fallback_models),
        tools=resolved_tools,
        input_schema=config.get("input_schema"),
        output_schema=config.get("output_schema"),
        config_hash="test",
    )
    settings = {"project": "test", "storage": {"enabled": False}, "tracing": {"enabled": False}}
    settings.update(project_config or {})
    return Project(root=Path("."), config=ProjectConfig.model_validate(settings), agents={"agent": spec})


def runner_with(project: Project, models: dict[str, Model]) -> Runner:
    """A runner whose model references resolve to the given pydantic-ai models (e.g. FunctionModel)."""
    return Runner(project, model_factory=lambda m: models[m.ref])
