"""LLM-as-judge: an ordinary agent of the project scores an output against a rubric.

The judge agent is configured like any agent (its model, instructions, retries), so its calls are
traced and costed as runs (trigger `eval`). Its output must have `score` (a number from 0 to 1) and
`reason`; an `output_schema` saying so is recommended:

    # agents/judge.yaml
    model: default
    instructions: You grade answers strictly against the rubric. ...
    output_schema:
      type: object
      required: [score, reason]
      properties: {score: {type: number, minimum: 0, maximum: 1}, reason: {type: string}}

It receives one JSON input: the rubric, the case's input, the expected output (if any) and the
actual output. A judge that fails (its run fails, or its output has no score) fails the case's
evaluation with the reason, never the whole evaluation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from keel.errors import UsageError
from keel.evals.evaluators import EvalContext
from keel.evals.model import Case, Observation, Score


@dataclass(frozen=True)
class Judgement:
    """What a judge agent said: a score from 0 to 1 and its reason, or no score and why not."""

    score: float | None
    reason: str
    run_id: str

    @property
    def failed(self) -> bool:
        return self.score is None


async def ask_judge(
    runner: Any,
    agent: str,
    payload: Mapping[str, Any],
    *,
    tenant_id: str | None,
    metadata: Mapping[str, Any],
    tags: Sequence[str] = (),
) -> Judgement:
    """Run the judge `agent` of `runner`'s project on `payload` (one JSON input) as a run of its
    own (trigger `eval`, in `tenant_id`, traced and costed like any run) and read its score.
    Shared by the evals' `judge` evaluator and the `grounding` guardrail."""
    result = await runner.run(
        agent,
        json.dumps(dict(payload), ensure_ascii=False, default=str),
        trigger="eval",
        tenant_id=tenant_id,
        metadata=dict(metadata),
        tags=tuple(tags),
    )
    if not result.succeeded:
        reason = result.error.message if result.error else result.status.value
        return Judgement(None, f"the judge's run {result.status.value}: {reason}", result.run_id)
    score, reason = _read(result.output)
    if score is None:
        return Judgement(None, f"the judge gave no score: {str(result.output)[:200]}", result.run_id)
    return Judgement(score, reason, result.run_id)


class Judge:
    def __init__(self, name: str, agent: str, rubric: str, threshold: float, ctx: EvalContext) -> None:
        self.name, self.agent, self.rubric, self.threshold, self.ctx = name, agent, rubric, threshold, ctx
        if ctx.runner is not None and agent not in ctx.runner.project.agents:
            raise UsageError(f"judge: agent: no agent named {agent!r} in the project")

    async def evaluate(self, case: Case, observation: Observation) -> Score:
        runner = self.ctx.runner
        if runner is None:
            raise UsageError("a judge needs a runner (it runs an agent of the project)")
        payload = {
            "rubric": self.rubric,
            "input": case.input,
            "expected": case.expected,
            "output": observation.output,
        }
        judgement = await ask_judge(
            runner,
            self.agent,
            payload,
            tenant_id=observation.tenant_id,
            metadata={"judged_run": observation.run_id, "case": case.id},
        )
        if judgement.score is None:
            return Score(self.name, 0.0, False, judgement.reason)
        return Score(self.name, judgement.score, judgement.score >= self.threshold, judgement.reason)


def _read(output: Any) -> tuple[float | None, str]:
    data = output
    if isinstance(output, str):
        try:
            data = json.loads(output)
        except json.JSONDecodeError:
            return None, output
    if not isinstance(data, dict):
        return None, ""
    try:
        score = float(data["score"])
    except (KeyError, TypeError, ValueError):
        return None, str(data.get("reason", ""))
    return max(0.0, min(1.0, score)), str(data.get("reason", ""))
