"""The built-in OAuth2 authorization server over HTTP (when `gateway.issuer.enabled`). See
docs/oauth.md; the protocol is `keel.gateway.oauth.server`.

    GET  /.well-known/oauth-authorization-server   RFC 8414 metadata
    GET  /.well-known/openid-configuration         the same document (for OIDC discovery clients)
    GET  /oauth/jwks                                the public signing keys
    POST /oauth/token                               client_credentials, authorization_code, refresh_token
    GET  /oauth/authorize                           authorization code + PKCE, for the signed-in user
    POST /oauth/revoke                              RFC 7009

Every route is `PUBLIC` for the gateway: the token and revocation endpoints authenticate the client
themselves (RFC 6749 2.3), the authorization endpoint the user, by the session cookie.

Errors of the token and revocation endpoints are RFC 6749 JSON (`{"error": "invalid_grant", ...}`),
which OAuth clients expect; those of the authorization endpoint go back to the client's redirect
URI when it is known to be the client's, and are problem documents otherwise. Without a signed-in
user, /oauth/authorize answers 302 to `/auth/sign-in?next=<this request's path and query>` when
passkeys are enabled (the sign-in page), else 401 problem+json `sign_in_required`.

Audit: an issued token is `auth.sign_in` (principal `service:<client_id>` or `user:<id>`); a token
request refused for bad client credentials, a bad, used or expired code or refresh token, or a
grant the client may not use is `auth.failed`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from keel.api.problems import Problem
from keel.api.security import PUBLIC
from keel.config.gateway import GatewayConfig
from keel.config.project import Project
from keel.errors import UsageError
from keel.gateway.auth import Gateway
from keel.gateway.oauth.crypto import signing_secret
from keel.gateway.oauth.server import KeelOAuthRequest, OAuthServer, Outcome
from keel.gateway.oauth.verifier import IssuerVerifier
from keel.gateway.sessions import user_of_request
from keel.store.audit import AuditEntry
from keel.store.identity import IdentityStore

log = logging.getLogger("keel.gateway.oauth")

MAX_FORM_BYTES = 64 * 1024
SIGN_IN_PATH = "/auth/sign-in"

# Refused token requests that are about credentials (the audit log's auth.failed).
_CREDENTIAL_ERRORS = frozenset({"invalid_client", "invalid_grant", "unauthorized_client"})


def check_issuer_url(url: str) -> None:
    """The issuer must be https, except on localhost or a loopback address (development):
    OAuth2 over plain http elsewhere would hand out secrets in clear."""
    parts = urlsplit(url)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme != "https" and not loopback:
        raise UsageError(
            f"gateway.issuer.issuer: {url!r} must be an https URL (plain http only on localhost or "
            "127.0.0.1, for development)"
        )


def oauth_router(project: Project, database_url: str | None = None) -> APIRouter:
    """The authorization server's routes for `project` (its `gateway.issuer` enabled). Checks the
    configuration now, so a server that cannot issue tokens does not start: UsageError naming the
    setting."""
    from keel.store import resolve_database_url

    config: GatewayConfig = project.config.gateway
    issuer = config.issuer
    if issuer.issuer is None:
        raise UsageError("gateway.issuer.issuer: required when the built-in issuer is enabled")
    check_issuer_url(issuer.issuer)
    storage = project.config.storage
    if database_url is None and storage.enabled:
        database_url = resolve_database_url(storage.url, project.root, os.environ)
    if database_url is None:
        raise UsageError("gateway.issuer: the built-in issuer needs storage (storage.enabled)")
    secret = signing_secret(issuer, os.environ)
    server = OAuthServer(config, IdentityStore(database_url), secret=secret)
    sign_in_redirect = config.passkeys.enabled

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Housekeeping once per start (after the migrations): expired codes, refresh-token families,
        # deny-list entries and sessions. A failure is logged; the server starts all the same.
        try:
            purged = await server.store.purge_expired()
            if purged:
                log.info("oauth: purged %d expired codes, tokens and sessions", purged)
        except SQLAlchemyError as exc:
            log.warning("oauth: could not purge expired codes, tokens and sessions: %s", exc)
        try:
            yield
        finally:
            await server.aclose()

    router = APIRouter(tags=["oauth"], lifespan=lifespan)

    @router.get("/.well-known/oauth-authorization-server", dependencies=[PUBLIC])
    async def authorization_server_metadata() -> dict[str, Any]:
        """RFC 8414 authorization server metadata."""
        return await server.metadata()

    @router.get("/.well-known/openid-configuration", dependencies=[PUBLIC])
    async def openid_configuration() -> dict[str, Any]:
        """The same metadata, where OpenID Connect discovery looks for it (Keel issues no ID tokens)."""
        return await server.metadata()

    @router.get("/oauth/jwks", dependencies=[PUBLIC])
    async def jwks() -> Response:
        """The public keys that verify this server's access tokens."""
        return JSONResponse(
            await server.jwks(),
            headers={"Cache-Control": "public, max-age=60"},
            media_type="application/jwk-set+json",
        )

    @router.post("/oauth/token", dependencies=[PUBLIC])
    async def token(request: Request) -> Response:
        """Access tokens: grant_type client_credentials, authorization_code (with code_verifier) or
        refresh_token; client authentication by HTTP Basic or client_id/client_secret form fields
        (public clients: client_id only)."""
        oauth_request = await _parse(request, server.issuer)
        outcome = await server.token(oauth_request)
        _forget_revoked(request, server, outcome)
        _audit_token(request, outcome)
        return _response(outcome)

    @router.post("/oauth/revoke", dependencies=[PUBLIC])
    async def revoke(request: Request) -> Response:
        """RFC 7009: revoke a refresh token (and its family) or an access token."""
        oauth_request = await _parse(request, server.issuer)
        outcome = await server.revoke(oauth_request)
        _forget_revoked(request, server, outcome)
        if outcome.error in _CREDENTIAL_ERRORS:
            _audit_failure(request, outcome, "revoke")
        return _response(outcome)

    @router.get("/oauth/authorize", dependencies=[PUBLIC])
    async def authorize(request: Request) -> Response:
        """Authorization code with PKCE (S256) for the signed-in user: redirects to the client's
        redirect_uri with `code` and `state`, or with an error."""
        oauth_request = await _parse(request, server.issuer)
        user = await user_of_request(server.store, request)
        outcome = await server.authorize(oauth_request, user)
        if outcome.sign_in:
            if sign_in_redirect:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return Response(
                    status_code=302,
                    headers={
                        "Location": f"{SIGN_IN_PATH}?next={quote(target, safe='')}",
                        "Cache-Control": "no-store",
                    },
                )
            raise Problem(
                401,
                "sign_in_required",
                "Sign-in required",
                "sign in first: /oauth/authorize needs a signed-in user (the keel_session cookie)",
            )
        if outcome.status == 302:
            return _response(outcome)
        body = outcome.body if isinstance(outcome.body, dict) else {}
        raise Problem(
            outcome.status if outcome.status >= 400 else 400,
            "invalid_authorization_request",
            "Invalid authorization request",
            str(body.get("error_description") or body.get("error") or "invalid request"),
            error=body.get("error"),
        )

    return router


async def _parse(request: Request, issuer: str) -> KeelOAuthRequest:
    """The request for Authlib: query parameters and, for POST, the urlencoded form."""
    query = parse_qs(request.url.query, keep_blank_values=True)
    form: dict[str, list[str]] = {}
    if request.method == "POST":
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise Problem(413, "request_too_large", "Request too large", f"at most {MAX_FORM_BYTES} bytes")
        if body and content_type != "application/x-www-form-urlencoded":
            raise Problem(
                415,
                "unsupported_media_type",
                "Unsupported media type",
                "OAuth2 requests are application/x-www-form-urlencoded (RFC 6749)",
            )
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise Problem(400, "invalid_request", "Invalid request", "the form is not UTF-8") from None
    uri = issuer + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return KeelOAuthRequest(request.method, uri, request.headers, query=query, form=form)


def _response(outcome: Outcome) -> Response:
    headers = dict(outcome.headers)
    if isinstance(outcome.body, dict):
        headers.pop("Content-Type", None)
        return JSONResponse(outcome.body, status_code=outcome.status, headers=headers)
    return Response(outcome.body or b"", status_code=outcome.status, headers=headers)


def _forget_revoked(request: Request, server: OAuthServer, outcome: Outcome) -> None:
    """Access tokens revoked by this request are refused at once by this process (the deny list in
    the database reaches the other processes within `gateway.key_cache` seconds)."""
    gateway: Gateway | None = getattr(request.app.state, "gateway", None)
    verifiers = [server.verifier, gateway.jwt if gateway is not None else None]
    for verifier in verifiers:
        if isinstance(verifier, IssuerVerifier):
            for jti, expires_at in outcome.revoked:
                verifier.remember_revoked(jti, expires_at)


def _submit(request: Request, entry: AuditEntry) -> None:
    """Queue an audit entry on the server's audit log (`ServerHooks.audit_log`), if it has one."""
    hooks = getattr(request.app.state, "request_hooks", None)
    audit_log = getattr(hooks, "audit_log", None)
    if audit_log is not None:
        audit_log.submit(entry)


def _principal_of(outcome: Outcome) -> tuple[str, str | None]:
    if outcome.user is not None:
        return f"user:{outcome.user.id}", outcome.user.tenant_id
    if outcome.client is not None:
        return f"service:{outcome.client.id}", outcome.client.tenant_id
    return "anonymous:unknown", None


def _audit_token(request: Request, outcome: Outcome) -> None:
    if outcome.status == 200:
        principal, tenant_id = _principal_of(outcome)
        detail: dict[str, Any] = {"grant_type": outcome.grant_type, "scope": outcome.scope or ""}
        if outcome.client is not None:
            detail["client_id"] = outcome.client.id
        _submit(
            request,
            AuditEntry(
                action="auth.sign_in",
                principal=principal,
                tenant_id=tenant_id,
                outcome="success",
                target="POST /oauth/token",
                ip=request.client.host if request.client else None,
                detail=detail,
            ),
        )
    elif outcome.error in _CREDENTIAL_ERRORS:
        _audit_failure(request, outcome, "token")


def _audit_failure(request: Request, outcome: Outcome, endpoint: str) -> None:
    client = outcome.client
    detail: dict[str, Any] = {"error": outcome.error, "grant_type": outcome.grant_type}
    if outcome.failure:
        detail["reason"] = outcome.failure
    if client is not None:
        detail["client_id"] = client.id
    _submit(
        request,
        AuditEntry(
            action="auth.failed",
            principal=f"service:{client.id}" if client is not None else "anonymous:unknown",
            tenant_id=client.tenant_id if client is not None else None,
            outcome="failure",
            target=f"POST /oauth/{endpoint}",
            ip=request.client.host if request.client else None,
            detail={k: v for k, v in detail.items() if v is not None},
        ),
    )


__all__ = ["check_issuer_url", "oauth_router"]
