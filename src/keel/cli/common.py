"""What every `keel` command shares: consoles, exit codes, the --project option, loading a project."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from keel.config.project import Project
from keel.errors import ConfigError, ConfigIssue

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

out = Console()
err = Console(stderr=True)

ProjectOpt = Annotated[
    Path,
    typer.Option("--project", "-p", help="The project folder (holding keel.yaml).", envvar="KEEL_PROJECT"),
]


def print_issues(issues: list[ConfigIssue]) -> None:
    for issue in issues:
        err.print(f"[bold red]error[/] {issue}", highlight=False, soft_wrap=True)
    err.print(f"{len(issues)} configuration error{'s' if len(issues) != 1 else ''}", style="red")


def load(project: Path) -> Project:
    """The project, or exit 3 with every configuration error printed."""
    from keel.config import load_project

    try:
        return load_project(project)
    except ConfigError as exc:
        print_issues(exc.issues)
        raise typer.Exit(EXIT_CONFIG) from None
