"""Online evaluation: a share of each agent's live runs, scored in the background.

    # agents/inbox.yaml
    evals:
      online:
        sample_rate: 0.1
        evaluators: [{type: succeeded}, {type: judge, agent: judge, rubric: "..."}]

    scorer = OnlineScorer(runner)       # `keel serve` makes one per process (keel.api.app)
    await scorer.start()                # workers started, told of every run the runner ends
    ...
    await scorer.stop()

Sampling. `sampled(run_id, rate)`: a hash of the run id into 10,000 buckets, against the rate. So
the share over many runs is the rate, and a run replayed after a crash (same id) decides the same
way. Runs with trigger `eval` (offline evaluations, judges) are never sampled.

Never on the run's path. The scorer is a `Runner.after_run` observer: it decides and puts the run
on a bounded queue, and returns. A few worker tasks take runs off the queue and score them. A full
queue drops the run (counted in `dropped`); an evaluator that raises or times out is logged and
counted (`failed`) and writes no score; nothing the scorer does can fail or delay a run beyond the
decision and the enqueue (a few microseconds).

Writes. Workers hand their scores to one writer task, which stores everything handed to it since
its last write in one transaction: under load, many runs' scores share a transaction.

No double scoring. Scores are inserted with ON CONFLICT DO NOTHING on (run_id, evaluator), so a
run replayed after a crash, or two processes racing on one run, store one score per evaluator.
When the agent's evaluators include a judge or a `python` function (costly, or with effects), a
worker first reads which evaluators already scored the run and skips them (counted in `skipped`),
so the judge is not asked again; rules alone are simply evaluated again.

Evaluators are built from the agent's settings (`keel.evals.evaluators.build`) once per release,
agent and configuration; `start` builds those of the live project, so a judge naming an unknown
agent or a `python` evaluator that cannot be imported stops the server at start-up. Each run gets
a `Case` with its input (no expected output) and an `Observation` of what it did.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import OperationalError

from keel.errors import UsageError
from keel.evals.evaluators import EvalContext, build
from keel.evals.model import Case, Evaluator, Observation, Score, ToolCallSeen
from keel.evals.online_store import OnlineEvalStore, ScoreRow

if TYPE_CHECKING:
    from keel.config.project import AgentSpec, Project
    from keel.config.schema import OnlineEvalConfig
    from keel.runtime.result import RunResult
    from keel.runtime.runner import Runner

log = logging.getLogger("keel.evals.online")

BUCKETS = 10_000
QUEUE_SIZE = 1000
WORKERS = 4
EVALUATOR_TIMEOUT = 120.0
WRITE_RETRY_SECONDS = 30.0  # how long a batch of scores is retried on a busy or unreachable database
UNSAMPLED_TRIGGERS = frozenset({"eval"})
COSTLY_TYPES = frozenset({"judge", "python"})  # checked for existing scores before they run again


def bucket_of(run_id: str) -> int:
    """The run's bucket, 0 to 9,999: the first 8 bytes of its BLAKE2b hash, modulo 10,000."""
    digest = hashlib.blake2b(run_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def sampled(run_id: str, rate: float) -> bool:
    """Whether the run with this id is scored at `rate` (0 to 1). Deterministic per run id."""
    return bucket_of(run_id) < round(rate * BUCKETS)


def observation_of(result: RunResult) -> Observation:
    """What evaluators see of a run."""
    return Observation(
        output=result.output,
        status=result.status.value,
        error=result.error.message if result.error else None,
        tool_calls=tuple(
            ToolCallSeen(c.name, dict(c.args)) for c in result.tool_calls if c.status != "retry"
        ),
        latency_ms=result.duration_ms,
        cost_usd=result.cost_usd,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        run_id=result.run_id,
        prompt_version=result.prompt_version,
        tenant_id=result.tenant_id,
    )


@dataclass
class OnlineStats:
    """Counters since start: runs sampled, scored (their scores written), dropped (queue full or
    scorer stopped), skipped (already scored, judged by a judge or a `python` evaluator: a replay),
    and failures (an evaluator that raised or timed out, evaluators that could not be built, runs
    whose write failed)."""

    sampled: int = 0
    scored: int = 0
    dropped: int = 0
    skipped: int = 0
    failed: int = 0


@dataclass(frozen=True)
class _Job:
    result: RunResult
    project: Project
    spec: AgentSpec
    config: OnlineEvalConfig


class OnlineScorer:
    """Scores sampled runs of `runner` in the background, into `online_scores`.

    `store` defaults to one on the runner's database (closed by `stop`). `queue_size` runs may
    wait; `workers` are scored at once; an evaluator gets `evaluator_timeout` seconds per run.
    """

    def __init__(
        self,
        runner: Runner,
        store: OnlineEvalStore | None = None,
        *,
        queue_size: int = QUEUE_SIZE,
        workers: int = WORKERS,
        evaluator_timeout: float = EVALUATOR_TIMEOUT,
    ) -> None:
        if store is None and runner.database_url is None:
            raise UsageError("online evaluation needs storage (storage.enabled)")
        self.runner = runner
        self._own_store = store is None
        self.store = store if store is not None else OnlineEvalStore(str(runner.database_url))
        self.counters = OnlineStats()
        self._queue_size, self._workers, self._timeout = queue_size, workers, evaluator_timeout
        self._queue: asyncio.Queue[_Job] | None = None
        self._writes: asyncio.Queue[list[ScoreRow]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._built: dict[tuple[int | None, str, str], list[Evaluator] | str] = {}

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the live project's evaluators (UsageError naming the agent and evaluator if one
        cannot be built), start the workers and observe the runner's runs. Idempotent."""
        if self._queue is not None:
            return
        self.check(self.runner.project, self.runner.release)
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(self._queue_size)
        self._writes = asyncio.Queue()  # at most one entry per job taken from `_queue`
        self._tasks = [
            asyncio.create_task(self._work(), name=f"keel-online-eval-{i}") for i in range(self._workers)
        ]
        self._tasks.append(asyncio.create_task(self._write(), name="keel-online-eval-writer"))
        self.runner.after_run.append(self.observe)

    async def drain(self, within: float = 10.0) -> bool:
        """Wait until every queued run is scored (True), or `within` seconds pass (False)."""
        if self._queue is None or self._writes is None:
            return True
        try:
            async with asyncio.timeout(within):
                await self._queue.join()
                await self._writes.join()
        except TimeoutError:
            return False
        return True

    async def stop(self, within: float = 5.0) -> None:
        """Stop observing, give queued runs `within` seconds to be scored, then stop the workers."""
        if self.observe in self.runner.after_run:
            self.runner.after_run.remove(self.observe)
        if self._queue is not None:
            if not await self.drain(within):
                log.warning("online evaluation stopped with %d runs not scored", self._queue.qsize())
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks, self._queue, self._writes = [], None, None
        if self._own_store:
            await self.store.close()

    async def __aenter__(self) -> OnlineScorer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def stats(self) -> dict[str, int]:
        """The counters, and `pending`: runs waiting in the queue."""
        return {**asdict(self.counters), "pending": self._queue.qsize() if self._queue is not None else 0}

    # -- on the run's path: decide and enqueue, nothing else --------------------------------------

    def observe(self, result: RunResult) -> None:
        """A `Runner.after_run` observer: put the run on the queue if it is sampled."""
        if result.trigger in UNSAMPLED_TRIGGERS:
            return
        project = self.runner.project_for(result.release)
        spec = project.agents.get(result.agent) if project is not None else None
        config = spec.config.evals.online if spec is not None else None
        if config is None or not sampled(result.run_id, config.sample_rate):
            return
        assert project is not None and spec is not None
        self.counters.sampled += 1
        job = _Job(result, project, spec, config)
        loop = self._loop
        if loop is None or self._queue is None:
            self.counters.dropped += 1
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._enqueue(job)
        else:  # a run that ended on another thread's loop
            loop.call_soon_threadsafe(self._enqueue, job)

    def _enqueue(self, job: _Job) -> None:
        queue = self._queue
        if queue is None:
            self.counters.dropped += 1
            return
        try:
            queue.put_nowait(job)
        except asyncio.QueueFull:
            self.counters.dropped += 1
            if self.counters.dropped in (1, 10) or self.counters.dropped % 1000 == 0:
                log.warning(
                    "online evaluation queue full (%d runs): %d sampled runs dropped so far",
                    queue.maxsize,
                    self.counters.dropped,
                )

    # -- in the background ------------------------------------------------------------------------

    async def _work(self) -> None:
        queue = self._queue
        assert queue is not None
        while True:
            job = await queue.get()
            try:
                await self._score(job)
            except Exception:
                self.counters.failed += 1
                log.exception("online evaluation of run %s failed", job.result.run_id)
            finally:
                queue.task_done()

    async def _score(self, job: _Job) -> None:
        result = job.result
        evaluators = self._evaluators(job)
        if evaluators is None:
            self.counters.failed += 1
            return
        todo = evaluators
        if any(e.get("type") in COSTLY_TYPES for e in job.config.evaluators):
            done = await self.store.scored(result.run_id, tenant_id=result.tenant_id)
            todo = [e for e in evaluators if e.name not in done]
            if not todo:
                self.counters.skipped += 1
                return
        case = Case(id=result.run_id, input=result.input, metadata={"agent": result.agent})
        observation = observation_of(result)
        outcomes = await asyncio.gather(*(self._evaluate(e, case, observation) for e in todo))
        scores = [s for s in outcomes if s is not None]
        if not scores:
            return
        now = datetime.now(UTC)
        assert self._writes is not None
        self._writes.put_nowait(
            [
                ScoreRow(
                    run_id=result.run_id,
                    tenant_id=result.tenant_id,
                    agent=result.agent,
                    prompt_version=result.prompt_version,
                    evaluator=s.evaluator,
                    score=s.score,
                    passed=s.passed,
                    reason=s.reason,
                    scored_at=now,
                )
                for s in scores
            ]
        )

    async def _write(self) -> None:
        """Store the scores handed over since the last write, in one transaction."""
        writes = self._writes
        assert writes is not None
        while True:
            batch = [await writes.get()]
            while not writes.empty():
                batch.append(writes.get_nowait())
            rows = {(r.run_id, r.evaluator): r for scores in batch for r in scores}
            try:
                await self._store_with_retries(list(rows.values()))
                self.counters.scored += len(batch)
            except Exception:
                self.counters.failed += len(batch)
                log.exception("could not store the online scores of %d runs", len(batch))
            finally:
                for _ in batch:
                    writes.task_done()

    async def _store_with_retries(self, rows: list[ScoreRow]) -> None:
        """Write the scores; a database that is busy or briefly away (SQLite's write lock held by
        another writer, a Postgres restart) is tried again with backoff for about 30 s."""
        delay = 0.1
        deadline = time.monotonic() + WRITE_RETRY_SECONDS
        while True:
            try:
                await self.store.add_scores(rows)
                return
            except OperationalError as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("online scores not stored yet (%s); retrying in %.1fs", exc.orig, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _evaluate(self, evaluator: Evaluator, case: Case, observation: Observation) -> Score | None:
        try:
            async with asyncio.timeout(self._timeout):
                score = await evaluator.evaluate(case, observation)
        except Exception as exc:
            self.counters.failed += 1
            reason = f"timed out after {self._timeout:g}s" if isinstance(exc, TimeoutError) else repr(exc)
            log.warning("online evaluator %s failed on run %s: %s", evaluator.name, case.id, reason)
            return None
        return Score(evaluator.name, score.score, score.passed, score.reason)

    # -- evaluators -------------------------------------------------------------------------------

    def check(self, project: Project, release: int | None = None) -> None:
        """Build the online evaluators of every agent of `project`; UsageError naming each that
        cannot be built."""
        problems = []
        for spec in project.agents.values():
            config = spec.config.evals.online
            if config is None:
                continue
            built = self._build(project, release, spec, config)
            if isinstance(built, str):
                problems.append(built)
        if problems:
            raise UsageError("online evaluation: " + "; ".join(problems))

    def _evaluators(self, job: _Job) -> list[Evaluator] | None:
        built = self._build(job.project, job.result.release, job.spec, job.config)
        return None if isinstance(built, str) else built

    def _build(
        self, project: Project, release: int | None, spec: AgentSpec, config: OnlineEvalConfig
    ) -> list[Evaluator] | str:
        """The agent's evaluators, or what is wrong with them (logged once)."""
        key = (release, spec.name, spec.config_hash)
        found = self._built.get(key)
        if found is not None:
            return found
        context = EvalContext(output_schema=spec.output_schema, runner=self.runner, root=project.root)
        evaluators: list[Evaluator] = []
        for index, raw in enumerate(config.evaluators):
            try:
                evaluators.append(build(raw, context))
            except UsageError as exc:
                where = _where(project, spec)
                message = f"{where}: evals.online.evaluators[{index}]: {exc}"
                log.error("online evaluation of agent %s is off: %s", spec.name, message)
                self._built[key] = message
                return message
        self._built[key] = evaluators
        return evaluators


def _where(project: Project, spec: AgentSpec) -> str:
    try:
        return spec.source.relative_to(project.root).as_posix()
    except ValueError:
        return str(spec.source)


def describe(config: OnlineEvalConfig | None) -> dict[str, Any] | None:
    """An agent's online evaluation settings, for people (None when off)."""
    if config is None:
        return None
    return {
        "sample_rate": config.sample_rate,
        "evaluators": [str(e.get("name") or e["type"]) for e in config.evaluators],
    }
