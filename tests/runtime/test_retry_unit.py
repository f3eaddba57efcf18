"""Backoff arithmetic, Retry-After parsing and error categories."""

from __future__ import annotations

import random

import pytest
from pydantic_ai.exceptions import (
    FallbackExceptionGroup,
    ModelAPIError,
    ModelHTTPError,
    ModelRequestRejectedError,
    UsageLimitExceeded,
)

from keel.config.schema import RetryOptions
from keel.errors import BadInput, ErrorCategory
from keel.runtime.retry import backoff_delay, categorize, is_retryable, retry_after


def test_backoff_doubles_and_is_capped() -> None:
    options = RetryOptions(initial_delay=0.5, max_delay=3, jitter=0)
    assert [backoff_delay(options, n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_stays_within_its_share() -> None:
    options = RetryOptions(initial_delay=1, max_delay=10, jitter=0.3)
    rng = random.Random(7)
    delays = [backoff_delay(options, 2, rng) for _ in range(500)]
    assert min(delays) >= 2 * 0.7
    assert max(delays) <= 2
    assert len(set(delays)) > 100  # it does vary


@pytest.mark.parametrize(
    ("header", "expected"),
    [("2", 2.0), ("0.25", 0.25), ("-1", None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_retry_after_header(header: str, expected: float | None) -> None:
    exc = ModelHTTPError(429, "m", headers={"Retry-After": header})
    assert retry_after(exc) == expected


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (ModelHTTPError(429, "m"), True),
        (ModelHTTPError(503, "m"), True),
        (ModelHTTPError(500, "m"), True),
        (ModelHTTPError(400, "m"), False),
        (ModelHTTPError(401, "m"), False),
        (ModelAPIError("m", "Failed to decode response as JSON"), True),
        (ModelRequestRejectedError("m", "bad request"), False),
    ],
)
def test_what_is_retried(exc: ModelAPIError, retryable: bool) -> None:
    assert is_retryable(exc) is retryable


def test_categories() -> None:
    assert categorize(ModelHTTPError(429, "m"))[0] is ErrorCategory.MODEL_RATE_LIMITED
    assert categorize(ModelHTTPError(408, "m"))[0] is ErrorCategory.MODEL_TIMEOUT
    assert categorize(ModelHTTPError(502, "m"))[0] is ErrorCategory.MODEL_UNAVAILABLE
    assert categorize(UsageLimitExceeded("too many requests"))[0] is ErrorCategory.LIMIT_EXCEEDED
    assert categorize(BadInput("nope")) == (ErrorCategory.BAD_INPUT, "nope")
    group = FallbackExceptionGroup("all failed", [ModelHTTPError(503, "a"), ModelHTTPError(429, "b")])
    category, message = categorize(group)
    assert category is ErrorCategory.MODEL_RATE_LIMITED
    assert "'a'" in message and "'b'" in message
    assert categorize(RuntimeError("boom")) == (ErrorCategory.INTERNAL, "RuntimeError: boom")
