"""The online time series from the store: per agent, prompt version and bucket, each evaluator's
count, mean score and pass rate, and feedback per kind; tenants see only their own. SQLite and
PostgreSQL, from real runs scored by the scorer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel

from keel.config import load_project
from keel.config.project import ResolvedModel
from keel.evals.online import OnlineScorer
from keel.evals.online_store import ScoreRow
from keel.prompts.resolve import ResolvedPrompt
from keel.runtime.runner import Runner
from tests.evals.test_online import write_project

# Two versions of the agent's prompt; the runs of the second say please (their input does).
V1 = ResolvedPrompt("helper", "1.0.0", "production", "Answer plainly.")
V2 = ResolvedPrompt("helper", "1.1.0", "production", "Answer, and say please.")


def echo(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    said = [p.content for m in messages for p in m.parts if isinstance(p, UserPromptPart)]
    return ModelResponse(parts=[TextPart(f"echo: {said[-1]}")])


def factory(model: ResolvedModel) -> Model:
    return FunctionModel(echo)


def by_version(series: list[dict[str, Any]]) -> dict[str | None, dict[str, Any]]:
    return {s["prompt_version"]: s for s in series}


async def test_scores_and_feedback_per_version_and_bucket(tmp_path: Path, database_url: str) -> None:
    root = write_project(tmp_path / "p", evaluators="[{type: succeeded}, {type: contains, value: please}]")
    runner = Runner(load_project(root), model_factory=factory, database_url=database_url)
    async with runner, OnlineScorer(runner) as scorer:
        acme_v1 = [await runner.run("helper", "hi", prompt=V1, tenant_id="acme") for _ in range(4)]
        acme_v2 = [await runner.run("helper", "hi, please", prompt=V2, tenant_id="acme") for _ in range(3)]
        globex = [await runner.run("helper", "hi, please", prompt=V2, tenant_id="globex") for _ in range(2)]
        assert await scorer.drain(30) and await runner.flush()
        store = scorer.store
        await store.add_feedback(acme_v2[0].run_id, tenant_id="acme", kind="thumbs_up", created_by="user:a")
        await store.add_feedback(acme_v1[0].run_id, tenant_id="acme", kind="thumbs_down", created_by="user:a")
        await store.add_feedback(
            acme_v1[1].run_id, tenant_id="acme", kind="rejected", created_by="service:crm"
        )
        await store.add_feedback(
            globex[0].run_id, tenant_id="globex", kind="accepted", created_by="service:x"
        )
        scored_at = (await store.scores(acme_v1[0].run_id, tenant_id="acme"))[0]["scored_at"]
        three_hours_ago = datetime.fromisoformat(scored_at) - timedelta(hours=3)
        await store.add_scores(
            [ScoreRow("old-run", "acme", "helper", V1.ref, "succeeded", 0.0, False, "", three_hours_ago)]
        )
        now = datetime.now(UTC)
        day = await store.series(tenant_id="acme", since=now - timedelta(hours=24), bucket="day")
        hourly = await store.series(tenant_id="acme", since=now - timedelta(hours=24), bucket="hour")
        recent = await store.series(tenant_id="acme", since=now - timedelta(hours=2), agent="helper")
        theirs = await store.series(tenant_id="globex", since=now - timedelta(hours=24))
        nobody = await store.series(tenant_id="acme", since=now - timedelta(hours=24), agent="judge")

    versions = by_version(day)
    assert set(versions) == {"helper@1.0.0", "helper@1.1.0"}
    v1, v2 = versions["helper@1.0.0"]["totals"], versions["helper@1.1.0"]["totals"]
    # 1.0.0: four runs now (all succeeded, none says please) and one old run that failed.
    assert v1["runs_scored"] == 5
    assert v1["evaluators"] == {
        "contains": {"count": 4, "mean_score": 0.0, "pass_rate": 0.0},
        "succeeded": {"count": 5, "mean_score": 0.8, "pass_rate": 0.8},
    }
    assert v1["feedback"] == {"rejected": 1, "thumbs_down": 1}
    assert v2 == {
        "runs_scored": 3,
        "evaluators": {
            "contains": {"count": 3, "mean_score": 1.0, "pass_rate": 1.0},
            "succeeded": {"count": 3, "mean_score": 1.0, "pass_rate": 1.0},
        },
        "feedback": {"thumbs_up": 1},
    }
    # Hourly: the old score is in its own bucket, three hours before the others.
    buckets = by_version(hourly)["helper@1.0.0"]["buckets"]
    assert len(buckets) == 2 and buckets[0]["runs_scored"] == 1 and buckets[1]["runs_scored"] == 4
    starts = [datetime.fromisoformat(b["start"].replace("Z", "+00:00")) for b in buckets]
    assert all(s.minute == 0 and s.second == 0 for s in starts) and starts[1] - starts[0] == timedelta(
        hours=3
    )
    assert buckets[0]["evaluators"] == {"succeeded": {"count": 1, "mean_score": 0.0, "pass_rate": 0.0}}
    # The last two hours leave the old score out.
    assert by_version(recent)["helper@1.0.0"]["totals"]["runs_scored"] == 4
    # Tenants: globex sees its two runs and its feedback, nothing of acme's.
    assert [(s["prompt_version"], s["totals"]["runs_scored"], s["totals"]["feedback"]) for s in theirs] == [
        ("helper@1.1.0", 2, {"accepted": 1})
    ]
    assert nobody == []
