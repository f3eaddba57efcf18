"""Prompt registry errors: each carries a stable `code` and the HTTP status the API answers with."""

from __future__ import annotations

from keel.errors import UsageError


class PromptError(UsageError):
    """A prompt operation refused; `code` is stable and machine-readable, `status` the HTTP status."""

    code = "prompt_error"
    status = 422

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class PromptNotFound(PromptError):
    code = "prompt_not_found"
    status = 404


class VariableError(PromptError):
    """A missing or unknown variable when rendering, or an undeclared placeholder when saving."""

    code = "prompt_variables"
    status = 422


class StaleRelease(Exception):
    """Labels were read together with a release activation newer than the one being served."""

    def __init__(self, activation: int | None) -> None:
        super().__init__(f"release activation {activation} is newer than the one served")
        self.activation = activation


class LabelProtected(PromptError):
    code = "label_protected"
    status = 403
