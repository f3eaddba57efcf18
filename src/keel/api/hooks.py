"""The server's request hooks: rate limits on every authorized request, and audit entries for
refused credentials, denied permissions, refused rate limits and key changes.

Audit entries are queued (`AuditLog.submit`): a request never waits for, nor fails because of,
the audit log's database write.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import Request

from keel.api.problems import Problem
from keel.api.security import RequestHooks
from keel.gateway.auth import Forbidden, NotAuthenticated
from keel.gateway.principal import Principal
from keel.gateway.ratelimit import RateLimiter, Refusal
from keel.runtime.result import RunResult
from keel.store.audit import AuditEntry, AuditLog

log = logging.getLogger("keel.gateway")


def subjects_of(principal: Principal, agent: str | None) -> dict[str, str]:
    """What the rate limits count for this caller: its credential (`key`: an API key's prefix, or
    the principal for a token), user, tenant and, on agent routes, the agent."""
    subjects = {"key": principal.key_prefix or principal.label, "tenant": principal.tenant_id}
    if principal.user_id is not None:
        subjects["user"] = principal.user_id
    if agent is not None:
        subjects["agent"] = agent
    return subjects


def refusal_problem(refusal: Refusal) -> Problem:
    """429 naming the limit (or 503 when the limiter itself is unavailable), with Retry-After."""
    headers = {"Retry-After": refusal.retry_after_header}
    if refusal.unavailable:
        return Problem(
            503,
            "rate_limiter_unavailable",
            "Rate limiter unavailable",
            refusal.message,
            headers=headers,
            limit=refusal.limit,
        )
    return Problem(
        429,
        "rate_limited",
        "Too many requests",
        refusal.message,
        headers=headers,
        limit=refusal.limit,
        per=refusal.per,
        retry_after=round(refusal.retry_after, 3),
    )


class ServerHooks(RequestHooks):
    def __init__(self, *, audit: AuditLog | None, limiter: RateLimiter | None) -> None:
        self.audit_log = audit
        self.limiter = limiter

    def _record(
        self,
        request: Request,
        action: Any,
        principal: str,
        tenant_id: str | None,
        outcome: Any,
        *,
        target: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        if self.audit_log is None:
            return
        self.audit_log.submit(
            AuditEntry(
                action=action,
                principal=principal,
                tenant_id=tenant_id,
                outcome=outcome,
                target=target or f"{request.method} {request.url.path}",
                ip=request.client.host if request.client else None,
                detail=detail or {},
            )
        )

    async def refused(self, request: Request, exc: NotAuthenticated) -> None:
        if exc.reason == "missing_credentials":
            return  # a probe without credentials is not a failed sign-in
        detail = {"reason": exc.reason, "why": exc.detail} if exc.detail else {"reason": exc.reason}
        self._record(request, "auth.failed", "anonymous:unknown", None, "failure", detail=detail)

    async def denied(self, request: Request, principal: Principal, exc: Forbidden) -> None:
        self._record(
            request, "auth.denied", principal.label, principal.tenant_id, "denied", detail={"code": exc.code}
        )

    async def admit(self, request: Request, principal: Principal) -> None:
        if self.limiter is None:
            return
        agent = request.path_params.get("agent")
        refusal = await self.limiter.hit(subjects_of(principal, agent if isinstance(agent, str) else None))
        if refusal is not None:
            self._record(
                request,
                "rate_limit.refused",
                principal.label,
                principal.tenant_id,
                "denied",
                detail={"limit": refusal.limit, "per": refusal.per},
            )
            raise refusal_problem(refusal)

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
        self._record(
            request, action, principal.label, principal.tenant_id, outcome, target=target, detail=detail
        )

    async def take_run_slot(
        self, principal: Principal, agent: str, user_id: str | None
    ) -> dict[str, Any] | None:
        """A slot of every applicable `concurrent_runs` limit, or a 429. Returns what the run
        carries until it ends (`Submission.limits`)."""
        if self.limiter is None:
            return None
        subjects = subjects_of(principal, agent)
        if user_id is not None:
            subjects["user"] = user_id  # the run's user: a service's end user counts as that user
        lease = uuid.uuid4().hex
        refusal = await self.limiter.acquire_run(subjects, lease)
        if refusal is not None:
            raise refusal_problem(refusal)
        return {"subjects": subjects, "lease": lease}

    async def give_back(self, limits: dict[str, Any] | None) -> None:
        if self.limiter is not None and limits is not None:
            await self.limiter.release_run(limits["subjects"], limits["lease"])

    async def run_ended(self, request: dict[str, Any], result: RunResult) -> None:
        """`DurableRuns.on_ended`: free the run's slot and count its tokens (in whichever process
        ran it: with Redis, the API process's slot is released by the worker)."""
        limits = request.get("limits")
        if self.limiter is None or not isinstance(limits, dict):
            return
        await self.limiter.release_run(limits["subjects"], limits["lease"])
        await self.limiter.add_tokens(limits["subjects"], result.input_tokens + result.output_tokens)

    def stats(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.limiter is not None:
            body["rate_limits"] = self.limiter.stats()
        if self.audit_log is not None:
            body["audit"] = {"dropped": self.audit_log.dropped}
        return body

    async def aclose(self) -> None:
        if self.limiter is not None:
            await self.limiter.aclose()
        if self.audit_log is not None:
            await self.audit_log.close()
