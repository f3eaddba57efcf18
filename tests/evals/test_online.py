"""Online evaluation in process: sampling, background scoring into `online_scores`, and that a run
is never slowed down or failed by it (a failing evaluator, a slow judge, a full queue), nor scored
twice when it is replayed. Real SQLite and PostgreSQL; models are pydantic-ai FunctionModels."""

from __future__ import annotations

import asyncio
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from keel.config import load_project
from keel.config.project import ResolvedModel
from keel.errors import ConfigError, UsageError
from keel.evals.model import Case, Observation
from keel.evals.online import OnlineScorer, bucket_of, sampled
from keel.evals.online_store import OnlineEvalStore, ScoreRow
from keel.runtime.result import RunResult
from keel.runtime.runner import Runner
from keel.store.engine import async_engine
from keel.store.tables import online_scores

RULES = "[{type: succeeded}, {type: regex, pattern: '^echo'}]"


def ids(n: int, seed: str = "online") -> list[str]:
    """`n` run ids as the server makes them (uuid hex), reproducible."""
    return [uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}/{i}").hex for i in range(n)]


# -- evaluators the tests import (type: python) --------------------------------------------------


def boom(case: Case, observation: Observation) -> bool:
    raise RuntimeError("this evaluator has a bug")


def long_enough(case: Case, observation: Observation) -> tuple[float, str]:
    return (1.0 if len(str(observation.output)) > 3 else 0.0), "length"


# -- the project and its models ------------------------------------------------------------------


class Models:
    """The agent echoes; the judge (model `j`) grades 0.9, once `gate` (if any) is open."""

    def __init__(self) -> None:
        self.gate: asyncio.Event | None = None
        self.judge_started = asyncio.Event()
        self.judged = 0

    def __call__(self, model: ResolvedModel) -> Model:
        return FunctionModel(self.judge if model.model == "j" else self.echo)

    def echo(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("echo: hello")])

    async def judge(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.judge_started.set()
        if self.gate is not None:
            await self.gate.wait()
        self.judged += 1
        return ModelResponse(parts=[TextPart('{"score": 0.9, "reason": "polite and correct"}')])


def write_project(root: Path, *, rate: float = 1.0, evaluators: str = RULES) -> Path:
    (root / "agents").mkdir(parents=True, exist_ok=True)
    (root / "keel.yaml").write_text(
        "project: online\nmodels:\n"
        "  m: {provider: openai-compatible, model: m, base_url: 'http://127.0.0.1:9/v1'}\n"
        "  j: {provider: openai-compatible, model: j, base_url: 'http://127.0.0.1:9/v1'}\n"
        "tracing: {enabled: false}\n"
    )
    (root / "agents" / "helper.yaml").write_text(
        textwrap.dedent(
            f"""\
            model: m
            instructions: Echo.
            evals:
              online:
                sample_rate: {rate}
                evaluators: {evaluators}
            """
        )
    )
    (root / "agents" / "judge.yaml").write_text("model: j\ninstructions: Grade the answer.\n")
    return root


@pytest.fixture
def models() -> Models:
    return Models()


async def _runner(root: Path, url: str, models: Models) -> Runner:
    runner = Runner(load_project(root), model_factory=models, database_url=url)
    await runner.start()
    return runner


@pytest.fixture
async def runner(tmp_path: Path, database_url: str, models: Models) -> AsyncIterator[Runner]:
    runner = await _runner(write_project(tmp_path / "p"), database_url, models)
    try:
        yield runner
    finally:
        await runner.aclose()


async def count_scores(url: str, run_id: str | None = None) -> int:
    engine = async_engine(url)
    try:
        statement = select(func.count()).select_from(online_scores)
        if run_id is not None:
            statement = statement.where(online_scores.c.run_id == run_id)
        async with engine.connect() as connection:
            return int((await connection.execute(statement)).scalar_one())
    finally:
        await engine.dispose()


# -- sampling ------------------------------------------------------------------------------------


def test_sampling_is_a_deterministic_hash_of_the_run_id() -> None:
    run_ids = ids(2000)
    first = [sampled(r, 0.1) for r in run_ids]
    assert first == [sampled(r, 0.1) for r in run_ids]  # a replayed run decides the same way
    share = sum(first) / len(first)
    assert 0.08 <= share <= 0.12, share
    assert not any(sampled(r, 0.0) for r in run_ids)
    assert all(sampled(r, 1.0) for r in run_ids)
    # Rates are nested: a run scored at 5 % is also scored at 10 %.
    assert all(sampled(r, 0.1) for r in run_ids if sampled(r, 0.05))
    assert all(0 <= bucket_of(r) < 10_000 for r in run_ids)


async def test_2000_live_runs_at_10_percent_are_sampled_within_2_points(
    tmp_path: Path, database_url: str, models: Models
) -> None:
    root = write_project(tmp_path / "p", rate=0.1, evaluators="[{type: succeeded}]")
    runner = await _runner(root, database_url, models)
    try:
        async with OnlineScorer(runner) as scorer:
            slots = asyncio.Semaphore(20)
            run_ids = ids(2000, seed="live")

            async def one(i: int) -> RunResult:
                async with slots:  # fixed run ids: the share is a property of the ids, not luck
                    return await runner.run("helper", "hi", run_id=run_ids[i])

            results = await asyncio.gather(*(one(i) for i in range(2000)))
            assert await scorer.drain(60)
            stats = scorer.stats()
    finally:
        await runner.aclose()
    assert all(r.succeeded for r in results)
    expected = sum(sampled(r.run_id, 0.1) for r in results)
    assert stats["sampled"] == expected and stats["scored"] == expected
    assert (stats["dropped"], stats["failed"]) == (0, 0)
    assert abs(expected / 2000 - 0.10) <= 0.02, expected / 2000
    assert await count_scores(database_url) == expected  # one `succeeded` score per sampled run


# -- scoring -------------------------------------------------------------------------------------


async def test_a_sampled_run_gets_one_score_per_evaluator(
    tmp_path: Path, database_url: str, models: Models
) -> None:
    evaluators = (
        "[{type: succeeded}, {type: regex, pattern: '^echo'}, {type: contains, value: goodbye},"
        " {type: python, name: length, function: 'tests.evals.test_online:long_enough'},"
        " {type: judge, name: polite, agent: judge, rubric: 'Is it polite?'}]"
    )
    runner = await _runner(write_project(tmp_path / "p", evaluators=evaluators), database_url, models)
    try:
        async with OnlineScorer(runner) as scorer:
            result = await runner.run("helper", "hello", tenant_id="acme")
            assert await scorer.drain(30)
            assert scorer.stats()["scored"] == 1
            scores = {s["evaluator"]: s for s in await scorer.store.scores(result.run_id, tenant_id="acme")}
            assert await scorer.store.scores(result.run_id, tenant_id="globex") == []
    finally:
        await runner.aclose()
    assert set(scores) == {"succeeded", "regex", "contains", "length", "polite"}
    assert scores["succeeded"]["passed"] and scores["regex"]["passed"] and scores["length"]["passed"]
    assert not scores["contains"]["passed"] and "goodbye" in scores["contains"]["reason"]
    assert scores["polite"]["score"] == 0.9 and scores["polite"]["passed"]
    assert scores["polite"]["reason"] == "polite and correct"
    assert models.judged == 1  # the judge's own run (trigger eval) is not sampled in turn


async def test_a_failing_evaluator_fails_neither_the_run_nor_the_other_scores(
    tmp_path: Path, database_url: str, models: Models
) -> None:
    evaluators = "[{type: succeeded}, {type: python, name: buggy, function: 'tests.evals.test_online:boom'}]"
    runner = await _runner(write_project(tmp_path / "p", evaluators=evaluators), database_url, models)
    try:
        async with OnlineScorer(runner) as scorer:
            result = await runner.run("helper", "hello")
            assert result.succeeded and result.output == "echo: hello"
            assert await scorer.drain(30)
            stats = scorer.stats()
            scores = await scorer.store.scores(result.run_id, tenant_id=None)
    finally:
        await runner.aclose()
    assert [s["evaluator"] for s in scores] == ["succeeded"]  # no score for the evaluator that raised
    assert (stats["scored"], stats["failed"]) == (1, 1)


async def test_a_slow_judge_does_not_hold_the_run_back(
    tmp_path: Path, database_url: str, models: Models
) -> None:
    evaluators = "[{type: judge, agent: judge, rubric: 'Is it right?'}]"
    runner = await _runner(write_project(tmp_path / "p", evaluators=evaluators), database_url, models)
    models.gate = asyncio.Event()  # the judge answers only when the test says so
    try:
        async with OnlineScorer(runner) as scorer:
            result = await runner.run("helper", "hello")
            # The run has returned: its judge has not answered, and cannot until the gate opens.
            assert result.succeeded
            await asyncio.wait_for(models.judge_started.wait(), 30)
            assert models.judged == 0 and scorer.stats()["scored"] == 0
            second = await runner.run("helper", "again")  # runs go on while the judge is busy
            assert second.succeeded and models.judged == 0
            models.gate.set()
            assert await scorer.drain(30)
            assert scorer.stats()["scored"] == 2
    finally:
        await runner.aclose()
    assert await count_scores(database_url) == 2


async def test_a_judge_over_its_time_is_a_failure_without_a_score(
    tmp_path: Path, database_url: str, models: Models
) -> None:
    evaluators = "[{type: succeeded}, {type: judge, agent: judge, rubric: 'Is it right?'}]"
    runner = await _runner(write_project(tmp_path / "p", evaluators=evaluators), database_url, models)
    models.gate = asyncio.Event()  # never opened
    try:
        async with OnlineScorer(runner, evaluator_timeout=0.05) as scorer:
            result = await runner.run("helper", "hello")
            assert await scorer.drain(30)
            stats = scorer.stats()
            scores = await scorer.store.scores(result.run_id, tenant_id=None)
    finally:
        await runner.aclose()
    assert [s["evaluator"] for s in scores] == ["succeeded"]
    assert (stats["scored"], stats["failed"]) == (1, 1)


async def test_a_full_queue_drops_and_counts_and_runs_go_on(
    tmp_path: Path, database_url: str, models: Models
) -> None:
    evaluators = "[{type: judge, agent: judge, rubric: 'Is it right?'}]"
    runner = await _runner(write_project(tmp_path / "p", evaluators=evaluators), database_url, models)
    models.gate = asyncio.Event()
    try:
        async with OnlineScorer(runner, queue_size=1, workers=1) as scorer:
            first = await runner.run("helper", "one")
            await asyncio.wait_for(models.judge_started.wait(), 30)  # the one worker is busy with it
            rest = [await runner.run("helper", f"run {i}") for i in range(4)]  # 1 waits, 3 dropped
            assert all(r.succeeded for r in [first, *rest])
            assert scorer.stats() | {"pending": 1} == {
                "sampled": 5,
                "scored": 0,
                "dropped": 3,
                "skipped": 0,
                "failed": 0,
                "pending": 1,
            }
            models.gate.set()
            assert await scorer.drain(30)
            assert scorer.stats()["scored"] == 2
    finally:
        await runner.aclose()


async def test_a_replayed_run_is_not_scored_twice(tmp_path: Path, database_url: str, models: Models) -> None:
    """A durable run resumed after a crash runs again (same run id) in the process that resumes
    it: the decision is the same, the scores that exist are kept, and nothing is written twice,
    also when two processes race on the same run."""
    root = write_project(
        tmp_path / "p", evaluators="[{type: succeeded}, {type: judge, agent: judge, rubric: r}]"
    )
    runner = await _runner(root, database_url, models)
    try:
        async with OnlineScorer(runner) as scorer:
            first = await runner.run("helper", "hello", run_id="run-replayed")
            assert await scorer.drain(30)
            again = await runner.run("helper", "hello", run_id="run-replayed")  # the replay
            assert await scorer.drain(30)
            assert first.run_id == again.run_id
            assert scorer.stats() | {"pending": 0} == {
                "sampled": 2,
                "scored": 1,
                "dropped": 0,
                "skipped": 1,
                "failed": 0,
                "pending": 0,
            }
        assert models.judged == 1  # the judge was not asked again
        # Two processes that both passed the existence check: the unique index keeps one row each.
        async with OnlineEvalStore(database_url) as store:
            row = ScoreRow("run-raced", None, "helper", None, "succeeded", 1.0, True, "", first.ended_at)
            await asyncio.gather(store.add_scores([row]), store.add_scores([row]))
            await store.add_scores([row])
    finally:
        await runner.aclose()
    assert await count_scores(database_url, "run-replayed") == 2
    assert await count_scores(database_url, "run-raced") == 1


async def test_a_replayed_run_with_rules_only_is_evaluated_again_but_stored_once(
    runner: Runner, database_url: str
) -> None:
    """Rules are cheap: no read before them; the unique index keeps the first scores."""
    async with OnlineScorer(runner) as scorer:
        for _ in range(3):
            await runner.run("helper", "hello", run_id="run-rules-replayed")
            assert await scorer.drain(30)
        assert (scorer.stats()["sampled"], scorer.stats()["skipped"]) == (3, 0)
    assert await count_scores(database_url, "run-rules-replayed") == 2  # succeeded, regex


async def test_the_scores_of_50_runs_ending_at_once_are_all_stored(runner: Runner, database_url: str) -> None:
    async with OnlineScorer(runner) as scorer:
        results = await asyncio.gather(*(runner.run("helper", f"n{i}") for i in range(50)))
        assert await scorer.drain(30)
        assert scorer.stats()["scored"] == 50
    assert await count_scores(database_url) == 100
    assert [await count_scores(database_url, r.run_id) for r in results[:5]] == [2] * 5


async def test_observers_never_fail_a_run(runner: Runner) -> None:
    seen: list[RunResult] = []

    def broken(result: RunResult) -> None:
        raise RuntimeError("an observer with a bug")

    runner.after_run.extend([broken, seen.append])
    result = await runner.run("helper", "hello")
    assert result.succeeded and seen == [result]


async def test_runs_that_are_evaluations_and_agents_without_settings_are_not_sampled(runner: Runner) -> None:
    async with OnlineScorer(runner) as scorer:
        await runner.run("helper", "hello", trigger="eval")  # an offline evaluation's run
        await runner.run("judge", "grade this")  # no evals.online
        assert await scorer.drain(10)
        assert scorer.stats()["sampled"] == 0


async def test_stopped_scorer_observes_nothing(runner: Runner) -> None:
    scorer = OnlineScorer(runner)
    await scorer.start()
    await scorer.stop()
    assert runner.after_run == []
    await runner.run("helper", "hello")
    assert scorer.stats()["sampled"] == 0


# -- configuration -------------------------------------------------------------------------------


def test_a_bad_evaluator_is_a_config_error_with_file_line_and_field(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    (root / "agents" / "helper.yaml").write_text(
        textwrap.dedent(
            """\
            model: m
            evals:
              online:
                evaluators:
                  - {type: succeeded}
                  - type: judge
                    agent: judge
            """
        )
    )
    with pytest.raises(ConfigError) as caught:
        load_project(root)
    [issue] = caught.value.issues
    assert (issue.file, issue.line, issue.field) == ("agents/helper.yaml", 6, "evals.online.evaluators[1]")
    assert issue.message == "judge: rubric: Field required"


@pytest.mark.parametrize(
    ("rate", "evaluators", "wanted"),
    [
        (1.5, "[{type: succeeded}]", "at most 1"),
        (0.1, "[]", "evaluators"),
        (0.1, "[{type: nope}]", "unknown evaluator type 'nope'"),
        (0.1, "[{type: regex, pattern: a}, {type: regex, pattern: b}]", "regex more than once"),
        (0.1, "[{type: latency, max_ms: 10, colour: red}]", "unknown setting"),
    ],
)
def test_online_settings_are_checked(tmp_path: Path, rate: float, evaluators: str, wanted: str) -> None:
    root = write_project(tmp_path / "p", rate=rate, evaluators=evaluators)
    with pytest.raises(ConfigError) as caught:
        load_project(root)
    text = str(caught.value)
    assert "agents/helper.yaml" in text and wanted in text, text


async def test_an_evaluator_that_cannot_be_built_stops_the_scorer_at_start(
    tmp_path: Path, sqlite_url: str, models: Models
) -> None:
    evaluators = "[{type: judge, agent: nobody, rubric: r}]"
    runner = await _runner(write_project(tmp_path / "p", evaluators=evaluators), sqlite_url, models)
    try:
        with pytest.raises(UsageError, match=r"agents/helper.yaml: evals.online.evaluators\[0\]: .*nobody"):
            await OnlineScorer(runner).start()
        assert runner.after_run == []
    finally:
        await runner.aclose()


def test_online_evaluation_needs_storage(tmp_path: Path, models: Models) -> None:
    root = write_project(tmp_path / "p")
    (root / "keel.yaml").write_text((root / "keel.yaml").read_text() + "storage: {enabled: false}\n")
    with pytest.raises(UsageError, match="storage"):
        OnlineScorer(Runner(load_project(root), model_factory=models))


class BusyStore(OnlineEvalStore):
    """A store whose first writes find the database locked, as SQLite's are under load."""

    def __init__(self, url: str, busy: int) -> None:
        super().__init__(url)
        self.busy = busy

    async def add_scores(self, scores: Any) -> None:
        if self.busy > 0:
            self.busy -= 1
            raise OperationalError("INSERT INTO online_scores", {}, Exception("database is locked"))
        await super().add_scores(scores)


async def test_a_busy_database_is_retried_not_a_lost_score(
    tmp_path: Path, database_url: str, models: Models
) -> None:
    runner = await _runner(
        write_project(tmp_path / "p", evaluators="[{type: succeeded}]"), database_url, models
    )
    store = BusyStore(database_url, busy=2)
    try:
        async with OnlineScorer(runner, store) as scorer:
            result = await runner.run("helper", "hi")
            assert await scorer.drain(30)
            assert (scorer.stats()["scored"], scorer.stats()["failed"]) == (1, 0)
    finally:
        await store.close()
        await runner.aclose()
    assert await count_scores(database_url, result.run_id) == 1
