"""LLM-as-judge: a project agent scores an output; its run is traced, costed and the tenant's."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel

from keel.config import load_project
from keel.config.project import ResolvedModel
from keel.evals.evaluators import EvalContext, build
from keel.evals.model import Case, Observation
from keel.runtime.runner import Runner


def judge_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Grades by a visible rule: an output with 'refund' scores 0.9, anything else 0.2; a request
    for 'garbage' answers without a score."""
    user = next(p.content for m in messages for p in getattr(m, "parts", []) if p.part_kind == "user-prompt")
    payload = json.loads(str(user))
    if payload["rubric"] == "garbage":
        return ModelResponse(parts=[TextPart("I refuse to grade.")])
    score = 0.9 if "refund" in str(payload["output"]) else 0.2
    return ModelResponse(
        parts=[TextPart(json.dumps({"score": score, "reason": f"rubric: {payload['rubric']}"}))]
    )


def factory(resolved: ResolvedModel) -> Model:
    return FunctionModel(judge_model)


def test_a_judge_agent_scores_against_a_rubric(tmp_path: Path) -> None:
    root = tmp_path / "p"
    (root / "agents").mkdir(parents=True)
    (root / "keel.yaml").write_text(
        "project: j\nmodels:\n  m: {provider: openai-compatible, model: m, base_url: 'http://127.0.0.1:9/v1'}\n"
        f"storage: {{url: 'sqlite:///{tmp_path}/k.db'}}\ntracing: {{enabled: false}}\n"
    )
    (root / "agents" / "judge.yaml").write_text("model: m\ninstructions: Grade strictly.\n")

    async def go() -> tuple[list[object], list[object]]:
        async with Runner(load_project(root), model_factory=factory) as runner:
            ctx = EvalContext(runner=runner)
            judge = build(
                {"type": "judge", "agent": "judge", "rubric": "mentions the refund", "threshold": 0.5}, ctx
            )
            case = Case("c", {"body": "refund please"}, expected="a refund")
            good = await judge.evaluate(
                case, Observation("We will refund you.", "succeeded", tenant_id="acme")
            )
            bad = await judge.evaluate(case, Observation("Thanks!", "succeeded", tenant_id="acme"))
            broken = build({"type": "judge", "agent": "judge", "rubric": "garbage"}, ctx)
            none = await broken.evaluate(case, Observation("x", "succeeded"))
            await runner.flush()
            from keel.store import RunStore

            async with RunStore(runner.database_url or "") as store:
                runs = (await store.list_runs(agent="judge")).runs
            return [good, bad, none], list(runs)

    (good, bad, none), runs = asyncio.run(go())
    assert (good.passed, good.score, good.reason) == (True, 0.9, "rubric: mentions the refund")  # type: ignore[attr-defined]
    assert (bad.passed, bad.score) == (False, 0.2)  # type: ignore[attr-defined]
    assert not none.passed and "the judge gave no score" in none.reason  # type: ignore[attr-defined]
    assert len(runs) == 3 and all(r.trigger == "eval" for r in runs)  # type: ignore[attr-defined]
    assert sorted(str(r.tenant_id) for r in runs) == ["None", "acme", "acme"]  # type: ignore[attr-defined]
