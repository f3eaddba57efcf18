"""`keel eval`: a dataset's cases, run concurrently through the real runtime, scored and reported.

    report = await evaluate(runner, dataset, agent="inbox", concurrency=10, prompt_version="1.4.0")

Each case runs `repeat` times through `Runner.run` (traced, costed and recorded like any run, with
trigger `eval` and the tags `eval` and the dataset's name). With `prompt_version`, every run uses
that version of the agent's prompt (rendered with the agent's and the case's variables) instead of
what its label points at: that is how a candidate is evaluated before it goes live. The evaluators
of an attempt are `succeeded`, the dataset's, then the case's own (`expect`); an attempt passes when
all of them pass, a case when at least `threshold` of its attempts do. An evaluator that raises
fails that attempt with the error as its reason; it never stops the evaluation.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from keel.errors import UsageError
from keel.evals.dataset import Dataset
from keel.evals.evaluators import EvalContext, build
from keel.evals.model import Case, Evaluator, Observation, Score
from keel.evals.online import observation_of
from keel.evals.report import Attempt, CaseResult, Report
from keel.prompts.resolve import ResolvedPrompt
from keel.runtime.output import expand_unclear
from keel.runtime.runner import Runner
from keel.store.tenancy import PROJECT_TENANT

Progress = Callable[[int, int], None]


async def evaluate(
    runner: Runner,
    dataset: Dataset,
    *,
    agent: str | None = None,
    prompt_version: str | None = None,
    concurrency: int = 10,
    progress: Progress | None = None,
    tenant_id: str | None = None,
) -> Report:
    name = agent or dataset.agent
    if name is None:
        raise UsageError(f"dataset {dataset.name} names no agent: give one (--agent)")
    spec = runner.project.agent(name)  # UsageError for an unknown agent
    if concurrency < 1:
        raise UsageError("concurrency must be at least 1")
    schema = (
        expand_unclear(spec.output_schema) if spec.output_schema is not None else None
    )  # as the run sees it
    ctx = EvalContext(output_schema=schema, runner=runner, root=runner.project.root)
    shared = [build({"type": "succeeded"}, ctx), *(build(raw, ctx) for raw in dataset.evaluators)]
    version = await _version(runner, name, prompt_version) if prompt_version is not None else None
    report = Report(
        id=uuid.uuid4().hex,
        dataset=dataset.name,
        dataset_hash=dataset.content_hash,
        agent=name,
        started_at=datetime.now(UTC),
        release=runner.release,
    )
    results = {case.id: CaseResult(case.id, case.tags, case.threshold) for case in dataset.cases}
    jobs = [(case, n) for case in dataset.cases for n in range(1, case.repeat + 1)]
    gate = asyncio.Semaphore(concurrency)
    done = 0
    if progress is not None:
        progress(0, len(jobs))

    async def one(case: Case, attempt: int) -> None:
        nonlocal done
        async with gate:
            evaluators = [*shared, *(build(raw, ctx) for raw in case.expect)]
            results[case.id].attempts.append(
                await _attempt(runner, name, case, attempt, evaluators, version, report, tenant_id)
            )
        done += 1
        if progress is not None:
            progress(done, len(jobs))

    await asyncio.gather(*(one(case, attempt) for case, attempt in jobs))
    for result in results.values():
        result.attempts.sort(key=lambda a: a.attempt)
    report.cases = [results[case.id] for case in dataset.cases]
    report.ended_at = datetime.now(UTC)
    versions = report.summary()["prompt_versions"]
    report.prompt_version = versions[0] if len(versions) == 1 else (", ".join(versions) or None)
    return report


async def _version(runner: Runner, agent: str, version: str) -> tuple[str, Any]:
    binding = runner.project.agent(agent).prompt
    if binding is None:
        raise UsageError(
            f"agent {agent!r} has plain instructions: --prompt-version needs `instructions: {{prompt: ...}}`"
        )
    registry = runner.prompts.registry
    if registry is None:
        raise UsageError("--prompt-version needs storage (the prompt registry)")
    found = await registry.get(binding.name, version, tenant_id=PROJECT_TENANT)
    return binding.name, found


async def _attempt(
    runner: Runner,
    agent: str,
    case: Case,
    attempt: int,
    evaluators: Sequence[Evaluator],
    version: tuple[str, Any] | None,
    report: Report,
    tenant_id: str | None,
) -> Attempt:
    prompt = None
    if version is not None:
        binding = runner.project.agent(agent).prompt
        assert binding is not None
        values = {**binding.variables, **case.variables}
        chosen = version[1]
        declared = set(chosen.content.variables)
        rendered = chosen.render({k: v for k, v in values.items() if k in declared or k in case.variables})
        prompt = ResolvedPrompt(binding.name, chosen.version, None, rendered, chosen.content.model_settings)
    result = await runner.run(
        agent,
        case.input,
        trigger="eval",
        tags=("eval", report.dataset),
        metadata={"eval_run": report.id, "case": case.id, "attempt": attempt},
        tenant_id=tenant_id,
        prompt=prompt,
        variables=case.variables if prompt is None else None,
    )
    observation = observation_of(result)
    scores = [await _score(e, case, observation) for e in evaluators]
    return Attempt(
        attempt=attempt,
        run_id=result.run_id,
        passed=all(s.passed for s in scores),
        scores=tuple(scores),
        output=result.output,
        latency_ms=observation.latency_ms,
        cost_usd=result.cost_usd,
        prompt_version=result.prompt_version,
        error=result.error.message if result.error else None,
    )


async def _score(evaluator: Evaluator, case: Case, observation: Observation) -> Score:
    try:
        return await evaluator.evaluate(case, observation)
    except Exception as exc:  # an evaluator's bug fails this attempt, never the evaluation
        return Score(evaluator.name, 0.0, False, f"the evaluator raised {type(exc).__name__}: {exc}")
