"""The HTTP API: health probes, agents, and the durable runs API (`keel.api.runs`).

With storage on (the default), every run is a durable, queued DBOS workflow: `create_app` makes a
`DurableRuns` service for the process's role (`all`, `api` or `worker`) and starts it with the app.
With storage off there is nothing to queue in: `POST /v1/agents/{agent}/runs` then runs the agent
inside the request, as a plain call.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Body, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from keel.api import problems
from keel.api.approvals import router as approvals_router
from keel.api.audit import router as audit_router
from keel.api.circuits import router as circuits_router
from keel.api.datasets import router as datasets_router
from keel.api.evals import router as evals_router
from keel.api.hooks import ServerHooks
from keel.api.keys import router as keys_router
from keel.api.problems import Problem
from keel.api.prompts import releases_router
from keel.api.prompts import router as prompts_router
from keel.api.routers import extra_routers
from keel.api.runs import router as runs_router
from keel.api.runs import user_of
from keel.api.security import PUBLIC, RequestHooks, check_routes, requires
from keel.config.project import Project
from keel.durable.service import DurableRuns, Role
from keel.errors import ErrorCategory, UsageError
from keel.evals.online import OnlineScorer
from keel.gateway.auth import Gateway, gateway_for
from keel.gateway.principal import Principal
from keel.releases.live import FileWatcher, ReleaseFollower
from keel.runtime.runner import Runner

log = logging.getLogger("keel.api")


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Annotated[
        str | dict[str, Any] | list[Any],
        Field(description="Text, or JSON matching the agent's input schema."),
    ]
    session_id: Annotated[str | None, Field(max_length=200)] = None
    user_id: Annotated[str | None, Field(max_length=200)] = None
    metadata: dict[str, Any] = {}
    variables: Annotated[
        dict[str, Any], Field(description="Values of the agent's prompt variables (registry prompts).")
    ] = {}


def _follower(runner: Runner, reload: bool) -> ReleaseFollower | FileWatcher | None:
    if reload:
        return FileWatcher(runner)
    if runner.database_url is None:
        return None
    return ReleaseFollower(runner, interval=runner.project.config.prompts.refresh_interval)


def create_app(
    project: Project,
    runner: Runner | None = None,
    *,
    role: Role = "all",
    worker_id: str | None = None,
    gateway: Gateway | None = None,
    hooks: RequestHooks | None = None,
    reload: bool = False,
) -> FastAPI:
    """The app for `project`. With storage, it follows the live release (`keel deploy`,
    `keel rollback`); with `reload`, the project's files instead, reloaded when they change."""
    own_runner = runner is None
    the_runner = runner or Runner(project)
    durable = DurableRuns(the_runner, role=role, worker_id=worker_id) if the_runner.database_url else None
    # Online evaluation (agents' evals.online) and feedback: with storage; see keel.evals.online.
    online = OnlineScorer(the_runner) if the_runner.database_url else None
    the_gateway = gateway or gateway_for(project.config.gateway, the_runner.database_url)
    the_hooks = hooks or server_hooks(project, the_runner.database_url)
    if the_gateway.open:
        log.warning(
            "gateway.auth is off: every caller acts as tenant %r with scopes %s; never expose this server",
            project.config.gateway.anonymous.tenant,
            ", ".join(project.config.gateway.anonymous.scopes),
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await the_runner.start()  # migrations and the history writer, before the first request
        follower = _follower(the_runner, reload)
        if follower is not None:
            await follower.start()  # on the live release before the queues start
        if online is not None:
            await online.start()  # before the queues: resumed runs that end are sampled too
        if durable is not None:
            await durable.start()
            if follower is not None:  # a later release may add agents: their queues
                durable.releases = follower if isinstance(follower, ReleaseFollower) else None
                follower.on_switch.append(durable.register_queues)
        try:
            yield
        finally:
            if follower is not None:
                await follower.stop()
            if durable is not None:
                await durable.stop()
            if online is not None:
                await online.stop()
            if own_runner:
                await the_runner.aclose()
            await the_gateway.aclose()
            if isinstance(the_hooks, ServerHooks):
                await the_hooks.aclose()

    app = FastAPI(
        title=f"Keel: {project.config.project}",
        version="0.1.0",
        lifespan=lifespan,
        description="Durable, queued agent runs. Errors are RFC 9457 problem documents with a stable `code`.",
    )
    problems.install(app)
    app.state.runner = the_runner
    app.state.durable = durable
    app.state.online_evals = online
    app.state.gateway = the_gateway
    app.state.request_hooks = the_hooks
    if durable is not None and isinstance(the_hooks, ServerHooks) and the_hooks.limiter is not None:
        # Only with rate limits: each hook costs every run a checkpointed step.
        durable.on_ended.append(the_hooks.run_ended)

    @app.get("/livez", tags=["health"], dependencies=[PUBLIC])
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], dependencies=[PUBLIC])
    async def readyz(request: Request) -> dict[str, Any]:
        """Ready to serve, with the history writer's counters: records waiting for the database,
        dropped because the buffer overflowed, and whether the database currently answers."""
        runner: Runner = request.app.state.runner
        body: dict[str, Any] = {
            "status": "ok",
            "agents": len(runner.project.agents),
            "release": runner.release,
        }
        if runner.writer is not None:
            stats = runner.writer.stats()
            body["storage"] = {
                "database_available": stats.database_available,
                "pending": stats.pending,
                "dropped": stats.dropped,
                "write_failures": stats.write_failures,
            }
        body["tracing"] = {"enabled": runner.tracing.enabled, "spans_dropped": runner.tracing.dropped}
        if durable is not None:
            body["worker"] = {"id": durable.worker_id, "role": durable.role}
        if isinstance(the_hooks, ServerHooks):
            body["gateway"] = the_hooks.stats()
        if online is not None:
            body["online_evals"] = online.stats()
        return body

    @app.get("/v1/agents", tags=["agents"])
    async def list_agents(principal: Annotated[Principal, requires("runs:read")]) -> dict[str, Any]:
        """The agents these credentials may run."""
        return {
            "agents": [
                {"name": a.name, "description": a.config.description, "model": a.model.label}
                for a in the_runner.project.agents.values()
                if the_gateway.may_run(principal, a.name)
            ]
        }

    app.include_router(keys_router)
    app.include_router(audit_router)
    app.include_router(circuits_router)
    if the_runner.database_url is not None:
        app.include_router(prompts_router)
        app.include_router(releases_router)
        app.include_router(evals_router)
        app.include_router(datasets_router)
    for router in extra_routers(project, the_runner.database_url):
        app.include_router(router)
    if durable is not None:
        app.include_router(runs_router)
        app.include_router(approvals_router)
        check_routes(app)
        return app

    @app.post("/v1/agents/{agent}/runs", tags=["runs"])
    async def create_run(
        request: Request,
        principal: Annotated[Principal, requires("runs:write")],
        agent: str,
        body: Annotated[RunRequest, Body()],
    ) -> dict[str, Any]:
        """Storage is off: the run executes inside this request (no queue, no durability)."""
        runner: Runner = request.app.state.runner
        if agent not in runner.project.agents:
            raise Problem(404, "agent_not_found", "Unknown agent", f"no agent named {agent!r}")
        user_id = user_of(principal, body.user_id)
        limits = await the_hooks.take_run_slot(principal, agent, user_id)
        try:
            result = await runner.run(
                agent,
                body.input,
                session_id=body.session_id,
                user_id=user_id,
                tenant_id=principal.tenant_id,
                metadata=body.metadata,
                variables=body.variables,
                principal=principal.label,
                roles=tuple(principal.roles),
            )
        except UsageError as exc:
            await the_hooks.give_back(limits)
            raise Problem(503, "agent_unavailable", "Agent cannot run", str(exc)) from None
        except BaseException:
            await the_hooks.give_back(limits)
            raise
        await the_hooks.run_ended({"limits": limits}, result)  # the slot back, the tokens counted
        if result.error is not None and result.error.category is ErrorCategory.BAD_INPUT:
            raise Problem(
                422, "bad_input", "Input does not match the agent's input schema", result.error.message
            )
        return result.to_dict()

    check_routes(app)
    return app


def server_hooks(project: Project, database_url: str | None) -> RequestHooks:
    """Audit log (with storage) and rate limits (when configured) around every request."""
    import os

    from keel.gateway.ratelimit import build_rate_limiter
    from keel.store.audit import AuditLog

    limits = project.config.gateway.rate_limits
    limiter = build_rate_limiter(limits, os.environ) if limits.limits else None
    audit = AuditLog(database_url) if database_url is not None else None
    return ServerHooks(audit=audit, limiter=limiter)
