"""Evaluation runs in the database: their summaries, every attempt, and lookups for baselines.

async with EvalStore(url) as store:
    await store.save(report, gate=..., created_by="operator:cli")
    baseline = await store.latest(dataset="golden", agent="inbox", tenant_id=None)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from keel.evals.report import Gate, Report
from keel.store.engine import AsyncDatabase
from keel.store.repository import read_connection, write_transaction
from keel.store.tables import eval_results, eval_runs
from keel.store.tenancy import PROJECT_TENANT, scope_to_tenant
from keel.store.types import as_utc


@dataclass(frozen=True)
class StoredEval:
    id: str
    dataset: str
    dataset_hash: str
    agent: str
    prompt_version: str | None
    release: int | None
    status: str
    started_at: datetime
    summary: dict[str, Any]
    gate: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "dataset": self.dataset,
            "dataset_hash": self.dataset_hash,
            "agent": self.agent,
            "prompt_version": self.prompt_version,
            "release": self.release,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "summary": self.summary,
            "gate": self.gate,
        }


class EvalStore(AsyncDatabase):
    async def save(
        self, report: Report, *, created_by: str, gate: Gate | None = None, tenant_id: str = PROJECT_TENANT
    ) -> None:
        status = "passed" if gate is None or gate.passed else "failed"
        async with write_transaction(self._engine, self._url) as connection:
            await connection.execute(
                insert(eval_runs).values(
                    id=report.id,
                    tenant_id=tenant_id,
                    dataset=report.dataset,
                    dataset_hash=report.dataset_hash,
                    agent=report.agent,
                    prompt_version=report.prompt_version,
                    release=report.release,
                    status=status,
                    started_at=report.started_at,
                    ended_at=report.ended_at,
                    summary=report.summary(),
                    baseline_id=gate.baseline_id if gate else None,
                    gate=gate.as_dict() if gate else None,
                    created_by=created_by,
                )
            )
            rows = [
                {
                    "id": uuid.uuid4().hex,
                    "eval_run_id": report.id,
                    "case_id": case.case_id,
                    "attempt": attempt.attempt,
                    "run_id": attempt.run_id,
                    "passed": attempt.passed,
                    "scores": [s.as_dict() for s in attempt.scores],
                    "output": attempt.output,
                    "latency_ms": attempt.latency_ms,
                    "cost_usd": attempt.cost_usd,
                }
                for case in report.cases
                for attempt in case.attempts
            ]
            if rows:
                await connection.execute(insert(eval_results), rows)

    async def get(self, eval_id: str, *, tenant_id: str | None) -> StoredEval | None:
        statement = scope_to_tenant(select(eval_runs).where(eval_runs.c.id == eval_id), eval_runs, tenant_id)
        async with read_connection(self._engine, self._url) as connection:
            row = (await connection.execute(statement)).mappings().first()
        return None if row is None else _stored(dict(row))

    async def latest(
        self, *, dataset: str, agent: str, tenant_id: str | None, passed_only: bool = True
    ) -> StoredEval | None:
        """The newest evaluation of `dataset` on `agent` (by default one whose gate passed)."""
        statement = select(eval_runs).where(eval_runs.c.dataset == dataset, eval_runs.c.agent == agent)
        if passed_only:
            statement = statement.where(eval_runs.c.status == "passed")
        statement = (
            scope_to_tenant(statement, eval_runs, tenant_id).order_by(eval_runs.c.started_at.desc()).limit(1)
        )
        async with read_connection(self._engine, self._url) as connection:
            row = (await connection.execute(statement)).mappings().first()
        return None if row is None else _stored(dict(row))

    async def recent(self, *, tenant_id: str | None, limit: int = 50) -> list[StoredEval]:
        statement = scope_to_tenant(select(eval_runs), eval_runs, tenant_id).order_by(
            eval_runs.c.started_at.desc()
        )
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement.limit(limit))).mappings().all()
        return [_stored(dict(r)) for r in rows]


def _stored(row: dict[str, Any]) -> StoredEval:
    return StoredEval(
        id=row["id"],
        dataset=row["dataset"],
        dataset_hash=row["dataset_hash"],
        agent=row["agent"],
        prompt_version=row["prompt_version"],
        release=row["release"],
        status=row["status"],
        started_at=as_utc(row["started_at"]),
        summary=dict(row["summary"]),
        gate=row["gate"],
    )
