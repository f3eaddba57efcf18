"""Browser sessions: who is signed in, by a cookie. The sign-in itself (passkeys) calls
`start_session`; the authorization endpoint (`/oauth/authorize`) calls `user_of_session`.

    cookie = await start_session(store, user, ttl=12 * 3600)       # after a successful sign-in
    set_session_cookie(response, cookie, max_age=12 * 3600, secure=cookie_secure(public_url))
    ...
    user = await user_of_request(store, request)                    # SignedInUser | None
    ...
    await sign_out(store, request.cookies.get(SESSION_COOKIE))      # and clear_session_cookie(response)

The cookie. `SESSION_COOKIE` (`keel_session`) holds 32 random bytes, URL-safe base64 without
padding: a bearer secret. The database stores only its SHA-256 (`user_sessions.id`), so a copy of
the database cannot be turned into a session. Attributes (`set_session_cookie`): HttpOnly (no
script reads it), SameSite=Lax (sent on top-level navigations, such as the redirect to
/oauth/authorize, not on cross-site subrequests), Path=/, and Secure unless the server's public
URL is plain http on localhost or a loopback address (development).

A session ends at its expiry, at `sign_out`, or when its user is disabled
(`IdentityStore.disable_user`). `last_seen_at` is written at most once a minute per session.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from keel.store.identity import IdentityStore, User

SESSION_COOKIE = "keel_session"
"""The name of the session cookie."""

SESSION_BYTES = 32
TOUCH_INTERVAL = 60.0
"""`last_seen_at` is written at most this often (seconds) per session."""

_COOKIE_VALUE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})

logger = logging.getLogger("keel.gateway.sessions")


@dataclass(frozen=True)
class SignedInUser:
    """The user behind a live session: what the pages and /oauth/authorize need to know."""

    id: str
    tenant_id: str
    roles: tuple[str, ...]
    name: str = ""


def session_id_of(cookie_value: str) -> str:
    """The stored id of a session: SHA-256 (hex) of its cookie value."""
    return hashlib.sha256(cookie_value.encode()).hexdigest()


async def start_session(store: IdentityStore, user: User, ttl: float | timedelta) -> str:
    """Open a session for an active `user` lasting `ttl` (seconds or a timedelta); returns the
    cookie value, to be set with `set_session_cookie` and never stored anywhere else.
    `keel.store.identity.UnknownUser` if the user does not exist or is disabled."""
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
    if seconds <= 0:
        raise ValueError("a session's ttl must be more than 0 seconds")
    value = secrets.token_urlsafe(SESSION_BYTES)
    await store.create_session(session_id_of(value), user, ttl=seconds)
    return value


async def user_of_session(store: IdentityStore, cookie_value: str | None) -> SignedInUser | None:
    """The signed-in user of a cookie value, or None: no cookie, not shaped like one, unknown,
    expired, signed out, or the user is disabled. Database outages propagate."""
    if not cookie_value or not _COOKIE_VALUE.fullmatch(cookie_value):
        return None
    session_id = session_id_of(cookie_value)
    found = await store.session_user(session_id)
    if found is None:
        return None
    session, user = found
    last = session.last_seen_at
    if last is None or (store.clock() - last).total_seconds() >= TOUCH_INTERVAL:
        try:
            await store.touch_session(session_id, interval=TOUCH_INTERVAL)
        except SQLAlchemyError as exc:  # a missed last-seen write never signs anyone out
            logger.warning("could not record the last use of a session of user %s: %s", user.id, exc)
    return SignedInUser(id=user.id, tenant_id=user.tenant_id, roles=user.roles, name=user.name)


async def user_of_request(store: IdentityStore, request: Request) -> SignedInUser | None:
    """`user_of_session` for the request's session cookie."""
    return await user_of_session(store, request.cookies.get(SESSION_COOKIE))


async def sign_out(store: IdentityStore, cookie_value: str | None) -> bool:
    """End the session of a cookie value; False if there was no live session."""
    if not cookie_value or not _COOKIE_VALUE.fullmatch(cookie_value):
        return False
    return await store.revoke_session(session_id_of(cookie_value))


def cookie_secure(public_url: str) -> bool:
    """Whether the cookie needs the Secure attribute: always, except for a server whose public URL
    is plain http on localhost or a loopback address (local development)."""
    parts = urlsplit(public_url)
    return not (parts.scheme == "http" and parts.hostname in _LOOPBACK)


def set_session_cookie(
    response: Response, cookie_value: str, *, max_age: float | timedelta, secure: bool
) -> None:
    """Set the session cookie on `response`: HttpOnly, SameSite=Lax, Path=/, Secure when `secure`."""
    seconds = max_age.total_seconds() if isinstance(max_age, timedelta) else max_age
    response.set_cookie(
        SESSION_COOKIE,
        cookie_value,
        max_age=int(seconds),
        path="/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, *, secure: bool) -> None:
    """Remove the session cookie from the browser (after `sign_out`)."""
    response.delete_cookie(SESSION_COOKIE, path="/", secure=secure, httponly=True, samesite="lax")


__all__ = [
    "SESSION_COOKIE",
    "SignedInUser",
    "clear_session_cookie",
    "cookie_secure",
    "session_id_of",
    "set_session_cookie",
    "sign_out",
    "start_session",
    "user_of_request",
    "user_of_session",
]
