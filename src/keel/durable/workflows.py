"""The durable workflows: one run of an agent (`keel.run`, also each continuation of a run after
approvals), one callback delivery (`keel.callback`) and one reviewer notification (`keel.notify`).

They are registered at import, before DBOS launches, because DBOS recovers a workflow by its
registered name. Their bodies delegate to the process's `DurableRuns` (there is one DBOS per
process, so one service): the workflow functions stay small and their step sequence explicit.

The step sequence of `keel.run`, which replay depends on (change it => bump WORKFLOW_REVISION,
or choose the sequence from the run's request so runs already in flight keep theirs):
1. `keel.run_start` (the recorded start time, so a resumed run keeps its timeout budget); only
   runs whose request lacks `"start": 2`, and continuations after approvals
2. event `running` on the run's event stream (only runs whose request lacks `"events": 2`)
3. the agent loop: one step per model request, one per tool call (and, for streaming runs, the
   event steps of pydantic-ai's durable event handler)
4. event `finished` (only runs whose request lacks `"events": 2`)
5. `keel.session_release` (runs in a session only)
6. start of the `keel.callback` child workflow (runs with a callback URL only)

Where events go does not change the sequence: a step's events are not operations of the
workflow (stream writes from a step take no step number; since `"events": 3` they go to Keel's
`run_events` table instead, see keel.durable.event_log), so runs of either format replay alike.

Runs accepted since `"events": 2` (keel.durable.events.EVENTS_V2) skip 2 and 4: their readers
make those events from the workflow's status. Runs accepted since `"start": 2`
(keel.durable.service.START_V2) skip 1: they are queued with a far workflow timeout and read their
start from the deadline DBOS sets at the first dequeue and keeps through recoveries. Runs accepted
before keep their steps on replay: the request, not the code's version, chooses the sequence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbos import DBOS

if TYPE_CHECKING:
    from keel.durable.service import DurableRuns

RUN_WORKFLOW = "keel.run"
CALLBACK_WORKFLOW = "keel.callback"
CALLBACK_QUEUE = "keel.callbacks"
NOTIFY_WORKFLOW = "keel.notify"
NOTIFY_QUEUE = "keel.notifications"

_service: DurableRuns | None = None


def bind(service: DurableRuns | None) -> None:
    global _service
    _service = service


def _active() -> DurableRuns:
    if _service is None:
        raise RuntimeError("a durable Keel run was started but this process has no DurableRuns service")
    return _service


@DBOS.workflow(name=RUN_WORKFLOW, max_recovery_attempts=50)
async def keel_run(request: dict[str, Any]) -> dict[str, Any]:
    return await _active().execute(request)


@DBOS.workflow(name=CALLBACK_WORKFLOW, max_recovery_attempts=50)
async def keel_callback(job: dict[str, Any]) -> dict[str, Any]:
    return await _active().deliver_callback(job)


@DBOS.workflow(name=NOTIFY_WORKFLOW, max_recovery_attempts=50)
async def keel_notify(job: dict[str, Any]) -> dict[str, Any]:
    return await _active().deliver_notification(job)
