"""An agent acts as itself: its tools see the agent's own principal (its identity's scopes, the
run's tenant), never the rights of the user the run is for; a tool that needs a scope the agent
does not hold is a configuration error."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from pydantic_ai import RunContext
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from keel.config.schema import AgentConfig
from keel.runtime.tools import RunDeps
from tests.runtime.helpers import make_project, runner_with

seen: list[RunDeps] = []


def whoami(ctx: RunContext[RunDeps]) -> str:
    """Tell who the tool runs as."""
    seen.append(ctx.deps)
    principal = ctx.deps.principal
    assert principal is not None
    return f"{principal.label} in {principal.tenant_id}"


def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if len(messages) == 1:
        return ModelResponse(parts=[ToolCallPart("whoami", {})])
    return ModelResponse(parts=[TextPart("done")])


async def test_tools_run_as_the_agent_with_its_own_scopes_on_behalf_of_the_user() -> None:
    seen.clear()
    project = make_project(
        tools={"whoami": whoami},
        tool_config={"whoami": {"requires": ["runs:read"]}},
        identity={"scopes": ["runs:read"]},
    )
    result = await runner_with(project, {"primary": FunctionModel(model)}).run(
        "agent", "hi", user_id="alice", tenant_id="acme"
    )
    assert result.status.value == "succeeded", result.error
    deps = seen[0]
    assert deps.principal is not None
    assert deps.principal.kind == "agent" and deps.principal.id == "agent"
    assert deps.principal.tenant_id == "acme" and deps.tenant_id == "acme"
    assert deps.principal.scopes == frozenset({"runs:read"})  # not alice's rights
    assert deps.user_id == "alice"


async def test_an_agent_without_identity_scopes_holds_none() -> None:
    seen.clear()
    project = make_project(tools={"whoami": whoami})
    result = await runner_with(project, {"primary": FunctionModel(model)}).run("agent", "hi")
    assert result.status.value == "succeeded", result.error
    assert seen[0].principal is not None and seen[0].principal.scopes == frozenset()
    assert seen[0].principal.tenant_id == "default"


def test_a_tool_needing_a_scope_the_agent_lacks_is_a_config_error() -> None:
    config: dict[str, Any] = {
        "name": "agent",
        "model": "m",
        "tools": [{"function": "tests:whoami", "requires": ["admin"]}],
        "identity": {"scopes": ["runs:read"]},
    }
    with pytest.raises(
        ValidationError, match=r"requires admin, which the agent's identity\.scopes do not hold"
    ):
        AgentConfig.model_validate(config)
    with pytest.raises(ValidationError, match="identity"):
        AgentConfig.model_validate({**config, "identity": {"scopes": ["everything"]}})
