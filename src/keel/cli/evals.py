"""`keel eval DATASET`: run a dataset against an agent, report, and gate on a baseline.

    keel eval evals/golden.yaml -p examples/inbox --with-fake-llm
    keel eval evals/golden.yaml -p examples/inbox --prompt-version 1.5.0 --baseline live --junit-out report.xml

The dataset path is relative to the current folder, else to the project. Cases run concurrently
through the real runtime (traced, costed, recorded with trigger `eval`) with a progress bar on
standard error. The report is stored in the project's database (an evaluation run, linked to the
prompt version it evaluated) and, when asked, written as JSON (`--json-out`) and JUnit XML
(`--junit-out`). The gate compares with a baseline (`--baseline`):
- `last`: the newest stored evaluation of this dataset and agent whose gate passed;
- `live`: the same dataset run now on what is live (the label's version), in the same command;
- an evaluation run id; or `none` (default): only `--min-pass-rate`, if given, is checked.
Exit 0 when the gate passes, 1 when it fails (a regression beyond `--max-regression`, or a pass
rate below `--min-pass-rate`), 2 for a bad option or dataset path, 3 for an invalid project or
dataset (every problem printed with its file, line and field) or an unreachable database.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.exc import SQLAlchemyError

from keel.cli.audit import OPERATOR_CLI
from keel.cli.common import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_RUN_FAILED,
    EXIT_USAGE,
    ProjectOpt,
    err,
    load,
    out,
    print_issues,
)
from keel.errors import ConfigError, UsageError
from keel.store.urls import describe_error


def eval_command(
    dataset: Annotated[
        str, typer.Argument(help="The dataset file (.yaml or .jsonl), or db:NAME[@VERSION] for a stored one.")
    ],
    project: ProjectOpt = Path("."),
    agent: Annotated[str | None, typer.Option(help="The agent (default: the dataset's `agent`).")] = None,
    prompt_version: Annotated[
        str | None, typer.Option("--prompt-version", help="Evaluate this version of the agent's prompt.")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=500, help="Cases run at once.")] = 10,
    baseline: Annotated[str, typer.Option(help="none, last, live, or an evaluation run id.")] = "none",
    max_regression: Annotated[
        float,
        typer.Option(
            "--max-regression", min=0, max=1, help="Allowed drop of any pass rate (0.02 = 2 points)."
        ),
    ] = 0.0,
    min_pass_rate: Annotated[
        float | None, typer.Option("--min-pass-rate", min=0, max=1, help="Required share of cases passed.")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Only cases with this tag (repeatable).")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json-out", help="Write the report as JSON here.")
    ] = None,
    junit_out: Annotated[Path | None, typer.Option("--junit-out", help="Write JUnit XML here.")] = None,
    with_fake_llm: Annotated[
        bool, typer.Option("--with-fake-llm", help="Use the project's fake provider (fake_llm.py).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary and gate as JSON.")] = False,
) -> None:
    """Run a dataset through an agent, score it, store the report and gate on a baseline."""
    from keel.evals.dataset import load_dataset

    if baseline not in ("none", "last", "live") and not baseline.strip():
        raise _fail("--baseline: none, last, live or an evaluation run id", EXIT_USAGE)
    loaded = load(project)
    if dataset.startswith("db:"):
        data = _stored_dataset(loaded, dataset[3:])
    else:
        given = Path(dataset)
        path = given if given.exists() or given.is_absolute() else loaded.root / given
        try:
            data = load_dataset(path, display=_display(path, loaded.root))
        except ConfigError as exc:
            print_issues(exc.issues)
            raise typer.Exit(EXIT_CONFIG) from None
    if tag:
        data = data.only(tag)
        if not data.cases:
            raise _fail(f"no case has the tag(s) {', '.join(tag)}", EXIT_USAGE)
    from keel.cli import _maybe_fake_llm

    with _maybe_fake_llm(with_fake_llm, project):
        loaded = load(project)  # again: the fake provider's URL is in the environment now
        try:
            outcome = asyncio.run(
                _evaluate(
                    loaded, data, agent, prompt_version, concurrency, baseline, max_regression, min_pass_rate
                )
            )
        except UsageError as exc:
            raise _fail(str(exc), EXIT_USAGE) from None
        except SQLAlchemyError as exc:
            url = loaded.config.storage.url
            raise _fail(f"the database cannot be used: {describe_error(exc, url)}", EXIT_CONFIG) from None
    report, gate = outcome
    if json_out is not None:
        json_out.write_text(
            json.dumps({**report.to_dict(), "gate": gate.as_dict()}, indent=2, default=str) + "\n"
        )
    if junit_out is not None:
        junit_out.write_text(report.junit_xml() + "\n")
    summary = report.summary()
    if as_json:
        out.print_json(json.dumps({"id": report.id, "summary": summary, "gate": gate.as_dict()}, default=str))
    else:
        _print(report, summary, gate)
    raise typer.Exit(EXIT_OK if gate.passed else EXIT_RUN_FAILED)


async def _evaluate(
    project: Any,
    data: Any,
    agent: str | None,
    prompt_version: str | None,
    concurrency: int,
    baseline: str,
    max_regression: float,
    min_pass_rate: float | None,
) -> tuple[Any, Any]:
    from keel.evals.report import gate
    from keel.evals.store import EvalStore
    from keel.runtime.runner import Runner
    from keel.store.tenancy import PROJECT_TENANT

    async with Runner(project) as runner:
        if runner.database_url is None and baseline not in ("none", "live"):
            raise UsageError(f"--baseline {baseline} needs storage (the stored evaluation runs)")
        base_summary: dict[str, Any] | None = None
        base_id: str | None = None
        store = EvalStore(runner.database_url) if runner.database_url else None
        try:
            if baseline == "last" and store is not None:
                name = agent or data.agent or ""
                found = await store.latest(dataset=data.name, agent=name, tenant_id=None)
                if found is None:
                    err.print(
                        "[yellow]no earlier passing evaluation of this dataset and agent: no baseline[/]"
                    )
                else:
                    base_summary, base_id = found.summary, found.id
            elif baseline not in ("none", "last", "live") and store is not None:
                found = await store.get(baseline, tenant_id=None)
                if found is None:
                    raise UsageError(f"--baseline: no evaluation run {baseline!r}")
                base_summary, base_id = found.summary, found.id
            if baseline == "live":
                live = await _with_progress(runner, data, agent, None, concurrency, "baseline (live)")
                base_summary, base_id = live.summary(), live.id
                if store is not None:
                    await store.save(live, created_by=OPERATOR_CLI)
            if runner.database_url is not None and not data.path.startswith("db:"):
                from keel.evals.datasets import DatasetStore

                async with DatasetStore(runner.database_url) as datasets:  # the file, as a stored version
                    await datasets.save(data.document(), actor=OPERATOR_CLI)
            report = await _with_progress(runner, data, agent, prompt_version, concurrency, "evaluating")
            verdict = gate(
                report.summary(),
                base_summary,
                baseline_id=base_id,
                max_regression=max_regression,
                min_pass_rate=min_pass_rate,
            )
            if store is not None:
                await store.save(report, created_by=OPERATOR_CLI, gate=verdict)
                await _link(runner, report, verdict, PROJECT_TENANT)
            await runner.flush()
            return report, verdict
        finally:
            if store is not None:
                await store.close()


async def _with_progress(
    runner: Any, data: Any, agent: str | None, version: str | None, concurrency: int, label: str
) -> Any:
    from keel.evals.offline import evaluate

    with Progress(
        TextColumn(f"{label} {data.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return await evaluate(
            runner, data, agent=agent, prompt_version=version, concurrency=concurrency, progress=advance
        )


async def _link(runner: Any, report: Any, verdict: Any, tenant: str) -> None:
    """Link the evaluated prompt version (a registry version, not a file) to this evaluation run."""
    registry = runner.prompts.registry
    version = report.prompt_version or ""
    if registry is None or "@" not in version or "@file:" in version or "," in version:
        return
    name, number = version.split("@", 1)
    summary = report.summary()
    await registry.link(
        name,
        number,
        kind="eval_run",
        ref=report.id,
        actor=OPERATOR_CLI,
        tenant_id=None,
        detail={"dataset": report.dataset, "pass_rate": summary["pass_rate"], "gate": verdict.passed},
    )


def _print(report: Any, summary: dict[str, Any], gate: Any) -> None:
    out.print(
        f"{report.dataset} on {report.agent} ({report.prompt_version or 'instructions'}): "
        f"{summary['passed']}/{summary['cases']} cases passed ({summary['pass_rate']:.1%}), "
        f"{summary['attempts']} runs, cost {summary['cost_usd'] or '-'} USD, "
        f"p50 {summary['latency_ms_p50']} ms",
        highlight=False,
    )
    for name, item in summary["evaluators"].items():
        out.print(f"  {name:<16} {item['pass_rate']:>7.1%}  mean {item['mean_score']:.3f}", highlight=False)
    failed = [c for c in report.cases if not c.passed]
    for case in failed[:10]:
        reasons = {
            f"{s.evaluator}: {s.reason}" for a in case.attempts for s in a.scores if not s.passed and s.reason
        }
        out.print(
            f"  [red]FAIL[/] {escape(case.case_id)}: {escape('; '.join(sorted(reasons))[:300])}",
            soft_wrap=True,
        )
    if len(failed) > 10:
        out.print(f"  ... and {len(failed) - 10} more failed cases")
    out.print(f"evaluation run {report.id}", highlight=False)
    if gate.passed:
        out.print("[green]gate passed[/]" + (f" (baseline {gate.baseline_id})" if gate.baseline_id else ""))
    else:
        for problem in gate.problems:
            out.print(f"[red]gate failed[/] {escape(problem)}", soft_wrap=True)


def _stored_dataset(project: Any, ref: str) -> Any:
    from keel.evals.datasets import DatasetStore
    from keel.store import resolve_database_url, upgrade

    name, _, version = ref.partition("@")
    if version and not version.isdigit():
        raise _fail(f"db:{ref}: a version is a number, e.g. db:{name}@3", EXIT_USAGE)
    if not project.config.storage.enabled:
        raise _fail("stored datasets need storage (storage.enabled: true)", EXIT_CONFIG)
    url = resolve_database_url(project.config.storage.url, project.root, os.environ)
    upgrade(url)

    async def get() -> Any:
        async with DatasetStore(url) as store:
            found, _ = await store.get(name, int(version) if version else None, tenant_id=None)
            return found

    try:
        return asyncio.run(get())
    except UsageError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None


def add_case(
    run_id: Annotated[str, typer.Argument(help="The run (see `keel runs`).")],
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="A stored dataset's name, or a .jsonl file to append to.")
    ],
    expected: Annotated[
        str | None,
        typer.Option(help="The expected output as JSON (default: the run's correction, else its output)."),
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag for the case (repeatable).")] = None,
    project: ProjectOpt = Path("."),
) -> None:
    """Make a recorded run an evaluation case: appended to a stored dataset or a JSONL file."""
    from keel.evals.datasets import DatasetStore, case_from_run
    from keel.store import RunStore, resolve_database_url, upgrade

    loaded = load(project)
    wanted: Any = None
    if expected is not None:
        try:
            wanted = json.loads(expected)
        except json.JSONDecodeError as exc:
            raise _fail(f"--expected: not JSON: {exc}", EXIT_USAGE) from None
    url = resolve_database_url(loaded.config.storage.url, loaded.root, os.environ)
    upgrade(url)

    async def work() -> str:
        async with RunStore(url) as runs:
            record = await runs.get_run(run_id)
        if record is None:
            raise UsageError(f"no run {run_id}")
        case = case_from_run(record, expected=wanted, tags=tag)
        if dataset.endswith(".jsonl"):
            path = Path(dataset)
            await asyncio.to_thread(_append, path, json.dumps(case, ensure_ascii=False, default=str))
            return f"appended case {case['id']} to {path}"
        async with DatasetStore(url) as store:
            version, case_id = await store.add_case(dataset, case, actor=OPERATOR_CLI, agent=record.agent)
        return f"added case {case_id} to dataset {dataset} (version {version}); run it with keel eval db:{dataset}"

    try:
        out.print(asyncio.run(work()), highlight=False)
    except UsageError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None


def _append(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(line + "\n")


def _display(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[red]error[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


__all__ = ["eval_command"]
