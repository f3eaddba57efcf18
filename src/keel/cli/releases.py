"""`keel deploy`, `keel releases`, `keel rollback` and `keel prompts`: releases and the prompt registry.

They work on the project's database (`storage.url`, or `KEEL_DATABASE_URL`), migrating it first.
Servers on that database follow what these commands do within `prompts.refresh_interval` seconds,
without a restart. Every action is recorded as `operator:cli` in the audit log.
Exit codes: 2 for a bad option or an unknown release, version or prompt; 3 for an invalid project
or an unreachable database.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from keel.cli.audit import OPERATOR_CLI
from keel.cli.common import EXIT_CONFIG, EXIT_RUN_FAILED, EXIT_USAGE, ProjectOpt, err, load, out, print_issues
from keel.errors import ConfigError, UsageError
from keel.store.urls import describe_error

T = TypeVar("T")

prompts_app = typer.Typer(help="The prompt registry: versions, labels, history.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _url(project: Path) -> tuple[Path, str]:
    """The project folder and its database, from keel.yaml alone: listing, rolling back and
    reading the registry work while an agent or prompt file is broken (`keel deploy` checks all)."""
    from keel.config.loader import load_settings
    from keel.store import resolve_database_url, upgrade

    try:
        root, config = load_settings(project)
    except ConfigError as exc:
        print_issues(exc.issues)
        raise typer.Exit(EXIT_CONFIG) from None
    if not config.storage.enabled:
        raise _fail("releases and the prompt registry need storage (storage.enabled: true)", EXIT_CONFIG)
    url = resolve_database_url(config.storage.url, root, os.environ)
    try:
        upgrade(url)
    except UsageError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None
    return root, url


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[red]error[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _rollout(shares: list[dict[str, Any]]) -> str:
    return "/".join(f"{s['version']}:{float(s['weight']):g}%" for s in shares)


def _run(work: Callable[[], Coroutine[Any, Any, T]], url: str) -> T:
    from keel.prompts.errors import PromptError

    try:
        return asyncio.run(work())
    except ConfigError as exc:
        for issue in exc.issues:
            err.print(f"[bold red]error[/] {escape(str(issue))}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_CONFIG) from None
    except (PromptError, UsageError) as exc:
        from keel.releases.deploy import GateFailed

        if isinstance(exc, GateFailed):
            raise
        raise _fail(str(exc), EXIT_USAGE) from None
    except SQLAlchemyError as exc:
        raise _fail(f"the database cannot be used: {describe_error(exc, url)}", EXIT_CONFIG) from None


def deploy(
    project: Annotated[Path, typer.Argument(help="The project folder.")] = Path("."),
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="What changed, for the history.")
    ] = None,
    skip_gate: Annotated[
        bool,
        typer.Option(
            "--skip-gate", help="Deploy without the evals.deploy_gate evaluation (recorded in the audit log)."
        ),
    ] = False,
    with_fake_llm: Annotated[
        bool, typer.Option("--with-fake-llm", help="Run the deploy gate against the project's fake provider.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Release the project: push changed prompts as new versions, make a numbered release, make it live.

    With `evals.deploy_gate` in keel.yaml, the candidate is evaluated first; if the gate fails,
    nothing is deployed (exit 1)."""
    from keel.cli import _maybe_fake_llm
    from keel.releases.deploy import GateFailed
    from keel.releases.deploy import deploy as do_deploy

    root, url = _url(project)
    with _maybe_fake_llm(with_fake_llm, project):
        load(project)  # every problem of the project, printed; nothing deployed
        try:
            outcome = _run(
                lambda: do_deploy(root, url, actor=OPERATOR_CLI, message=message, skip_gate=skip_gate), url
            )
        except GateFailed as exc:
            raise _fail(str(exc), EXIT_RUN_FAILED) from None
    if as_json:
        out.print_json(json.dumps(outcome.as_dict()))
        return
    release = outcome.release
    for ref in outcome.new_versions:
        out.print(f"new prompt version {ref}", highlight=False)
    for move in outcome.moved:
        out.print(f"label {move}", highlight=False)
    if not outcome.created and not outcome.activated and not outcome.moved:
        out.print(f"nothing changed: release {release.number} is live", highlight=False)
        return
    what = "created" if outcome.created else "already existed"
    out.print(
        f"release {release.number} ({release.content_hash[:12]}, {len(release.manifest)} files) {what}"
        f" and is live{'' if outcome.previous is None else f' (was {outcome.previous})'}",
        highlight=False,
    )


def releases(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """The project's releases, newest first, and which one is live."""
    from keel.releases.store import ReleaseStore

    _, url = _url(project)

    async def work() -> tuple[list[Any], Any, list[Any]]:
        async with ReleaseStore(url) as store:
            return await store.recent(), await store.live_activation(), await store.activations(limit=200)

    items, live, activations = _run(work, url)
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "live": live.as_dict() if live else None,
                    "releases": [r.as_dict() for r in items],
                    "activations": [a.as_dict() for a in activations],
                }
            )
        )
        return
    if not items:
        out.print("no releases yet: `keel deploy` makes the first one")
        return
    for release in items:
        mark = "*" if live is not None and live.number == release.number else " "
        prompts = ", ".join(f"{k}@{v}" for k, v in release.prompts.items()) or "-"
        out.print(
            f"{mark} {release.number:>4}  {release.created_at:%Y-%m-%d %H:%M:%S}  {release.content_hash[:12]}  "
            f"{release.author}  prompts: {prompts}  {release.message or ''}".rstrip(),
            highlight=False,
            soft_wrap=True,
        )
    if live is not None:
        out.print(
            f"live: release {live.number} since {live.activated_at:%Y-%m-%d %H:%M:%S} UTC ({live.reason})",
            highlight=False,
        )


def rollback(
    number: Annotated[
        int | None, typer.Argument(help="The release to make live (default: the one before).")
    ] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Make another release live again, in seconds, without restarting servers."""
    from keel.config.loader import load_settings
    from keel.releases.deploy import rollback as do_rollback

    _, url = _url(project)
    label = load_settings(project)[1].prompts.deploy_label
    outcome = _run(lambda: do_rollback(url, number, actor=OPERATOR_CLI, label=label), url)
    if as_json:
        out.print_json(json.dumps(outcome.as_dict()))
        return
    for move in outcome.moved:
        out.print(f"label {move}", highlight=False)
    if not outcome.activated:
        out.print(f"release {outcome.release.number} is already live", highlight=False)
        return
    out.print(f"release {outcome.release.number} is live (was {outcome.previous})", highlight=False)


@prompts_app.command("list")
def list_prompts(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Every prompt in the registry: latest version and labels."""
    from keel.prompts.registry import PromptRegistry

    _, url = _url(project)

    async def work() -> list[dict[str, Any]]:
        async with PromptRegistry(url) as registry:
            return await registry.prompts(tenant_id=None)

    items = _run(work, url)
    if as_json:
        out.print_json(json.dumps({"prompts": items}))
        return
    for item in items:
        labels = ", ".join(f"{lb['label']}={_rollout(lb['rollout'])}" for lb in item["labels"])
        out.print(f"{item['name']}  latest {item['latest']}  {labels or '(no labels)'}", highlight=False)


@prompts_app.command("history")
def history(
    name: Annotated[str, typer.Argument(help="The prompt.")],
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """A prompt's versions and every move of its labels: what was live, and since when."""
    from keel.prompts.registry import PromptRegistry

    _, url = _url(project)

    async def work() -> tuple[list[Any], list[dict[str, Any]]]:
        async with PromptRegistry(url) as registry:
            return await registry.history(name, tenant_id=None), await registry.moves(name, tenant_id=None)

    versions, moves = _run(work, url)
    if as_json:
        out.print_json(
            json.dumps({"versions": [v.as_dict(with_template=False) for v in versions], "moves": moves})
        )
        return
    for version in versions:
        out.print(
            f"{version.version:>10}  {version.created_at:%Y-%m-%d %H:%M:%S}  {version.content_hash[:12]}  "
            f"{version.author}  {version.message or ''}".rstrip(),
            highlight=False,
        )
    for move in moves:
        rollout = _rollout(move["rollout"])
        out.print(
            f"  {move['moved_at'][:19]}  {move['label']} -> {rollout}  by {move['moved_by']}", highlight=False
        )


@prompts_app.command("diff")
def diff_command(
    name: Annotated[str, typer.Argument(help="The prompt.")],
    old: Annotated[str, typer.Argument(help="From this version.")],
    new: Annotated[str, typer.Argument(help="To this version.")],
    project: ProjectOpt = Path("."),
) -> None:
    """The difference between two versions of a prompt."""
    from keel.prompts.registry import PromptRegistry, diff

    _, url = _url(project)

    async def work() -> str:
        async with PromptRegistry(url) as registry:
            return diff(
                await registry.get(name, old, tenant_id=None), await registry.get(name, new, tenant_id=None)
            )

    print(_run(work, url) or "(no difference)")


@prompts_app.command("label")
def label_command(
    name: Annotated[str, typer.Argument(help="The prompt.")],
    label: Annotated[str, typer.Argument(help="The label, e.g. staging or production.")],
    shares: Annotated[
        list[str],
        typer.Argument(help="VERSION for all traffic, or VERSION=WEIGHT ... adding up to 100 (a canary)."),
    ],
    sticky: Annotated[str, typer.Option(help="user, session or none.")] = "user",
    reason: Annotated[str | None, typer.Option(help="Why, for the history.")] = None,
    project: ProjectOpt = Path("."),
) -> None:
    """Move a label of the project's prompt (operators may move protected labels)."""
    from keel.prompts.registry import PromptRegistry
    from keel.prompts.rollout import Share

    parsed: list[Share] = []
    for item in shares:
        version, _, weight = item.partition("=")
        try:
            parsed.append(Share(version, float(weight) if weight else 100.0))
        except ValueError:
            raise _fail(f"{item!r}: expected VERSION or VERSION=WEIGHT", EXIT_USAGE) from None
    _, url = _url(project)

    async def work() -> Any:
        async with PromptRegistry(url) as registry:
            return await registry.move_label(
                name, label, parsed, actor=OPERATOR_CLI, sticky=sticky, reason=reason
            )

    moved = _run(work, url)
    rollout = "/".join(f"{s.version}:{s.weight:g}%" for s in moved.rollout)
    out.print(f"{name}:{label} -> {rollout} (sticky: {moved.sticky})", highlight=False)


@prompts_app.command("create")
def create_version(
    name: Annotated[str, typer.Argument(help="The prompt.")],
    file: Annotated[Path, typer.Option("--file", "-f", help="A prompt file (front matter and text).")],
    message: Annotated[str | None, typer.Option("--message", "-m", help="What changed.")] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Save a new version of the project's prompt from a file (no label moves: see `keel prompts label`)."""
    from keel.prompts.registry import PromptRegistry
    from keel.prompts.source import parse_prompt

    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"cannot read {file}: {exc}", EXIT_USAGE) from None
    source = parse_prompt(text, str(file), name)
    if isinstance(source, list):
        for issue in source:
            err.print(f"[bold red]error[/] {escape(str(issue))}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_CONFIG)
    _, url = _url(project)

    async def work() -> Any:
        async with PromptRegistry(url) as registry:
            return await registry.save(
                name,
                source.content,
                author=OPERATOR_CLI,
                version=source.version,
                message=message or source.message,
                owner=source.owner,
                source="cli",
            )

    version, created = _run(work, url)
    if as_json:
        out.print_json(json.dumps({**version.as_dict(), "created": created}))
        return
    what = "new version" if created else "unchanged: the latest version is"
    out.print(f"{what} {version.ref} ({version.content_hash[:12]})", highlight=False)
