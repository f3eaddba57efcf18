"""Passwordless dashboard sign-in with passkeys, over HTTP (`gateway.passkeys.enabled`).

Pages (plain HTML and JavaScript, from `keel/api/static/`):
- `GET /auth/sign-in`: a button that signs in with a passkey (no user name); `?next=/path` goes
  there afterwards (same-site paths only).
- `GET /auth/enroll?token=...`: a one-time enrolment link's page: it creates the user's passkey.

JSON endpoints (the pages call them; every POST needs `Content-Type: application/json` and an
`Origin` among `gateway.passkeys.origins`: that is the CSRF defence, since a cross-site form can
send neither, and a cross-site `fetch` with them is stopped by the browser's CORS preflight):
- `POST /auth/passkeys/register/options` `{token}` and `/register/verify` `{token, credential, name}`
- `POST /auth/passkeys/authenticate/options` `{}` and `/authenticate/verify` `{credential}`: sets the
  session cookie (`keel.gateway.sessions`) and answers with the user.
- `POST /auth/sign-out`: ends the session and clears the cookie.
- `GET /auth/me`: the signed-in user, or 401.
- `POST /v1/users/{user_id}/enrollment` (scope `admin`, the caller's tenant only): a new enrolment
  link for a user, as `keel users enroll` makes.

These routes are public as far as `keel.api.security` goes (the cookie, the enrolment token or the
passkey itself is the credential), except the enrolment link endpoint. Sign-ins are audited:
`auth.sign_in` on success, `auth.failed` with the refusal's reason otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import cache
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from keel.api.problems import Problem
from keel.api.security import PUBLIC, requires
from keel.config.gateway import PasskeysConfig, duration_seconds
from keel.config.project import Project
from keel.errors import UsageError
from keel.gateway.principal import Principal
from keel.gateway.sessions import (
    SESSION_COOKIE,
    clear_session_cookie,
    cookie_secure,
    set_session_cookie,
    sign_out,
    start_session,
    user_of_request,
)
from keel.gateway.webauthn import PasskeyCeremonies, PasskeyRefused, PasskeyUser, RelyingParty
from keel.store.audit import AuditEntry, AuditLog
from keel.store.identity import IdentityStore, UnknownUser, User
from keel.store.passkeys import ENROLLMENT_TTL, CreatedEnrollment, PasskeyRecord, PasskeyStore

log = logging.getLogger("keel.api.passkeys")

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; connect-src 'self'; "
    "style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


class IdentityUsers:
    """The identity store as the ceremonies' user directory."""

    def __init__(self, identity: IdentityStore) -> None:
        self.identity = identity

    async def passkey_user(self, user_id: str) -> PasskeyUser | None:
        user = await self.identity.get_user(user_id)
        return None if user is None else passkey_user(user)


def passkey_user(user: User) -> PasskeyUser:
    """A user as the authenticator shows it: the e-mail (or name) to pick, the name to display."""
    return PasskeyUser(
        id=user.id,
        tenant_id=user.tenant_id,
        name=user.email or user.name,
        display_name=user.name,
        disabled=not user.active,
    )


class Passkeys:
    """What the routes share in one server process (`app.state.passkeys`)."""

    def __init__(self, config: PasskeysConfig, database_url: str) -> None:
        self.config = config
        self.rp = RelyingParty.from_config(config)
        self.store = PasskeyStore(database_url)
        self.identity = IdentityStore(database_url)
        self.ceremonies = PasskeyCeremonies(self.rp, self.store, IdentityUsers(self.identity))
        self.session_ttl = duration_seconds(config.session_ttl)

    def enrollment_url(self, token: str, origin: str | None = None) -> str:
        base = origin if origin in self.rp.origins else self.rp.origins[0]
        return f"{base}/auth/enroll?token={token}"

    async def create_enrollment(
        self, user: User, *, created_by: str, ttl: timedelta = ENROLLMENT_TTL
    ) -> CreatedEnrollment:
        return await self.store.create_enrollment(user.id, user.tenant_id, ttl=ttl, created_by=created_by)

    async def aclose(self) -> None:
        await self.store.close()
        await self.identity.close()


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    runner = app.state.runner
    config: PasskeysConfig = runner.project.config.gateway.passkeys
    service = Passkeys(config, runner.database_url) if runner.database_url else None
    if service is None:
        log.warning("gateway.passkeys is enabled but storage is off: passkey routes answer 503")
    app.state.passkeys = service
    try:
        yield
    finally:
        if service is not None:
            await service.aclose()


router = APIRouter(tags=["passkeys"], lifespan=_lifespan)


def passkeys_router(project: Project) -> APIRouter:
    """The router, once `project`'s passkey configuration is known to work: `UsageError` (the
    server refuses to start) without storage, or with origins no browser would accept."""
    if not project.config.storage.enabled:
        raise UsageError("gateway.passkeys: passkeys need storage (storage.enabled)")
    RelyingParty.from_config(project.config.gateway.passkeys)
    return router


def _service(request: Request) -> Passkeys:
    service: Passkeys | None = getattr(request.app.state, "passkeys", None)
    if service is None:
        raise Problem(
            503, "passkeys_unavailable", "Passkeys are off", "passkeys need storage (storage.enabled)"
        )
    return service


async def same_origin_json(request: Request) -> None:
    """The CSRF check of every passkey POST: a JSON body, from one of the configured origins."""
    service = _service(request)
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise Problem(
            415, "unsupported_media_type", "Unsupported media type", "send Content-Type: application/json"
        )
    origin = request.headers.get("origin")
    if origin is None or origin not in service.rp.origins:
        raise Problem(
            403,
            "origin_not_allowed",
            "Forbidden",
            "this request's Origin is not one of gateway.passkeys.origins",
        )


_CSRF = Depends(same_origin_json)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterOptions(_Body):
    token: Annotated[str, Field(min_length=1, max_length=256)]


class RegisterVerify(_Body):
    token: Annotated[str, Field(min_length=1, max_length=256)]
    credential: dict[str, Any]
    name: Annotated[str | None, Field(max_length=100)] = None


class AuthenticateVerify(_Body):
    credential: dict[str, Any]


def _passkey_view(passkey: PasskeyRecord) -> dict[str, Any]:
    return {
        "id": passkey.id,
        "name": passkey.name,
        "user_id": passkey.user_id,
        "tenant_id": passkey.tenant_id,
        "aaguid": passkey.aaguid,
        "transports": list(passkey.transports),
        "created_at": passkey.created_at.isoformat(),
        "last_used_at": passkey.last_used_at.isoformat() if passkey.last_used_at else None,
    }


def _registration_problem(exc: PasskeyRefused) -> Problem:
    status = 410 if exc.reason in ("enrollment_used", "enrollment_expired") else 400
    return Problem(
        status, "registration_refused", "Passkey registration refused", str(exc), reason=exc.reason
    )


def _audit(
    request: Request,
    action: Any,
    outcome: Any,
    *,
    user_id: str | None,
    tenant_id: str | None,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Queue an audit entry through the server's audit log (when it has one)."""
    audit_log = getattr(request.app.state.request_hooks, "audit_log", None)
    if not isinstance(audit_log, AuditLog):
        return
    audit_log.submit(
        AuditEntry(
            action=action,
            principal=f"user:{user_id}" if user_id else "anonymous:unknown",
            tenant_id=tenant_id,
            outcome=outcome,
            target=target or f"{request.method} {request.url.path}",
            ip=request.client.host if request.client else None,
            detail={"method": "passkey", **(detail or {})},
        )
    )


# -- registration -----------------------------------------------------------------------------------


@router.post("/auth/passkeys/register/options", dependencies=[PUBLIC, _CSRF])
async def register_options(request: Request, body: Annotated[RegisterOptions, Body()]) -> dict[str, Any]:
    """Creation options for `navigator.credentials.create()`, for the user of an enrolment link."""
    try:
        return await _service(request).ceremonies.registration_options(body.token)
    except PasskeyRefused as exc:
        raise _registration_problem(exc) from None


@router.post("/auth/passkeys/register/verify", status_code=201, dependencies=[PUBLIC, _CSRF])
async def register_verify(request: Request, body: Annotated[RegisterVerify, Body()]) -> dict[str, Any]:
    """Verify the new credential and store it as the user's passkey; spends the enrolment link."""
    try:
        passkey = await _service(request).ceremonies.finish_registration(
            body.token, body.credential, name=body.name
        )
    except PasskeyRefused as exc:
        log.info("passkey registration refused: %s (%s)", exc.reason, exc.detail or "")
        detail = {"reason": exc.reason, "why": exc.detail} if exc.detail else {"reason": exc.reason}
        _audit(
            request,
            "passkey.registered",
            "failure",
            user_id=exc.user_id,
            tenant_id=exc.tenant_id,
            detail=detail,
        )
        raise _registration_problem(exc) from None
    _audit(
        request,
        "passkey.registered",
        "success",
        user_id=passkey.user_id,
        tenant_id=passkey.tenant_id,
        target=f"passkey:{passkey.id}",
        detail={"aaguid": passkey.aaguid},
    )
    return _passkey_view(passkey)


# -- sign-in and out --------------------------------------------------------------------------------


@router.post("/auth/passkeys/authenticate/options", dependencies=[PUBLIC, _CSRF])
async def authenticate_options(request: Request) -> dict[str, Any]:
    """Request options for `navigator.credentials.get()`: a fresh challenge, no user name."""
    return await _service(request).ceremonies.authentication_options()


@router.post("/auth/passkeys/authenticate/verify", dependencies=[PUBLIC, _CSRF])
async def authenticate_verify(request: Request, body: Annotated[AuthenticateVerify, Body()]) -> JSONResponse:
    """Verify the assertion; on success open a session (cookie) and answer with the user."""
    service = _service(request)
    try:
        signed_in = await service.ceremonies.finish_authentication(body.credential)
        user = await service.identity.get_user(signed_in.user.id, tenant_id=signed_in.user.tenant_id)
        if user is None:
            raise PasskeyRefused(
                "unknown_user", user_id=signed_in.user.id, tenant_id=signed_in.user.tenant_id
            )
        try:
            cookie = await start_session(service.identity, user, service.session_ttl)
        except UnknownUser:  # disabled between the check and the session
            raise PasskeyRefused("user_disabled", user_id=user.id, tenant_id=user.tenant_id) from None
    except PasskeyRefused as exc:
        detail = {"reason": exc.reason, "why": exc.detail} if exc.detail else {"reason": exc.reason}
        _audit(request, "auth.failed", "failure", user_id=exc.user_id, tenant_id=exc.tenant_id, detail=detail)
        raise Problem(401, "sign_in_failed", "Sign-in failed", str(exc)) from None
    _audit(
        request,
        "auth.sign_in",
        "success",
        user_id=user.id,
        tenant_id=user.tenant_id,
        target=f"passkey:{signed_in.passkey.id}",
        detail={"passkey": signed_in.passkey.id, "aaguid": signed_in.passkey.aaguid},
    )
    response = JSONResponse(_user_view(user), headers={"Cache-Control": "no-store"})
    origin = request.headers.get("origin", service.rp.origins[0])
    set_session_cookie(response, cookie, max_age=service.session_ttl, secure=cookie_secure(origin))
    return response


@router.post("/auth/sign-out", dependencies=[PUBLIC, _CSRF])
async def sign_out_route(request: Request) -> JSONResponse:
    """End this browser's session (if any) and clear its cookie."""
    service = _service(request)
    ended = await sign_out(service.identity, request.cookies.get(SESSION_COOKIE))
    response = JSONResponse({"signed_out": ended}, headers={"Cache-Control": "no-store"})
    origin = request.headers.get("origin", service.rp.origins[0])
    clear_session_cookie(response, secure=cookie_secure(origin))
    return response


@router.get("/auth/me", dependencies=[PUBLIC])
async def me(request: Request) -> JSONResponse:
    """The signed-in user of this browser's session cookie; 401 without a live session."""
    service = _service(request)
    user = await user_of_request(service.identity, request)
    if user is None:
        raise Problem(401, "not_signed_in", "Not signed in", "no live session: sign in at /auth/sign-in")
    body = {"id": user.id, "tenant_id": user.tenant_id, "name": user.name, "roles": list(user.roles)}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def _user_view(user: User) -> dict[str, Any]:
    return {"id": user.id, "tenant_id": user.tenant_id, "name": user.name, "roles": list(user.roles)}


# -- enrolment links for administrators -------------------------------------------------------------


@router.post("/v1/users/{user_id}/enrollment", status_code=201)
async def create_enrollment(
    request: Request, principal: Annotated[Principal, requires("admin")], user_id: str
) -> JSONResponse:
    """A one-time link (24 h) with which the user creates a passkey. Users of the caller's tenant
    only. Send it to the user alone: whoever opens it first can add a passkey to the account."""
    service = _service(request)
    user = await service.identity.get_user(user_id, tenant_id=principal.tenant_id)
    if user is None:
        raise Problem(404, "user_not_found", "Unknown user", f"no user {user_id!r}")
    if not user.active:
        raise Problem(409, "user_disabled", "User disabled", f"user {user_id!r} is disabled")
    link = await service.create_enrollment(user, created_by=principal.label)
    await request.app.state.request_hooks.audit(
        request, principal, "passkey.enrollment_created", target=f"user:{user.id}"
    )
    body = {
        "url": service.enrollment_url(link.token, request.headers.get("origin")),
        "user_id": user.id,
        "tenant_id": user.tenant_id,
        "enrollment_id": link.record.id,
        "expires_at": link.record.expires_at.isoformat(),
    }
    return JSONResponse(body, status_code=201, headers={"Cache-Control": "no-store"})


# -- pages ------------------------------------------------------------------------------------------


@cache
def _static(name: str) -> str:
    return resources.files("keel.api").joinpath("static").joinpath(name).read_text(encoding="utf-8")


@router.get("/auth/sign-in", dependencies=[PUBLIC], include_in_schema=False)
async def sign_in_page() -> Response:
    return Response(_static("sign-in.html"), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("/auth/enroll", dependencies=[PUBLIC], include_in_schema=False)
async def enroll_page() -> Response:
    return Response(_static("enroll.html"), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("/auth/passkeys.js", dependencies=[PUBLIC], include_in_schema=False)
async def pages_script() -> Response:
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
    return Response(_static("passkeys.js"), media_type="text/javascript; charset=utf-8", headers=headers)
