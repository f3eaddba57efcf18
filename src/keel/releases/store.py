"""Releases in the database: numbered, immutable, content-addressed; the live one is the latest activation.

    async with ReleaseStore(url) as store:
        release, created = await store.create(snapshot, prompts={"inbox": "1.4.0"}, author="cli:ada")
        await store.activate(release.number, actor="cli:ada", reason="deploy")
        live = await store.live()

Numbers count up from 1 and are never reused. Creating a release whose files are exactly those of
an existing release returns that release (`created` False): deploying twice makes one release.
File contents are stored once by SHA-256 (`release_files`), shared by the releases that hold them.
Releases, files and activations are immutable (database triggers, migration 0009). Releases are
project-wide: they belong to no tenant, and only operators and admins reach them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.errors import UsageError
from keel.releases.snapshot import Snapshot
from keel.store.engine import AsyncDatabase
from keel.store.repository import read_connection, write_transaction
from keel.store.tables import release_activations, release_files, releases
from keel.store.types import as_utc

_ATTEMPTS = 5


class UnknownRelease(UsageError):
    """No release with this number."""


@dataclass(frozen=True)
class Release:
    number: int
    content_hash: str
    manifest: dict[str, str]
    prompts: dict[str, str]  # prompt name -> the version this release deployed
    created_at: datetime
    author: str
    message: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "content_hash": self.content_hash,
            "files": len(self.manifest),
            "prompts": self.prompts,
            "created_at": self.created_at.isoformat(),
            "author": self.author,
            "message": self.message,
        }


@dataclass(frozen=True)
class Activation:
    id: int
    number: int
    activated_at: datetime
    activated_by: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "release": self.number,
            "activated_at": self.activated_at.isoformat(),
            "activated_by": self.activated_by,
            "reason": self.reason,
        }


class ReleaseStore(AsyncDatabase):
    async def create(
        self, snapshot: Snapshot, *, prompts: dict[str, str], author: str, message: str | None = None
    ) -> tuple[Release, bool]:
        manifest = snapshot.manifest
        digest = snapshot.content_hash
        for attempt in range(_ATTEMPTS):
            try:
                async with write_transaction(self._engine, self._url) as connection:
                    found = await _by_hash(connection, digest, prompts)
                    if found is not None:
                        return found, False
                    have = set(
                        (
                            await connection.execute(
                                select(release_files.c.hash).where(
                                    release_files.c.hash.in_(set(manifest.values()))
                                )
                            )
                        ).scalars()
                    )
                    new = {manifest[p]: c for p, c in snapshot.files.items() if manifest[p] not in have}
                    for file_hash, content in new.items():
                        await connection.execute(
                            insert(release_files).values(hash=file_hash, content=content)
                        )
                    number = (
                        int((await connection.execute(select(func.max(releases.c.number)))).scalar() or 0) + 1
                    )
                    row = {
                        "number": number,
                        "content_hash": digest,
                        "manifest": manifest,
                        "prompts": dict(sorted(prompts.items())),
                        "created_at": datetime.now(UTC),
                        "author": author,
                        "message": message,
                    }
                    await connection.execute(insert(releases).values(**row))
                    return _release(row), True
            except IntegrityError:
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def activate(self, number: int, *, actor: str, reason: str) -> Activation:
        await self.get(number)
        for attempt in range(_ATTEMPTS):
            try:
                async with write_transaction(self._engine, self._url) as connection:
                    return await insert_activation(connection, number, actor=actor, reason=reason)
            except IntegrityError:
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def get(self, number: int) -> Release:
        async with read_connection(self._engine, self._url) as connection:
            row = (
                (await connection.execute(select(releases).where(releases.c.number == number)))
                .mappings()
                .first()
            )
        if row is None:
            raise UnknownRelease(f"no release {number}")
        return _release(dict(row))

    async def live(self) -> tuple[Release, Activation] | None:
        """The live release and the activation that made it live; None before the first deploy."""
        activation = await self.live_activation()
        if activation is None:
            return None
        return await self.get(activation.number), activation

    async def live_activation(self) -> Activation | None:
        """The latest activation: one indexed read, what servers poll."""
        statement = select(release_activations).order_by(release_activations.c.id.desc()).limit(1)
        async with read_connection(self._engine, self._url) as connection:
            row = (await connection.execute(statement)).mappings().first()
        return None if row is None else _activation(dict(row))

    async def recent(self, limit: int = 50) -> list[Release]:
        statement = select(releases).order_by(releases.c.number.desc()).limit(limit)
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [_release(dict(r)) for r in rows]

    async def activations(self, limit: int = 50) -> list[Activation]:
        statement = select(release_activations).order_by(release_activations.c.id.desc()).limit(limit)
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [_activation(dict(r)) for r in rows]

    async def files(self, number: int) -> dict[str, bytes]:
        release = await self.get(number)
        hashes = set(release.manifest.values())
        async with read_connection(self._engine, self._url) as connection:
            rows = (
                await connection.execute(select(release_files).where(release_files.c.hash.in_(hashes)))
            ).all()
        contents = {row.hash: bytes(row.content) for row in rows}
        missing = hashes - set(contents)
        if missing:
            raise UsageError(f"release {number} is missing {len(missing)} stored file(s)")
        return {path: contents[digest] for path, digest in release.manifest.items()}


async def insert_activation(
    connection: AsyncConnection, number: int, *, actor: str, reason: str
) -> Activation:
    """Make release `number` live, within the caller's transaction (IntegrityError on a race: retry)."""
    last = (await connection.execute(select(func.max(release_activations.c.id)))).scalar()
    row: dict[str, Any] = {
        "id": int(last or 0) + 1,
        "number": number,
        "activated_at": datetime.now(UTC),
        "activated_by": actor,
        "reason": reason,
    }
    await connection.execute(insert(release_activations).values(**row))
    return _activation(row)


async def _by_hash(connection: AsyncConnection, digest: str, prompts: dict[str, str]) -> Release | None:
    rows = (
        (await connection.execute(select(releases).where(releases.c.content_hash == digest))).mappings().all()
    )
    for row in sorted(rows, key=lambda r: r["number"], reverse=True):
        if dict(row["prompts"]) == dict(sorted(prompts.items())):
            return _release(dict(row))
    return None


def _release(row: dict[str, Any]) -> Release:
    return Release(
        number=int(row["number"]),
        content_hash=row["content_hash"],
        manifest=dict(row["manifest"]),
        prompts=dict(row["prompts"]),
        created_at=as_utc(row["created_at"]),
        author=row["author"],
        message=row["message"],
    )


def _activation(row: dict[str, Any]) -> Activation:
    return Activation(
        id=int(row["id"]),
        number=int(row["number"]),
        activated_at=as_utc(row["activated_at"]),
        activated_by=row["activated_by"],
        reason=row["reason"],
    )
