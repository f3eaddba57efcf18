"""`DurableRuns`: queued, crash-proof runs of a project's agents, on DBOS.

The API calls `submit` (accept and queue), `get`, `wait`, `cancel` and `events`; worker
processes execute the queued runs (`execute`, the body of the `keel.run` workflow) and deliver
callbacks (`deliver_callback`). A process can be both (`role="all"`, the SQLite default), only
accept (`api`) or only execute (`worker`). See docs/server.md.

A run is one DBOS workflow whose id is the run id. Every model request and every tool call is a
checkpointed step, so a process killed mid-run resumes it on restart without repeating any
completed request or tool call; on Postgres another worker adopts the runs of a worker that
stopped sending heartbeats (`keel.durable.workers`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from dbos import DBOS, SetEnqueueOptions, SetWorkflowID, SetWorkflowTimeout
from dbos._context import get_local_dbos_context
from dbos._error import DBOSNonExistentWorkflowError
from sqlalchemy.exc import SQLAlchemyError

from keel.config.project import Project
from keel.durable import engine, sessions
from keel.durable.callbacks import CallbackDeliverer
from keel.durable.event_log import EVENTS_V3, EventLog
from keel.durable.events import EVENTS_V2, EventSink, status_event
from keel.durable.queues import partition_key, queue_name, queue_settings
from keel.durable.views import cancelled_result as _cancelled_result
from keel.durable.workers import WorkerPresence
from keel.durable.workflows import CALLBACK_QUEUE, NOTIFY_QUEUE, bind, keel_callback, keel_run
from keel.errors import BadInput, ErrorCategory, UsageError
from keel.prompts.errors import PromptError, StaleRelease
from keel.prompts.resolve import ResolvedPrompt
from keel.runtime.result import RunError, RunResult, RunStatus
from keel.runtime.runner import RunInterrupted, Runner
from keel.store import Coordination, RunStore

log = logging.getLogger("keel.durable")


class ReleaseLoader(Protocol):
    async def ensure(self, number: int) -> Project | None: ...

    async def check(self) -> bool: ...


Role = Literal["all", "api", "worker"]
RunEnded = Callable[[dict[str, Any], RunResult], Awaitable[None]]
"""A hook called once when a run ends: the run's request (as submitted) and its result."""
IDEMPOTENCY_WINDOW = timedelta(hours=24)
_STATUS = {
    "ENQUEUED": "queued",
    "DELAYED": "queued",
    "PENDING": "running",
    "SUCCESS": "succeeded",
    "ERROR": "failed",
    "CANCELLED": "cancelled",
    "MAX_RECOVERY_ATTEMPTS_EXCEEDED": "failed",
}
TERMINAL = frozenset({"succeeded", "failed", "timed_out", "cancelled", "escalated"})
_LIVE = frozenset({"ENQUEUED", "DELAYED", "PENDING"})  # DBOS statuses of a workflow not ended
WAIT_SWEEP_S = 1.0
"""How often one query checks every run a request waits for (runs that end elsewhere)."""
WAITING = "waiting_approval"  # not ended, but nothing happens until people decide
HOLD_S = 60.0
"""How long a waiter registered by `submit(hold=True)` waits for its `wait` to take it."""
START_V2 = 2
"""The request's `start` value for runs whose start time is read from their DBOS deadline, not
recorded by a `keel.run_start` step (see `_recorded_start`)."""
START_HORIZON_S = 10 * 365 * 86400
"""The workflow timeout such runs are queued with: DBOS sets the deadline once, at the first
dequeue, to that moment plus this, and keeps it through recoveries; it never cancels a run."""


class SubmitRefused(Exception):
    """A submission that cannot be accepted as asked; `code` is the API's problem code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Submission:
    agent: str
    input: Any
    session_id: str | None = None
    user_id: str | None = None
    tenant_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    priority: int | None = None
    callback_url: str | None = None
    stream: bool = False
    idempotency_key: str | None = None
    trigger: str = "api"
    # What the gateway needs back when the run ends (its rate-limit subjects and lease); opaque here.
    limits: Mapping[str, Any] | None = None
    variables: Mapping[str, Any] | None = None  # the prompt's variables (agents with a registry prompt)
    # Who asked for the run (`user:ann`, `service:<key prefix>`) and their roles: per-principal
    # guardrails (the `tools` guardrail's `principals`).
    principal: str | None = None
    roles: tuple[str, ...] = ()

    def request_hash(self) -> str:
        body = {
            "agent": self.agent,
            "input": self.input,
            "session_id": self.session_id,
            "user_id": self.user_id,
            "metadata": dict(self.metadata),
            "tags": list(self.tags),
            "priority": self.priority,
            "callback_url": self.callback_url,
            "stream": self.stream,
        }
        if self.variables:  # only when given: keys reused across an upgrade keep their hash
            body["variables"] = dict(self.variables)
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Submitted:
    run_id: str
    created: bool  # False when an idempotency key matched an earlier run


class DurableRuns:
    def __init__(
        self,
        runner: Runner,
        *,
        role: Role = "all",
        worker_id: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if runner.database_url is None:
            raise UsageError("durable runs need storage: set storage.enabled to true")
        self.runner = runner
        self.settings = runner.project.config.server
        self.role: Role = role
        self.database_url = runner.database_url
        self.system_url = engine.system_database_url(self.database_url)
        self.sqlite = engine.is_sqlite(self.system_url)
        if self.sqlite and role != "all":
            raise UsageError(
                f"--role {role} needs PostgreSQL: on SQLite one process serves the API and runs the work"
            )
        env = os.environ if environ is None else environ
        default_id = "keel-sqlite" if self.sqlite else f"{socket.gethostname()}-{role}"
        self.worker_id = worker_id or env.get("KEEL_WORKER_ID") or default_id
        self.executes = role in ("all", "worker")
        self._waiters: dict[str, list[asyncio.Future[dict[str, Any] | None]]] = {}
        # Waiters registered by `submit(hold=True)` before the run was queued, for `wait` to take.
        self._held: dict[str, asyncio.Future[dict[str, Any] | None]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self.callbacks = CallbackDeliverer(self.project, self.database_url, env)
        self.coordination = Coordination(self.database_url)
        self.store = RunStore(self.database_url)  # history reads
        self.event_log = EventLog(self.database_url)
        self.sessions = sessions.SessionGate(self.coordination)
        self.presence = WorkerPresence(self, self.coordination)
        from keel.durable.approvals import ApprovalDesk

        self.approvals = ApprovalDesk(self)
        from keel.durable.notify import ReviewerNotifier

        self.notifier = ReviewerNotifier(self.project.config.approvals, self.project.root, env)
        self.on_ended: list[RunEnded] = []  # called once per run that ends (see `_ended`)
        # Loads the release a run was accepted on when it is not loaded here (keel.releases.live).
        self.releases: ReleaseLoader | None = None
        self._queues: set[str] = set()
        self._started = False

    @property
    def project(self) -> Project:
        """The live project (it changes when another release becomes live)."""
        return self.runner.project

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Migrate, launch DBOS on this loop (resuming this worker's unfinished runs) and register
        the agents' queues."""
        if self._started:
            return
        await self.runner.start()
        if self.executes:
            for name in self.project.agents:  # compile before launch: recovery replays at once
                self.runner.compiled(name, durable=True)
                self.runner.compiled(name, durable=True, stream=True)
        await self.presence.check_single_sqlite_process()
        bind(self)
        config = engine.dbos_config(self.system_url, executor_id=self.worker_id)
        await engine.launch(config, listen=None if self.executes else [])
        await self.register_queues(self.project)
        # Callbacks and notifications are queued by the process that executes the run, which wakes
        # their queue at once (`_wake`): the poll only picks up what a crash or another process left.
        await DBOS.register_queue_async(
            CALLBACK_QUEUE, worker_concurrency=50, polling_interval_sec=max(1.0, self.settings.poll_interval)
        )
        await DBOS.register_queue_async(
            NOTIFY_QUEUE, worker_concurrency=20, polling_interval_sec=max(1.0, self.settings.poll_interval)
        )
        await self.callbacks.start()
        await self.notifier.start()
        await self.presence.start()
        await self.approvals.start()
        self._started = True

    async def register_queues(self, project: Project) -> None:
        """Register the queues of `project`'s agents not registered yet (a new release may add agents)."""
        for spec in project.agents.values():
            settings = queue_settings(spec, poll_interval=self.settings.poll_interval)
            if settings.name in self._queues:
                continue
            await DBOS.register_queue_async(settings.name, **settings.options)
            self._queues.add(settings.name)
            if self.sqlite:  # the only process queueing into it: it wakes the queue itself
                worker = settings.options["worker_concurrency"]
                capped = any(
                    settings.options.get(key) is not None and settings.options[key] < worker
                    for key in ("global_concurrency", "partition_concurrency", "partition_worker_concurrency")
                )
                engine.poll_slowly_when_idle(settings.name, worker_concurrency=worker, capped=capped)

    async def stop(self) -> None:
        """Stop taking work, let running runs finish for `server.shutdown_grace` seconds, and
        stop DBOS; unfinished runs resume at the next start (or on another worker)."""
        if not self._started:
            return
        self._started = False
        await self.presence.stop()
        await self.approvals.close()
        await asyncio.to_thread(engine.destroy, self.settings.shutdown_grace)
        # DBOS installs its own default executor on the loop and shuts it down with itself.
        asyncio.get_running_loop().set_default_executor(concurrent.futures.ThreadPoolExecutor())
        bind(None)
        await self.callbacks.close()
        await self.notifier.close()
        await self.coordination.close()
        await self.store.close()
        await self.event_log.close()
        for futures in self._waiters.values():
            for future in futures:
                future.cancel()
        self._waiters.clear()
        self._held.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    # -- accept ------------------------------------------------------------------------------------

    async def submit(self, sub: Submission, *, hold: bool = False) -> Submitted:
        """Accept and queue a run. `hold`: the caller will `wait` for it at once; its waiter is
        registered before the run is queued, so `wait` need not read the run first to know it has
        not ended already (a held waiter that no `wait` takes is dropped after HOLD_S)."""
        spec = self.project.agent(sub.agent)
        queue = spec.config.queue
        try:
            self.runner.check_input(sub.agent, sub.input)
        except BadInput as exc:
            raise SubmitRefused(422, "bad_input", exc.message) from None
        if sub.callback_url is not None:
            self.callbacks.check_url(sub.callback_url)
        digest = sub.request_hash()
        if sub.idempotency_key is not None:
            run_id, existing = await self._idempotent_id(sub, digest)
            if existing:
                return Submitted(run_id, created=False)
        else:
            run_id = uuid.uuid4().hex
        try:  # resolved once, now: a resumed run uses the same text whatever moved since
            release, prompt = await self._resolve(sub, run_id)
        except PromptError as exc:
            raise SubmitRefused(exc.status, exc.code, exc.message) from None
        except SQLAlchemyError as exc:
            log.warning("the prompt registry did not answer: %s", exc)
            raise SubmitRefused(
                503, "prompt_registry_unavailable", "the prompt registry cannot be read right now; retry"
            ) from None
        request: dict[str, Any] = {
            "agent": sub.agent,
            "input": sub.input,
            "session_id": sub.session_id,
            "user_id": sub.user_id,
            "tenant_id": sub.tenant_id,
            "metadata": dict(sub.metadata),
            "tags": list(sub.tags),
            "callback_url": sub.callback_url,
            "stream": sub.stream,
            "trigger": sub.trigger,
            "limits": dict(sub.limits) if sub.limits is not None else None,
            "request_hash": digest,
            "submitted_at": datetime.now(UTC).isoformat(),
            "release": release,
            "prompt": prompt.as_dict() if prompt is not None else None,
            "principal": sub.principal,
            "roles": list(sub.roles),
            "events": EVENTS_V3,  # status events made by readers, step events in `run_events`
            "start": START_V2,  # the start comes from the DBOS deadline: no `keel.run_start` step
        }
        delayed = False
        if sub.session_id is not None:
            key = sessions.session_key(sub.tenant_id, sub.agent, sub.session_id)
            request["session_key"] = key
            delayed = not await self.sessions.enter(run_id, key, queue.session_policy)
        options = SetEnqueueOptions(
            priority=sub.priority or queue.priority,
            queue_partition_key=partition_key(queue, sub.tenant_id, sub.user_id),
            delay_seconds=sessions.PARKED_SECONDS if delayed else None,
        )
        if hold and self.executes:
            future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(run_id, []).append(future)
            self._held[run_id] = future
            asyncio.get_running_loop().call_later(HOLD_S, self._held.pop, run_id, None)
        try:
            with SetWorkflowID(run_id), options, SetWorkflowTimeout(START_HORIZON_S):
                await DBOS.enqueue_workflow_async(queue_name(sub.agent), keel_run, request)
            if sub.session_id is not None:
                await self.sessions.after_enqueue(run_id, request["session_key"], queue.session_policy, self)
        except BaseException:
            self._held.pop(run_id, None)
            self._drop_waiters(run_id)
            raise
        self._wake(queue_name(sub.agent))
        return Submitted(run_id, created=True)

    def _drop_waiters(self, run_id: str) -> list[asyncio.Future[dict[str, Any] | None]]:
        """The waiters of a run, unregistered (it ended, or was never queued). A held waiter also
        stays in `_held`, so a `wait` that comes later still takes it, resolved."""
        return self._waiters.pop(run_id, [])

    def _wake(self, queue: str) -> None:
        """A run was just queued: if this process executes runs, its queue is checked now rather
        than at the next poll (see `engine.wake_queue`)."""
        if self.executes:
            engine.wake_queue(queue)

    async def _resolve(self, sub: Submission, run_id: str) -> tuple[int | None, ResolvedPrompt | None]:
        """The live release and the run's prompt, read consistently: labels that moved with a newer
        release make this process switch to it first."""
        for _ in range(3):
            release = self.runner.release
            try:
                prompt = await self.runner.resolve_prompt(
                    sub.agent,
                    run_id=run_id,
                    tenant_id=sub.tenant_id,
                    user_id=sub.user_id,
                    session_id=sub.session_id,
                    variables=sub.variables,
                    release=release,
                )
            except StaleRelease:
                if self.releases is None:
                    raise
                await self.releases.check()
                continue
            return release, prompt
        raise SubmitRefused(503, "release_switching", "a new release is becoming live; retry in a moment")

    async def _idempotent_id(self, sub: Submission, digest: str) -> tuple[str, bool]:
        """The run id for an idempotency key: the run it already made within 24 hours (True), or
        a fresh id (False). A key reused with a different request is refused."""
        assert sub.idempotency_key is not None
        base = hashlib.sha256(
            json.dumps([sub.tenant_id, sub.agent, sub.idempotency_key]).encode()
        ).hexdigest()[:32]
        for generation in range(100):
            run_id = f"idem-{base}" if generation == 0 else f"idem-{base}-{generation}"
            found = await DBOS.list_workflows_async(workflow_ids=[run_id], load_input=True, load_output=False)
            if not found:
                return run_id, False
            status = found[0]
            created = datetime.fromtimestamp((status.created_at or 0) / 1000, UTC)
            if datetime.now(UTC) - created >= IDEMPOTENCY_WINDOW:
                continue  # expired: the key may make a new run
            stored = _request_of(status)
            if stored.get("request_hash") != digest:
                raise SubmitRefused(
                    422,
                    "idempotency_key_reused",
                    "this Idempotency-Key was already used within 24 hours for a different request",
                )
            return run_id, True
        raise SubmitRefused(422, "idempotency_key_reused", "this Idempotency-Key has been used too often")

    # -- read --------------------------------------------------------------------------------------

    async def get(self, run_id: str) -> dict[str, Any] | None:
        """The run as the API shows it, or None if there is no such durable run."""
        found = await DBOS.list_workflows_async(workflow_ids=[run_id], load_input=True, load_output=True)
        if not found:
            return None
        view = await self._view(found[0])
        if view["status"] == WAITING:  # it went on (or will) in another workflow
            view = await self.approvals.current_view(run_id, view)
        return view

    async def _view(self, status: Any) -> dict[str, Any]:
        state = _STATUS.get(status.status, "running")
        if state == "succeeded" and isinstance(status.output, dict):
            return dict(status.output)
        request = _request_of(status)
        view: dict[str, Any] = {
            "run_id": status.workflow_id,
            "agent": request.get("agent"),
            "status": state,
            "session_id": request.get("session_id"),
            "user_id": request.get("user_id"),
            "tenant_id": request.get("tenant_id"),
            "metadata": request.get("metadata", {}),
            # The request's own time: DBOS's timestamps are whole seconds on SQLite before 3.42.
            "created_at": request.get("submitted_at") or _iso(status.created_at),
            "started_at": _iso(status.dequeued_at),
            "ended_at": _iso(status.completed_at) if state in TERMINAL else None,
            "output": None,
            "error": None,
        }
        if state == "queued":
            submitted = datetime.fromisoformat(view["created_at"]).timestamp() if view["created_at"] else 0.0
            view["queued_for_s"] = round(time.time() - submitted, 3)
        if state == "cancelled":
            recorded = await self.runner_history(status.workflow_id)
            if recorded is not None:
                return recorded
            view["error"] = {"category": ErrorCategory.CANCELLED.value, "message": "the run was cancelled"}
        if state == "failed":
            message = str(status.error) if status.error is not None else "the run could not complete"
            if status.status == "MAX_RECOVERY_ATTEMPTS_EXCEEDED":
                message = "the run crashed its worker too many times and was given up"
            view["error"] = {"category": ErrorCategory.INTERNAL.value, "message": message}
        return view

    async def runner_history(self, run_id: str) -> dict[str, Any] | None:
        """The run as stored in the run history, if it is there (it is written in the background)."""
        record = await self.store.get_run(run_id)
        return None if record is None else record_view(record)

    async def wait(self, run_id: str, timeout: float) -> dict[str, Any] | None:  # noqa: ASYNC109 - a wait budget, not a cancel
        """The run once it has ended, or its current view after `timeout` seconds.

        A run executed by this process resolves the waiter the moment it ends. Runs that end
        elsewhere (another worker, a cancel, a failure in Keel itself) are found by one query every
        `WAIT_SWEEP_S` for all the runs this process's requests wait for, not one per request:
        many requests waiting at once must not turn into a query storm. A process that executes
        nothing polls the status (20 ms, growing to 0.5 s).
        """
        deadline = time.monotonic() + timeout
        future = self._held.pop(run_id, None)
        held = future is not None
        if future is None and self.executes and timeout > 0:
            future = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(run_id, []).append(future)
        try:
            # A held waiter was registered before the run was queued: its end cannot be missed.
            view = None if held else await self.get(run_id)
            if future is None:
                pause = 0.02
                while True:
                    remaining = deadline - time.monotonic()
                    if (
                        view is None
                        or view["status"] in TERMINAL
                        or view["status"] == WAITING
                        or remaining <= 0
                    ):
                        return view
                    await asyncio.sleep(min(pause, remaining))
                    pause = min(pause * 1.5, 0.5)
                    view = await self.get(run_id)
            if not held and (view is None or view["status"] in TERMINAL or view["status"] == WAITING):
                return view
            self._sweep_waiters()
            remaining = deadline - time.monotonic()
            if remaining > 0:
                await asyncio.wait({future}, timeout=remaining)
            if future.cancelled():  # the service is stopping
                return view
            if future.done() and (ended := future.result()) is not None:
                return ended
            return await self.get(run_id)  # ended elsewhere, or out of time: as it is now
        finally:
            if future is not None:
                waiters = self._waiters.get(run_id, [])
                if future in waiters:
                    waiters.remove(future)
                if not waiters:
                    self._waiters.pop(run_id, None)

    def _sweep_waiters(self) -> None:
        """Make sure the sweep of waited-for runs is going (it stops when nobody waits)."""
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        """Every `WAIT_SWEEP_S`, one query for the status of every run a request waits for; the
        waiters of those that ended are told to read them (a None result)."""
        while self._waiters:
            await asyncio.sleep(WAIT_SWEEP_S)
            ids = list(self._waiters)
            if not ids:
                return
            try:
                found = await DBOS.list_workflows_async(workflow_ids=ids, load_input=False, load_output=False)
            except Exception as exc:  # the next sweep tries again; a waiter's budget still ends it
                log.debug("could not check the runs being waited for: %s", exc)
                continue
            for status in found:
                if status.status in _LIVE:
                    continue
                for future in self._waiters.get(status.workflow_id, []):
                    if not future.done():
                        future.set_result(None)

    async def cancel(self, run_id: str) -> dict[str, Any] | None:
        """Cancel a queued or running run. A running run stops at its next step; a step in
        progress (a model request or tool call) finishes first."""
        view = await self.get(run_id)
        if view is None or view["status"] in TERMINAL:
            return view
        if view["status"] == WAITING:
            return await self._cancel_waiting(run_id)
        workflow = await self.approvals.current_workflow(run_id)
        await DBOS.cancel_workflow_async(workflow)
        found = await DBOS.list_workflows_async(workflow_ids=[workflow], load_input=True, load_output=False)
        request = _request_of(found[0]) if found else {}
        if view["status"] == "queued":
            cancelled = _cancelled_result(run_id, request)
            self.runner.record(cancelled)
            await self._ended(request, cancelled)
        if request.get("session_key"):
            await self.sessions.release(run_id)
        return await self.get(run_id)

    async def _cancel_waiting(self, run_id: str) -> dict[str, Any] | None:
        """Cancel a run waiting for approval: its stop and undecided calls; it is recorded as
        cancelled with what it had done, and its session goes on."""
        stop = await self.approvals.store.latest_pause(run_id)
        if stop is None or not await self.approvals.store.cancel_run(run_id, datetime.now(UTC)):
            return await self.get(run_id)
        from keel.runtime.approval import PausedState, model_call_from, tool_call_from
        from keel.runtime.recorder import RunRecorder

        state = PausedState.from_dict(stop["state"])
        request = dict(stop["request"])
        cancelled = _cancelled_result(run_id, request)
        cancelled.error = RunError(
            ErrorCategory.CANCELLED, "the run was cancelled while it waited for approval"
        )
        cancelled.started_at = (
            datetime.fromisoformat(state.started_at) if state.started_at else cancelled.started_at
        )
        account = RunRecorder(run_id=run_id, agent=cancelled.agent)  # usage as a run counts it
        for data in state.model_calls:
            account.record_model_call(model_call_from(data))
        cancelled.model_calls, cancelled.usage = account.model_calls, account.usage
        cancelled.tool_calls = [tool_call_from(c) for c in state.tool_calls]
        self.runner.record(cancelled)
        await self._ended(request, cancelled)
        if request.get("session_key"):
            await self.sessions.release(run_id)
        return await self.get(run_id)

    async def events(self, run_id: str, after: int = -1) -> AsyncIterator[tuple[int, dict[str, Any]]]:
        """The run's events from offset `after + 1`, as (offset, event), until it ends."""
        from keel.durable.events import read_events

        async for item in read_events(self, run_id, after):
            yield item

    async def queue_stats(self) -> list[dict[str, Any]]:
        from keel.durable.stats import queue_stats

        return await queue_stats(self)

    # -- execute (inside the `keel.run` workflow) ---------------------------------------------------

    async def execute(self, request: dict[str, Any]) -> dict[str, Any]:
        """The body of a run's workflow: the run's start, or (with `resume`) its continuation
        after approvals (workflow `<run_id>.p<n>`)."""
        run_id = request.get("run_id") or DBOS.workflow_id
        assert run_id is not None
        task = asyncio.current_task()
        if task is not None and self.sqlite:  # its slot frees when the workflow's task is done
            agent_queue = queue_name(request["agent"])
            task.add_done_callback(lambda _: engine.run_ended(agent_queue))
        started = _recorded_start(request)
        if started is None:  # runs accepted before START_V2, and continuations after approvals
            started = await DBOS.run_step_async({"name": "keel.run_start"}, _now)
        resume = None
        if request.get("resume"):
            from keel.durable.approvals import resume_from

            loaded = await DBOS.run_step_async(
                {"name": "keel.resume_load"}, self.approvals.load, run_id, int(request["resume"]["pause"])
            )
            resume = resume_from(loaded)
        release = request.get("release")
        if release is not None and self.runner.project_for(release) is None and self.releases is not None:
            await self.releases.ensure(release)  # a run accepted on a release this process has not loaded
        prompt = ResolvedPrompt.from_dict(request["prompt"]) if request.get("prompt") else None
        events = request.get("events")
        sink = EventSink(
            stream=bool(request.get("stream")), log=self.event_log if events == EVENTS_V3 else None
        )
        status_events = events not in (EVENTS_V2, EVENTS_V3)  # runs accepted before EVENTS_V2
        if status_events:
            await sink.write(status_event("running"))
        try:
            result = await self.runner.run(
                request["agent"],
                request["input"],
                run_id=run_id,
                stream=bool(request.get("stream")),
                on_event=sink.emit,
                trigger=request.get("trigger", "api"),
                session_id=request.get("session_id"),
                user_id=request.get("user_id"),
                tenant_id=request.get("tenant_id"),
                tags=tuple(request.get("tags", ())),
                metadata=request.get("metadata") or {},
                durable_start=started,
                release=release if self.runner.project_for(release) is not None else "live",
                prompt=prompt,
                resume=resume,
                principal=request.get("principal"),
                roles=tuple(request.get("roles") or ()),
            )
        except RunInterrupted as stop:
            status = await DBOS.get_workflow_status_async(run_id)
            if status is not None and status.status == "CANCELLED":
                self.runner.record(stop.result)
                await self._ended(request, stop.result)
            raise stop.__cause__ or stop from None
        if result.status is RunStatus.WAITING_APPROVAL:
            return await self._waiting(run_id, request, result, sink)
        if result.status is RunStatus.ESCALATED:
            escalation = await DBOS.run_step_async(
                {"name": "keel.escalate"}, self.approvals.escalate, run_id, request, result
            )
            result.escalation = {
                **(result.escalation or {}),
                "id": escalation["id"],
                "summary": escalation["summary"],
            }
            await self._notify(
                "escalation.created",
                escalation["id"],
                run_id,
                request,
                result.agent,
                {
                    "trigger": escalation["trigger"],
                    "reason": escalation["reason"],
                    "summary": escalation["summary"],
                },
            )
        if self.on_ended:
            await DBOS.run_step_async({"name": "keel.run_ended"}, self._ended, request, result)
        view = result.to_dict()
        if status_events:
            await sink.write(status_event(result.status.value, result))
        if request.get("session_key"):
            await DBOS.run_step_async({"name": "keel.session_release"}, self.sessions.release, run_id)
            self._wake(queue_name(request["agent"]))  # the session's next run, if one was waiting
        if request.get("callback_url"):
            job = {
                "run_id": run_id,
                "tenant_id": request.get("tenant_id"),
                "url": request["callback_url"],
                "run": view,
            }
            with SetWorkflowID(f"{run_id}.callback"):
                await DBOS.enqueue_workflow_async(CALLBACK_QUEUE, keel_callback, job)
            self._wake(CALLBACK_QUEUE)
        for future in self._drop_waiters(run_id):
            if not future.done():
                future.set_result(view)
        return view

    async def deliver_callback(self, job: dict[str, Any]) -> dict[str, Any]:
        return await self.callbacks.deliver(job)

    async def _waiting(
        self, run_id: str, request: dict[str, Any], result: RunResult, sink: EventSink
    ) -> dict[str, Any]:
        """The run stopped for approval: store the stop, tell reviewers, end this workflow (the
        run goes on in another once people decide; see keel.durable.approvals)."""
        view = await DBOS.run_step_async(
            {"name": "keel.pause"}, self.approvals.pause, run_id, request, result
        )
        for approval in view["approvals"]:
            if approval["status"] != "pending":
                continue
            payload = {
                key: approval[key]
                for key in ("tool", "args", "reason", "expires_at", "on_timeout", "pause", "call_id")
            }
            await self._notify("approval.requested", approval["id"], run_id, request, result.agent, payload)
        await sink.write({**status_event(WAITING), "approvals": view["approvals"]})
        for future in self._drop_waiters(run_id):
            if not future.done():
                future.set_result(view)
        return view

    async def _notify(
        self,
        event: str,
        id: str,
        run_id: str,
        request: Mapping[str, Any],
        agent: str,
        payload: dict[str, Any],
    ) -> None:
        """Tell reviewers (a child workflow per notification: retried durably, never holding the run)."""
        if not self.notifier.enabled:
            return
        job = {
            "event": event,
            "id": id,
            "run_id": run_id,
            "tenant_id": request.get("tenant_id"),
            "agent": agent,
            "payload": payload,  # links to the inbox are added from approvals.dashboard_url
        }
        from keel.durable.workflows import keel_notify

        with SetWorkflowID(f"{id}.notify"):
            await DBOS.enqueue_workflow_async(NOTIFY_QUEUE, keel_notify, job)
        self._wake(NOTIFY_QUEUE)

    async def deliver_notification(self, job: dict[str, Any]) -> dict[str, Any]:
        return await self.notifier.deliver(job)

    async def _ended(self, request: dict[str, Any], result: RunResult) -> None:
        """Tell the `on_ended` hooks (the gateway: release the run's concurrency slot, count its
        tokens). In a run, a checkpointed step: a resumed run does not count its tokens twice.
        A failing hook is logged, never fails the run."""
        for hook in self.on_ended:
            try:
                await hook(request, result)
            except Exception:
                log.exception("a run-ended hook failed for run %s", result.run_id)


async def _now() -> datetime:
    return datetime.now(UTC)


def _recorded_start(request: Mapping[str, Any]) -> datetime | None:
    """When the run first started, for runs queued with `start` START_V2 (and a workflow timeout of
    START_HORIZON_S): DBOS sets the workflow's deadline at the first dequeue and a recovered run
    keeps it, so the start, and the run's timeout budget, survive a crash without a checkpointed
    step. A copy made by DBOS's fork has no deadline unless given one: it counts from now.

    None for runs that record their start in a `keel.run_start` step: those accepted before
    START_V2, and continuations after approvals. The request alone decides, so every execution of
    a workflow (first, recovered, forked) takes the same steps."""
    if request.get("start") != START_V2 or request.get("resume"):
        return None
    context = get_local_dbos_context()
    deadline = context.workflow_deadline_epoch_ms if context is not None else None
    if deadline is None:
        return datetime.now(UTC)
    return datetime.fromtimestamp((deadline - START_HORIZON_S * 1000) / 1000, UTC)


def _request_of(status: Any) -> dict[str, Any]:
    inputs = status.input or {}
    args = inputs.get("args") or ()
    return args[0] if args and isinstance(args[0], dict) else {}


def _iso(epoch_ms: int | None) -> str | None:
    return None if epoch_ms is None else datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat()


def record_view(record: Any) -> dict[str, Any]:
    """A stored RunRecord in the shape of the API's run JSON."""
    from keel.durable.views import record_view as view

    return view(record)


__all__ = ["DBOSNonExistentWorkflowError", "DurableRuns", "Submission", "SubmitRefused", "Submitted"]
