"""Reviewer notifications: the `keel.notify` workflow's body (see docs/approvals.md#notifying-reviewers).

When a tool call waits for approval, or a run is escalated to a person, Keel tells reviewers
through the channels `keel.yaml`'s `approvals:` configures: a signed webhook (`approvals.webhook`)
and email over SMTP (`approvals.email`). `ReviewerNotifier.deliver` is the body of a durable
workflow: each attempt of each channel is one checkpointed step, and between attempts the
workflow sleeps durably, so a process killed mid-way resumes the schedule where it was.

The channels are independent: each is retried with exponential backoff and jitter up to
`approvals.max_attempts`, and their attempts interleave by due time (a webhook that keeps failing
does not hold up the email). The schedule is computed from the checkpointed attempts alone (their
outcomes, delays and durations), never from the wall clock, so a replayed workflow takes the same
steps in the same order.

- Webhook: a JSON POST signed like run callbacks (`Keel-Timestamp`, `Keel-Signature`: see
  `keel.api.signing`), with `Keel-Delivery: <event>:<id>:webhook`, the same for every attempt of
  one notification (receivers drop one they have seen: delivery is at-least-once). 2xx is
  delivered; 408, 429, 5xx, no connection or no answer in time are retried; any other status
  (other 4xx, and 3xx: redirects are not followed) is final.
- Email: a plain-text message sent with `smtplib` in a thread (`security`: starttls, ssl or
  none; login when `username_env`/`password_env` are set), with a `Message-ID` that is the same
  for every attempt, so a mail system (or a reader) can drop duplicates. A 4xx reply, no
  connection or no answer is retried; a 5xx reply (refused sender or recipients, failed login,
  a server without STARTTLS when it is asked for) is final.

Secrets (the webhook's signing secret, the SMTP user name and password) are read once, at
start-up, from the environment or the project's files; a missing one raises UsageError naming
the field and the variable or file, never a value. Nothing logged or returned holds a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import smtplib
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx
from dbos import DBOS

from keel.api.callbacks import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    backoff_delay,
    header_safe,
    parse_retry_after,
    post_signed,
    resolve_secrets,
)
from keel.config.approvals import ApprovalsConfig, SmtpSettings
from keel.errors import UsageError

__all__ = [
    "EMAIL_STEP",
    "EVENTS",
    "WEBHOOK_STEP",
    "ReviewerNotifier",
    "Sleeper",
    "StepRunner",
    "approval_links",
    "build_email",
    "webhook_body",
]

log = logging.getLogger("keel.notify")

Event = Literal["approval.requested", "escalation.created"]
EVENTS: tuple[Event, ...] = ("approval.requested", "escalation.created")
Outcome = Literal["delivered", "gave_up", "failed"]

StepFn = Callable[[], Coroutine[Any, Any, dict[str, Any]]]
StepRunner = Callable[[str, StepFn], Awaitable[dict[str, Any]]]
"""Runs one attempt as a checkpointed step: `step(name, fn)` returns what `fn()` returns."""
Sleeper = Callable[[float], Awaitable[None]]
"""Waits between attempts (durably, in a workflow)."""

WEBHOOK_STEP = "keel.notify.webhook"
EMAIL_STEP = "keel.notify.email"
USER_AGENT = "Keel-Notify"
RETRYABLE_STATUSES = frozenset({408, 429})
INITIAL_DELAY = 2.0  # seconds before the first retry; doubles each attempt (with jitter)
MAX_DELAY = 600.0  # longest wait between two attempts of a channel
WEBHOOK_TIMEOUT = 10.0  # seconds for one webhook attempt, connection to answer
MAX_ARGS_CHARS = 20_000  # arguments shown in an email beyond this are cut
_MAX_ERROR_CHARS = 200
_RESERVED = ("type", "id", "run_id", "tenant_id", "agent")


async def _dbos_step(name: str, fn: StepFn) -> dict[str, Any]:
    result: dict[str, Any] = await DBOS.run_step_async({"name": name}, fn)
    return result


async def _dbos_sleep(seconds: float) -> None:
    await DBOS.sleep_async(seconds)


def approval_links(dashboard_url: str, approval_id: str) -> dict[str, str]:
    """Links for an approval request in the inbox at `dashboard_url`: the approval's page with
    the decision preselected, and the inbox itself."""
    base = dashboard_url.rstrip("/")
    page = f"{base}/{quote(approval_id, safe='')}"
    return {"approve": f"{page}?decision=approve", "reject": f"{page}?decision=reject", "inbox": base}


def _links(config: ApprovalsConfig, job: Mapping[str, Any]) -> dict[str, str] | None:
    """The job's `payload.links`, else the default links when `dashboard_url` is set."""
    given = job.get("payload", {}).get("links")
    if isinstance(given, dict):
        return {str(key): str(value) for key, value in given.items() if value}
    if config.dashboard_url is None:
        return None
    if job["event"] == "approval.requested":
        return approval_links(config.dashboard_url, str(job["id"]))
    return {"inbox": config.dashboard_url.rstrip("/")}


def webhook_body(config: ApprovalsConfig, job: Mapping[str, Any]) -> bytes:
    """The webhook's JSON body: `type`, `id`, `run_id`, `tenant_id`, `agent`, then the payload's
    fields (which cannot override the first five), with `links` filled in from `dashboard_url`
    when the payload has none."""
    payload = {key: value for key, value in job.get("payload", {}).items() if key not in _RESERVED}
    links = _links(config, job)
    if links is not None:
        payload["links"] = links
    body = {
        "type": job["event"],
        "id": job["id"],
        "run_id": job["run_id"],
        "tenant_id": job.get("tenant_id"),
        "agent": job["agent"],
        **payload,
    }
    return json.dumps(body, ensure_ascii=False, default=str).encode()


def delivery_id(job: Mapping[str, Any], channel: str) -> str:
    """`<event>:<id>:<channel>`: the same for every attempt of one notification."""
    return f"{header_safe(str(job['event']))}:{header_safe(str(job['id']))}:{channel}"


def message_id(job: Mapping[str, Any], sender: str) -> str:
    """A Message-ID that is the same for every attempt: `<keel.<event>.<id>@<sender's domain>>`
    (the id is hashed when it has characters a Message-ID cannot hold)."""
    item = str(job["id"])
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", item):
        item = hashlib.sha256(item.encode()).hexdigest()[:32]
    domain = sender.rpartition("@")[2].strip().strip(">") or "keel.invalid"
    if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", domain):
        domain = "keel.invalid"
    return f"<keel.{job['event']}.{item}@{domain}>"


def _one_line(value: Any, limit: int = 120) -> str:
    """`value` as text fit for a header or a one-line field: control characters become spaces."""
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", str(value)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pretty(value: Any, limit: int = MAX_ARGS_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=str)
    if len(text) > limit:
        text = text[:limit] + f"\n… ({len(text) - limit} more characters cut)"
    return text


_ON_TIMEOUT = {
    "reject": "the call is rejected",
    "approve": "the call is approved",
    "escalate": "the run is escalated to a person",
}


def build_email(config: ApprovalsConfig, settings: SmtpSettings, job: Mapping[str, Any]) -> EmailMessage:
    """The plain-text message for `job` (headers: Subject, From, To, Message-ID, Date,
    Auto-Submitted)."""
    payload: Mapping[str, Any] = job.get("payload", {})
    run_id, agent = _one_line(job["run_id"]), _one_line(job["agent"])
    links = _links(config, job) or {}
    lines: list[str] = []
    if job["event"] == "approval.requested":
        tool = _one_line(payload.get("tool", "a tool"), 80)
        subject = f"[Keel] Approval needed: {tool} in run {run_id} ({agent})"
        lines += [f"A call of the tool {tool} in run {run_id} of the agent {agent} waits for a decision.", ""]
        lines += ["Arguments:", *("  " + line for line in _pretty(payload.get("args", {})).splitlines()), ""]
        if payload.get("reason"):
            lines += [f"Reason: {_one_line(payload['reason'], 1000)}"]
        if payload.get("expires_at"):
            then = _ON_TIMEOUT.get(str(payload.get("on_timeout")), "")
            lines += [
                f"Decide by: {_one_line(payload['expires_at'])}" + (f" (after that, {then})" if then else "")
            ]
        lines += [""]
        for label, key in (("Approve", "approve"), ("Reject", "reject"), ("Inbox", "inbox")):
            if key in links:
                lines += [f"{label + ':':9}{links[key]}"]
    else:
        subject = f"[Keel] Run escalated: run {run_id} ({agent})"
        lines += [f"The run {run_id} of the agent {agent} was handed to a person.", ""]
        if payload.get("reason"):
            lines += [f"Reason: {_one_line(payload['reason'], 1000)}", ""]
        if payload.get("summary"):
            lines += ["Summary:", *("  " + line for line in _pretty(payload["summary"]).splitlines()), ""]
        for key, link in links.items():
            lines += [f"{key.capitalize() + ':':9}{link}"]
    lines += ["", f"Id: {_one_line(job['id'])}"]
    if job.get("tenant_id"):
        lines += [f"Tenant: {_one_line(job['tenant_id'])}"]
    message = EmailMessage()
    message["Subject"] = _one_line(subject, 200)
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message["Message-ID"] = message_id(job, settings.sender)
    message["Date"] = formatdate(usegmt=True)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n")
    return message


@dataclass
class _Channel:
    name: str
    step: str
    attempt: Callable[[int], Awaitable[dict[str, Any]]]
    attempts: int = 0
    due: float = 0.0  # on the workflow's own clock (seconds of checkpointed work and sleep)
    result: dict[str, Any] | None = None


class ReviewerNotifier:
    """Delivers reviewer notifications over the configured channels (see the module's doc).

    `tls` replaces the system's trust store for SMTP (a private CA, a test certificate);
    `initial_delay`, `max_delay` and `webhook_timeout` are in seconds.
    """

    def __init__(
        self,
        config: ApprovalsConfig,
        root: Path,
        environ: Mapping[str, str],
        *,
        tls: ssl.SSLContext | None = None,
        initial_delay: float = INITIAL_DELAY,
        max_delay: float = MAX_DELAY,
        webhook_timeout: float = WEBHOOK_TIMEOUT,
    ) -> None:
        self.config = config
        self.initial_delay, self.max_delay, self.webhook_timeout = initial_delay, max_delay, webhook_timeout
        self._tls = tls
        self._client: httpx.AsyncClient | None = None
        problems: list[str] = []
        self._webhook_secrets: tuple[str, ...] = ()
        if config.webhook is not None:
            field = "secret_env" if config.webhook.secret_env is not None else "secret_file"
            self._webhook_secrets = resolve_secrets(
                root,
                environ,
                problems,
                f"approvals.webhook.{field}",
                secret_env=config.webhook.secret_env,
                secret_file=config.webhook.secret_file,
            )
        self._login: tuple[str, str] | None = None
        email = config.email
        if email is not None and (email.username_env is not None or email.password_env is not None):
            if email.username_env is None or email.password_env is None:
                problems.append(
                    "approvals.email: set both username_env and password_env to log in, or neither"
                )
            else:
                user = resolve_secrets(
                    root,
                    environ,
                    problems,
                    "approvals.email.username_env",
                    secret_env=email.username_env,
                    secret_file=None,
                )
                password = resolve_secrets(
                    root,
                    environ,
                    problems,
                    "approvals.email.password_env",
                    secret_env=email.password_env,
                    secret_file=None,
                )
                if user and password:
                    self._login = (user[0], password[0])
        if problems:
            raise UsageError(
                "reviewer notifications cannot be used:\n" + "\n".join(f"  {p}" for p in problems)
            )
        # Masked in what is logged or returned (the user name is not a secret).
        self._hidden = (*self._webhook_secrets, *(self._login[1:] if self._login else ()))

    def __repr__(self) -> str:
        channels = [
            name for name, on in (("webhook", self.config.webhook), ("email", self.config.email)) if on
        ]
        return f"ReviewerNotifier(channels={channels})"

    @property
    def enabled(self) -> bool:
        """Whether any channel is configured."""
        return self.config.webhook is not None or self.config.email is not None

    async def start(self) -> None:
        if self._client is None and self.config.webhook is not None:
            self._client = httpx.AsyncClient(follow_redirects=False)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def deliver(
        self, job: dict[str, Any], *, step: StepRunner | None = None, sleep: Sleeper | None = None
    ) -> dict[str, Any]:
        """Notify reviewers of `job` on every configured channel; the result per channel:
        `{"outcome": "delivered" | "gave_up" | "failed", "attempts": n, "status_code": ...,
        "error": ...}` (`status_code` is the HTTP status or the SMTP reply code of the last
        attempt, None when there was no answer)."""
        if job.get("event") not in EVENTS:
            raise ValueError(f"unknown notification event {job.get('event')!r}; expected one of {EVENTS}")
        run_step = step or _dbos_step
        pause = sleep or _dbos_sleep
        channels: list[_Channel] = []
        if self.config.webhook is not None:
            body = webhook_body(self.config, job)

            async def webhook(number: int) -> dict[str, Any]:
                return await self._webhook_attempt(job, body, number)

            channels.append(_Channel("webhook", WEBHOOK_STEP, webhook))
        if self.config.email is not None:

            async def mail(number: int) -> dict[str, Any]:
                return await self._email_attempt(job, number)

            channels.append(_Channel("email", EMAIL_STEP, mail))
        clock = 0.0
        while pending := [channel for channel in channels if channel.result is None]:
            channel = min(pending, key=lambda c: c.due)  # the first listed on a tie: deterministic
            if channel.due > clock:
                await pause(channel.due - clock)
                clock = channel.due
            channel.attempts += 1
            number = channel.attempts

            async def one(channel: _Channel = channel, number: int = number) -> dict[str, Any]:
                return await channel.attempt(number)

            result = await run_step(channel.step, one)
            clock += result["duration_ms"] / 1000
            if result["outcome"] == "retry":
                channel.due = clock + result["retry_in"]
            else:
                channel.result = {
                    "outcome": result["outcome"],
                    "attempts": number,
                    "status_code": result["status_code"],
                    "error": result["error"],
                }
        return {channel.name: channel.result for channel in channels}

    # -- one attempt of each channel (each runs as a step) ---------------------------------------

    def _classify(
        self, number: int, *, delivered: bool, transient: bool, retry_after: float | None = None
    ) -> tuple[str, float | None]:
        """The attempt's outcome (`retry` or final) and, for `retry`, the seconds to wait."""
        if delivered:
            return "delivered", None
        if not transient:
            return "failed", None
        if number >= self.config.max_attempts:
            return "gave_up", None
        return "retry", backoff_delay(number, self.initial_delay, self.max_delay, retry_after)

    async def _webhook_attempt(self, job: Mapping[str, Any], body: bytes, number: int) -> dict[str, Any]:
        webhook = self.config.webhook
        assert webhook is not None
        if self._client is None:
            raise RuntimeError("ReviewerNotifier.start() was not called")
        headers = {
            "User-Agent": USER_AGENT,
            DELIVERY_HEADER: delivery_id(job, "webhook"),
            ATTEMPT_HEADER: str(number),
        }
        posted = await post_signed(
            self._client,
            webhook.url,
            body,
            secrets=self._webhook_secrets,
            headers=headers,
            limit_s=self.webhook_timeout,
        )
        status = posted.status_code
        outcome, retry_in = self._classify(
            number,
            delivered=status is not None and 200 <= status < 300,
            transient=status is None or status in RETRYABLE_STATUSES or 500 <= status < 600,
            retry_after=parse_retry_after(posted.retry_after),
        )
        error = None if posted.error is None else self._scrub(posted.error)
        self._log(job, "webhook", number, outcome, retry_in, error)
        return {
            "outcome": outcome,
            "retry_in": retry_in,
            "status_code": status,
            "error": error,
            "duration_ms": posted.duration_ms,
        }

    async def _email_attempt(self, job: Mapping[str, Any], number: int) -> dict[str, Any]:
        settings = self.config.email
        assert settings is not None
        message = build_email(self.config, settings, job)
        started = time.perf_counter()
        code: int | None = None
        error: str | None = None
        delivered = transient = False
        try:
            refused = await asyncio.to_thread(self._send, settings, message)
            code, delivered = 250, True
            if refused:
                error = f"{len(refused)} of {len(settings.recipients)} recipients refused: " + ", ".join(
                    f"{address} ({reply[0]})" for address, reply in sorted(refused.items())
                )
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted(reply[0] for reply in exc.recipients.values())
            code = codes[0] if codes else None
            transient = any(400 <= c < 500 for c in codes)
            error = "every recipient was refused: " + ", ".join(
                f"{address} ({reply[0]})" for address, reply in sorted(exc.recipients.items())
            )
        except smtplib.SMTPResponseException as exc:  # refused sender, data or login
            code = exc.smtp_code
            transient = 400 <= code < 500
            text = (
                exc.smtp_error.decode("utf-8", "replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            error = f"SMTP {code} {_one_line(text, _MAX_ERROR_CHARS)}".strip()
        except smtplib.SMTPNotSupportedError as exc:  # no STARTTLS or AUTH on the server: never go on without
            error = f"SMTPNotSupportedError: {_one_line(exc, _MAX_ERROR_CHARS)}"
        except (smtplib.SMTPException, OSError) as exc:  # no connection, disconnected, timeout, TLS
            transient = True
            error = f"{type(exc).__name__}: {_one_line(exc, _MAX_ERROR_CHARS)}"
        duration_ms = (time.perf_counter() - started) * 1000
        outcome, retry_in = self._classify(number, delivered=delivered, transient=transient)
        if error is not None:
            error = self._scrub(error)
        if outcome != "delivered" or error is not None:
            self._log(job, "email", number, outcome, retry_in, error)
        return {
            "outcome": outcome,
            "retry_in": retry_in,
            "status_code": code,
            "error": error,
            "duration_ms": duration_ms,
        }

    def _send(self, settings: SmtpSettings, message: EmailMessage) -> dict[str, tuple[int, bytes]]:
        """One SMTP session (blocking: run in a thread); the recipients refused, if some were."""
        context = self._tls or ssl.create_default_context()
        client: smtplib.SMTP
        if settings.security == "ssl":
            client = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout, context=context)
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        try:
            client.ehlo()
            if settings.security == "starttls":
                client.starttls(context=context)  # SMTPNotSupportedError when not offered: no plain fallback
                client.ehlo()
            if self._login is not None:
                client.login(*self._login)
            refused = client.send_message(
                message, from_addr=settings.sender, to_addrs=list(settings.recipients)
            )
            with contextlib.suppress(smtplib.SMTPException, OSError):  # sent: a failed QUIT changes nothing
                client.quit()
            return {address: (reply[0], reply[1]) for address, reply in refused.items()}
        finally:
            client.close()

    def _scrub(self, text: str) -> str:
        for secret in self._hidden:
            text = text.replace(secret, "***")
        return text

    def _log(
        self,
        job: Mapping[str, Any],
        channel: str,
        number: int,
        outcome: str,
        retry_in: float | None,
        error: str | None,
    ) -> None:
        what = f"{job['event']} {job['id']} (run {job['run_id']})"
        if outcome == "retry":
            log.warning(
                "reviewer %s for %s: attempt %d of %d failed: %s; next attempt in %.1fs",
                channel,
                what,
                number,
                self.config.max_attempts,
                error,
                retry_in or 0.0,
            )
        elif outcome == "delivered":
            log.warning("reviewer %s for %s delivered with a problem: %s", channel, what, error)
        else:
            verdict = "gave up after" if outcome == "gave_up" else "failed for good at"
            log.error("reviewer %s for %s %s attempt %d: %s", channel, what, verdict, number, error)
