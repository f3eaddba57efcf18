"""Database URLs: resolve the configured one, pick a driver, and never show a password.

Users write driver-less URLs (`sqlite:///.keel/keel.db`, `postgresql://user@host/db`); Keel picks
the driver per use. The background writer needs a blocking driver and the query API an asyncio one,
so one configured URL yields two SQLAlchemy URLs: `sqlite+pysqlite` / `sqlite+aiosqlite`, and
`postgresql+psycopg` for both (psycopg 3 is sync and async). Only psycopg is installed, so any
`postgresql+<driver>` is normalized to it rather than failing on a missing module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from keel.errors import UsageError

Backend = Literal["sqlite", "postgresql"]

ENV_VAR = "KEEL_DATABASE_URL"

_MEMORY_PATHS = ("", ":memory:")
_PASSWORD_IN_NETLOC = re.compile(
    r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<secret>[^@/\s]*)(?P<tail>@)", re.I
)
_PASSWORD_IN_QUERY = re.compile(r"(?P<head>[?&]password=)(?P<secret>[^&\s]*)", re.I)


def mask_url(url: str) -> str:
    """The URL with any password replaced by `***`: safe for logs and error messages.

    Works on strings SQLAlchemy cannot parse too, so an error about a malformed URL can quote it.
    """
    masked = _PASSWORD_IN_NETLOC.sub(r"\g<head>***\g<tail>", url)
    return _PASSWORD_IN_QUERY.sub(r"\g<head>***", masked)


def parse_url(url: str) -> URL:
    """Parse and check a Keel database URL; a bad one is a UsageError naming the masked URL."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UsageError(
            f"invalid database URL {mask_url(url)!r}: expected sqlite:///path.db or postgresql://user@host/db"
        ) from None
    backend_of(parsed)
    if parsed.get_backend_name() == "sqlite" and (parsed.database or "") in _MEMORY_PATHS:
        raise UsageError(
            f"in-memory SQLite ({mask_url(url)!r}) cannot be shared by the writer and the queries; "
            "use a file, e.g. sqlite:///.keel/keel.db"
        )
    return parsed


def backend_of(url: str | URL) -> Backend:
    """`sqlite` or `postgresql`; anything else is a UsageError."""
    parsed = make_url(url) if isinstance(url, str) else url
    name = parsed.get_backend_name()
    if name == "sqlite":
        return "sqlite"
    if name in ("postgresql", "postgres"):
        return "postgresql"
    raise UsageError(
        f"unsupported database URL {mask_url(parsed.render_as_string(hide_password=True))!r}: "
        "Keel stores runs in SQLite (sqlite:///path.db) or PostgreSQL (postgresql://user@host/db)"
    )


def resolve_database_url(configured: str, project_root: Path, environ: Mapping[str, str]) -> str:
    """The URL to use: `KEEL_DATABASE_URL` if set, else `storage.url`, made absolute and driver-less.

    A relative SQLite path is relative to the project root (not the working directory), so
    `keel run` from a subfolder and `keel serve` share one database; its folder is created.
    `postgres://` (Heroku style) becomes `postgresql://`.
    """
    raw = environ.get(ENV_VAR, "").strip() or configured
    parsed = parse_url(raw)
    if backend_of(parsed) == "sqlite":
        path = Path(parsed.database or "").expanduser()
        if not path.is_absolute():
            path = project_root / path
        path = path.resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        parsed = parsed.set(drivername="sqlite", database=str(path))
    else:
        parsed = parsed.set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def sync_url(url: str) -> URL:
    """The SQLAlchemy URL with the blocking driver (pysqlite or psycopg)."""
    parsed = parse_url(url)
    driver = "sqlite+pysqlite" if backend_of(parsed) == "sqlite" else "postgresql+psycopg"
    return parsed.set(drivername=driver)


def async_url(url: str) -> URL:
    """The SQLAlchemy URL with the asyncio driver (aiosqlite or psycopg's async connection)."""
    parsed = parse_url(url)
    driver = "sqlite+aiosqlite" if backend_of(parsed) == "sqlite" else "postgresql+psycopg"
    return parsed.set(drivername=driver)


def redact_secrets(message: str, url: str) -> str:
    """`message` with the URL's password (wherever it appears) and any URL credentials masked."""
    try:
        password = make_url(url).password
    except ArgumentError:
        password = None
    if password:
        message = message.replace(str(password), "***")
    return mask_url(message)


def describe_error(exc: BaseException, url: str) -> str:
    """A one-line, secret-free description of a database error: the driver's message, no SQL.

    SQLAlchemy's own message includes the statement and its parameters, which may carry user
    data; the driver's first line says what went wrong and is what an operator needs.
    """
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    first = lines[0] if lines else ""
    return redact_secrets(f"{type(cause).__name__}: {first}" if first else type(cause).__name__, url)
