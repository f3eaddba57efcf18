"""The audit log: append-only records of security-relevant actions. See docs/audit-log.md.

    async with AuditLog(url) as audit:
        # In a request path: queue it, never wait, never raise (written in the background).
        audit.submit(AuditEntry(action="auth.denied", principal=principal.label, outcome="denied",
                                tenant_id=principal.tenant_id, target="POST /v1/runs", ip=client_ip))
        # Elsewhere (CLI, jobs), when the caller wants to know it was written:
        await audit.append(AuditEntry(action="key.created", principal="operator:cli", target=key_id))
        page = await audit.list(tenant_id="acme", action="auth.denied", limit=50)

Entries. `AuditEntry` is what callers pass and what `list` returns. `action` is one of
`AUDIT_ACTIONS` (a closed set, defined here only), `outcome` one of `AUDIT_OUTCOMES`, `principal`
reads `kind:id` (`user:alice`, `service:ci`, `api_key:k3v7q2mxa4bz`, `operator:cli`; see
`keel.gateway.Principal.label`). `tenant_id` is None for an operator's action without a tenant.
The id (a UUID) and the time (aware UTC) are set when the entry is built, unless given.

Secrets. `detail` is a small JSON object and never holds a secret; the rule, applied when an
entry is written (nested objects and lists included):
- a value under a secret-looking name is replaced whole by `[REDACTED:secret]`. A name is
  secret-looking when `keel.tracing.redact.sensitive_key` says so (`api_key`, `password`,
  `Authorization`, `access_token`, `cookie`, `credentials`...), when one of its words (split on
  `_`, `-`, `.`, spaces and camelCase) is secret, password, passwd, passphrase, pwd, token,
  credential(s), authorization, cookie, pepper, apikey, jwt, bearer, private or otp, or when its
  last word is `key` (`key`, `signing_key`; but `key_id` and `key_prefix` are public).
  `tokens`, `input_tokens` (counts) are not secret-looking.
- every string value is masked as trace content is (`keel.tracing.redact.redact_secrets`:
  provider keys, `Bearer` credentials, JWTs, `password=` assignments, PEM private keys); a Keel
  API key keeps its public prefix (`keel_k3v7q2mxa4bz_[REDACTED:api_key]`); a URL's password
  becomes `***`.
- strings are cut at 512 characters, nesting below 5 levels is dropped, and a detail whose JSON
  is still over 4096 characters is replaced by `{"truncated": "..."}`.
Redacting (rather than refusing the entry) keeps the record of the action itself. `target` is
masked by the same value rules (a full API key pasted instead of its id keeps only its prefix).

Writing. `append` and `append_many` write at once (one transaction) and raise: `InvalidAuditEntry`
for an entry outside the rules above, SQLAlchemy errors for an unreachable database. `submit` is
the fire-and-forget variant for request paths: it checks the entry, queues it and returns; a
background task (started on the running event loop) writes queued entries in batches, retries a
failing database with backoff (1 s then up to 30 s between tries), and never raises into the
caller. Its guarantee is best effort, in memory: an invalid entry is logged and dropped, the queue
holds at most `max_pending` entries (more are dropped, logged), and entries still queued when the
process dies are lost. `close()` (or `async with`) writes what is queued first, for up to
`close_timeout` seconds. `dropped` counts what `submit` could not write.

Append-only. The database refuses UPDATE and DELETE on `audit_log` (triggers from migration 0005),
so this class has no way to change or remove an entry, and neither has anyone else's SQL.

Reading. `list` returns entries newest first (by time, then id), filtered, with a stable cursor:
entries written between two pages never cause a duplicate or a gap. `tenant_id` is required: a
tenant's id scopes the listing to its entries through `keel.store.tenancy` (another tenant's are
never seen); None means every tenant's and the operator's (admin use only).
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from sqlalchemy import ColumnElement, and_, insert, or_, select
from sqlalchemy.exc import IntegrityError

from keel.errors import UsageError
from keel.gateway.keys import KEY_SCHEME, PREFIX_ALPHABET, PREFIX_LENGTH, SECRET_LENGTH
from keel.store.cursor import decode_cursor, encode_cursor
from keel.store.engine import AsyncDatabase, dumps_json
from keel.store.repository import MAX_PAGE, read_connection, write_transaction
from keel.store.tables import NAME_LENGTH, SHORT_LENGTH, audit_log
from keel.store.tenancy import scope_to_tenant
from keel.store.types import as_utc
from keel.store.urls import describe_error, mask_url

AuditAction = Literal[
    "auth.sign_in",
    "auth.failed",
    "auth.denied",
    "key.created",
    "key.revoked",
    "budget.changed",
    "budget.exceeded",
    "config.deployed",
    "approval.decided",
    "rate_limit.refused",
    "passkey.enrollment_created",
    "passkey.registered",
]
"""What happened. The closed set of audit actions: an entry with any other is refused.

- `auth.sign_in`: a principal authenticated (a session or token was issued).
- `auth.failed`: a credential was refused (bad, revoked or expired key or token).
- `auth.denied`: an authenticated principal lacked the scope or role for an operation.
- `key.created`, `key.revoked`: an API key was created or revoked.
- `budget.changed`: a budget was set, changed or removed.
- `budget.exceeded`: a request was refused by a hard budget.
- `config.deployed`: a project configuration (agents, prompts, budgets) was deployed.
- `approval.decided`: a human approved or rejected a pending action.
- `rate_limit.refused`: a request was refused by a rate limit.
- `passkey.enrollment_created`: a one-time passkey enrolment link was made for a user.
- `passkey.registered`: a passkey was registered with an enrolment link (or refused: `failure`).
"""

AUDIT_ACTIONS: tuple[AuditAction, ...] = get_args(AuditAction)

AuditOutcome = Literal["success", "failure", "denied"]
"""`success`: the action happened; `failure`: it was attempted and failed (bad credential, unknown
key); `denied`: it was refused by policy (scope, budget, rate limit)."""

AUDIT_OUTCOMES: tuple[AuditOutcome, ...] = get_args(AuditOutcome)

TARGET_MAX_CHARS = 1024
DETAIL_MAX_CHARS = 4096
DETAIL_STRING_MAX_CHARS = 512
DETAIL_MAX_DEPTH = 5
MAX_PENDING = 10_000
BATCH_SIZE = 500
CLOSE_TIMEOUT_SECONDS = 5.0
_RETRY_FIRST, _RETRY_MAX = 1.0, 30.0

REDACTED = "[REDACTED:secret]"
_TRUNCATED = "…[truncated]"

logger = logging.getLogger(__name__)


class InvalidAuditEntry(UsageError):
    """An entry outside the rules: unknown action or outcome, malformed principal, oversized id."""


def _new_id() -> str:
    return str(uuid.uuid4())


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """One audit record: what callers pass to `append`/`submit` and what `list` returns.

    `detail` is stored redacted (see the module's rule), so an entry read back may differ from the
    entry written there; every other field reads back as written, except that a secret in
    `target` is masked as in `detail` (a key pasted where its id was expected) and `target` over
    1024 characters, and `trace_id` or `ip` over 64, are cut when written.
    """

    action: AuditAction
    principal: str
    outcome: AuditOutcome = "success"
    tenant_id: str | None = None
    target: str | None = None
    trace_id: str | None = None
    ip: str | None = None
    detail: dict[str, Any] = field(default_factory=dict, hash=False)
    id: str = field(default_factory=_new_id)
    recorded_at: datetime = field(default_factory=_utc_now)

    def __post_init__(self) -> None:
        if isinstance(self.recorded_at, datetime):
            object.__setattr__(self, "recorded_at", as_utc(self.recorded_at))


@dataclass(frozen=True)
class AuditPage:
    """One page of entries, newest first. `next_cursor` is None on the last page."""

    entries: list[AuditEntry]
    next_cursor: str | None


# -- the rules ------------------------------------------------------------------------------------


def validate_action(action: object) -> AuditAction:
    """`action` if it is one of `AUDIT_ACTIONS`, else `InvalidAuditEntry` naming the set."""
    for known in AUDIT_ACTIONS:
        if action == known:
            return known
    raise InvalidAuditEntry(f"unknown audit action {action!r}: expected one of {', '.join(AUDIT_ACTIONS)}")


def validate_outcome(outcome: object) -> AuditOutcome:
    """`outcome` if it is one of `AUDIT_OUTCOMES`, else `InvalidAuditEntry` naming the set."""
    for known in AUDIT_OUTCOMES:
        if outcome == known:
            return known
    raise InvalidAuditEntry(f"unknown audit outcome {outcome!r}: expected one of {', '.join(AUDIT_OUTCOMES)}")


_PRINCIPAL = re.compile(r"[a-z][a-z0-9_]*:\S.*", re.DOTALL)


def _principal(value: object) -> str:
    if not isinstance(value, str) or _PRINCIPAL.fullmatch(value) is None:
        raise InvalidAuditEntry(
            f"audit principal {value!r} must read kind:id, e.g. user:alice, api_key:k3v7q2mxa4bz, operator:cli"
        )
    if len(value) > NAME_LENGTH:
        raise InvalidAuditEntry(f"audit principal is longer than {NAME_LENGTH} characters")
    return value


def _tenant(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidAuditEntry(f"audit tenant_id must be None or a non-empty string, got {value!r}")
    if len(value) > NAME_LENGTH:
        raise InvalidAuditEntry(f"audit tenant_id is longer than {NAME_LENGTH} characters")
    return value


def _cut(value: object, limit: int, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidAuditEntry(f"audit {what} must be None or a string, got {type(value).__name__}")
    return value[:limit]


def _target(value: object) -> str | None:
    target = _cut(value, TARGET_MAX_CHARS * 2, "target")
    return None if target is None else mask_secrets(target)[:TARGET_MAX_CHARS]


def _entry_id(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 128:
        raise InvalidAuditEntry("audit entry id must be a non-empty string of at most 128 characters")
    return value


_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_SECRET_WORDS = frozenset(
    {
        "secret",
        "secrets",
        "password",
        "passwords",
        "passwd",
        "passphrase",
        "pwd",
        "token",
        "credential",
        "credentials",
        "authorization",
        "cookie",
        "cookies",
        "pepper",
        "apikey",
        "jwt",
        "bearer",
        "private",
        "otp",
    }
)
_KEEL_KEY = re.compile(
    rf"(?<![A-Za-z0-9]){KEY_SCHEME}_([{PREFIX_ALPHABET}]{{{PREFIX_LENGTH}}})_[A-Za-z0-9_-]{{{SECRET_LENGTH}}}"
    r"(?![A-Za-z0-9_-])"
)


_secret_names: dict[str, bool] = {}


def secret_looking(name: str) -> bool:
    """Whether a detail key names a secret, so its value is never stored (see the module doc)."""
    known = _secret_names.get(name)
    if known is None:
        from keel.tracing.redact import sensitive_key  # keel.tracing is heavy: imported on first use

        words = [word.lower() for word in _WORD.findall(name)]
        known = sensitive_key(name) or (
            bool(words) and (words[-1] == "key" or any(word in _SECRET_WORDS for word in words))
        )
        if len(_secret_names) < 4096:
            _secret_names[name] = known
    return known


def mask_secrets(text: str) -> str:
    """`text` with secrets masked: Keel API keys (the public prefix kept), URL passwords, and
    whatever `keel.tracing.redact.redact_secrets` masks in traces."""
    if KEY_SCHEME in text:
        text = _KEEL_KEY.sub(rf"{KEY_SCHEME}_\1_[REDACTED:api_key]", text)
    if "://" in text:
        text = mask_url(text)
    return _redact_secrets()(text)


def _redact_secrets() -> Callable[[str], str]:
    """`keel.tracing.redact.redact_secrets`, imported on first use (keel.tracing is heavy)."""
    from keel.tracing.redact import redact_secrets

    return redact_secrets


def _masked(text: str) -> str:
    text = mask_secrets(text)
    if len(text) > DETAIL_STRING_MAX_CHARS:
        text = text[:DETAIL_STRING_MAX_CHARS] + _TRUNCATED
    return text


def _clean(value: object, depth: int) -> object:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return _masked(value)
    if depth >= DETAIL_MAX_DEPTH:
        return _TRUNCATED
    if isinstance(value, Mapping):
        return {
            str(key): REDACTED if secret_looking(str(key)) else _clean(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(item, depth + 1) for item in value]
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    return _masked(str(value))


def redact_detail(detail: Mapping[str, Any] | None) -> dict[str, Any]:
    """`detail` as it is stored: secrets redacted, strings and nesting bounded, at most 4096
    characters of JSON (else `{"truncated": ...}`). Pure; never raises for any mapping."""
    if not detail:
        return {}
    if not isinstance(detail, Mapping):
        raise InvalidAuditEntry(f"audit detail must be a mapping, got {type(detail).__name__}")
    cleaned = _clean(detail, 0)
    assert isinstance(cleaned, dict)
    size = len(dumps_json(cleaned))
    if size > DETAIL_MAX_CHARS:
        return {"truncated": f"detail dropped: {size} characters of JSON, over {DETAIL_MAX_CHARS}"}
    return cleaned


def _row(entry: AuditEntry) -> dict[str, Any]:
    """The row stored for `entry`, checked and redacted; `InvalidAuditEntry` if it breaks a rule."""
    if not isinstance(entry, AuditEntry):
        raise InvalidAuditEntry(f"expected an AuditEntry, got {type(entry).__name__}")
    if not isinstance(entry.recorded_at, datetime):
        raise InvalidAuditEntry(f"audit recorded_at must be a datetime, got {entry.recorded_at!r}")
    return {
        "id": _entry_id(entry.id),
        "recorded_at": entry.recorded_at,
        "tenant_id": _tenant(entry.tenant_id),
        "principal": _principal(entry.principal),
        "action": validate_action(entry.action),
        "outcome": validate_outcome(entry.outcome),
        "target": _target(entry.target),
        "trace_id": _cut(entry.trace_id, SHORT_LENGTH * 2, "trace_id"),
        "ip": _cut(entry.ip, SHORT_LENGTH * 2, "ip"),
        "detail": redact_detail(entry.detail),
    }


def _from_row(row: Mapping[Any, Any]) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        recorded_at=row["recorded_at"],
        tenant_id=row["tenant_id"],
        principal=row["principal"],
        action=row["action"],
        outcome=row["outcome"],
        target=row["target"],
        trace_id=row["trace_id"],
        ip=row["ip"],
        detail=dict(row["detail"] or {}),
    )


def _after(cursor: str) -> ColumnElement[bool]:
    """Entries strictly after the cursor in (recorded_at DESC, id DESC) order."""
    position = decode_cursor(cursor)
    return or_(
        audit_log.c.recorded_at < position.started_at,
        and_(audit_log.c.recorded_at == position.started_at, audit_log.c.id < position.run_id),
    )


# -- the store ------------------------------------------------------------------------------------


class AuditLog(AsyncDatabase):
    """The audit log on the database at `url`. Connects lazily; `close()` or `async with`.

    `max_pending` bounds the entries `submit` queues in memory; `batch_size` how many one
    background write takes; `close_timeout` how long `close()` keeps writing queued entries.
    """

    def __init__(
        self,
        url: str,
        *,
        max_pending: int = MAX_PENDING,
        batch_size: int = BATCH_SIZE,
        close_timeout: float = CLOSE_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(url)
        self._max_pending = max_pending
        self._batch_size = batch_size
        self._close_timeout = close_timeout
        self._pending: deque[dict[str, Any]] = deque()
        self._in_flight = 0
        self._write_lock = asyncio.Lock()
        self._wake: asyncio.Event | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False
        self._dropped = 0
        self._overflowing = False

    # -- writing, now -----------------------------------------------------------------------------

    async def append(self, entry: AuditEntry) -> None:
        """Write one entry now. `InvalidAuditEntry` if it breaks a rule; database errors propagate
        (an id already in the log is an IntegrityError: entries are never replaced)."""
        await self._insert([_row(entry)])

    async def append_many(self, entries: Iterable[AuditEntry]) -> None:
        """Write entries now, in one transaction: all of them or (on any error) none."""
        rows = [_row(entry) for entry in entries]
        if rows:
            await self._insert(rows)

    async def _insert(self, rows: Sequence[dict[str, Any]]) -> None:
        async with write_transaction(self._engine, self._url) as connection:
            await connection.execute(insert(audit_log), list(rows))

    # -- writing, in the background ---------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Entries submitted and not yet written (queued, or in a write not finished yet)."""
        return len(self._pending) + self._in_flight

    @property
    def dropped(self) -> int:
        """Entries `submit` could not write: invalid, queue full, closed, or still queued at close."""
        return self._dropped

    def submit(self, entry: AuditEntry) -> None:
        """Queue `entry` to be written in the background. Never raises and never waits.

        Needs a running event loop (the writer is a task on it); see the module doc for what is
        dropped, when, and how that is logged.
        """
        try:
            row = _row(entry)
        except Exception as exc:
            self._drop(1, f"audit entry refused: {exc}", error=True)
            return
        if self._closed:
            self._drop(1, f"audit log closed: entry {row['action']} by {row['principal']} not written")
            return
        if len(self._pending) >= self._max_pending:
            if not self._overflowing:
                self._overflowing = True
                logger.error(
                    "audit log queue full (%d entries not yet written): dropping new entries until it drains",
                    len(self._pending),
                )
            self._dropped += 1
            return
        self._overflowing = False
        try:
            wake = self._running_writer()
        except RuntimeError:
            self._drop(1, "AuditLog.submit needs a running event loop (use append outside one)", error=True)
            return
        self._pending.append(row)
        wake.set()

    async def flush(self) -> None:
        """Write every queued entry now. Database errors propagate; the entries stay queued."""
        await self._write_pending()

    def _running_writer(self) -> asyncio.Event:
        """The background writer's wake-up event, starting the writer if it is not running."""
        if self._flusher is None or self._flusher.done() or self._wake is None:
            loop = asyncio.get_running_loop()  # RuntimeError outside a loop
            self._wake = asyncio.Event()
            self._flusher = loop.create_task(self._write_in_background(self._wake), name="keel-audit-log")
        return self._wake

    async def _write_in_background(self, wake: asyncio.Event) -> None:
        delay = _RETRY_FIRST
        while True:
            if not self._pending:
                if self._closed:
                    return
                wake.clear()
                await wake.wait()
                continue
            try:
                await self._write_pending()
                delay = _RETRY_FIRST
            except Exception as exc:
                logger.warning(
                    "could not write %d audit entries, retrying in %.0f s: %s",
                    len(self._pending),
                    delay,
                    describe_error(exc, self._url),
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)

    async def _write_pending(self) -> None:
        """Write queued entries batch by batch; a failed batch goes back to the front of the queue."""
        async with self._write_lock:
            while self._pending:
                size = min(self._batch_size, len(self._pending))
                batch = [self._pending.popleft() for _ in range(size)]
                self._in_flight = size
                try:
                    await self._insert(batch)
                except IntegrityError:
                    await self._insert_one_by_one(batch)
                except BaseException:
                    self._pending.extendleft(reversed(batch))
                    raise
                finally:
                    self._in_flight = 0

    async def _insert_one_by_one(self, batch: list[dict[str, Any]]) -> None:
        """After an integrity error (an id already written: a submitted entry submitted twice, or a
        batch whose commit was not acknowledged): write each row alone, dropping those refused."""
        for position, row in enumerate(batch):
            try:
                await self._insert([row])
            except IntegrityError as exc:
                self._drop(
                    1, f"audit entry {row['id']} refused by the database: {describe_error(exc, self._url)}"
                )
            except BaseException:
                self._pending.extendleft(reversed(batch[position:]))
                raise

    def _drop(self, count: int, message: str, *, error: bool = False) -> None:
        self._dropped += count
        (logger.error if error else logger.warning)("%s", message)

    async def close(self) -> None:
        """Write what is queued (for up to `close_timeout` seconds), then close the connections.
        Entries still queued after that are dropped and logged. Never raises for them."""
        self._closed = True
        flusher, wake = self._flusher, self._wake
        try:
            if flusher is not None and not flusher.done() and wake is not None:
                wake.set()
                try:
                    await asyncio.wait_for(asyncio.shield(flusher), self._close_timeout)
                except TimeoutError:
                    flusher.cancel()
                    await asyncio.gather(flusher, return_exceptions=True)
            elif self._pending:
                try:
                    await asyncio.wait_for(self._write_pending(), self._close_timeout)
                except Exception as exc:
                    logger.warning(
                        "could not write audit entries at close: %s", describe_error(exc, self._url)
                    )
        finally:
            if self._pending:
                self._drop(
                    len(self._pending),
                    f"audit log closed with {len(self._pending)} entries not written (database unavailable)",
                    error=True,
                )
                self._pending.clear()
            await super().close()

    # -- reading ------------------------------------------------------------------------------------

    async def list(
        self,
        *,
        tenant_id: str | None,
        action: str | None = None,
        principal: str | None = None,
        outcome: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> AuditPage:
        """Entries newest first; pass `next_cursor` back for the next page.

        `tenant_id` is required: a tenant's entries only, or None for every tenant's (admin).
        `since` is inclusive and `until` exclusive. An unknown action or outcome, or a limit
        outside 1..500, is a UsageError naming it.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise UsageError(f"limit must be an integer from 1 to {MAX_PAGE}, got {limit!r}")
        conditions: list[ColumnElement[bool]] = []
        if action is not None:
            conditions.append(audit_log.c.action == validate_action(action))
        if outcome is not None:
            conditions.append(audit_log.c.outcome == validate_outcome(outcome))
        if principal is not None:
            conditions.append(audit_log.c.principal == principal)
        if target is not None:
            conditions.append(audit_log.c.target == target)
        if since is not None:
            conditions.append(audit_log.c.recorded_at >= as_utc(since))
        if until is not None:
            conditions.append(audit_log.c.recorded_at < as_utc(until))
        if cursor is not None:
            conditions.append(_after(cursor))
        statement = (
            select(audit_log)
            .where(*conditions)
            .order_by(audit_log.c.recorded_at.desc(), audit_log.c.id.desc())
            .limit(limit + 1)
        )
        statement = scope_to_tenant(statement, audit_log, tenant_id)
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        entries = [_from_row(row) for row in rows[:limit]]
        next_cursor = encode_cursor(entries[-1].recorded_at, entries[-1].id) if len(rows) > limit else None
        return AuditPage(entries=entries, next_cursor=next_cursor)
