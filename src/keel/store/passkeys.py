"""Stored passkeys, WebAuthn challenges and enrolment links. The ceremonies are `keel.gateway.webauthn`.

    async with PasskeyStore(url) as store:
        link = await store.create_enrollment("usr_1", "acme", created_by="operator:cli")
        link.token                                   # shown once: only its SHA-256 is stored
        challenge = await store.create_challenge("authenticate")
        row = await store.consume_challenge(challenge, "authenticate")   # once, within 5 minutes

Challenges. A challenge is 32 random bytes; the row keeps its SHA-256 (hex), its purpose
(`register` or `authenticate`), the user and tenant it was made for (registration only), and its
expiry (5 minutes). The browser sends the challenge back inside the signed `clientDataJSON`, so
the server finds the row by hashing what the client returns, and `consume_challenge` spends it with
a conditional UPDATE (unused, unexpired, same purpose): two requests presenting the same challenge
cannot both get it, on either backend. A spent challenge stays spent even when the verification that
follows fails. Expired rows are deleted when new challenges are made (an hour after expiry).

Enrolment links. A link's token is 32 random bytes (URL-safe base64); only its SHA-256 is stored,
as for API keys: it has 256 random bits, so a fast hash is enough. A link is valid 24 hours by
default and is spent by the registration it allowed (`add_passkey`, in the same transaction as the
new passkey). Making a new link does not revoke older ones: each expires or is used by itself.

Passkeys. `add_passkey` stores a verified credential; `passkey_by_credential_id` finds one for a
sign-in (not scoped: the credential says whose it is); `record_use` moves the signature counter
forward with a conditional UPDATE, so two sign-ins racing with the same counter value cannot both
succeed; `suspect_clone` marks a credential whose counter went backwards, which refuses it from then
on. Listing and deleting take the caller's tenant and go through `keel.store.tenancy`.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from keel.errors import UsageError
from keel.store.engine import AsyncDatabase
from keel.store.repository import read_connection, write_transaction
from keel.store.tables import (
    CREDENTIAL_ID_LENGTH,
    ID_LENGTH,
    NAME_LENGTH,
    passkey_enrollments,
    passkeys,
    webauthn_challenges,
)
from keel.store.tenancy import scope_to_tenant, tenant_condition

CHALLENGE_BYTES = 32
CHALLENGE_TTL = timedelta(minutes=5)
ENROLLMENT_TTL = timedelta(hours=24)
ENROLLMENT_TOKEN_BYTES = 32
PURGE_AFTER = timedelta(hours=1)
"""Challenges are deleted this long after they expire (kept a little while for diagnosis)."""

ChallengePurpose = Literal["register", "authenticate"]
ChallengeProblem = Literal["unknown_challenge", "challenge_used", "challenge_expired"]
EnrollmentProblem = Literal["unknown_enrollment", "enrollment_used", "enrollment_expired"]


class ChallengeRefused(UsageError):
    """A challenge that cannot be used: unknown (or made for another purpose), spent, or expired."""

    def __init__(self, reason: ChallengeProblem) -> None:
        super().__init__(reason.replace("_", " "))
        self.reason: ChallengeProblem = reason


class EnrollmentRefused(UsageError):
    """An enrolment link that cannot be used: unknown, already used, or expired."""

    def __init__(self, reason: EnrollmentProblem) -> None:
        super().__init__(reason.replace("_", " "))
        self.reason: EnrollmentProblem = reason


class DuplicateCredential(UsageError):
    """This credential id is registered already."""


@dataclass(frozen=True)
class ChallengeRecord:
    id: str
    purpose: ChallengePurpose
    user_id: str | None
    tenant_id: str | None
    enrollment_id: str | None
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class EnrollmentRecord:
    """An enrolment link as stored: never its token."""

    id: str
    user_id: str
    tenant_id: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    created_by: str | None


@dataclass(frozen=True, repr=False)
class CreatedEnrollment:
    """A new enrolment link: `token` exists in this value only."""

    token: str
    record: EnrollmentRecord

    def __repr__(self) -> str:
        return f"CreatedEnrollment(token='***', record={self.record!r})"


@dataclass(frozen=True)
class PasskeyRecord:
    id: str
    credential_id: str  # base64url, unpadded
    user_id: str
    tenant_id: str
    public_key: bytes  # COSE_Key
    sign_count: int
    transports: tuple[str, ...]
    aaguid: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    clone_suspected_at: datetime | None


def sha256_hex(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class PasskeyStore(AsyncDatabase):
    """Passkeys, challenges and enrolment links on the database at `url` (connects lazily).

    `clock` (aware UTC) defaults to the system clock; tests move it to expire challenges and links.
    """

    def __init__(self, url: str, *, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(url)
        self._clock = clock or _utc_now

    def now(self) -> datetime:
        return self._clock()

    # -- challenges --------------------------------------------------------------------------------

    async def create_challenge(
        self,
        purpose: ChallengePurpose,
        *,
        user_id: str | None = None,
        tenant_id: str | None = None,
        enrollment_id: str | None = None,
        ttl: timedelta = CHALLENGE_TTL,
    ) -> bytes:
        """32 fresh random bytes, stored (hashed) for `purpose`, usable once within `ttl`."""
        challenge = secrets.token_bytes(CHALLENGE_BYTES)
        now = self._clock()
        row = {
            "id": f"chl_{uuid.uuid4().hex}",
            "challenge_hash": sha256_hex(challenge),
            "purpose": purpose,
            "user_id": user_id,
            "tenant_id": tenant_id,
            "enrollment_id": enrollment_id,
            "created_at": now,
            "expires_at": now + ttl,
            "used_at": None,
        }
        async with write_transaction(self._engine, self._url) as connection:
            await connection.execute(
                delete(webauthn_challenges).where(webauthn_challenges.c.expires_at < now - PURGE_AFTER)
            )
            await connection.execute(insert(webauthn_challenges), [row])
        return challenge

    async def consume_challenge(self, challenge: bytes, purpose: ChallengePurpose) -> ChallengeRecord:
        """Spend `challenge` (made for `purpose`): its record, or `ChallengeRefused` saying why."""
        digest = sha256_hex(challenge)
        now = self._clock()
        table = webauthn_challenges
        mine = and_(table.c.challenge_hash == digest, table.c.purpose == purpose)
        async with write_transaction(self._engine, self._url) as connection:
            spent = await connection.execute(
                update(table)
                .where(mine, table.c.used_at.is_(None), table.c.expires_at > now)
                .values(used_at=now)
            )
            row = (await connection.execute(select(table).where(mine))).mappings().first()
        if row is None:
            raise ChallengeRefused("unknown_challenge")
        if not spent.rowcount:  # this request did not spend it: someone did, or it expired
            raise ChallengeRefused("challenge_used" if row["used_at"] is not None else "challenge_expired")
        return ChallengeRecord(
            id=row["id"],
            purpose=row["purpose"],
            user_id=row["user_id"],
            tenant_id=row["tenant_id"],
            enrollment_id=row["enrollment_id"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
        )

    # -- enrolment links ---------------------------------------------------------------------------

    async def create_enrollment(
        self,
        user_id: str,
        tenant_id: str,
        *,
        ttl: timedelta = ENROLLMENT_TTL,
        created_by: str | None = None,
    ) -> CreatedEnrollment:
        """A one-time enrolment link for `user_id` (of `tenant_id`); its token is returned only here."""
        _bounded(user_id, "user id", ID_LENGTH)
        _bounded(tenant_id, "tenant", NAME_LENGTH)
        token = secrets.token_urlsafe(ENROLLMENT_TOKEN_BYTES)
        now = self._clock()
        row = {
            "id": f"enr_{uuid.uuid4().hex}",
            "token_hash": sha256_hex(token.encode()),
            "user_id": user_id,
            "tenant_id": tenant_id,
            "created_at": now,
            "expires_at": now + ttl,
            "used_at": None,
            "created_by": created_by[:NAME_LENGTH] if created_by else None,
        }
        async with write_transaction(self._engine, self._url) as connection:
            await connection.execute(insert(passkey_enrollments), [row])
        return CreatedEnrollment(token=token, record=_enrollment(row))

    async def enrollment(self, token: str) -> EnrollmentRecord:
        """The usable enrolment link with this token, else `EnrollmentRefused` saying why."""
        if not isinstance(token, str) or not token or len(token) > 256:
            raise EnrollmentRefused("unknown_enrollment")
        statement = select(passkey_enrollments).where(
            passkey_enrollments.c.token_hash == sha256_hex(token.encode())
        )
        async with read_connection(self._engine, self._url) as connection:
            row = (await connection.execute(statement)).mappings().first()
        if row is None:
            raise EnrollmentRefused("unknown_enrollment")
        if row["used_at"] is not None:
            raise EnrollmentRefused("enrollment_used")
        if row["expires_at"] <= self._clock():
            raise EnrollmentRefused("enrollment_expired")
        return _enrollment(row)

    async def list_enrollments(self, *, tenant_id: str | None = None) -> list[EnrollmentRecord]:
        """Enrolment links, newest first; only `tenant_id`'s when given."""
        statement = scope_to_tenant(
            select(passkey_enrollments).order_by(passkey_enrollments.c.created_at.desc()),
            passkey_enrollments,
            tenant_id,
        )
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [_enrollment(row) for row in rows]

    # -- passkeys ----------------------------------------------------------------------------------

    async def add_passkey(
        self,
        *,
        credential_id: str,
        user_id: str,
        tenant_id: str,
        public_key: bytes,
        sign_count: int,
        transports: Sequence[str],
        aaguid: str,
        name: str,
        enrollment_id: str | None = None,
    ) -> PasskeyRecord:
        """Store a verified credential. With `enrollment_id`, that link is spent in the same
        transaction (`EnrollmentRefused` if it was spent or expired meanwhile: nothing is stored).
        `DuplicateCredential` if the credential id is registered already."""
        if not credential_id or len(credential_id) > CREDENTIAL_ID_LENGTH:
            raise UsageError("a credential id is 1 to 1023 bytes")
        now = self._clock()
        row = {
            "id": f"pky_{uuid.uuid4().hex}",
            "credential_id": credential_id,
            "user_id": user_id,
            "tenant_id": tenant_id,
            "public_key": bytes(public_key),
            "sign_count": int(sign_count),
            "transports": [str(t)[:32] for t in transports][:16],
            "aaguid": aaguid,
            "name": (name.strip() or "passkey")[:NAME_LENGTH],
            "created_at": now,
            "last_used_at": None,
            "clone_suspected_at": None,
        }
        try:
            async with write_transaction(self._engine, self._url) as connection:
                if enrollment_id is not None:
                    spent = await connection.execute(
                        update(passkey_enrollments)
                        .where(
                            passkey_enrollments.c.id == enrollment_id,
                            passkey_enrollments.c.user_id == user_id,
                            passkey_enrollments.c.used_at.is_(None),
                            passkey_enrollments.c.expires_at > now,
                        )
                        .values(used_at=now)
                    )
                    if not spent.rowcount:
                        raise EnrollmentRefused("enrollment_used")
                await connection.execute(insert(passkeys), [row])
        except IntegrityError:
            raise DuplicateCredential("this passkey is registered already") from None
        return _passkey(row)

    async def passkey_by_credential_id(self, credential_id: str) -> PasskeyRecord | None:
        """The passkey with this credential id (any tenant: the credential says whose), or None."""
        if not credential_id or len(credential_id) > CREDENTIAL_ID_LENGTH:
            return None
        statement = select(passkeys).where(passkeys.c.credential_id == credential_id)
        async with read_connection(self._engine, self._url) as connection:
            row = (await connection.execute(statement)).mappings().first()
        return None if row is None else _passkey(row)

    async def list_passkeys(
        self, *, user_id: str | None = None, tenant_id: str | None = None
    ) -> list[PasskeyRecord]:
        """Passkeys, newest first: a user's when `user_id` is given; only `tenant_id`'s when given."""
        statement = select(passkeys).order_by(passkeys.c.created_at.desc(), passkeys.c.id.desc())
        if user_id is not None:
            statement = statement.where(passkeys.c.user_id == user_id)
        statement = scope_to_tenant(statement, passkeys, tenant_id)
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [_passkey(row) for row in rows]

    async def delete_passkey(self, passkey_id: str, *, tenant_id: str | None = None) -> bool:
        """Remove a passkey (by id or credential id); False if there is none (for this tenant)."""
        conditions = [or_(passkeys.c.id == passkey_id, passkeys.c.credential_id == passkey_id)]
        if tenant_id is not None:
            conditions.append(tenant_condition(passkeys, tenant_id))
        async with write_transaction(self._engine, self._url) as connection:
            result = await connection.execute(delete(passkeys).where(*conditions))
        return bool(result.rowcount)

    async def record_use(self, passkey_id: str, *, seen: int, new_count: int) -> bool:
        """Move the counter from `seen` (read before verifying) to `new_count` and note the use.

        Only if the stored counter is still `seen`: False when another sign-in moved it meanwhile
        (then this one is refused, as a counter that did not go forward)."""
        now = self._clock()
        statement = (
            update(passkeys)
            .where(
                passkeys.c.id == passkey_id,
                passkeys.c.sign_count == seen,
                passkeys.c.clone_suspected_at.is_(None),
            )
            .values(sign_count=new_count, last_used_at=now)
        )
        async with write_transaction(self._engine, self._url) as connection:
            result = await connection.execute(statement)
        return bool(result.rowcount)

    async def suspect_clone(self, passkey_id: str) -> None:
        """Mark a credential as possibly cloned: refused from now on (delete it to enrol anew)."""
        now = self._clock()
        statement = (
            update(passkeys)
            .where(passkeys.c.id == passkey_id, passkeys.c.clone_suspected_at.is_(None))
            .values(clone_suspected_at=now)
        )
        async with write_transaction(self._engine, self._url) as connection:
            await connection.execute(statement)


def _bounded(value: object, what: str, limit: int) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise UsageError(f"the {what} must be a non-empty string of at most {limit} characters")


def _enrollment(row: Mapping[Any, Any]) -> EnrollmentRecord:
    return EnrollmentRecord(
        id=row["id"],
        user_id=row["user_id"],
        tenant_id=row["tenant_id"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        used_at=row["used_at"],
        created_by=row["created_by"],
    )


def _passkey(row: Mapping[Any, Any]) -> PasskeyRecord:
    return PasskeyRecord(
        id=row["id"],
        credential_id=row["credential_id"],
        user_id=row["user_id"],
        tenant_id=row["tenant_id"],
        public_key=bytes(row["public_key"]),
        sign_count=int(row["sign_count"]),
        transports=tuple(row["transports"] or ()),
        aaguid=row["aaguid"],
        name=row["name"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        clone_suspected_at=row["clone_suspected_at"],
    )
