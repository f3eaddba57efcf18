"""The `keel` command line.

Exit codes (also in README.md):
    0   success
    1   the run did not succeed (failed, timed out, cancelled), or `keel check` found problems
    2   wrong usage: unknown command or option, unknown agent, unreadable input
    3   the project's configuration is invalid (every problem is listed, with file, line and field)
    130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from keel.cli.audit import audit_app
from keel.cli.clients import clients_app
from keel.cli.common import (
    EXIT_CONFIG,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUN_FAILED,
    EXIT_USAGE,
    ProjectOpt,
    err,
    load,
    out,
    print_issues,
)
from keel.cli.evals import add_case, eval_command
from keel.cli.keys import keys_app
from keel.cli.oauth import oauth_app
from keel.cli.releases import deploy, prompts_app, releases, rollback
from keel.cli.runs import db_app, runs_app
from keel.cli.users import users_app
from keel.config.project import Project
from keel.errors import UsageError

__all__ = ["EXIT_CONFIG", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_RUN_FAILED", "EXIT_USAGE", "app", "main"]

app = typer.Typer(
    name="keel",
    help="Keel: production infrastructure for AI agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(runs_app, name="runs")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(users_app, name="users")
app.add_typer(clients_app, name="clients")
app.add_typer(oauth_app, name="oauth")
app.add_typer(prompts_app, name="prompts")
app.command()(deploy)
app.command()(releases)
app.command()(rollback)
app.command("eval")(eval_command)
app.command("add-case")(add_case)

FakeLLMOpt = Annotated[
    bool,
    typer.Option(
        "--with-fake-llm",
        help="Start Keel's fake provider with the project's fake-llm script and point KEEL_LLM_BASE_URL at it "
        "(skipped when KEEL_LLM_BASE_URL is already set).",
    ),
]


@contextmanager
def _maybe_fake_llm(enabled: bool, project: Path) -> Iterator[None]:
    if not enabled or os.environ.get("KEEL_LLM_BASE_URL"):
        yield
        return
    from keel.testing.project_fake import start_project_fake_llm

    with start_project_fake_llm(project) as base_url:
        os.environ["KEEL_LLM_BASE_URL"] = base_url
        err.print(f"[dim]fake provider at {base_url}[/]")
        try:
            yield
        finally:
            os.environ.pop("KEEL_LLM_BASE_URL", None)


def _read_input(raw: str) -> str | dict[str, Any] | list[Any]:
    """INPUT is text, `-` for standard input, or `@path` for a file. JSON objects are passed as JSON."""
    if raw == "-":
        raw = sys.stdin.read()
    elif raw.startswith("@"):
        path = Path(raw[1:])
        try:
            raw = path.read_text()
        except OSError as exc:
            err.print(f"[red]error[/] cannot read input file {path}: {exc.strerror}")
            raise typer.Exit(EXIT_USAGE) from None
    stripped = raw.strip()
    if stripped.startswith(("{", "[")):
        try:
            parsed: dict[str, Any] | list[Any] = json.loads(stripped)
            return parsed
        except json.JSONDecodeError:
            pass  # not JSON after all: pass it on as text
    return raw


@app.command()
def run(
    agent: Annotated[str, typer.Argument(help="The agent's name.")],
    input: Annotated[str, typer.Argument(help="Input text or JSON; '-' reads stdin, '@file' reads a file.")],
    project: ProjectOpt = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole result as JSON.")] = False,
    stream: Annotated[bool, typer.Option("--stream", help="Print the model's text as it arrives.")] = False,
    with_fake_llm: FakeLLMOpt = False,
) -> None:
    """Run an agent once and print its output and a one-line summary."""
    from keel.runtime.events import RunEvent, TextDelta, ToolFinished
    from keel.runtime.runner import Runner

    payload = _read_input(input)

    def show(event: RunEvent) -> None:
        if isinstance(event, TextDelta) and not as_json:
            out.print(event.text, end="", highlight=False, markup=False)
        elif isinstance(event, ToolFinished) and not as_json:
            err.print(f"[dim]tool {event.name}: {event.status} ({event.duration_ms:.0f} ms)[/]")

    async def go(loaded: Any) -> Any:
        async with Runner(loaded) as runner:
            return await runner.run(agent, payload, stream=stream, on_event=show, trigger="cli")

    with _maybe_fake_llm(with_fake_llm, project):
        loaded = load(project)
        _migrate_or_exit(loaded)
        try:
            result = asyncio.run(go(loaded))
        except UsageError as exc:
            err.print(f"[red]error[/] {exc}")
            raise typer.Exit(EXIT_USAGE) from None
    if as_json:
        out.print_json(json.dumps(result.to_dict(), default=str))
    else:
        if stream:
            out.print()
        if result.output is not None and not (stream and isinstance(result.output, str)):
            text = result.output if isinstance(result.output, str) else json.dumps(result.output, indent=2)
            out.print(text, highlight=False, markup=False)
        if result.error is not None:
            err.print(f"[red]{result.error.category.value}[/]: {result.error.message}", highlight=False)
        err.print(f"[dim]{result.summary()}[/]", highlight=False)
    raise typer.Exit(EXIT_OK if result.succeeded else EXIT_RUN_FAILED)


@app.command()
def check(project: Annotated[Path, typer.Argument(help="The project folder.")] = Path(".")) -> None:
    """Validate a project: every error, with file, line and field. Exit 1 if any."""
    from keel.config import check_project

    issues = check_project(project)
    if issues:
        print_issues(issues)
        raise typer.Exit(EXIT_RUN_FAILED)
    out.print(f"[green]ok[/] {project}")


@app.command()
def agents(project: ProjectOpt = Path(".")) -> None:
    """List the project's agents."""
    loaded = load(project)
    table = Table("agent", "model", "fallbacks", "tools", "description")
    for spec in loaded.agents.values():
        table.add_row(
            spec.name,
            spec.model.label,
            ", ".join(m.label for m in spec.fallback_models) or "-",
            ", ".join(t.name for t in spec.tools) or "-",
            spec.config.description,
        )
    out.print(table)


@app.command()
def schema(
    output: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder to write keel.schema.json and agent.schema.json."),
    ] = None,
) -> None:
    """Write JSON Schemas for keel.yaml and agent files, for editor completion."""
    from keel.config import export_json_schemas

    schemas = export_json_schemas()
    if output is None:
        out.print_json(json.dumps(schemas))
        return
    output.mkdir(parents=True, exist_ok=True)
    for name, document in schemas.items():
        target = output / f"{name}.schema.json"
        target.write_text(json.dumps(document, indent=2) + "\n")
        out.print(f"wrote {target}")


@app.command()
def serve(
    project: Annotated[Path, typer.Argument(help="The project folder.")] = Path("."),
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: keel.yaml server.host).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: keel.yaml server.port).")] = None,
    with_fake_llm: FakeLLMOpt = False,
    role: Annotated[
        str,
        typer.Option(
            help="all: serve the API and run the work (the only choice on SQLite); api: accept runs only; "
            "worker: run queued work only (PostgreSQL)."
        ),
    ] = "all",
    worker_id: Annotated[
        str | None,
        typer.Option(
            help="This worker's stable id (default: KEEL_WORKER_ID, else host name and role). Restarting "
            "with the same id resumes its unfinished runs at once; several workers need distinct ids."
        ),
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every HTTP request.")] = False,
    reload: Annotated[
        bool,
        typer.Option(
            help="Development: serve the project's files as they are (not the live release) and reload "
            "them within a second of a change."
        ),
    ] = False,
) -> None:
    """Start the HTTP API and (role all or worker) execute queued runs durably."""
    import uvicorn

    from keel.api.app import create_app

    if role not in ("all", "api", "worker"):
        err.print(f"[red]error[/] --role: expected all, api or worker, got {role!r}", highlight=False)
        raise typer.Exit(EXIT_USAGE)
    with _maybe_fake_llm(with_fake_llm, project):
        loaded = load(project)
        _migrate_or_exit(loaded)
        server_cfg = loaded.config.server
        try:
            app_ = create_app(loaded, role=role, worker_id=worker_id, reload=reload)  # type: ignore[arg-type]
        except UsageError as exc:
            err.print(f"[red]error[/] {exc}", highlight=False)
            raise typer.Exit(EXIT_CONFIG) from None
        uvicorn.run(
            app_,
            host=host or server_cfg.host,
            port=port or server_cfg.port,
            log_level="info",
            access_log=access_log,
            timeout_graceful_shutdown=int(server_cfg.shutdown_grace) + 5,
        )


def _migrate_or_exit(project: Project) -> None:
    """Create or migrate the history database before serving: an unreachable database is a clear
    error at start-up (exit 3), not a traceback from inside the server."""
    storage = project.config.storage
    if not storage.enabled:
        return
    from keel.store import resolve_database_url, upgrade

    try:
        upgrade(resolve_database_url(storage.url, project.root, os.environ))
    except UsageError as exc:
        err.print(f"[red]error[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_CONFIG) from None


@app.command("fake-llm")
def fake_llm(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 8911,
    script: Annotated[Path | None, typer.Option(help="Rules file (YAML/JSON) or Python script file.")] = None,
    latency_ms: Annotated[float, typer.Option(help="Fixed latency before each response.")] = 0.0,
    fault_rate: Annotated[float, typer.Option(help="Share of requests that fail (0..1).")] = 0.0,
    faults: Annotated[
        str, typer.Option(help="Fault kinds and weights, e.g. 429=1,500=1,503=1,reset=1.")
    ] = "429=1,500=1,503=1,reset=1",
    seed: Annotated[int | None, typer.Option(help="Seed for latency and faults.")] = None,
) -> None:
    """Run Keel's fake OpenAI-compatible provider (for tests, demos and benchmarks)."""
    from keel.testing.fake_llm.__main__ import main as fake_main

    argv = ["--host", host, "--port", str(port), "--latency-ms", str(latency_ms)]
    argv += ["--fault-rate", str(fault_rate), "--faults", faults]
    if script is not None:
        argv += ["--script", str(script)]
    if seed is not None:
        argv += ["--seed", str(seed)]
    raise typer.Exit(fake_main(argv) or 0)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":  # pragma: no cover
    main()
