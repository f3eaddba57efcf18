"""An agent's guardrails as the runner builds them: the agent's own list, and every tenant's extra
list from keel.yaml (`tenants: {acme: {guardrails: [...]}}`), chosen per run by its tenant inside
`Guardrails.run`.

A tenant's guardrails are built once per runner and project and shared by all the agents, so a
tenant's rate limit or spend cap counts the tenant's calls of every agent together. The capability
`RunCapture` (keel.guardrails.capture) is what an agent with guardrails adds to its runs.
"""

from __future__ import annotations

import inspect
import logging
import os
import weakref
from collections.abc import Sequence
from typing import Any

from keel.guardrails.builtin import Env, build
from keel.guardrails.policy import Guardrail, Guardrails

log = logging.getLogger(__name__)

# Per runner: objects its guardrails share (the spend store, tenants' built guardrails).
_SHARED: weakref.WeakKeyDictionary[Any, dict[Any, Any]] = weakref.WeakKeyDictionary()


def _env(runner: Any, project: Any, scope: str) -> Env:
    return Env(
        root=project.root,
        scope=scope,
        runner=runner,
        database_url=getattr(runner, "database_url", None),
        rate_limits=project.config.gateway.rate_limits,
        environ=os.environ,
        shared=_SHARED.setdefault(runner, {}),
    )


def tenant_guardrails(runner: Any, project: Any) -> dict[str, tuple[Guardrail, ...]]:
    """Each tenant's extra guardrails of `project` (built once per runner and project)."""
    tenants = getattr(project.config, "tenants", None) or {}
    if not tenants:
        return {}
    shared = _SHARED.setdefault(runner, {})
    key = ("tenants", id(project))
    cached = shared.get(key)
    if cached is None or cached[0] is not project:
        built = {
            tenant: tuple(
                build(raw, env=_env(runner, project, f"tenant:{tenant}")) for raw in config.guardrails
            )
            for tenant, config in tenants.items()
        }
        cached = shared[key] = (project, built)
    result: dict[str, tuple[Guardrail, ...]] = cached[1]
    return result


def agent_guardrails(runner: Any, project: Any, agent: str, raw: Sequence[Any]) -> Guardrails | None:
    """The guardrails of `agent` (its `guardrails:` list `raw`) with the tenants' extra ones; None
    when neither the agent nor any tenant has any."""
    tenants = tenant_guardrails(runner, project)
    if not raw and not tenants:
        return None
    env = _env(runner, project, f"agent:{agent}")
    return Guardrails([build(item, env=env) for item in raw], tenants=tenants)


async def aclose(runner: Any) -> None:
    """Close what `runner`'s guardrails hold open (Redis connections of rate limits, the spend
    store's database engine); called by `Runner.aclose`. A failure to close is logged, not raised."""
    from keel.guardrails.limits import CLOSE_WITH_RUNNER

    shared = _SHARED.pop(runner, None) or {}
    for resource in shared.get(CLOSE_WITH_RUNNER, []):
        close = getattr(resource, "aclose", None) or getattr(resource, "close", None)
        if close is None:
            continue
        try:
            done = close()
            if inspect.isawaitable(done):
                await done
        except Exception:
            log.exception("could not close %s", type(resource).__name__)


def capabilities(guardrails: Guardrails | None) -> list[Any]:
    """The pydantic-ai capabilities an agent with `guardrails` adds to its runs."""
    if guardrails is None:
        return []
    from keel.guardrails.capture import RunCapture

    chains = [guardrails.guardrails, *guardrails.tenants.values()]
    keep = any(getattr(g, "wants_context", False) for chain in chains for g in chain)
    return [RunCapture(keep_results=keep)]
