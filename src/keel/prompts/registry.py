"""The stored prompt registry: immutable versions, movable labels, their history, links and stats.

    async with PromptRegistry(url) as registry:
        version, created = await registry.save("inbox", content, author="cli:ada", message="shorter")
        await registry.move_label("inbox", "production", [Share(version.version, 100)], actor="cli:ada")
        live = await registry.resolve("inbox", "production", tenant_id="acme", key="user:u1")

Versions. Saving content creates a new immutable version, unless the latest version of that prompt
(in that tenant) already has the same content (then it is returned, `created` False): saving is
idempotent, so `keel deploy` can push every file every time. A version number may be given
(`X.Y.Z`, higher than every existing one); otherwise the patch number of the latest is bumped
(1.0.0 for the first). The database refuses any change to a stored version (migration 0009).

Tenants. What `keel deploy` pushes belongs to the project (`PROJECT_TENANT`) and every tenant sees
it. A tenant's own versions and labels (made through the API) are seen by that tenant only, and a
tenant's label overrides the project's label of the same name for that tenant's runs. Reads go
through `keel.store.tenancy`; writes always go to the caller's own tenant.

Labels. A label is a rollout (see `keel.prompts.rollout`); moving one writes the new rollout and
appends a `prompt_label_moves` row holding the previous one, who moved it and why, so "which version
is live, and since when" is one query. Protected labels are checked by the caller (the API and CLI:
`keel.prompts.service`), not here.

Resolution is cached: a version for good (it never changes), a label for `label_ttl` seconds
(1 s by default) so a move or a rollback reaches every process within about a second, and at once
in the process that made it.
"""

from __future__ import annotations

import difflib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.prompts.errors import PromptError, PromptNotFound, StaleRelease
from keel.prompts.rollout import STICKY, Share, check_rollout, choose, sticky_key
from keel.prompts.source import PROMPT_NAME, PromptContent, parse_version
from keel.store.engine import AsyncDatabase
from keel.store.repository import read_connection, write_transaction
from keel.store.tables import (
    prompt_label_moves,
    prompt_labels,
    prompt_links,
    prompt_versions,
    release_activations,
    runs,
)
from keel.store.tenancy import PROJECT_TENANT, scope_to_tenant
from keel.store.types import as_utc

LABEL_NAME_LENGTH = 64
_SAVE_ATTEMPTS = 3


@dataclass(frozen=True)
class PromptVersion:
    id: str
    tenant_id: str
    name: str
    version: str
    content: PromptContent
    owner: str | None
    author: str
    message: str | None
    source: str
    created_at: datetime

    @property
    def content_hash(self) -> str:
        return self.content.content_hash

    @property
    def ref(self) -> str:
        """`name@version`: what a run records."""
        return f"{self.name}@{self.version}"

    def render(self, values: dict[str, Any] | None = None) -> str:
        return self.content.template_object().render(values)

    def as_dict(self, *, with_template: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "scope": "project" if self.tenant_id == PROJECT_TENANT else "tenant",
            "tenant_id": None if self.tenant_id == PROJECT_TENANT else self.tenant_id,
            "content_hash": self.content_hash,
            "variables": self.content.variables_document(),
            "model_settings": self.content.model_settings,
            "owner": self.owner,
            "author": self.author,
            "message": self.message,
            "source": self.source,
            "created_at": self.created_at.isoformat(),
        }
        if with_template:
            out["template"] = self.content.template
        return out


@dataclass(frozen=True)
class Label:
    tenant_id: str
    name: str
    label: str
    rollout: tuple[Share, ...]
    sticky: str
    moved_at: datetime
    moved_by: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.name,
            "label": self.label,
            "scope": "project" if self.tenant_id == PROJECT_TENANT else "tenant",
            "rollout": [s.as_dict() for s in self.rollout],
            "sticky": self.sticky,
            "moved_at": self.moved_at.isoformat(),
            "moved_by": self.moved_by,
        }


class PromptRegistry(AsyncDatabase):
    """The registry on the database at `url`. Connects lazily; `close()` or `async with`."""

    def __init__(self, url: str, *, label_ttl: float = 1.0) -> None:
        super().__init__(url)
        self.label_ttl = label_ttl
        self._versions: dict[tuple[str, str, str], PromptVersion] = {}
        self._labels: dict[tuple[str, str, str], tuple[float, Label | None]] = {}

    # -- versions ----------------------------------------------------------------------------------

    async def save(
        self,
        name: str,
        content: PromptContent,
        *,
        author: str,
        tenant_id: str = PROJECT_TENANT,
        version: str | None = None,
        message: str | None = None,
        owner: str | None = None,
        source: str = "api",
    ) -> tuple[PromptVersion, bool]:
        """A new version of `name` with `content` (True), or the latest if it has this content (False)."""
        check_name(name)
        if version is not None:
            parse_version(version)
        for attempt in range(_SAVE_ATTEMPTS):
            try:
                async with write_transaction(self._engine, self._url) as connection:
                    latest = await _latest(connection, tenant_id, name)
                    same = latest is not None and latest.content_hash == content.content_hash
                    if latest is not None and same and version in (None, latest.version):
                        return latest, False
                    number = _next_version(latest, version)
                    row = _version_row(name, number, content, tenant_id, author, message, owner, source)
                    await connection.execute(insert(prompt_versions).values(**row))
                    return _version(row), True
            except IntegrityError:
                if attempt == _SAVE_ATTEMPTS - 1:
                    raise PromptError(
                        f"version {version} of {name!r} exists already", code="version_exists", status=409
                    ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def get(self, name: str, version: str | None = None, *, tenant_id: str | None) -> PromptVersion:
        """A version visible to `tenant_id`: the tenant's own first, then the project's
        (`PROJECT_TENANT`: the project's only; None: any, for operators); the newest when `version`
        is None. PromptNotFound otherwise."""
        cache_key = (tenant_id or "", name, version or "")
        if version is not None:
            cached = self._versions.get(cache_key)
            if cached is not None:
                return cached
        statement = select(prompt_versions).where(prompt_versions.c.name == name)
        if version is not None:
            statement = statement.where(prompt_versions.c.version == version)
        statement = scope_to_tenant(statement, prompt_versions, tenant_id)
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        if not rows:
            what = f"version {version} of prompt {name!r}" if version else f"prompt {name!r}"
            raise PromptNotFound(f"no {what}")
        found = [_version(dict(r)) for r in rows]
        found.sort(key=lambda v: (v.tenant_id != PROJECT_TENANT, _order(v.version)), reverse=True)
        chosen = found[0]
        if version is not None:  # what this caller gets for this number, for good (versions never change)
            self._versions[cache_key] = chosen
        return chosen

    async def history(self, name: str, *, tenant_id: str | None) -> list[PromptVersion]:
        """Every version of `name` visible to the tenant, newest first."""
        statement = scope_to_tenant(
            select(prompt_versions).where(prompt_versions.c.name == name), prompt_versions, tenant_id
        )
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        if not rows:
            raise PromptNotFound(f"no prompt {name!r}")
        versions = [_version(dict(r)) for r in rows]
        return sorted(versions, key=lambda v: (v.created_at, _order(v.version)), reverse=True)

    async def prompts(self, *, tenant_id: str | None) -> list[dict[str, Any]]:
        """Each prompt visible to the tenant: its latest version and its labels."""
        statement = scope_to_tenant(select(prompt_versions), prompt_versions, tenant_id)
        label_rows = scope_to_tenant(select(prompt_labels), prompt_labels, tenant_id)
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
            labels = [_label(dict(r)) for r in (await connection.execute(label_rows)).mappings().all()]
        latest: dict[str, PromptVersion] = {}
        counts: dict[str, int] = {}
        for row in rows:
            version = _version(dict(row))
            counts[version.name] = counts.get(version.name, 0) + 1
            current = latest.get(version.name)
            if current is None or _order(version.version) > _order(current.version):
                latest[version.name] = version
        out = []
        for name in sorted(latest):
            effective = _effective([lb for lb in labels if lb.name == name], tenant_id)
            out.append(
                {
                    "name": name,
                    "latest": latest[name].version,
                    "versions": counts[name],
                    "owner": latest[name].owner,
                    "labels": [lb.as_dict() for lb in effective],
                }
            )
        return out

    # -- labels ------------------------------------------------------------------------------------

    async def move_label(
        self,
        name: str,
        label: str,
        rollout: Sequence[Share],
        *,
        actor: str,
        tenant_id: str = PROJECT_TENANT,
        sticky: str = "user",
        reason: str | None = None,
    ) -> Label:
        """Point `label` of `name` (in `tenant_id`) at `rollout`; every version must be visible there."""
        moved = await self.move_labels(
            [(name, label, rollout)], actor=actor, tenant_id=tenant_id, sticky=sticky, reason=reason
        )
        return moved[0]

    async def move_labels(
        self,
        moves: Sequence[tuple[str, str, Sequence[Share]]],
        *,
        actor: str,
        tenant_id: str = PROJECT_TENANT,
        sticky: str = "user",
        reason: str | None = None,
        also: Callable[[AsyncConnection], Awaitable[object]] | None = None,
    ) -> list[Label]:
        """Move several labels, and run `also` (a release activation), in one transaction: every
        reader sees all of it or none of it."""
        checked: list[tuple[str, str, tuple[Share, ...]]] = []
        for name, label, rollout in moves:
            check_name(name)
            check_label(label)
            shares = check_rollout(rollout)
            for share in shares:  # a project label points at project versions; a tenant's at what it sees
                await self.get(name, share.version, tenant_id=tenant_id)
            checked.append((name, label, shares))
        if sticky not in STICKY:
            raise PromptError(f"sticky must be one of {', '.join(STICKY)}", code="invalid_rollout")
        now = datetime.now(UTC)
        async with write_transaction(self._engine, self._url) as connection:
            for name, label, shares in checked:
                await _write_move(connection, tenant_id, name, label, shares, sticky, now, actor, reason)
            if also is not None:
                await also(connection)
        out = []
        for name, label, shares in checked:
            moved = Label(tenant_id, name, label, shares, sticky, now, actor)
            for cached in [k for k in self._labels if k[1:] == (name, label)]:
                self._labels.pop(cached, None)  # tenants inheriting this label re-read it
            self._labels[(tenant_id, name, label)] = (time.monotonic(), moved)
            out.append(moved)
        return out

    def forget_labels(self) -> None:
        """Drop every cached label: the next resolutions read them from the database."""
        self._labels.clear()

    async def label(
        self, name: str, label: str, *, tenant_id: str, activation: int | bool | None = False
    ) -> Label | None:
        """The label in effect for `tenant_id`: its own, else the project's; None if neither exists.

        `activation` (when not False) is the release activation the caller serves: a label read from
        the database together with a later activation (deploy and rollback move labels and activate
        in one transaction) raises `StaleRelease`, so the caller switches release first and never
        pairs one release with another release's labels."""
        key = (tenant_id, name, label)
        cached = self._labels.get(key)
        if cached is not None and time.monotonic() - cached[0] < self.label_ttl:
            return cached[1]
        latest = select(func.max(release_activations.c.id)).scalar_subquery()
        statement = select(prompt_labels, latest.label("keel_activation")).where(
            prompt_labels.c.name == name, prompt_labels.c.label == label
        )
        statement = scope_to_tenant(statement, prompt_labels, tenant_id)
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()  # one statement: one snapshot
        if activation is not False and rows and rows[0]["keel_activation"] != activation:
            raise StaleRelease(rows[0]["keel_activation"])
        found = _effective([_label(dict(r)) for r in rows], tenant_id)
        result = found[0] if found else None
        self._labels[key] = (time.monotonic(), result)
        return result

    async def labels(self, name: str, *, tenant_id: str | None) -> list[Label]:
        statement = scope_to_tenant(
            select(prompt_labels).where(prompt_labels.c.name == name), prompt_labels, tenant_id
        )
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return _effective([_label(dict(r)) for r in rows], tenant_id)

    async def moves(
        self, name: str, *, tenant_id: str | None, label: str | None = None
    ) -> list[dict[str, Any]]:
        """Every move of the prompt's labels visible to the tenant, newest first."""
        statement = select(prompt_label_moves).where(prompt_label_moves.c.name == name)
        if label is not None:
            statement = statement.where(prompt_label_moves.c.label == label)
        statement = scope_to_tenant(statement, prompt_label_moves, tenant_id).order_by(
            prompt_label_moves.c.moved_at.desc()
        )
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [
            {
                "label": r["label"],
                "scope": "project" if r["tenant_id"] == PROJECT_TENANT else "tenant",
                "rollout": r["rollout"],
                "previous": r["previous"],
                "sticky": r["sticky"],
                "moved_at": as_utc(r["moved_at"]).isoformat(),
                "moved_by": r["moved_by"],
                "reason": r["reason"],
            }
            for r in rows
        ]

    async def resolve(
        self,
        name: str,
        label: str,
        *,
        tenant_id: str,
        run_id: str,
        user_id: str | None = None,
        session_id: str | None = None,
        activation: int | bool | None = False,
    ) -> tuple[PromptVersion, Label] | None:
        """The version of `label` this run gets (by the label's sticky key); None if there is no label.
        `activation`: see `label`."""
        found = await self.label(name, label, tenant_id=tenant_id, activation=activation)
        if found is None:
            return None
        key = sticky_key(found.sticky, run_id=run_id, user_id=user_id, session_id=session_id)
        chosen = choose(found.rollout, tenant_id=tenant_id, prompt=name, label=label, key=key)
        return await self.get(name, chosen, tenant_id=found.tenant_id), found

    # -- links and statistics ----------------------------------------------------------------------

    async def link(
        self,
        name: str,
        version: str,
        *,
        kind: str,
        ref: str,
        actor: str,
        tenant_id: str | None,
        detail: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Link a version to what evaluated it (kind `eval_run`, ref its id)."""
        target = await self.get(name, version, tenant_id=tenant_id)
        row = {
            "id": uuid.uuid4().hex,
            "version_id": target.id,
            "kind": kind,
            "ref": ref,
            "detail": detail or {},
            "created_at": datetime.now(UTC),
            "created_by": actor,
        }
        async with write_transaction(self._engine, self._url) as connection:
            await connection.execute(insert(prompt_links).values(**row))
        return _link(row)

    async def links(self, name: str, version: str, *, tenant_id: str | None) -> list[dict[str, Any]]:
        target = await self.get(name, version, tenant_id=tenant_id)
        statement = scope_to_tenant(
            select(prompt_links).where(prompt_links.c.version_id == target.id), prompt_links, tenant_id
        ).order_by(prompt_links.c.created_at)
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [_link(dict(r)) for r in rows]

    async def stats(
        self, name: str, *, tenant_id: str | None, since: timedelta = timedelta(days=7)
    ) -> list[dict[str, Any]]:
        """Runs per version of `name` in the last `since`: count, success rate, latency, cost."""
        start = datetime.now(UTC) - since
        statement = select(runs.c.prompt_version, runs.c.status, runs.c.duration_ms, runs.c.cost_usd).where(
            runs.c.prompt_version.like(f"{_escape_like(name)}@%", escape="\\"), runs.c.started_at >= start
        )
        statement = scope_to_tenant(statement, runs, tenant_id)
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).all()
        groups: dict[str, list[Any]] = {}
        for row in rows:
            groups.setdefault(row.prompt_version, []).append(row)
        out = []
        for ref, items in sorted(groups.items()):
            durations = sorted(float(r.duration_ms) for r in items)
            costs = [r.cost_usd for r in items if r.cost_usd is not None]
            succeeded = sum(1 for r in items if r.status == "succeeded")
            out.append(
                {
                    "version": ref.split("@", 1)[1],
                    "runs": len(items),
                    "succeeded": succeeded,
                    "success_rate": round(succeeded / len(items), 4),
                    "latency_ms_p50": _percentile(durations, 50),
                    "latency_ms_p95": _percentile(durations, 95),
                    "cost_usd_total": str(sum(costs)) if costs else None,
                    "cost_usd_mean": str(sum(costs) / len(costs)) if costs else None,
                }
            )
        return out


async def _write_move(
    connection: AsyncConnection,
    tenant_id: str,
    name: str,
    label: str,
    shares: tuple[Share, ...],
    sticky: str,
    now: datetime,
    actor: str,
    reason: str | None,
) -> None:
    document = [s.as_dict() for s in shares]
    where = and_(
        prompt_labels.c.tenant_id == tenant_id, prompt_labels.c.name == name, prompt_labels.c.label == label
    )
    before = (await connection.execute(select(prompt_labels).where(where))).mappings().first()
    values = {"rollout": document, "sticky": sticky, "moved_at": now, "moved_by": actor}
    if before is None:
        await connection.execute(
            insert(prompt_labels).values(tenant_id=tenant_id, name=name, label=label, **values)
        )
    else:
        await connection.execute(update(prompt_labels).where(where).values(**values))
    await connection.execute(
        insert(prompt_label_moves).values(
            id=uuid.uuid4().hex,
            tenant_id=tenant_id,
            name=name,
            label=label,
            rollout=document,
            previous=None if before is None else before["rollout"],
            sticky=sticky,
            moved_at=now,
            moved_by=actor,
            reason=reason,
        )
    )


def diff(old: PromptVersion, new: PromptVersion) -> str:
    """A unified diff of two versions: template, variables and model settings."""

    def lines(v: PromptVersion) -> list[str]:
        head = [f"variables: {', '.join(v.content.variables) or '(none)'}"]
        head.append(f"model_settings: {v.content.model_settings or '{}'}")
        return [*head, "---", *v.content.template.splitlines()]

    return "\n".join(
        difflib.unified_diff(lines(old), lines(new), fromfile=old.ref, tofile=new.ref, lineterm="")
    )


def check_name(name: str) -> None:
    if not PROMPT_NAME.match(name):
        raise PromptError(
            f"{name!r} is not a valid prompt name: a lowercase letter, then up to 62 lowercase letters, "
            "digits, '_' or '-'",
            code="invalid_prompt_name",
        )


def check_label(label: str) -> None:
    if not PROMPT_NAME.match(label) or len(label) > LABEL_NAME_LENGTH:
        raise PromptError(
            f"{label!r} is not a valid label: a lowercase letter, then lowercase letters, digits, '_' or '-'",
            code="invalid_label",
        )


def _effective(labels: list[Label], tenant_id: str | None) -> list[Label]:
    """Per label name, the tenant's own label over the project's."""
    chosen: dict[str, Label] = {}
    for item in sorted(labels, key=lambda lb: lb.tenant_id != PROJECT_TENANT):
        if tenant_id is None and item.tenant_id != PROJECT_TENANT:
            continue  # an operator's view: the project's labels
        chosen[item.label] = item
    return [chosen[k] for k in sorted(chosen)]


def _order(version: str) -> tuple[int, int, int]:
    return parse_version(version)


async def _latest(connection: AsyncConnection, tenant_id: str, name: str) -> PromptVersion | None:
    statement = (
        select(prompt_versions)
        .where(prompt_versions.c.tenant_id == tenant_id, prompt_versions.c.name == name)
        .order_by(
            prompt_versions.c.major.desc(), prompt_versions.c.minor.desc(), prompt_versions.c.patch.desc()
        )
        .limit(1)
    )
    row = (await connection.execute(statement)).mappings().first()
    return None if row is None else _version(dict(row))


def _next_version(latest: PromptVersion | None, wanted: str | None) -> str:
    if wanted is None:
        if latest is None:
            return "1.0.0"
        major, minor, patch = _order(latest.version)
        return f"{major}.{minor}.{patch + 1}"
    if latest is not None and _order(wanted) <= _order(latest.version):
        raise PromptError(
            f"version {wanted} is not newer than the latest version {latest.version}: versions only go up",
            code="version_not_newer",
            status=409,
        )
    return wanted


def _version_row(
    name: str,
    version: str,
    content: PromptContent,
    tenant_id: str,
    author: str,
    message: str | None,
    owner: str | None,
    source: str,
) -> dict[str, Any]:
    major, minor, patch = parse_version(version)
    return {
        "id": uuid.uuid4().hex,
        "tenant_id": tenant_id,
        "name": name,
        "version": version,
        "major": major,
        "minor": minor,
        "patch": patch,
        "content_hash": content.content_hash,
        "template": content.template,
        "variables": content.variables_document(),
        "model_settings": content.model_settings,
        "owner": owner,
        "author": author,
        "message": message,
        "source": source,
        "created_at": datetime.now(UTC),
    }


def _version(row: dict[str, Any]) -> PromptVersion:
    content = PromptContent.from_document(row["template"], row["variables"], row["model_settings"])
    return PromptVersion(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        version=row["version"],
        content=content,
        owner=row["owner"],
        author=row["author"],
        message=row["message"],
        source=row["source"],
        created_at=as_utc(row["created_at"]),
    )


def _label(row: dict[str, Any]) -> Label:
    shares = tuple(Share(str(s["version"]), float(s["weight"])) for s in row["rollout"])
    return Label(
        row["tenant_id"],
        row["name"],
        row["label"],
        shares,
        row["sticky"],
        as_utc(row["moved_at"]),
        row["moved_by"],
    )


def _link(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "ref": row["ref"],
        "detail": row["detail"],
        "created_at": as_utc(row["created_at"]).isoformat(),
        "created_by": row["created_by"],
    }


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    index = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return round(values[index], 3)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
