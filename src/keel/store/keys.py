"""Stored API keys: create, list, revoke, verify. The key format and hashing are `keel.gateway.keys`.

    async with KeyStore(url) as keys:
        created = await keys.create("ci", ["runs:write"], tenant_id="acme", expires="30d")
        print(created.key)                      # shown once: only its hash is stored
        principal = await keys.verify(created.key)   # the record: id, tenant, scopes
        await keys.revoke(created.record.id, tenant_id="acme")

Secrets. The full key exists only in `create`'s return value. Rows hold the public prefix and
`HMAC-SHA256(pepper, secret)`; records read back never carry the hash. The pepper is read from
`KEEL_KEY_PEPPER` when the store is built (or passed in), so every process that verifies keys
must share it.

Verification. `verify` parses the key, looks its prefix up, compares hashes in constant time and
checks revocation and expiry. Every refusal raises `ApiKeyRefused` with the same message; its
`reason` is for logs and audit. An unknown prefix still costs one HMAC, as a known one does.

Last use. Verifying does not write on every request: `last_used_at` is written at most once per key
per `last_used_interval` (60 s). The row read by `verify` says when the key was last recorded, and
the write is a conditional UPDATE (only if still older than the interval), so several processes
verifying the same key in the same minute still write it once. A failed last-use write is logged
and does not refuse a valid key.

Tenancy. `list_keys` and `revoke` take the caller's tenant and go through `keel.store.tenancy`:
another tenant's keys are neither listed nor revocable, and revoking one reports an unknown key,
exactly as for an id that does not exist. `verify` is not scoped: the key says whose it is.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from keel.errors import UsageError
from keel.gateway.keys import (
    ApiKeyRefused,
    Scope,
    generate_key,
    hash_secret,
    key_pepper,
    parse_expiry,
    parse_key,
    secret_matches,
    validate_scopes,
)
from keel.gateway.principal import DEFAULT_TENANT
from keel.store.engine import AsyncDatabase
from keel.store.repository import read_connection, write_transaction
from keel.store.tables import NAME_LENGTH, api_keys
from keel.store.tenancy import scope_to_tenant, tenant_condition
from keel.store.urls import describe_error

LAST_USED_INTERVAL_SECONDS = 60.0
_CREATE_ATTEMPTS = 3
# Hashed against when the prefix is unknown, so that path costs what a known prefix costs.
_NO_SUCH_HASH = "0" * 64

KeyState = Literal["active", "revoked", "expired"]

logger = logging.getLogger(__name__)


class UnknownKey(UsageError):
    """No key with this id or prefix (for this tenant)."""


@dataclass(frozen=True)
class ApiKeyRecord:
    """A stored key as callers see it: never its secret nor its hash.

    `state` is computed when the record is read: `revoked` wins over `expired`. As the principal
    returned by `verify`, a record is always `active`.
    """

    id: str
    tenant_id: str | None
    prefix: str
    name: str
    scopes: tuple[Scope, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_by: str | None
    state: KeyState

    def has_scope(self, scope: Scope) -> bool:
        """Whether the key was given `scope` itself (no scope implies another)."""
        return scope in self.scopes


@dataclass(frozen=True, repr=False)
class CreatedKey:
    """A new key: `key` is the full key, returned this once; `record` what is stored about it."""

    key: str
    record: ApiKeyRecord

    def __repr__(self) -> str:
        return f"CreatedKey(key='***', record={self.record!r})"


class KeyStore(AsyncDatabase):
    """API keys on the database at `url`. Connects lazily; `close()` or `async with`.

    `pepper` defaults to `key_pepper()` (KEEL_KEY_PEPPER); `clock` (aware UTC) to the system clock.
    """

    def __init__(
        self,
        url: str,
        *,
        pepper: bytes | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] | None = None,
        last_used_interval: float = LAST_USED_INTERVAL_SECONDS,
    ) -> None:
        super().__init__(url)
        self._pepper = pepper if pepper is not None else key_pepper(environ)
        self._clock = clock or _utc_now
        self._last_used_interval = timedelta(seconds=last_used_interval)
        self._recorded_use: dict[str, datetime] = {}  # key id -> last write of last_used_at here

    async def create(
        self,
        name: str,
        scopes: Iterable[str],
        *,
        tenant_id: str | None = None,
        expires: str | datetime | timedelta | None = None,
        created_by: str | None = None,
    ) -> CreatedKey:
        """A new key with exactly `scopes`. UsageError (InvalidScope, InvalidExpiry) for bad input."""
        name = _bounded_text(name, "name")
        # Every key acts for one tenant: without one, the default tenant (as the server sees it).
        tenant_id = _bounded_text(tenant_id if tenant_id is not None else DEFAULT_TENANT, "tenant")
        if created_by is not None:
            created_by = created_by[:NAME_LENGTH]
        checked = validate_scopes(scopes)
        now = self._clock()
        expires_at = parse_expiry(expires, now=now)
        for attempt in range(_CREATE_ATTEMPTS):
            generated = generate_key()
            row = {
                "id": f"key_{uuid.uuid4().hex}",
                "tenant_id": tenant_id,
                "prefix": generated.prefix,
                "secret_hash": hash_secret(generated.secret, self._pepper),
                "name": name,
                "scopes": list(checked),
                "created_at": now,
                "expires_at": expires_at,
                "revoked_at": None,
                "last_used_at": None,
                "created_by": created_by,
            }
            try:
                async with write_transaction(self._engine, self._url) as connection:
                    await connection.execute(insert(api_keys), [row])
            except IntegrityError:  # a prefix already taken: 60 random bits, but try another
                if attempt + 1 == _CREATE_ATTEMPTS:
                    raise
                continue
            return CreatedKey(key=generated.key, record=_from_row(row, "active"))
        raise AssertionError("unreachable")  # pragma: no cover

    async def list_keys(self, *, tenant_id: str | None = None) -> list[ApiKeyRecord]:
        """Keys newest first, revoked and expired ones included (see `state`); only `tenant_id`'s
        when given, every tenant's otherwise."""
        statement = scope_to_tenant(
            select(*_PUBLIC_COLUMNS).order_by(api_keys.c.created_at.desc(), api_keys.c.id.desc()),
            api_keys,
            tenant_id,
        )
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        now = self._clock()
        return [_from_row(row, _state(row, now)) for row in rows]

    async def revoke(self, key_id_or_prefix: str, *, tenant_id: str | None = None) -> ApiKeyRecord:
        """Revoke a key by id or prefix; revoking again keeps the first revocation time.

        `UnknownKey` if there is no such key (or it belongs to another tenant than `tenant_id`).
        """
        now = self._clock()
        matches = or_(api_keys.c.id == key_id_or_prefix, api_keys.c.prefix == key_id_or_prefix)
        conditions = [matches, api_keys.c.revoked_at.is_(None)]
        if tenant_id is not None:
            conditions.append(tenant_condition(api_keys, tenant_id))
        async with write_transaction(self._engine, self._url) as connection:
            # The write comes first, so on SQLite the transaction takes the write lock at once.
            await connection.execute(update(api_keys).where(*conditions).values(revoked_at=now))
            statement = scope_to_tenant(select(*_PUBLIC_COLUMNS).where(matches), api_keys, tenant_id)
            row = (await connection.execute(statement)).mappings().first()
        if row is None:
            raise UnknownKey(f"no API key with id or prefix {key_id_or_prefix!r}")
        return _from_row(row, "revoked")

    async def verify(self, key: object) -> ApiKeyRecord:
        """The record of a usable key (its principal: id, tenant, scopes), else `ApiKeyRefused`.

        Database outages propagate (SQLAlchemy's OperationalError): an outage is not a bad key.
        """
        parsed = parse_key(key)
        async with read_connection(self._engine, self._url) as connection:
            statement = select(api_keys).where(api_keys.c.prefix == parsed.prefix)
            row = (await connection.execute(statement)).mappings().first()
        if row is None:
            secret_matches(parsed.secret, _NO_SUCH_HASH, self._pepper)
            raise ApiKeyRefused("unknown_prefix", prefix=parsed.prefix)
        if not secret_matches(parsed.secret, row["secret_hash"], self._pepper):
            raise ApiKeyRefused("wrong_secret", prefix=parsed.prefix)
        now = self._clock()
        state = _state(row, now)
        if state != "active":
            raise ApiKeyRefused("revoked" if state == "revoked" else "expired", prefix=parsed.prefix)
        record = _from_row(row, "active")
        if await self._record_use(record, now):
            record = replace(record, last_used_at=now)
        return record

    async def _record_use(self, record: ApiKeyRecord, now: datetime) -> bool:
        """Write `last_used_at = now` unless it was written less than the interval ago."""
        cutoff = now - self._last_used_interval
        if record.last_used_at is not None and record.last_used_at > cutoff:
            return False
        recorded_here = self._recorded_use.get(record.id)
        if recorded_here is not None and recorded_here > cutoff:
            return False  # this process wrote it; the row read may predate that write
        self._recorded_use[record.id] = now
        statement = (
            update(api_keys)
            .where(
                api_keys.c.id == record.id,
                or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at <= cutoff),
            )
            .values(last_used_at=now)
        )
        try:
            async with write_transaction(self._engine, self._url) as connection:
                result = await connection.execute(statement)
        except SQLAlchemyError as exc:
            logger.warning(
                "could not record the last use of API key %s: %s",
                record.prefix,
                describe_error(exc, self._url),
            )
            return False
        return bool(result.rowcount)


_PUBLIC_COLUMNS = [column for column in api_keys.columns if column.name != "secret_hash"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _bounded_text(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"the key's {what} must be a non-empty string")
    if len(value) > NAME_LENGTH:
        raise UsageError(f"the key's {what} is longer than {NAME_LENGTH} characters")
    return value


def _state(row: Mapping[Any, Any], now: datetime) -> KeyState:
    if row["revoked_at"] is not None:
        return "revoked"
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return "expired"
    return "active"


def _from_row(row: Mapping[Any, Any], state: KeyState) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row["id"],
        tenant_id=row["tenant_id"],
        prefix=row["prefix"],
        name=row["name"],
        scopes=tuple(row["scopes"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
        created_by=row["created_by"],
        state=state,
    )
