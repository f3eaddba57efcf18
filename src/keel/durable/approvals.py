"""Durable runs that wait for people: approvals, their timeouts, and escalations.

A durable run whose agent stops at a gated tool call (`keel.runtime.approval`) ends its workflow
with the view `waiting_approval`, after a checkpointed step (`keel.pause`) has stored what it
needs to go on (`run_pauses`) and one row per waiting call (`approvals`), and reviewers were
notified. Nothing of the run stays in memory and no worker slot is held while people decide.

Each decision is one conditional UPDATE (`keel.store.approvals`). When the last call of a stop is
decided, the run goes on as a new workflow, `<run_id>.p<n>` on the agent's queue, whose id makes
the enqueue idempotent: two reviewers, or a reviewer and the sweeper, racing in different
processes still start it once. It replays nothing: it loads the stop (`keel.resume_load` step) and
calls `Runner.run(resume=...)`, where an approved call is a checkpointed step, so it runs exactly
once, also across crashes. A crash between a decision and the enqueue is repaired by the sweeper,
which also applies the timeout policy of calls nobody decided in time (reject, approve, or
escalate: the run ends `escalated`).

Escalated runs (any trigger) get a row in `escalations`, with the summary, and reviewers are told.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dbos import DBOS, SetEnqueueOptions, SetWorkflowID

from keel.durable.queues import partition_key, queue_name
from keel.runtime.approval import Decision, PausedState, Resume
from keel.runtime.result import RunResult
from keel.store.approvals import ApprovalStore, Decided

if TYPE_CHECKING:
    from keel.durable.service import DurableRuns

log = logging.getLogger("keel.durable.approvals")

TIMEOUT_BY = "timeout"


def continuation_id(run_id: str, pause: int) -> str:
    return f"{run_id}.p{pause}"


class ApprovalDesk:
    def __init__(self, service: DurableRuns) -> None:
        self.service = service
        self.store = ApprovalStore(service.database_url)
        self.settings = service.project.config.approvals
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.service.executes and self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="keel-approvals-sweeper")

    async def close(self) -> None:
        task, self._sweeper = self._sweeper, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.store.close()

    # -- inside the run's workflow -----------------------------------------------------------------

    async def pause(self, run_id: str, request: dict[str, Any], result: RunResult) -> dict[str, Any]:
        """Store the stop (a checkpointed step: made once) and return the run's waiting view."""
        assert result.paused is not None
        state = PausedState.from_dict(result.paused)
        view = result.to_dict()
        stored = await self.store.create_pause(
            run_id,
            state.pauses,
            request.get("tenant_id"),
            result.agent,
            {k: v for k, v in request.items() if k not in ("resume", "run_id")},
            result.paused,
            view,
            result.approvals,
            datetime.now(UTC),
        )
        view["approvals"] = stored
        return view

    async def load(self, run_id: str, pause: int) -> dict[str, Any]:
        """What a continuation needs (a checkpointed step): the stop's state and its decisions."""
        found = await self.store.pause_row(run_id, pause)
        if found is None:
            raise RuntimeError(f"run {run_id} has no stop {pause} to go on from")
        calls = await self.store.approvals_of(run_id, pause)
        state = found["state"]
        decisions = {
            c["call_id"]: {
                "approved": c["status"] == "approved",
                "args": c["edited_args"],
                "reason": c["decision_reason"] or "",
                "by": c["decided_by"] or "",
            }
            for c in calls
        }
        escalate = next(
            (
                f"nobody decided on {c['tool']!r} within its timeout"
                for c in calls
                if c["decided_by"] == TIMEOUT_BY and c["on_timeout"] == "escalate"
            ),
            None,
        )
        return {"state": state, "decisions": decisions, "escalate": escalate}

    async def escalate(self, run_id: str, request: Mapping[str, Any], result: RunResult) -> dict[str, Any]:
        """Put an escalated run in the human queue (a checkpointed step: once)."""
        escalation = result.escalation or {}
        summary = str(escalation.get("summary") or "")
        agent = self.service.project.agents.get(result.agent)
        summary_agent = agent.config.escalation.summary_agent if agent is not None else None
        if summary_agent:
            summary = await self._rewrite(summary_agent, summary, request) or summary
        return await self.store.open_escalation(
            run_id,
            tenant_id=request.get("tenant_id"),
            agent=result.agent,
            trigger=str(escalation.get("trigger") or ""),
            reason=str(escalation.get("reason") or ""),
            summary=summary,
            now=datetime.now(UTC),
        )

    async def _rewrite(self, agent: str, summary: str, request: Mapping[str, Any]) -> str | None:
        """The summary agent's version of the summary (None if it failed: the record's one stays)."""
        try:
            written = await self.service.runner.run(
                agent, summary, tenant_id=request.get("tenant_id"), trigger="escalation", tags=("escalation",)
            )
        except Exception:
            log.exception("the escalation summary agent %r failed", agent)
            return None
        return written.output if written.succeeded and isinstance(written.output, str) else None

    # -- decisions ---------------------------------------------------------------------------------

    async def decide(
        self,
        approval_id: str,
        *,
        tenant_id: str | None,
        approved: bool,
        by: str,
        reason: str | None = None,
        args: Mapping[str, Any] | None = None,
    ) -> Decided | None:
        decided = await self.store.decide(
            approval_id,
            tenant_id=tenant_id,
            approved=approved,
            by=by,
            reason=reason,
            args=args,
            now=datetime.now(UTC),
        )
        if decided is not None and decided.changed:
            await self.advance(decided.approval["run_id"], decided.approval["pause"])
        return decided

    async def advance(self, run_id: str, pause: int) -> bool:
        """Go on with a stop whose every call is decided: queue its continuation (idempotent: the
        workflow id is the stop's), then mark it resumed. False if calls are still pending."""
        if any(c["status"] == "pending" for c in await self.store.approvals_of(run_id, pause)):
            return False
        row = await self.store.pause_row(run_id, pause)
        if row is None or row["status"] != "waiting":
            return False
        request = {**row["request"], "run_id": run_id, "resume": {"pause": pause}}
        spec = self.service.project.agents.get(row["agent"])
        queue = spec.config.queue if spec is not None else None
        options = SetEnqueueOptions(
            priority=queue.priority if queue is not None else 0,
            queue_partition_key=partition_key(queue, request.get("tenant_id"), request.get("user_id"))
            if queue is not None
            else None,
        )
        from keel.durable.workflows import keel_run

        with SetWorkflowID(continuation_id(run_id, pause)), options:
            await DBOS.enqueue_workflow_async(queue_name(row["agent"]), keel_run, request)
        await self.store.mark_pause(run_id, pause, "resumed", datetime.now(UTC))
        return True

    async def sweep(self) -> int:
        """Apply the timeout policy to calls nobody decided in time, and go on with every stop
        whose calls are all decided (also those a crash left between decision and enqueue)."""
        now = datetime.now(UTC)
        settled = 0
        for call in await self.store.expired(now):
            policy = call["on_timeout"]
            decided = await self.store.decide(
                call["id"],
                tenant_id=None,
                approved=policy == "approve",
                by=TIMEOUT_BY,
                reason=f"no decision within the timeout ({policy})",
                now=now,
            )
            settled += 1 if decided is not None and decided.changed else 0
        for stop in await self.store.ready_pauses():
            try:
                await self.advance(stop["run_id"], stop["pause"])
            except Exception:
                log.exception("could not go on with run %s after its approvals", stop["run_id"])
        return settled

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the approvals sweep failed; trying again in %ss", self.settings.sweep_interval)

    # -- reads -------------------------------------------------------------------------------------

    async def current_view(self, run_id: str, waiting: dict[str, Any]) -> dict[str, Any]:
        """The view of a run whose first workflow ended waiting: the latest stop, or the
        continuation that is (or was) running."""
        stop = await self.store.latest_pause(run_id)
        if stop is None:
            return waiting
        if stop["status"] == "waiting":
            view = dict(stop["view"])
            view["approvals"] = await self.store.approvals_of(run_id, stop["pause"])
            return view
        if stop["status"] == "cancelled":
            recorded = await self.service.runner_history(run_id)
            if recorded is not None:
                return recorded
            return {
                **dict(stop["view"]),
                "status": "cancelled",
                "ended_at": stop["resumed_at"].isoformat() if stop["resumed_at"] else None,
                "error": {
                    "category": "cancelled",
                    "message": "the run was cancelled while it waited for approval",
                },
                "approvals": await self.store.approvals_of(run_id, stop["pause"]),
            }
        found = await DBOS.list_workflows_async(
            workflow_ids=[continuation_id(run_id, stop["pause"])], load_input=True, load_output=True
        )
        if not found:
            return {**dict(stop["view"]), "status": "queued"}
        view = await self.service._view(found[0])
        view["run_id"] = run_id
        return view

    async def current_workflow(self, run_id: str) -> str:
        stop = await self.store.latest_pause(run_id)
        return run_id if stop is None else continuation_id(run_id, stop["pause"])


def resume_from(loaded: Mapping[str, Any]) -> Resume:
    decisions = {
        call_id: Decision(
            bool(d["approved"]), d.get("args"), str(d.get("reason") or ""), str(d.get("by") or "")
        )
        for call_id, d in (loaded.get("decisions") or {}).items()
    }
    return Resume(PausedState.from_dict(loaded["state"]), decisions, loaded.get("escalate"))
