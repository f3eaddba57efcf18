"""Online scores and run feedback in the database, and their time series per prompt version.

    async with OnlineEvalStore(url) as store:
        await store.add_scores(rows)                     # one row per run and evaluator, at most
        await store.add_feedback(run_id, tenant_id="acme", kind="thumbs_up", created_by="user:ada")
        series = await store.series(tenant_id="acme", since=..., bucket="hour", agent="inbox")

Scores are inserted with ON CONFLICT DO NOTHING on (run_id, evaluator) (revision 0011): a durable
run replayed after a crash, sampled again, never gets a second score. Every query takes the
caller's tenant and goes through `keel.store.tenancy`. The time series is aggregated in SQL: per
agent, prompt version and time bucket (UTC hour or day), each evaluator's count, mean score and
passes; feedback is counted per kind, attributed to the run's agent and version (a join with
`runs`), in the bucket of when it was given.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, case, func, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite

from keel.store.engine import AsyncDatabase
from keel.store.repository import read_connection, write_transaction
from keel.store.tables import online_scores, run_feedback, runs
from keel.store.tenancy import scope_to_tenant

Bucket = Literal["hour", "day"]
FeedbackKind = Literal["thumbs_up", "thumbs_down", "accepted", "edited", "rejected", "correction"]
SOURCES: dict[str, str] = {
    "thumbs_up": "explicit",
    "thumbs_down": "explicit",
    "correction": "explicit",
    "accepted": "implicit",
    "edited": "implicit",
    "rejected": "implicit",
}
"""Each kind of feedback and its source: given by a person (explicit), or observed (implicit: the
result was accepted, edited or rejected, e.g. a downstream system refused a write)."""


@dataclass(frozen=True)
class ScoreRow:
    run_id: str
    tenant_id: str | None
    agent: str
    prompt_version: str | None
    evaluator: str
    score: float
    passed: bool
    reason: str
    scored_at: datetime

    def row(self) -> dict[str, Any]:
        return {
            "id": uuid.uuid4().hex,
            "run_id": self.run_id,
            "tenant_id": self.tenant_id,
            "agent": self.agent,
            "prompt_version": self.prompt_version,
            "evaluator": self.evaluator,
            "score": self.score,
            "passed": self.passed,
            "reason": self.reason or None,
            "scored_at": self.scored_at,
        }


@dataclass(frozen=True)
class Feedback:
    id: str
    run_id: str
    kind: str
    source: str
    value: float | None
    comment: str | None
    correction: Any
    created_at: datetime
    created_by: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "run_id": self.run_id,
            "kind": self.kind,
            "source": self.source,
            "value": self.value,
            "comment": self.comment,
            "correction": self.correction,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


class OnlineEvalStore(AsyncDatabase):
    """Online scores and run feedback on the database at `url` (connects lazily; `close()`)."""

    # -- scores -----------------------------------------------------------------------------------

    async def scored(self, run_id: str, *, tenant_id: str | None) -> set[str]:
        """The evaluators that already scored `run_id` (a replayed run skips them)."""
        statement = scope_to_tenant(
            select(online_scores.c.evaluator).where(online_scores.c.run_id == run_id),
            online_scores,
            tenant_id,
        )
        async with read_connection(self._engine, self._url) as connection:
            return {row[0] for row in await connection.execute(statement)}

    async def add_scores(self, scores: Sequence[ScoreRow]) -> None:
        """Store scores; one that exists for its run and evaluator is left as it is."""
        if not scores:
            return
        async with write_transaction(self._engine, self._url) as connection:
            dialect = connection.dialect.name
            insert = (
                postgresql.insert(online_scores) if dialect == "postgresql" else sqlite.insert(online_scores)
            )
            statement = insert.on_conflict_do_nothing(index_elements=["run_id", "evaluator"])
            await connection.execute(statement, [s.row() for s in scores])

    async def scores(self, run_id: str, *, tenant_id: str | None) -> list[dict[str, Any]]:
        """The run's online scores, by evaluator."""
        statement = scope_to_tenant(
            select(online_scores).where(online_scores.c.run_id == run_id).order_by(online_scores.c.evaluator),
            online_scores,
            tenant_id,
        )
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [
            {
                "evaluator": r["evaluator"],
                "score": r["score"],
                "passed": bool(r["passed"]),
                "reason": r["reason"] or "",
                "prompt_version": r["prompt_version"],
                "scored_at": r["scored_at"].isoformat(),
            }
            for r in rows
        ]

    # -- feedback ---------------------------------------------------------------------------------

    async def add_feedback(
        self,
        run_id: str,
        *,
        tenant_id: str | None,
        kind: str,
        created_by: str,
        value: float | None = None,
        comment: str | None = None,
        correction: Any = None,
    ) -> Feedback:
        """Record one signal about a run (the caller has checked that the run is the tenant's)."""
        if kind not in SOURCES:
            raise ValueError(f"unknown feedback kind {kind!r}")
        feedback = Feedback(
            id=f"fb_{uuid.uuid4().hex}",
            run_id=run_id,
            kind=kind,
            source=SOURCES[kind],
            value=value,
            comment=comment,
            correction=correction,
            created_at=datetime.now(UTC),
            created_by=created_by,
        )
        row = {
            "id": feedback.id,
            "run_id": run_id,
            "tenant_id": tenant_id,
            "kind": kind,
            "value": value,
            "comment": comment,
            "correction": correction,
            "source": feedback.source,
            "created_at": feedback.created_at,
            "created_by": created_by,
        }
        async with write_transaction(self._engine, self._url) as connection:
            await connection.execute(run_feedback.insert(), [row])
        return feedback

    async def feedback(self, run_id: str, *, tenant_id: str | None) -> list[Feedback]:
        """The run's feedback, oldest first."""
        statement = scope_to_tenant(
            select(run_feedback)
            .where(run_feedback.c.run_id == run_id)
            .order_by(run_feedback.c.created_at, run_feedback.c.id),
            run_feedback,
            tenant_id,
        )
        async with read_connection(self._engine, self._url) as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [
            Feedback(
                id=r["id"],
                run_id=r["run_id"],
                kind=r["kind"],
                source=r["source"],
                value=r["value"],
                comment=r["comment"],
                correction=r["correction"],
                created_at=r["created_at"],
                created_by=r["created_by"],
            )
            for r in rows
        ]

    # -- time series ------------------------------------------------------------------------------

    async def series(
        self,
        *,
        tenant_id: str | None,
        since: datetime,
        bucket: Bucket = "hour",
        agent: str | None = None,
    ) -> list[dict[str, Any]]:
        """Per agent and prompt version: buckets (oldest first) and totals over the window, each
        with runs scored, per evaluator count, mean score and pass rate, and feedback per kind."""
        async with read_connection(self._engine, self._url) as connection:
            dialect = connection.dialect.name
            scores_at = _bucket(dialect, online_scores.c.scored_at, bucket)
            conditions: list[ColumnElement[bool]] = [online_scores.c.scored_at >= since]
            if agent is not None:
                conditions.append(online_scores.c.agent == agent)
            key = (online_scores.c.agent, online_scores.c.prompt_version, scores_at)
            per_evaluator = scope_to_tenant(
                select(
                    *key,
                    online_scores.c.evaluator,
                    func.count(),
                    func.avg(online_scores.c.score),
                    func.sum(case((online_scores.c.passed, 1), else_=0)),
                )
                .where(*conditions)
                .group_by(*key, online_scores.c.evaluator),
                online_scores,
                tenant_id,
            )
            per_bucket = scope_to_tenant(
                select(*key, func.count(online_scores.c.run_id.distinct())).where(*conditions).group_by(*key),
                online_scores,
                tenant_id,
            )
            given_at = _bucket(dialect, run_feedback.c.created_at, bucket)
            feedback_conditions: list[ColumnElement[bool]] = [run_feedback.c.created_at >= since]
            if agent is not None:
                feedback_conditions.append(runs.c.agent == agent)
            feedback_key = (runs.c.agent, runs.c.prompt_version, given_at)
            feedback = scope_to_tenant(
                select(*feedback_key, run_feedback.c.kind, func.count())
                .select_from(run_feedback.join(runs, runs.c.id == run_feedback.c.run_id))
                .where(*feedback_conditions)
                .group_by(*feedback_key, run_feedback.c.kind),
                run_feedback,
                tenant_id,
            )
            evaluator_rows = list(await connection.execute(per_evaluator))
            bucket_rows = list(await connection.execute(per_bucket))
            feedback_rows = list(await connection.execute(feedback))
        return _assemble(evaluator_rows, bucket_rows, feedback_rows)


def _bucket(dialect: str, column: Any, bucket: Bucket) -> ColumnElement[Any]:
    """The UTC start of `column`'s bucket as ISO 8601 text. Literal format strings, not bound
    parameters: PostgreSQL matches SELECT and GROUP BY expressions only if textually identical."""
    if dialect == "postgresql":
        pattern = '\'YYYY-MM-DD"T"HH24":00:00Z"\'' if bucket == "hour" else "'YYYY-MM-DD\"T00:00:00Z\"'"
        return func.to_char(func.timezone(literal_column("'UTC'"), column), literal_column(pattern))
    pattern = "'%Y-%m-%dT%H:00:00Z'" if bucket == "hour" else "'%Y-%m-%dT00:00:00Z'"
    return func.strftime(literal_column(pattern), column)


@dataclass
class _Tally:
    count: int = 0
    total: float = 0.0
    passed: int = 0

    def add(self, count: int, mean: float, passed: int) -> None:
        self.count += count
        self.total += mean * count
        self.passed += passed

    def merge(self, other: _Tally) -> None:
        self.count += other.count
        self.total += other.total
        self.passed += other.passed

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "mean_score": round(self.total / self.count, 4) if self.count else None,
            "pass_rate": round(self.passed / self.count, 4) if self.count else None,
        }


@dataclass
class _Cell:
    runs: int = 0
    evaluators: dict[str, _Tally] | None = None
    feedback: dict[str, int] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs_scored": self.runs,
            "evaluators": {name: t.as_dict() for name, t in sorted((self.evaluators or {}).items())},
            "feedback": dict(sorted((self.feedback or {}).items())),
        }


def _assemble(
    evaluator_rows: list[Any], bucket_rows: list[Any], feedback_rows: list[Any]
) -> list[dict[str, Any]]:
    cells: dict[tuple[str, str | None], dict[str, _Cell]] = {}

    def cell(agent: str, version: str | None, start: str) -> _Cell:
        return cells.setdefault((agent, version), {}).setdefault(start, _Cell())

    for agent, version, start, evaluator, count, mean, passed in evaluator_rows:
        found = cell(agent, version, start)
        found.evaluators = found.evaluators or {}
        found.evaluators.setdefault(evaluator, _Tally()).add(int(count), float(mean or 0), int(passed or 0))
    for agent, version, start, count in bucket_rows:
        cell(agent, version, start).runs = int(count)
    for agent, version, start, kind, count in feedback_rows:
        found = cell(agent, version, start)
        found.feedback = found.feedback or {}
        found.feedback[kind] = found.feedback.get(kind, 0) + int(count)

    out: list[dict[str, Any]] = []
    for (agent, version), by_start in sorted(cells.items(), key=lambda item: (item[0][0], item[0][1] or "")):
        total = _Cell(evaluators={}, feedback={})
        assert total.evaluators is not None and total.feedback is not None
        for found in by_start.values():
            total.runs += found.runs
            for name, tally in (found.evaluators or {}).items():
                total.evaluators.setdefault(name, _Tally()).merge(tally)
            for kind, count in (found.feedback or {}).items():
                total.feedback[kind] = total.feedback.get(kind, 0) + count
        out.append(
            {
                "agent": agent,
                "prompt_version": version,
                "totals": total.as_dict(),
                "buckets": [{"start": start, **found.as_dict()} for start, found in sorted(by_start.items())],
            }
        )
    return out
