"""Datasets in the database, versioned, and cases made from production runs.

    async with DatasetStore(url) as store:
        version = await store.save(dataset.document(), actor="operator:cli")          # a new version
        case = case_from_run(record, expected=correction)                              # one run -> one case
        await store.add_case("regressions", case, actor="user:ada", tenant_id="acme")  # appended: a new version

Every change makes a new version (1, 2, ...; immutable rows); the same content as the latest
version makes none. Rows carry their tenant (`PROJECT_TENANT` for the operator's); a tenant sees
its own datasets and the project's, and adds cases to its own.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from keel.errors import UsageError
from keel.evals.dataset import Dataset, dataset_from_document
from keel.store.engine import AsyncDatabase
from keel.store.records import RunRecord
from keel.store.repository import read_connection, write_transaction
from keel.store.tables import eval_datasets
from keel.store.tenancy import PROJECT_TENANT, scope_to_tenant

_ATTEMPTS = 5


class UnknownDataset(UsageError):
    """No stored dataset with this name (for this tenant)."""


def case_from_run(
    record: RunRecord, *, expected: Any = None, tags: list[str] | None = None
) -> dict[str, Any]:
    """A case from a recorded run: its input, and as expected output the correction if there is
    one, else what the run answered (a good run becomes a regression case as it is)."""
    if record.input is None:
        raise UsageError(f"run {record.id} has no recorded input (tracing.capture_content or storage off?)")
    return {
        "id": f"run-{record.id[:16]}",
        "input": record.input,
        "expected": expected if expected is not None else record.output,
        "expect": [],
        "tags": sorted({"from-run", *(tags or [])}),
        "repeat": 1,
        "threshold": 1.0,
        "variables": {},
        "metadata": {
            "run_id": record.id,
            "agent": record.agent,
            "prompt_version": record.prompt_version,
            "status": record.status,
            "corrected": expected is not None,
        },
    }


class DatasetStore(AsyncDatabase):
    async def save(
        self, document: dict[str, Any], *, actor: str, tenant_id: str = PROJECT_TENANT
    ) -> tuple[int, bool]:
        """Store `document` as the next version of its dataset: (version, True), or the latest
        version and False when it is unchanged."""
        digest = _hash(document)
        name = str(document["name"])
        for attempt in range(_ATTEMPTS):
            try:
                async with write_transaction(self._engine, self._url) as connection:
                    latest = (
                        await connection.execute(
                            select(eval_datasets.c.version, eval_datasets.c.content_hash)
                            .where(eval_datasets.c.tenant_id == tenant_id, eval_datasets.c.name == name)
                            .order_by(eval_datasets.c.version.desc())
                            .limit(1)
                        )
                    ).first()
                    if latest is not None and latest.content_hash == digest:
                        return int(latest.version), False
                    version = (int(latest.version) if latest else 0) + 1
                    await connection.execute(
                        insert(eval_datasets).values(
                            id=uuid.uuid4().hex,
                            tenant_id=tenant_id,
                            name=name,
                            version=version,
                            content_hash=digest,
                            document=document,
                            created_at=datetime.now(UTC),
                            created_by=actor,
                        )
                    )
                    return version, True
            except IntegrityError:
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def get(
        self, name: str, version: int | None = None, *, tenant_id: str | None
    ) -> tuple[Dataset, int]:
        """The dataset (the tenant's own before the project's; the newest version by default)."""
        statement = select(eval_datasets).where(eval_datasets.c.name == name)
        if version is not None:
            statement = statement.where(eval_datasets.c.version == version)
        statement = scope_to_tenant(statement, eval_datasets, tenant_id)
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        if not rows:
            raise UnknownDataset(f"no stored dataset {name!r}" + (f" version {version}" if version else ""))
        row = max(rows, key=lambda r: (r["tenant_id"] != PROJECT_TENANT, r["version"]))
        return dataset_from_document(dict(row["document"]), path=f"db:{name}@{row['version']}"), int(
            row["version"]
        )

    async def add_case(
        self,
        name: str,
        case: dict[str, Any],
        *,
        actor: str,
        tenant_id: str = PROJECT_TENANT,
        agent: str | None = None,
    ) -> tuple[int, str]:
        """Append `case` to the dataset (made if missing): (the new version, the case's id)."""
        try:
            current, _ = await self.get(name, tenant_id=tenant_id)
            document = current.document()
        except UnknownDataset:
            document = {"name": name, "agent": agent, "description": "", "evaluators": [], "cases": []}
        ids = {c["id"] for c in document["cases"]}
        base, n = case["id"], 2
        while case["id"] in ids:
            case = {**case, "id": f"{base}-{n}"}
            n += 1
        document["cases"].append(case)
        version, _ = await self.save(document, actor=actor, tenant_id=tenant_id)
        return version, str(case["id"])

    async def count(self, *, tenant_id: str | None) -> int:
        statement = scope_to_tenant(select(func.count()).select_from(eval_datasets), eval_datasets, tenant_id)
        async with read_connection(self._engine, self._url) as connection:
            return int((await connection.execute(statement)).scalar() or 0)


def _hash(document: dict[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
