"""Callback delivery: which URLs a run may call back, and one signed delivery attempt.

A run's `callback_url` must lie under one of `server.callbacks.endpoints` (deny unless allowed):
Keel POSTs to URLs that API clients choose, so without the allow-list any client could make the
server call into its private network. Each endpoint has its own signing secret, read once at
start-up (`CallbackEndpoints.from_config`) so a missing secret stops the server, not a delivery.

Matching compares parsed URLs, not strings: scheme and host case-insensitively, an explicit
default port equal to none (`https://h:443/` is `https://h/`), and the path as a prefix on a
segment boundary (`/keel` allows `/keel` and `/keel/x`, not `/keelx`; `/keel/` allows what starts
with it). The longest matching endpoint wins. URLs that a server could resolve differently from
this comparison are refused: credentials (`user:pass@`), fragments, `.` or `..` segments (also
percent-encoded), encoded slashes and backslashes.

`attempt_delivery` makes one attempt and never raises for anything the receiver does: it answers
with an `AttemptResult` whose outcome is `delivered` (2xx), `retry` (408, 409, 425, 429, 5xx, no
connection, no answer in time), `gave_up` (the same on the last allowed attempt) or `failed`
(another 4xx, or a 3xx: redirects are not followed, since a redirect could lead anywhere). The
durable workflow that calls it sleeps `retry_in` seconds between attempts; each attempt signs the
body afresh, so a late retry is not refused as a replay by the receiver's clock check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, unquote, urlsplit

import httpx
from sqlalchemy.exc import DBAPIError

from keel.api.signing import signature_headers
from keel.config.schema import CallbacksConfig
from keel.errors import UsageError
from keel.store.callbacks import CallbackAttempt, CallbackLog, CallbackOutcome

log = logging.getLogger("keel.api")

DELIVERY_HEADER = "Keel-Delivery"
ATTEMPT_HEADER = "Keel-Attempt"
USER_AGENT = "Keel-Callbacks"
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})
JITTER = 0.2  # up to this fraction is taken off each backoff delay, so retries spread out
_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_DRAIN_BYTES = 64 * 1024  # read this much of a response so the connection can be reused
_MAX_ERROR_CHARS = 200


class CallbackUrlRefused(UsageError):
    """A callback URL is not allowed: not under a configured endpoint, or ambiguous."""


@dataclass(frozen=True)
class _Target:
    """A URL reduced to what matching compares."""

    scheme: str
    host: str
    port: int
    path: str


def _target(url: str) -> _Target:
    """Parse `url` for matching; CallbackUrlRefused says why it cannot be used."""
    if any(char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F for char in url):
        raise CallbackUrlRefused("the URL contains whitespace or control characters")
    if "#" in url:
        raise CallbackUrlRefused("the URL must not have a fragment (#...)")
    try:
        parts = urlsplit(url)
        explicit_port = parts.port
    except ValueError:
        raise CallbackUrlRefused("the URL is not valid (bad port or brackets)") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise CallbackUrlRefused("the URL must start with http:// or https://")
    if "@" in parts.netloc:
        raise CallbackUrlRefused("the URL must not carry credentials (user:password@)")
    if not parts.hostname:
        raise CallbackUrlRefused("the URL has no host")
    path = parts.path or "/"
    decoded = unquote(path)
    if "%2f" in path.lower() or "%5c" in path.lower() or "\\" in decoded:
        raise CallbackUrlRefused("the URL's path must not contain encoded slashes or backslashes")
    if any(segment in (".", "..") for segment in decoded.split("/")):
        raise CallbackUrlRefused("the URL's path must not contain . or .. segments")
    port = explicit_port if explicit_port is not None else _DEFAULT_PORTS[scheme]
    return _Target(scheme, parts.hostname.lower(), port, path)


def _under(prefix: _Target, target: _Target) -> bool:
    if (prefix.scheme, prefix.host, prefix.port) != (target.scheme, target.host, target.port):
        return False
    if prefix.path.endswith("/"):
        return target.path.startswith(prefix.path)
    return target.path == prefix.path or target.path.startswith(prefix.path + "/")


@dataclass(frozen=True)
class ResolvedEndpoint:
    """An allowed callback destination with its signing secrets, newest first.

    The secrets are for `signature_headers`; `repr` never shows them (nor does an error message).
    """

    url: str
    secrets: tuple[str, ...] = field(repr=False)
    _prefix: _Target = field(repr=False, compare=False)

    def __repr__(self) -> str:
        return f"ResolvedEndpoint(url={self.url!r}, secrets=<{len(self.secrets)} hidden>)"

    def covers(self, url: str) -> bool:
        """Whether `url` lies under this endpoint (False for a refused URL)."""
        try:
            return _under(self._prefix, _target(url))
        except CallbackUrlRefused:
            return False


class CallbackEndpoints:
    """The allowed callback destinations, with their secrets resolved."""

    def __init__(self, endpoints: Sequence[ResolvedEndpoint]) -> None:
        # Longest path first: the first endpoint that covers a URL is the most specific one.
        self.endpoints = tuple(sorted(endpoints, key=lambda e: len(e._prefix.path), reverse=True))

    @classmethod
    def from_config(
        cls, config: CallbacksConfig, project_root: Path, environ: Mapping[str, str]
    ) -> CallbackEndpoints:
        """Resolve every endpoint's secrets now. UsageError lists every endpoint that cannot sign
        (variable unset or empty, file unreadable or empty) or whose URL is unusable; messages
        name the endpoint, the variable or the file, never a secret's value."""
        problems: list[str] = []
        resolved: list[ResolvedEndpoint] = []
        seen: dict[_Target, str] = {}
        for index, endpoint in enumerate(config.endpoints):
            where = f"server.callbacks.endpoints[{index}] ({endpoint.url})"
            try:
                prefix = _target(endpoint.url)
            except CallbackUrlRefused as exc:
                problems.append(f"{where}: {exc}")
                continue
            if prefix in seen:
                problems.append(f"{where}: the same destination as {seen[prefix]}")
                continue
            seen[prefix] = where
            secrets = resolve_secrets(
                project_root,
                environ,
                problems,
                where,
                secret_env=endpoint.secret_env,
                secret_file=endpoint.secret_file,
                previous_secret_env=endpoint.previous_secret_env,
            )
            if secrets:
                resolved.append(ResolvedEndpoint(endpoint.url, secrets, prefix))
        if problems:
            raise UsageError("callback endpoints cannot be used:\n" + "\n".join(f"  {p}" for p in problems))
        return cls(resolved)

    def match(self, url: str) -> ResolvedEndpoint | None:
        """The most specific endpoint `url` lies under, or None (also for a refused URL)."""
        try:
            return self.require(url)
        except CallbackUrlRefused:
            return None

    def require(self, url: str) -> ResolvedEndpoint:
        """Like `match`, but CallbackUrlRefused says why a URL is not allowed (for a 422)."""
        target = _target(url)
        for endpoint in self.endpoints:
            if _under(endpoint._prefix, target):
                return endpoint
        raise CallbackUrlRefused("callback_url is not under any URL in server.callbacks.endpoints")


def resolve_secrets(
    root: Path,
    environ: Mapping[str, str],
    problems: list[str],
    where: str,
    *,
    secret_env: str | None,
    secret_file: str | None,
    previous_secret_env: str | None = None,
) -> tuple[str, ...]:
    """The secrets named by a configuration entry (`where`, for messages), newest first: the
    value of `secret_env`, the content of `secret_file` (relative to `root`), then the value of
    `previous_secret_env`. What is unset, empty or unreadable is appended to `problems` (naming
    the variable or file, never a value). Surrounding whitespace (a file's final newline) is not
    part of a secret. Also used for the reviewer webhook and SMTP credentials
    (`keel.durable.notify`)."""
    found: list[str] = []
    if secret_env is not None:
        found.extend(_from_env(secret_env, environ, problems, where))
    if secret_file is not None:
        path = root / secret_file
        try:
            value = path.read_bytes().decode("utf-8").strip()
        except OSError as exc:
            problems.append(f"{where}: cannot read secret_file {path}: {exc.strerror or type(exc).__name__}")
        except UnicodeDecodeError:
            problems.append(f"{where}: secret_file {path} is not UTF-8 text")
        else:
            if value:
                found.append(value)
            else:
                problems.append(f"{where}: secret_file {path} is empty")
    if previous_secret_env is not None:
        found.extend(_from_env(previous_secret_env, environ, problems, where))
    return tuple(found)


def _from_env(name: str, environ: Mapping[str, str], problems: list[str], where: str) -> list[str]:
    value = environ.get(name)
    if value is None:
        problems.append(f"{where}: the environment variable {name} is not set")
    elif not value.strip():
        problems.append(f"{where}: the environment variable {name} is empty")
    else:
        return [value.strip()]
    return []


# -- delivery -------------------------------------------------------------------------------------


class SupportsRandom(Protocol):
    def random(self) -> float: ...


def next_delay(
    attempt: int, config: CallbacksConfig, retry_after: float | None = None, rng: SupportsRandom = random
) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based) before the next one.

    `initial_delay * 2**(attempt-1)`, capped at `max_delay`, with up to 20% taken off at random
    so receivers that failed together are not retried together. A receiver's Retry-After wins
    when it asks for longer, up to `max_delay`: a receiver cannot park a delivery for days.
    """
    return backoff_delay(attempt, config.initial_delay, config.max_delay, retry_after, rng)


def backoff_delay(
    attempt: int,
    initial_delay: float,
    max_delay: float,
    retry_after: float | None = None,
    rng: SupportsRandom = random,
) -> float:
    """`next_delay` with the delays given directly (for deliveries not configured by
    `server.callbacks`, such as reviewer notifications)."""
    if attempt < 1:
        raise ValueError(f"attempts count from 1, got {attempt}")
    base = min(initial_delay * 2.0 ** min(attempt - 1, 64), max_delay)
    delay = base * (1.0 - JITTER * rng.random())
    if retry_after is not None and retry_after > delay:
        delay = min(retry_after, max_delay)
    return delay


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """A Retry-After header in seconds (delay-seconds or an HTTP date); None if absent or invalid."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT; a zone-less one is taken as UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt came to. `retry_in` is set exactly when `outcome` is `retry`."""

    outcome: CallbackOutcome
    status_code: int | None
    error: str | None
    duration_ms: float
    retry_in: float | None

    @property
    def final(self) -> bool:
        """No further attempt follows."""
        return self.outcome != "retry"


async def attempt_delivery(
    client: httpx.AsyncClient,
    endpoint: ResolvedEndpoint,
    *,
    run_id: str,
    tenant_id: str | None,
    url: str,
    body: bytes,
    attempt: int,
    config: CallbacksConfig,
    log: CallbackLog | None = None,
) -> AttemptResult:
    """POST `body` to `url`, signed with the endpoint's secrets; classify; record it in `log`.

    Headers: `Content-Type: application/json`, `Keel-Delivery: <run_id>:<attempt>` (receivers
    drop a delivery id they have seen: an attempt re-executed after a crash repeats it),
    `Keel-Attempt`, `Keel-Timestamp` and `Keel-Signature`. The whole attempt, connection to
    answer, is bounded by `config.timeout`. Raises only for programming errors: an attempt out
    of 1..max_attempts, or a URL the endpoint does not cover.
    """
    if not 1 <= attempt <= config.max_attempts:
        raise ValueError(f"attempt must be 1 to {config.max_attempts}, got {attempt}")
    if not endpoint.covers(url):
        raise ValueError(f"the callback URL is not under the endpoint {endpoint.url}")
    headers = {
        "User-Agent": USER_AGENT,
        DELIVERY_HEADER: f"{header_safe(run_id)}:{attempt}",
        ATTEMPT_HEADER: str(attempt),
    }
    attempted_at = datetime.now(UTC)
    posted = await post_signed(
        client, url, body, secrets=endpoint.secrets, headers=headers, limit_s=config.timeout
    )
    status, error, duration_ms = posted.status_code, posted.error, posted.duration_ms
    transient = status is None or status in RETRYABLE_STATUSES or 500 <= status < 600
    outcome: CallbackOutcome
    retry_in: float | None = None
    if status is not None and 200 <= status < 300:
        outcome = "delivered"
    elif not transient:
        outcome = "failed"
    elif attempt >= config.max_attempts:
        outcome = "gave_up"
    else:
        outcome = "retry"
        retry_in = next_delay(attempt, config, parse_retry_after(posted.retry_after))
    result = AttemptResult(outcome, status, error, duration_ms, retry_in)
    if log is not None:
        next_at = None if retry_in is None else datetime.now(UTC) + timedelta(seconds=retry_in)
        record = CallbackAttempt(
            run_id, tenant_id, url, attempt, attempted_at, duration_ms, status, outcome, error, next_at
        )
        await _record(log, record)
    return result


@dataclass(frozen=True)
class PostResult:
    """One signed POST: the receiver's status and Retry-After, or `error` (also set for a
    non-2xx status) when there was no answer. `error` never holds the URL or what was sent."""

    status_code: int | None
    retry_after: str | None
    error: str | None
    duration_ms: float


async def post_signed(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    *,
    secrets: Sequence[str],
    headers: Mapping[str, str],
    limit_s: float,
) -> PostResult:
    """POST `body` as JSON with `headers` plus fresh `Keel-Timestamp` / `Keel-Signature` headers
    (signed with `secrets`, newest first); the whole exchange is bounded by `limit_s` seconds.
    Never raises for anything the receiver or the network does."""
    signed = {"Content-Type": "application/json", **headers, **signature_headers(secrets, body)}
    started = time.perf_counter()
    status: int | None = None
    retry_after: str | None = None
    try:
        status, retry_after = await _post(client, url, body, signed, limit_s)
        error = _status_error(status)
    except (TimeoutError, httpx.TimeoutException):
        error = f"no answer within {limit_s:g}s"
    except httpx.HTTPError as exc:  # connection refused or reset, TLS, protocol errors
        error = _describe(exc, url)
    return PostResult(status, retry_after, error, (time.perf_counter() - started) * 1000)


async def _post(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], limit_s: float
) -> tuple[int, str | None]:
    """The status and Retry-After of one POST, bounded by `limit_s` seconds as a whole.

    The response body is not used; a little is read so the connection can be reused, within what
    is left of the timeout. A receiver that answers and then stalls still counts as answered.
    """
    deadline = asyncio.get_running_loop().time() + limit_s
    request = client.build_request("POST", url, content=body, headers=headers, timeout=limit_s)
    async with asyncio.timeout_at(deadline):
        response = await client.send(request, stream=True, follow_redirects=False)
    try:
        with contextlib.suppress(TimeoutError, httpx.HTTPError):
            async with asyncio.timeout_at(deadline):
                read = 0
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read >= _MAX_DRAIN_BYTES:
                        break
    finally:
        await response.aclose()
    return response.status_code, response.headers.get("retry-after")


def header_safe(value: str) -> str:
    """`value` as is when it can go in a header, else percent-encoded (stable, so receivers can
    still compare delivery ids)."""
    return value if value.isascii() and value.isprintable() else quote(value, safe="")


def _status_error(status: int) -> str | None:
    """A short description of a non-2xx status; the receiver's reason phrase and body are not
    used (they may echo what was sent)."""
    if 200 <= status < 300:
        return None
    text = f"HTTP {status} {httpx.codes.get_reason_phrase(status)}".strip()
    if 300 <= status < 400:
        return f"{text}: redirects are not followed"
    return text


def _describe(exc: httpx.HTTPError, url: str) -> str:
    """`ConnectError: [Errno 111] Connection refused`: the first line, without the URL (its
    query may hold a token), shortened."""
    lines = str(exc).strip().splitlines()
    detail = lines[0].replace(url, "<callback_url>") if lines else ""
    text = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return text[:_MAX_ERROR_CHARS]


async def _record(callback_log: CallbackLog, attempt: CallbackAttempt) -> None:
    """Store the attempt; a database outage loses the log line, not the delivery's result (the
    durable workflow keeps that in its checkpoint)."""
    try:
        await callback_log.record(attempt)
    except DBAPIError as exc:
        cause = getattr(exc, "orig", None) or exc
        first = (str(cause).strip().splitlines() or [""])[0]
        log.warning(
            "could not record callback attempt %d of run %s: %s: %s",
            attempt.attempt,
            attempt.run_id,
            type(cause).__name__,
            first,
        )
