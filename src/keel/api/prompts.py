"""The prompt registry over HTTP, under /v1/prompts; releases under /v1/releases (read only).

Scopes: `prompts:read` to read, `prompts:write` to create versions and move labels, and also
`prompts:deploy` to move a protected label (`prompts.protected_labels`, `production` by default).
Everything is within the caller's tenant: it sees its own prompts and the project's (deployed
from files by `keel deploy`), creates versions and moves labels in its own tenant only (a tenant's
label overrides the project's label of the same name for that tenant's runs).
Releases are project-wide and made by operators (`keel deploy`, `keel rollback`): admins may list them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from keel.api.problems import Problem
from keel.api.security import RequestHooks, requires
from keel.gateway.principal import Principal
from keel.prompts.errors import PromptError
from keel.prompts.registry import PromptRegistry, diff
from keel.prompts.rollout import Share
from keel.prompts.source import PromptContent, PromptSettings, VariableSpec
from keel.releases.store import ReleaseStore
from keel.runtime.runner import Runner

router = APIRouter(prefix="/v1/prompts", tags=["prompts"])
releases_router = APIRouter(prefix="/v1/releases", tags=["releases"])


class CreateVersion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template: Annotated[
        str, Field(min_length=1, max_length=200_000, description="Text with {{ variable }}s.")
    ]
    variables: list[Annotated[str, Field(max_length=64)]] | dict[str, VariableSpec | None] = []
    model_settings: PromptSettings = PromptSettings()
    version: Annotated[
        str | None, Field(description="X.Y.Z, above every existing one; default: next patch.")
    ] = None
    message: Annotated[str | None, Field(max_length=2000)] = None
    owner: Annotated[str | None, Field(max_length=200)] = None


class ShareBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Annotated[str, Field(max_length=64)]
    weight: Annotated[float, Field(gt=0, le=100)]


class MoveLabel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Annotated[str | None, Field(max_length=64, description="Point the label at this version.")] = (
        None
    )
    rollout: Annotated[
        list[ShareBody] | None,
        Field(max_length=10, description="Or split traffic: weights adding up to 100."),
    ] = None
    sticky: Annotated[
        str, Field(description="user, session or none: what keeps a caller on one version.")
    ] = "user"
    reason: Annotated[str | None, Field(max_length=2000)] = None


def _registry(request: Request) -> PromptRegistry:
    runner: Runner = request.app.state.runner
    registry = runner.prompts.registry
    if registry is None:
        raise Problem(
            503, "prompts_unavailable", "The prompt registry is off", "it needs storage (storage.enabled)"
        )
    return registry


def _hooks(request: Request) -> RequestHooks:
    hooks: RequestHooks = request.app.state.request_hooks
    return hooks


def _problem(exc: PromptError) -> Problem:
    return Problem(exc.status, exc.code, "Prompt request refused", exc.message)


@router.get("")
async def list_prompts(
    request: Request, principal: Annotated[Principal, requires("prompts:read")]
) -> dict[str, Any]:
    """Every prompt the caller sees: latest version and labels."""
    return {"prompts": await _registry(request).prompts(tenant_id=principal.tenant_id)}


@router.get("/{name}")
async def get_prompt(
    request: Request, principal: Annotated[Principal, requires("prompts:read")], name: str
) -> dict[str, Any]:
    """A prompt's history: its versions (newest first), labels in effect, and every label move."""
    registry = _registry(request)
    try:
        versions = await registry.history(name, tenant_id=principal.tenant_id)
    except PromptError as exc:
        raise _problem(exc) from None
    labels = await registry.labels(name, tenant_id=principal.tenant_id)
    moves = await registry.moves(name, tenant_id=principal.tenant_id)
    return {
        "name": name,
        "versions": [v.as_dict(with_template=False) for v in versions],
        "labels": [label.as_dict() for label in labels],
        "moves": moves,
    }


@router.post("/{name}/versions", status_code=201)
async def create_version(
    request: Request,
    principal: Annotated[Principal, requires("prompts:write")],
    name: str,
    body: Annotated[CreateVersion, Body()],
) -> dict[str, Any]:
    """A new immutable version in the caller's tenant (the same content as the latest: that one, 200)."""
    from keel.prompts.source import FrontMatter, variables_of

    variables, defaults, descriptions = variables_of(FrontMatter(variables=body.variables))
    try:
        content = PromptContent(
            body.template,
            variables,
            defaults,
            descriptions,
            body.model_settings.model_dump(exclude_none=True),
        )
        version, created = await _registry(request).save(
            name,
            content,
            author=principal.label,
            tenant_id=principal.tenant_id,
            version=body.version,
            message=body.message,
            owner=body.owner,
            source="api",
        )
    except PromptError as exc:
        raise _problem(exc) from None
    return {**version.as_dict(), "created": created}


@router.get("/{name}/versions/{version}")
async def get_version(
    request: Request, principal: Annotated[Principal, requires("prompts:read")], name: str, version: str
) -> dict[str, Any]:
    registry = _registry(request)
    try:
        found = await registry.get(name, version, tenant_id=principal.tenant_id)
        links = await registry.links(name, version, tenant_id=principal.tenant_id)
    except PromptError as exc:
        raise _problem(exc) from None
    return {**found.as_dict(), "links": links}


@router.get("/{name}/diff")
async def diff_versions(
    request: Request,
    principal: Annotated[Principal, requires("prompts:read")],
    name: str,
    old: Annotated[str, Query(alias="from", max_length=64)],
    new: Annotated[str, Query(alias="to", max_length=64)],
) -> dict[str, Any]:
    """A unified diff between two versions (template, variables, model settings)."""
    registry = _registry(request)
    try:
        a = await registry.get(name, old, tenant_id=principal.tenant_id)
        b = await registry.get(name, new, tenant_id=principal.tenant_id)
    except PromptError as exc:
        raise _problem(exc) from None
    return {"from": a.version, "to": b.version, "diff": diff(a, b)}


@router.put("/{name}/labels/{label}")
async def move_label(
    request: Request,
    principal: Annotated[Principal, requires("prompts:write")],
    name: str,
    label: str,
    body: Annotated[MoveLabel, Body()],
) -> dict[str, Any]:
    """Point a label of the caller's tenant at a version, or split it between versions (a canary)."""
    runner: Runner = request.app.state.runner
    if label in runner.project.config.prompts.protected_labels and "prompts:deploy" not in principal.scopes:
        await _hooks(request).audit(
            request, principal, "auth.denied", target=f"prompt {name} label {label}", outcome="denied"
        )
        raise Problem(
            403,
            "label_protected",
            "Forbidden",
            f"label {label!r} is protected: moving it needs the prompts:deploy scope",
        )
    if (body.version is None) == (body.rollout is None):
        raise Problem(
            422, "invalid_request", "Invalid request", "give either `version` or `rollout`, not both"
        )
    shares = (
        [Share(body.version, 100.0)]
        if body.version is not None
        else [Share(s.version, s.weight) for s in body.rollout or []]
    )
    try:
        moved = await _registry(request).move_label(
            name,
            label,
            shares,
            actor=principal.label,
            tenant_id=principal.tenant_id,
            sticky=body.sticky,
            reason=body.reason,
        )
    except PromptError as exc:
        raise _problem(exc) from None
    await _hooks(request).audit(
        request,
        principal,
        "config.deployed",
        target=f"prompt {name} label {label}",
        detail={
            "kind": "label_move",
            "rollout": [s.as_dict() for s in moved.rollout],
            "sticky": moved.sticky,
        },
    )
    return moved.as_dict()


@router.get("/{name}/stats")
async def prompt_stats(
    request: Request,
    principal: Annotated[Principal, requires("prompts:read")],
    name: str,
    hours: Annotated[float, Query(gt=0, le=24 * 90)] = 24 * 7,
) -> dict[str, Any]:
    """The caller's runs per version of the prompt: count, success rate, latency and cost."""
    stats = await _registry(request).stats(name, tenant_id=principal.tenant_id, since=timedelta(hours=hours))
    return {"name": name, "hours": hours, "versions": stats}


@releases_router.get("")
async def list_releases(
    request: Request, principal: Annotated[Principal, requires("admin")]
) -> dict[str, Any]:
    """The project's releases, newest first, and which is live (and since when)."""
    runner: Runner = request.app.state.runner
    if runner.database_url is None:
        raise Problem(
            503, "releases_unavailable", "Releases are off", "releases need storage (storage.enabled)"
        )
    async with ReleaseStore(runner.database_url) as store:
        items = await store.recent()
        live = await store.live_activation()
    return {
        "live": live.as_dict() if live is not None else None,
        "serving": runner.release,
        "releases": [r.as_dict() for r in items],
    }
