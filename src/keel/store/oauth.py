"""Stored state of the built-in OAuth2 authorization server: clients, authorization codes, refresh
tokens, the access-token deny list and the signing keys. `keel.store.identity.IdentityStore` adds
users and browser sessions on top; the protocol itself is `keel.gateway.oauth`.

Secrets. Nothing stored can be presented back: a client secret is kept as its HMAC (like API keys,
under `KEEL_KEY_PEPPER`, with its own domain), codes and refresh tokens as their SHA-256 (they are
256-bit random values: a fast hash is enough), signing keys encrypted (`keel.gateway.oauth.crypto`).

Single use. Codes and refresh tokens are consumed by a conditional UPDATE (`... WHERE used_at IS
NULL`), so of two concurrent uses exactly one wins, on both backends.

Families. Every refresh token belongs to a family: the tokens issued, one after the other, from one
authorization code. Revoking a family marks all its rows revoked; a token is only usable while no
token of its family is revoked, so a token inserted concurrently with a revocation is dead too.

Tenancy. Listing and revoking clients take the caller's tenant and go through `keel.store.tenancy`;
lookups by a secret (a code, a token) are not scoped: the secret says whose it is.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from keel.errors import UsageError
from keel.gateway.keys import PREFIX_ALPHABET, hash_secret, key_pepper, secret_matches, validate_scopes
from keel.store.engine import AsyncDatabase
from keel.store.repository import read_connection, write_transaction
from keel.store.tables import (
    NAME_LENGTH,
    oauth_clients,
    oauth_codes,
    oauth_refresh_tokens,
    oauth_revoked_tokens,
    oauth_signing_keys,
)
from keel.store.tenancy import scope_to_tenant, tenant_condition
from keel.store.urls import backend_of, parse_url

GrantType = Literal["client_credentials", "authorization_code"]
GRANT_TYPES: tuple[GrantType, ...] = ("client_credentials", "authorization_code")

CLIENT_ID_PREFIX = "kc_"
CLIENT_ID_RANDOM = 20  # base32 characters: 100 bits
CLIENT_SECRET_BYTES = 32
_CLIENT_DOMAIN = b"/oauth-client.v1"  # appended to the pepper: client secrets are not API keys
_NO_SUCH_HASH = "0" * 64

logger = logging.getLogger(__name__)


class UnknownClient(UsageError):
    """No client with this id (for this tenant)."""


def sha256_hex(value: str) -> str:
    """How codes, refresh tokens and session cookies are looked up: SHA-256, hex."""
    return hashlib.sha256(value.encode()).hexdigest()


def new_secret() -> str:
    """32 random bytes, URL-safe base64 without padding (43 characters)."""
    return secrets.token_urlsafe(32)


# -- records -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OAuthClient:
    """A registered client. `secret_hash` is None for a public client (authorization code + PKCE,
    no secret); it is never shown (not in repr, not in listings)."""

    id: str
    tenant_id: str
    name: str
    grant_type: GrantType
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None
    created_by: str | None
    secret_hash: str | None = field(default=None, repr=False, compare=False)

    @property
    def confidential(self) -> bool:
        return self.secret_hash is not None

    @property
    def state(self) -> Literal["active", "revoked"]:
        return "revoked" if self.revoked_at is not None else "active"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, without the secret's hash."""
        return {
            "client_id": self.id,
            "tenant_id": self.tenant_id,
            "name": self.name,
            "grant_type": self.grant_type,
            "confidential": self.confidential,
            "redirect_uris": list(self.redirect_uris),
            "scopes": list(self.scopes),
            "state": self.state,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "created_by": self.created_by,
        }


@dataclass(frozen=True, repr=False)
class CreatedClient:
    """A new client: `secret` (confidential clients only) is returned this once."""

    client: OAuthClient
    secret: str | None

    def __repr__(self) -> str:
        return f"CreatedClient(client={self.client!r}, secret={'***' if self.secret else None})"


@dataclass(frozen=True)
class AuthorizationCode:
    id: str  # SHA-256 of the code
    client_id: str
    user_id: str
    tenant_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    code_challenge: str
    code_challenge_method: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    family_id: str | None


@dataclass(frozen=True)
class FamilyRevocation:
    """What revoking a refresh-token family did: how many refresh tokens it revoked, and the access
    tokens issued with them that it deny-listed (`jti`, expiry), for callers that cache."""

    refresh_tokens: int = 0
    access_tokens: tuple[tuple[str, datetime], ...] = ()


@dataclass(frozen=True)
class CodeUse:
    """What consuming a code found: the code (this caller won it), or `reused` (already used:
    its tokens' family, if any, has been revoked: `revoked`), or neither (unknown, expired, other
    client)."""

    code: AuthorizationCode | None
    reused: bool = False
    revoked: FamilyRevocation = FamilyRevocation()


@dataclass(frozen=True)
class RefreshToken:
    id: str  # SHA-256 of the token
    family_id: str
    client_id: str
    user_id: str
    tenant_id: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None
    family_revoked: bool  # some token of its family is revoked: the whole family is dead


@dataclass(frozen=True)
class SigningKeyRow:
    kid: str
    generation: int
    alg: str
    public_jwk: Mapping[str, Any]
    private_jwe: str = field(repr=False)
    created_at: datetime


# -- validation --------------------------------------------------------------------------------


def validate_redirect_uri(uri: str) -> str:
    """An absolute redirect URI without a fragment: https, http on a loopback host (native apps,
    RFC 8252), or a private-use scheme with a dot (`com.example.app:/callback`)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        raise UsageError(f"--redirect-uri: not a URI: {uri!r}") from None
    if uri != uri.strip() or parts.fragment or "#" in uri:
        raise UsageError(f"--redirect-uri: {uri!r} must be absolute, without spaces or a fragment")
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme == "https" and parts.hostname:
        return uri
    if parts.scheme == "http" and loopback:
        return uri
    if "." in parts.scheme and parts.scheme not in ("http", "https") and (parts.path or parts.netloc):
        return uri
    raise UsageError(
        f"--redirect-uri: {uri!r} must be https://..., http://localhost or 127.0.0.1 (native apps), "
        "or a private-use scheme such as com.example.app:/callback"
    )


def _text(value: str, option: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{option}: must not be empty")
    if len(value) > NAME_LENGTH:
        raise UsageError(f"{option}: longer than {NAME_LENGTH} characters")
    return value


def _utc_now() -> datetime:
    return datetime.now(UTC)


# -- the store ---------------------------------------------------------------------------------


class OAuthStore(AsyncDatabase):
    """The OAuth2 server's rows on the database at `url`. Connects lazily; `close()` or `async with`.

    `pepper` defaults to `KEEL_KEY_PEPPER` (see `keel.gateway.keys.key_pepper`); `clock` (aware UTC)
    to the system clock.
    """

    def __init__(
        self,
        url: str,
        *,
        pepper: bytes | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(url)
        self._client_pepper = (pepper if pepper is not None else key_pepper(environ)) + _CLIENT_DOMAIN
        self.clock: Callable[[], datetime] = clock or _utc_now
        self._backend = backend_of(parse_url(url))

    # -- clients -------------------------------------------------------------------------------

    async def create_client(
        self,
        name: str,
        *,
        tenant_id: str,
        grant_type: str,
        redirect_uris: Sequence[str] = (),
        scopes: Iterable[str] = (),
        confidential: bool | None = None,
        created_by: str | None = None,
    ) -> CreatedClient:
        """A new client. `client_credentials` clients are confidential and need scopes (what the
        service may do); `authorization_code` clients need redirect URIs, are public unless
        `confidential`, and without scopes may ask for any (their users' roles still limit them).
        UsageError naming the option for bad input."""
        name = _text(name, "--name")
        tenant_id = _text(tenant_id, "--tenant")
        if grant_type not in GRANT_TYPES:
            raise UsageError(f"--grant: expected one of {', '.join(GRANT_TYPES)}, got {grant_type!r}")
        uris = tuple(dict.fromkeys(validate_redirect_uri(uri) for uri in redirect_uris))
        requested = list(scopes)
        if grant_type == "client_credentials":
            if uris:
                raise UsageError("--redirect-uri: a client_credentials client has no redirect URIs")
            if confidential is False:
                raise UsageError(
                    "--grant: a client_credentials client is always confidential (it has a secret)"
                )
            if not requested:
                raise UsageError("--scope: a client_credentials client needs at least one scope")
            confidential = True
        else:
            if not uris:
                raise UsageError("--redirect-uri: an authorization_code client needs at least one")
            confidential = bool(confidential)
        try:
            checked = validate_scopes(requested) if requested else ()
        except UsageError as exc:
            raise UsageError(f"--scope: {exc}") from None
        secret = new_secret() if confidential else None
        now = self.clock()
        row = {
            "id": CLIENT_ID_PREFIX
            + "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(CLIENT_ID_RANDOM)),
            "tenant_id": tenant_id,
            "name": name,
            "grant_type": grant_type,
            "redirect_uris": list(uris),
            "scopes": list(checked),
            "secret_hash": hash_secret(secret, self._client_pepper) if secret else None,
            "created_at": now,
            "revoked_at": None,
            "created_by": created_by[:NAME_LENGTH] if created_by else None,
        }
        async with write_transaction(self._engine, self._url) as connection:
            await connection.execute(insert(oauth_clients), [row])
        return CreatedClient(client=_client(row), secret=secret)

    async def get_client(self, client_id: str) -> OAuthClient | None:
        """The client with this id, revoked or not (None if unknown)."""
        if not isinstance(client_id, str) or len(client_id) > 128:
            return None
        async with read_connection(self._engine, self._url) as connection:
            row = (
                (await connection.execute(select(oauth_clients).where(oauth_clients.c.id == client_id)))
                .mappings()
                .first()
            )
        return _client(row) if row is not None else None

    def client_secret_matches(self, client: OAuthClient | None, secret: str) -> bool:
        """Whether `secret` is the client's, in constant time (a public or unknown client costs the
        same HMAC and never matches)."""
        stored = client.secret_hash if client is not None and client.secret_hash else None
        matches = secret_matches(secret, stored or _NO_SUCH_HASH, self._client_pepper)
        return matches and stored is not None

    async def list_clients(self, *, tenant_id: str | None = None) -> list[OAuthClient]:
        """Clients newest first, revoked ones included; only `tenant_id`'s when given."""
        statement = scope_to_tenant(
            select(oauth_clients).order_by(oauth_clients.c.created_at.desc(), oauth_clients.c.id.desc()),
            oauth_clients,
            tenant_id,
        )
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [_client(row) for row in rows]

    async def revoke_client(self, client_id: str, *, tenant_id: str | None = None) -> OAuthClient:
        """Revoke a client: it can no longer get tokens, and its refresh tokens stop working.
        Revoking again keeps the first time. `UnknownClient` if there is none (for this tenant)."""
        now = self.clock()
        conditions = [oauth_clients.c.id == client_id, oauth_clients.c.revoked_at.is_(None)]
        if tenant_id is not None:
            conditions.append(tenant_condition(oauth_clients, tenant_id))
        async with write_transaction(self._engine, self._url) as connection:
            await connection.execute(update(oauth_clients).where(*conditions).values(revoked_at=now))
            await connection.execute(
                update(oauth_refresh_tokens)
                .where(
                    oauth_refresh_tokens.c.client_id == client_id, oauth_refresh_tokens.c.revoked_at.is_(None)
                )
                .values(revoked_at=now)
            )
            statement = scope_to_tenant(
                select(oauth_clients).where(oauth_clients.c.id == client_id), oauth_clients, tenant_id
            )
            row = (await connection.execute(statement)).mappings().first()
        if row is None:
            raise UnknownClient(f"no OAuth client {client_id!r}")
        return _client(row)

    # -- authorization codes -------------------------------------------------------------------

    async def save_code(
        self,
        code: str,
        *,
        client_id: str,
        user_id: str,
        tenant_id: str,
        redirect_uri: str,
        scopes: Sequence[str],
        code_challenge: str,
        code_challenge_method: str,
        ttl: float,
    ) -> None:
        """Store a new authorization code (by its SHA-256), valid for `ttl` seconds."""
        now = self.clock()
        row = {
            "id": sha256_hex(code),
            "client_id": client_id,
            "user_id": user_id,
            "tenant_id": tenant_id,
            "redirect_uri": redirect_uri,
            "scopes": list(scopes),
            "code_challenge": code_challenge,
            "code_challenge_method": code_challenge_method,
            "created_at": now,
            "expires_at": now + timedelta(seconds=ttl),
            "used_at": None,
            "family_id": None,
        }
        async with write_transaction(self._engine, self._url) as connection:
            await connection.execute(insert(oauth_codes), [row])

    async def consume_code(self, code: str, *, client_id: str) -> CodeUse:
        """Use a code once. Of concurrent uses exactly one gets it; a code used before is `reused`
        and the refresh tokens issued from it are revoked (RFC 6749 section 4.1.2)."""
        code_hash = sha256_hex(code)
        now = self.clock()
        claim = (
            update(oauth_codes)
            .where(
                oauth_codes.c.id == code_hash,
                oauth_codes.c.client_id == client_id,
                oauth_codes.c.used_at.is_(None),
                oauth_codes.c.expires_at > now,
            )
            .values(used_at=now)
        )
        async with write_transaction(self._engine, self._url) as connection:
            won = (await connection.execute(claim)).rowcount == 1
            row = (
                (await connection.execute(select(oauth_codes).where(oauth_codes.c.id == code_hash)))
                .mappings()
                .first()
            )
        if row is None or row["client_id"] != client_id:
            return CodeUse(None)
        if won:
            return CodeUse(_code(row))
        if row["used_at"] is not None:
            revoked = await self.revoke_family(row["family_id"]) if row["family_id"] else FamilyRevocation()
            return CodeUse(None, reused=True, revoked=revoked)
        return CodeUse(None)  # expired

    async def set_code_family(self, code_id: str, family_id: str) -> None:
        """Remember which refresh-token family a code gave (revoked if the code is used again)."""
        async with write_transaction(self._engine, self._url) as connection:
            await connection.execute(
                update(oauth_codes).where(oauth_codes.c.id == code_id).values(family_id=family_id)
            )

    # -- refresh tokens ------------------------------------------------------------------------

    async def save_refresh_token(
        self,
        token: str,
        *,
        family_id: str,
        client_id: str,
        user_id: str,
        tenant_id: str,
        scopes: Sequence[str],
        ttl: float,
        access_jti: str | None = None,
        access_expires_at: datetime | None = None,
    ) -> None:
        """Store a new refresh token (by its SHA-256) in `family_id`, valid for `ttl` seconds, with
        the `jti` of the access token issued alongside (deny-listed if the family is revoked)."""
        now = self.clock()
        row = {
            "id": sha256_hex(token),
            "family_id": family_id,
            "client_id": client_id,
            "user_id": user_id,
            "tenant_id": tenant_id,
            "scopes": list(scopes),
            "created_at": now,
            "expires_at": now + timedelta(seconds=ttl),
            "used_at": None,
            "revoked_at": None,
            "access_jti": access_jti,
            "access_expires_at": access_expires_at,
        }
        async with write_transaction(self._engine, self._url) as connection:
            await connection.execute(insert(oauth_refresh_tokens), [row])

    async def find_refresh_token(self, token: str) -> RefreshToken | None:
        """The stored refresh token (used, revoked or expired ones included), or None."""
        token_hash = sha256_hex(token)
        family = oauth_refresh_tokens.alias("family")
        family_revoked = (
            exists()
            .where(family.c.family_id == oauth_refresh_tokens.c.family_id, family.c.revoked_at.is_not(None))
            .label("family_revoked")
        )
        statement = select(oauth_refresh_tokens, family_revoked).where(
            oauth_refresh_tokens.c.id == token_hash
        )
        async with read_connection(self._engine, self._url) as connection:
            row = (await connection.execute(statement)).mappings().first()
        return _refresh(row) if row is not None else None

    async def consume_refresh_token(self, token: str) -> bool:
        """Use a refresh token once: True for the one caller that gets it, False if it was used or
        revoked (its family included) or has expired meanwhile."""
        token_hash = sha256_hex(token)
        now = self.clock()
        family = oauth_refresh_tokens.alias("family")
        statement = (
            update(oauth_refresh_tokens)
            .where(
                oauth_refresh_tokens.c.id == token_hash,
                oauth_refresh_tokens.c.used_at.is_(None),
                oauth_refresh_tokens.c.revoked_at.is_(None),
                oauth_refresh_tokens.c.expires_at > now,
                ~exists().where(
                    family.c.family_id == oauth_refresh_tokens.c.family_id, family.c.revoked_at.is_not(None)
                ),
            )
            .values(used_at=now)
        )
        async with write_transaction(self._engine, self._url) as connection:
            return (await connection.execute(statement)).rowcount == 1

    async def revoke_family(self, family_id: str) -> FamilyRevocation:
        """Revoke every refresh token of a family, and deny-list the access tokens issued with them
        that may still be valid."""
        now = self.clock()
        async with write_transaction(self._engine, self._url) as connection:
            revoked = await connection.execute(
                update(oauth_refresh_tokens)
                .where(
                    oauth_refresh_tokens.c.family_id == family_id, oauth_refresh_tokens.c.revoked_at.is_(None)
                )
                .values(revoked_at=now)
            )
            live = (
                await connection.execute(
                    select(
                        oauth_refresh_tokens.c.access_jti,
                        oauth_refresh_tokens.c.tenant_id,
                        oauth_refresh_tokens.c.access_expires_at,
                    ).where(
                        oauth_refresh_tokens.c.family_id == family_id,
                        oauth_refresh_tokens.c.access_jti.is_not(None),
                        oauth_refresh_tokens.c.access_expires_at > now,
                    )
                )
            ).all()
            for jti, tenant_id, expires_at in live:
                await self._deny(connection, jti, tenant_id, expires_at, now)
        return FamilyRevocation(
            refresh_tokens=int(revoked.rowcount or 0),
            access_tokens=tuple((jti, expires_at) for jti, _tenant, expires_at in live),
        )

    async def revoke_user_tokens(self, user_id: str) -> None:
        """Revoke every refresh-token family of a user (a disabled user)."""
        async with read_connection(self._engine, self._url) as connection:
            families = (
                await connection.execute(
                    select(oauth_refresh_tokens.c.family_id)
                    .where(
                        oauth_refresh_tokens.c.user_id == user_id, oauth_refresh_tokens.c.revoked_at.is_(None)
                    )
                    .distinct()
                )
            ).scalars()
            family_ids = list(families)
        for family_id in family_ids:
            await self.revoke_family(family_id)

    # -- the access-token deny list --------------------------------------------------------------

    async def revoke_access_token(self, jti: str, *, tenant_id: str, expires_at: datetime) -> None:
        """Deny-list an access token by its `jti` until it expires (revoking again is harmless)."""
        async with write_transaction(self._engine, self._url) as connection:
            await self._deny(connection, jti, tenant_id, expires_at, self.clock())

    async def _deny(
        self, connection: Any, jti: str, tenant_id: str, expires_at: datetime, now: datetime
    ) -> None:
        row = {"jti": jti[:64], "tenant_id": tenant_id, "revoked_at": now, "expires_at": expires_at}
        if self._backend == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            await connection.execute(pg_insert(oauth_revoked_tokens).on_conflict_do_nothing(), [row])
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            await connection.execute(sqlite_insert(oauth_revoked_tokens).on_conflict_do_nothing(), [row])

    async def access_token_revoked(self, jti: str) -> bool:
        """Whether an access token's `jti` is on the deny list."""
        async with read_connection(self._engine, self._url) as connection:
            found = await connection.execute(
                select(oauth_revoked_tokens.c.jti).where(oauth_revoked_tokens.c.jti == jti[:64])
            )
            return found.first() is not None

    # -- signing keys ------------------------------------------------------------------------------

    async def signing_keys(self, *, limit: int = 50) -> list[SigningKeyRow]:
        """The newest signing keys first (by generation)."""
        statement = select(oauth_signing_keys).order_by(oauth_signing_keys.c.generation.desc()).limit(limit)
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [
            SigningKeyRow(
                kid=row["kid"],
                generation=row["generation"],
                alg=row["alg"],
                public_jwk=dict(row["public_jwk"]),
                private_jwe=row["private_jwe"],
                created_at=row["created_at"],
            )
            for row in rows
        ]

    async def add_signing_key(self, row: SigningKeyRow) -> bool:
        """Insert a key of the next generation. False when another process inserted that generation
        first (the unique constraint): the caller then uses that one."""
        values = {
            "kid": row.kid,
            "generation": row.generation,
            "alg": row.alg,
            "public_jwk": dict(row.public_jwk),
            "private_jwe": row.private_jwe,
            "created_at": row.created_at,
        }
        try:
            async with write_transaction(self._engine, self._url) as connection:
                await connection.execute(insert(oauth_signing_keys), [values])
        except IntegrityError:
            return False
        return True

    # -- housekeeping --------------------------------------------------------------------------

    async def purge_expired(self, *, keep: timedelta = timedelta(days=1)) -> int:
        """Delete codes, deny-list entries and refresh tokens that expired more than `keep` ago
        (a day by default, so a reused code or token is still recognised as reused for a while)."""
        cutoff = self.clock() - keep
        deleted = 0
        async with write_transaction(self._engine, self._url) as connection:
            for table in (oauth_codes, oauth_revoked_tokens):
                result = await connection.execute(delete(table).where(table.c.expires_at < cutoff))
                deleted += int(result.rowcount or 0)
            # A family goes as a whole, once its last token has expired: its revoked rows are what
            # keeps a concurrently inserted token of a revoked family dead.
            expired_families = (
                select(oauth_refresh_tokens.c.family_id)
                .group_by(oauth_refresh_tokens.c.family_id)
                .having(func.max(oauth_refresh_tokens.c.expires_at) < cutoff)
            )
            result = await connection.execute(
                delete(oauth_refresh_tokens).where(oauth_refresh_tokens.c.family_id.in_(expired_families))
            )
            deleted += int(result.rowcount or 0)
        return deleted


def new_family_id() -> str:
    return f"fam_{uuid.uuid4().hex}"


def _client(row: Mapping[Any, Any]) -> OAuthClient:
    return OAuthClient(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        grant_type=row["grant_type"],
        redirect_uris=tuple(row["redirect_uris"]),
        scopes=tuple(row["scopes"]),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        created_by=row["created_by"],
        secret_hash=row["secret_hash"],
    )


def _code(row: Mapping[Any, Any]) -> AuthorizationCode:
    return AuthorizationCode(
        id=row["id"],
        client_id=row["client_id"],
        user_id=row["user_id"],
        tenant_id=row["tenant_id"],
        redirect_uri=row["redirect_uri"],
        scopes=tuple(row["scopes"]),
        code_challenge=row["code_challenge"],
        code_challenge_method=row["code_challenge_method"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        used_at=row["used_at"],
        family_id=row["family_id"],
    )


def _refresh(row: Mapping[Any, Any]) -> RefreshToken:
    return RefreshToken(
        id=row["id"],
        family_id=row["family_id"],
        client_id=row["client_id"],
        user_id=row["user_id"],
        tenant_id=row["tenant_id"],
        scopes=tuple(row["scopes"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        used_at=row["used_at"],
        revoked_at=row["revoked_at"],
        family_revoked=bool(row["family_revoked"]),
    )


__all__ = [
    "GRANT_TYPES",
    "AuthorizationCode",
    "CodeUse",
    "CreatedClient",
    "FamilyRevocation",
    "GrantType",
    "OAuthClient",
    "OAuthStore",
    "RefreshToken",
    "SigningKeyRow",
    "UnknownClient",
    "new_family_id",
    "new_secret",
    "sha256_hex",
    "validate_redirect_uri",
]
