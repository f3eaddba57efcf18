"""Every route declares who may call it, and a route that declares nothing cannot be served.

    @router.get("/runs/{run_id}")
    async def get_run(principal: Annotated[Principal, requires("runs:read")], ...)

    @app.get("/livez", dependencies=[PUBLIC])

`requires(scope)` authenticates the caller (`keel.gateway.auth.Gateway`), checks the scope, and for
routes with an `{agent}` path parameter the agent's access list, then admits the request against
the rate limits. `check_routes(app)` runs when the app is built and refuses any `/v1` route (or any
other API route) without exactly one declaration: deny by default, and a route added later without
a policy fails at start-up and in the authorization matrix test, never silently open.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Annotated, Any, cast

from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from keel.api.problems import Problem
from keel.gateway.auth import Forbidden, Gateway, NotAuthenticated
from keel.gateway.keys import Scope
from keel.gateway.principal import Principal
from keel.runtime.result import RunResult

POLICY = "__keel_policy__"
"""The attribute that marks a dependency as a route's access policy: a scope, or None for public."""

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A Keel API key (keel_...) or a JWT access token from a configured issuer.",
)


def _problem_401(exc: NotAuthenticated) -> Problem:
    return Problem(
        401,
        "unauthenticated",
        "Not authenticated",
        str(exc),
        headers={"WWW-Authenticate": 'Bearer realm="keel"'},
    )


def requires(scope: Scope) -> Any:
    """A dependency (use as `Annotated[Principal, requires(scope)]`) that returns the caller."""

    async def authorized(
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        gateway: Gateway = request.app.state.gateway
        try:
            principal = await gateway.authenticate(request.headers.get("authorization"))
        except NotAuthenticated as exc:
            await _hooks(request).refused(request, exc)
            raise _problem_401(exc) from None
        request.state.principal = principal
        try:
            gateway.authorize(principal, scope)
            agent = request.path_params.get("agent")
            if isinstance(agent, str):
                gateway.check_agent(principal, agent)
        except Forbidden as exc:
            await _hooks(request).denied(request, principal, exc)
            raise Problem(403, exc.code, "Forbidden", str(exc)) from None
        await _hooks(request).admit(request, principal)
        return principal

    setattr(authorized, POLICY, scope)
    return Depends(authorized)


async def _public() -> None:
    return None


setattr(_public, POLICY, None)
PUBLIC = Depends(_public)
"""Route dependency of an endpoint anyone may call (health probes)."""


class RequestHooks:
    """What happens around authorization: audit entries for refusals and denials, rate limits.
    The base does nothing; the server's gateway installs its own (`app.state.request_hooks`)."""

    async def refused(self, request: Request, exc: NotAuthenticated) -> None:
        return None

    async def denied(self, request: Request, principal: Principal, exc: Forbidden) -> None:
        return None

    async def admit(self, request: Request, principal: Principal) -> None:
        """Raise a `Problem` (429) to refuse the request."""
        return None

    async def take_run_slot(
        self, principal: Principal, agent: str, user_id: str | None
    ) -> dict[str, Any] | None:
        """Before a run is queued: its concurrency slot (raise a `Problem` to refuse), or None."""
        return None

    async def give_back(self, limits: dict[str, Any] | None) -> None:
        """A slot taken by `take_run_slot` for a run that was not queued after all."""
        return None

    async def run_ended(self, request: dict[str, Any], result: RunResult) -> None:
        """A run ended: `request["limits"]` is what `take_run_slot` returned for it."""
        return None

    async def audit(
        self,
        request: Request,
        principal: Principal,
        action: str,
        *,
        target: str | None = None,
        outcome: str = "success",
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record a security-relevant action (key created, ...) in the audit log."""
        return None


_NO_HOOKS = RequestHooks()


def _hooks(request: Request) -> RequestHooks:
    hooks: RequestHooks = getattr(request.app.state, "request_hooks", _NO_HOOKS)
    return hooks


_MISSING = object()


def _policies(dependant: Dependant) -> Iterable[Scope | None]:
    for dependency in dependant.dependencies:
        policy = getattr(dependency.call, POLICY, _MISSING)
        if policy is not _MISSING:
            yield cast("Scope | None", policy)
        yield from _policies(dependency)


def route_policy(route: APIRoute) -> Scope | None:
    """The scope `route` requires (None: public). Raises if it declares none, or several."""
    found = list(_policies(route.dependant))
    if len(found) != 1:
        methods = ",".join(sorted(route.methods or ()))
        raise RuntimeError(
            f"route {methods} {route.path} must declare exactly one access policy "
            f"(requires(scope) or PUBLIC), found {len(found)}"
        )
    return found[0]


def api_routes(app: FastAPI) -> Iterator[tuple[str, APIRoute]]:
    """Every API route of `app` with its full path, those of included routers too (FastAPI keeps
    an included router as one entry of `app.routes`)."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            yield context.path or route.path, route


def check_routes(app: FastAPI) -> dict[str, Scope | None]:
    """Every API route's policy, keyed `METHOD path`; raises on a route without exactly one."""
    policies: dict[str, Scope | None] = {}
    for path, route in api_routes(app):
        policy = route_policy(route)
        for method in sorted(route.methods or ()):
            policies[f"{method} {path}"] = policy
    return policies
