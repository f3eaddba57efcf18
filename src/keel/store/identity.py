"""Users and browser sessions, plus (inherited from `keel.store.oauth.OAuthStore`) the built-in
OAuth2 server's clients, codes, refresh tokens, deny list and signing keys.

    async with IdentityStore(url) as store:
        ada = await store.create_user("acme", "Ada Lovelace", email="ada@example.com", roles=["operator"])
        await store.list_users(tenant_id="acme")
        await store.disable_user(ada.id)          # also ends her sessions and refresh tokens

Sessions are normally handled through `keel.gateway.sessions` (`start_session`, `user_of_session`,
`end_session`), which owns the cookie; the store only sees the SHA-256 of the cookie value.

Users. A user belongs to one tenant and has roles (names; `gateway.roles` maps them to scopes).
An email is optional and, when given, unique within the tenant. Users are never deleted by Keel:
`disable_user` sets `disabled_at`, and a disabled user cannot sign in, keep a session, or refresh a
token.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, literal, null, or_, select, update
from sqlalchemy.exc import IntegrityError

from keel.errors import UsageError
from keel.store.oauth import OAuthStore
from keel.store.repository import read_connection, write_transaction
from keel.store.tables import NAME_LENGTH, user_sessions, users
from keel.store.tenancy import scope_to_tenant, tenant_condition
from keel.store.types import UtcDateTime

ROLE_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
"""A role name, as `gateway.roles` spells them."""

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class UnknownUser(UsageError):
    """No user with this id (for this tenant)."""


@dataclass(frozen=True)
class User:
    id: str
    tenant_id: str
    name: str
    email: str | None
    roles: tuple[str, ...]
    created_at: datetime
    disabled_at: datetime | None

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "name": self.name,
            "email": self.email,
            "roles": list(self.roles),
            "state": "active" if self.active else "disabled",
            "created_at": self.created_at.isoformat(),
            "disabled_at": self.disabled_at.isoformat() if self.disabled_at else None,
        }


@dataclass(frozen=True)
class SessionRow:
    """A stored browser session (by the SHA-256 of its cookie value)."""

    id: str
    user_id: str
    tenant_id: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_seen_at: datetime | None


def validate_roles(roles: Iterable[str]) -> tuple[str, ...]:
    """Role names, deduplicated in order; UsageError naming `--role` for a malformed one."""
    checked: list[str] = []
    for role in [roles] if isinstance(roles, str) else roles:
        if not isinstance(role, str) or not ROLE_PATTERN.fullmatch(role):
            raise UsageError(
                f"--role: {role!r} is not a role name (lowercase letters, digits, - and _, "
                "starting with a letter)"
            )
        if role not in checked:
            checked.append(role)
    return tuple(checked)


class IdentityStore(OAuthStore):
    """Users, sessions and the OAuth2 server's rows on the database at `url` (see the module
    docstring). Connects lazily; `close()` or `async with`."""

    # -- users -----------------------------------------------------------------------------------

    async def create_user(
        self, tenant_id: str, name: str, *, email: str | None = None, roles: Iterable[str] = ()
    ) -> User:
        """A new, active user. UsageError naming the option (`--tenant`, `--name`, `--email`,
        `--role`) for bad input or an email already used in the tenant."""
        tenant_id = _text(tenant_id, "--tenant")
        name = _text(name, "--name")
        if email is not None:
            email = _text(email.strip(), "--email")
            if not _EMAIL.fullmatch(email):
                raise UsageError(f"--email: {email!r} is not an email address")
        row = {
            "id": f"usr_{uuid.uuid4().hex}",
            "tenant_id": tenant_id,
            "name": name,
            "email": email,
            "roles": list(validate_roles(roles)),
            "created_at": self.clock(),
            "disabled_at": None,
        }
        try:
            async with write_transaction(self._engine, self._url) as connection:
                await connection.execute(insert(users), [row])
        except IntegrityError:
            raise UsageError(
                f"--email: tenant {tenant_id!r} already has a user with email {email!r}"
            ) from None
        return _user(row)

    async def get_user(self, user_id: str, *, tenant_id: str | None = None) -> User | None:
        """The user (active or disabled), or None; another tenant's user is None."""
        statement = scope_to_tenant(select(users).where(users.c.id == user_id), users, tenant_id)
        async with read_connection(self._engine, self._url) as connection:
            row = (await connection.execute(statement)).mappings().first()
        return _user(row) if row is not None else None

    async def user_by_email(self, email: str, *, tenant_id: str) -> User | None:
        """The tenant's user with this email, or None."""
        statement = select(users).where(users.c.email == email, tenant_condition(users, tenant_id))
        async with read_connection(self._engine, self._url) as connection:
            row = (await connection.execute(statement)).mappings().first()
        return _user(row) if row is not None else None

    async def list_users(self, *, tenant_id: str | None = None) -> list[User]:
        """Users newest first, disabled ones included; only `tenant_id`'s when given."""
        statement = scope_to_tenant(
            select(users).order_by(users.c.created_at.desc(), users.c.id.desc()), users, tenant_id
        )
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [_user(row) for row in rows]

    async def disable_user(self, user_id: str, *, tenant_id: str | None = None) -> User:
        """Disable a user (by id, or by email within `tenant_id`): their sessions end and their
        refresh tokens are revoked at once; access tokens already issued run until they expire.
        Disabling again keeps the first time. `UnknownUser` if there is none (for this tenant)."""
        now = self.clock()
        matches = or_(users.c.id == user_id, users.c.email == user_id) if tenant_id else users.c.id == user_id
        conditions = [matches, users.c.disabled_at.is_(None)]
        if tenant_id is not None:
            conditions.append(tenant_condition(users, tenant_id))
        async with write_transaction(self._engine, self._url) as connection:
            await connection.execute(update(users).where(*conditions).values(disabled_at=now))
            statement = scope_to_tenant(select(users).where(matches), users, tenant_id)
            row = (await connection.execute(statement)).mappings().first()
            if row is not None:
                await connection.execute(
                    update(user_sessions)
                    .where(user_sessions.c.user_id == row["id"], user_sessions.c.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
        if row is None:
            raise UnknownUser(f"no user {user_id!r}" + (f" in tenant {tenant_id!r}" if tenant_id else ""))
        await self.revoke_user_tokens(row["id"])
        return _user(row)

    # -- sessions (see keel.gateway.sessions) ----------------------------------------------------

    async def create_session(self, session_id: str, user: User, *, ttl: float) -> SessionRow:
        """Store a session for an active user; `session_id` is the SHA-256 of the cookie value.
        `UnknownUser` if the user does not exist or is disabled."""
        now = self.clock()
        expires_at = now + timedelta(seconds=ttl)
        at = UtcDateTime()
        # One statement, insert-if-active: no window between checking the user and inserting.
        statement = insert(user_sessions).from_select(
            ["id", "user_id", "tenant_id", "created_at", "expires_at", "revoked_at", "last_seen_at"],
            select(
                literal(session_id),
                users.c.id,
                users.c.tenant_id,
                literal(now, at),
                literal(expires_at, at),
                null(),
                literal(now, at),
            ).where(
                users.c.id == user.id, users.c.tenant_id == user.tenant_id, users.c.disabled_at.is_(None)
            ),
        )
        async with write_transaction(self._engine, self._url) as connection:
            # RETURNING: the row count of INSERT ... SELECT is not reported alike by every driver.
            inserted = (await connection.execute(statement.returning(user_sessions.c.id))).all()
        if len(inserted) != 1:
            raise UnknownUser(f"user {user.id!r} does not exist or is disabled")
        row = {
            "id": session_id,
            "user_id": user.id,
            "tenant_id": user.tenant_id,
            "created_at": now,
            "expires_at": expires_at,
            "revoked_at": None,
            "last_seen_at": now,
        }
        return _session(row)

    async def session_user(self, session_id: str) -> tuple[SessionRow, User] | None:
        """The live session with this id and its active user, or None (unknown, expired, revoked,
        or the user is disabled)."""
        now = self.clock()
        statement = (
            select(user_sessions, *[c.label(f"u__{c.name}") for c in users.columns])
            .join(users, users.c.id == user_sessions.c.user_id)
            .where(
                user_sessions.c.id == session_id,
                user_sessions.c.revoked_at.is_(None),
                user_sessions.c.expires_at > now,
                users.c.disabled_at.is_(None),
            )
        )
        async with read_connection(self._engine, self._url) as connection:
            row = (await connection.execute(statement)).mappings().first()
        if row is None:
            return None
        user = _user({c.name: row[f"u__{c.name}"] for c in users.columns})
        return _session(row), user

    async def touch_session(self, session_id: str, *, interval: float) -> None:
        """Record that the session was seen now, unless it was less than `interval` seconds ago
        (one conditional UPDATE: several processes write it once)."""
        now = self.clock()
        cutoff = now - timedelta(seconds=interval)
        async with write_transaction(self._engine, self._url) as connection:
            await connection.execute(
                update(user_sessions)
                .where(
                    user_sessions.c.id == session_id,
                    or_(user_sessions.c.last_seen_at.is_(None), user_sessions.c.last_seen_at <= cutoff),
                )
                .values(last_seen_at=now)
            )

    async def revoke_session(self, session_id: str) -> bool:
        """End a session; False if there was no live one."""
        async with write_transaction(self._engine, self._url) as connection:
            result = await connection.execute(
                update(user_sessions)
                .where(user_sessions.c.id == session_id, user_sessions.c.revoked_at.is_(None))
                .values(revoked_at=self.clock())
            )
        return bool(result.rowcount)

    async def purge_expired(self, *, keep: timedelta = timedelta(days=1)) -> int:
        """`OAuthStore.purge_expired`, and sessions that ended (expired or signed out) more than
        `keep` ago."""
        deleted = await super().purge_expired(keep=keep)
        cutoff = self.clock() - keep
        async with write_transaction(self._engine, self._url) as connection:
            result = await connection.execute(
                delete(user_sessions).where(
                    or_(user_sessions.c.expires_at < cutoff, user_sessions.c.revoked_at < cutoff)
                )
            )
        return deleted + int(result.rowcount or 0)

    async def list_sessions(self, user_id: str, *, tenant_id: str | None = None) -> list[SessionRow]:
        """A user's sessions, newest first, ended ones included."""
        statement = scope_to_tenant(
            select(user_sessions)
            .where(user_sessions.c.user_id == user_id)
            .order_by(user_sessions.c.created_at.desc()),
            user_sessions,
            tenant_id,
        )
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [_session(row) for row in rows]


def _text(value: str, option: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{option}: must not be empty")
    if len(value) > NAME_LENGTH:
        raise UsageError(f"{option}: longer than {NAME_LENGTH} characters")
    return value


def _user(row: Mapping[Any, Any]) -> User:
    return User(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        email=row["email"],
        roles=tuple(row["roles"]),
        created_at=row["created_at"],
        disabled_at=row["disabled_at"],
    )


def _session(row: Mapping[Any, Any]) -> SessionRow:
    return SessionRow(
        id=row["id"],
        user_id=row["user_id"],
        tenant_id=row["tenant_id"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_seen_at=row["last_seen_at"],
    )


__all__ = ["ROLE_PATTERN", "IdentityStore", "SessionRow", "UnknownUser", "User", "validate_roles"]
