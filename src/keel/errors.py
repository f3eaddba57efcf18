"""Keel's one error hierarchy.

Two roots, as in pydantic-ai: a developer mistake (fix the project) versus a run that failed
(look at the run's error category)::

    KeelError
    ├── ConfigError            the project's YAML, schemas or tools are wrong; carries every
    │                          problem found, each with file, line and field path
    ├── UsageError             Keel was called wrongly (bad arguments to an API or the CLI)
    └── RunFailure             a run ended without success; `category` is one of ErrorCategory
        ├── BadInput           the input did not match the agent's input schema
        ├── ToolFailure        a tool with `on_failure: fail` kept failing
        └── BudgetExceeded     a model request would exceed a hard budget (keel.gateway.budgets)

Error categories are a closed set (see `ErrorCategory`), documented in README.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorCategory(StrEnum):
    """Why a run did not succeed. A closed set: every failed run has exactly one."""

    BAD_INPUT = "bad_input"
    MODEL_RATE_LIMITED = "model_rate_limited"
    MODEL_UNAVAILABLE = "model_unavailable"
    MODEL_TIMEOUT = "model_timeout"
    INVALID_OUTPUT = "invalid_output"
    TOOL_ERROR = "tool_error"
    TOOL_TIMEOUT = "tool_timeout"
    LIMIT_EXCEEDED = "limit_exceeded"
    BUDGET_EXCEEDED = "budget_exceeded"
    CIRCUIT_OPEN = "circuit_open"
    GUARDRAIL_BLOCKED = "guardrail_blocked"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    INTERNAL = "internal"


class KeelError(Exception):
    """Base of every error Keel raises on purpose."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a project's configuration, located precisely."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class ConfigError(KeelError):
    """The project configuration is invalid. `issues` lists every problem found, not just the first."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        count = len(self.issues)
        lines = "\n".join(f"  {issue}" for issue in self.issues)
        super().__init__(f"{count} configuration error{'s' if count != 1 else ''}:\n{lines}")


class UsageError(KeelError):
    """Keel was called with arguments that cannot work (unknown agent, bad CLI option, ...)."""


class RunFailure(KeelError):
    """A run ended without success. Raised inside the loop; the runner turns it into a RunResult."""

    category: ErrorCategory = ErrorCategory.INTERNAL

    def __init__(self, message: str, *, category: ErrorCategory | None = None) -> None:
        if category is not None:
            self.category = category
        self.message = message
        super().__init__(message)


class BadInput(RunFailure):
    """The run's input did not match the agent's input schema."""

    category = ErrorCategory.BAD_INPUT


class ToolFailure(RunFailure):
    """A tool configured with `on_failure: fail` failed after all its attempts."""

    category = ErrorCategory.TOOL_ERROR
