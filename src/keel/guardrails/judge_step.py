"""Asking a judge agent for a guardrail (`grounding`, `injection_judge`): one run of the judge, as
a checkpointed step in durable runs, with a failure returned as a verdict without a score."""

from __future__ import annotations

from typing import Any

from keel.guardrails.policy import Check


async def judge_verdict(
    runner: Any, judge: str, payload: dict[str, Any], c: Check, name: str, kind: str
) -> dict[str, Any]:
    """`{"score": float | None, "reason": str}` from the judge agent `judge` on `payload`. It runs
    as the evals' judge does (`keel.evals.judge.ask_judge`: a run of its own, trigger `eval`, in the
    checked run's tenant, with metadata `guardrail`, `judged_run`, `judged_agent` and tags
    `guardrail` and `kind`). In a durable run it is the step `keel.guardrail.<kind>`: a run replayed
    after a crash reuses the verdict instead of asking (and paying for) it again. A judge that
    cannot run gives no score and says why."""
    from keel.evals.judge import ask_judge
    from keel.runtime.recorder import current_recorder

    async def ask() -> dict[str, Any]:
        try:
            judgement = await ask_judge(
                runner,
                judge,
                payload,
                tenant_id=c.tenant_id,
                metadata={"guardrail": name, "judged_run": c.run_id, "judged_agent": c.agent},
                tags=("guardrail", kind),
            )
            return {"score": judgement.score, "reason": judgement.reason}
        except Exception as exc:  # a judge that cannot run is a failed judge
            return {"score": None, "reason": f"the judge could not run: {type(exc).__name__}: {exc}"}

    recorder = current_recorder()
    if recorder is not None and recorder.durable:
        # Nothing is awaited before it: DBOS numbers steps in the order they start.
        from dbos import DBOS

        verdict: dict[str, Any] = await DBOS.run_step_async({"name": f"keel.guardrail.{kind}"}, ask)
        return verdict
    return await ask()
