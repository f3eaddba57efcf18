"""The deploy gate: `keel deploy` evaluates the candidate before it makes a release live.

With `evals.deploy_gate` in keel.yaml, `keel.releases.deploy.deploy` calls `deploy_gate` after it
has saved the candidate's prompt versions and before it creates or activates the release. The
dataset runs on the candidate (the agent's prompt at the version the release would deploy) and,
with `baseline: live`, on what is live now (the deploy label's current version), in the same
process; `last` compares with the last passing stored evaluation. Both reports are stored and the
candidate's is linked to its prompt version. A failed gate deploys nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from keel.config.project import Project
from keel.config.schema import DeployGateConfig
from keel.evals.dataset import load_dataset
from keel.evals.offline import evaluate
from keel.evals.report import Gate, gate
from keel.evals.store import EvalStore
from keel.runtime.runner import Runner


async def deploy_gate(
    project: Project, url: str, config: DeployGateConfig, versions: Mapping[str, str], *, actor: str
) -> tuple[Gate, str]:
    """The gate's verdict and the candidate's evaluation run id."""
    dataset = load_dataset(project.root / config.dataset, display=config.dataset)
    async with Runner(project, database_url=url) as runner, EvalStore(url) as store:
        agent = config.agent or dataset.agent
        binding = runner.project.agent(agent).prompt if agent else None
        candidate_version = versions.get(binding.name) if binding is not None else None
        baseline_summary, baseline_id = None, None
        if config.baseline == "live":
            live = await evaluate(runner, dataset, agent=agent, concurrency=config.concurrency)
            await store.save(live, created_by=actor)
            baseline_summary, baseline_id = live.summary(), live.id
        elif config.baseline == "last":
            found = await store.latest(dataset=dataset.name, agent=agent or "", tenant_id=None)
            if found is not None:
                baseline_summary, baseline_id = found.summary, found.id
        report = await evaluate(
            runner, dataset, agent=agent, prompt_version=candidate_version, concurrency=config.concurrency
        )
        verdict = gate(
            report.summary(),
            baseline_summary,
            baseline_id=baseline_id,
            max_regression=config.max_regression,
            min_pass_rate=config.min_pass_rate,
        )
        await store.save(report, created_by=actor, gate=verdict)
        registry = runner.prompts.registry
        if registry is not None and binding is not None and candidate_version is not None:
            await registry.link(
                binding.name,
                candidate_version,
                kind="eval_run",
                ref=report.id,
                actor=actor,
                tenant_id=None,
                detail={
                    "dataset": dataset.name,
                    "pass_rate": report.summary()["pass_rate"],
                    "gate": verdict.passed,
                },
            )
        await runner.flush()
    return verdict, report.id
