"""Keel's log records are masked as span content is: secrets always, and everything the PII
detector finds while a `Tracing` captures content `redacted` (see keel.tracing.logs)."""

from __future__ import annotations

import asyncio
import gc
import io
import logging
from collections.abc import Iterator

import pytest

from keel.guardrails.policy import Check, Guardrails, Point
from tests.tracing.helpers import make_tracing

EMAIL, SSN, IBAN = "jane.doe@example.com", "123-45-6789", "DE89-3704-0044-0532-0130-00"
KEY = "sk-proj-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2"
ENV_SECRET = "hunter2-" + "correct-horse-battery"
CONTENT = f"customer {EMAIL}, SSN {SSN}, IBAN {IBAN}, key {KEY}, env {ENV_SECRET}"


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """What a plain handler on the root logger writes, tracebacks included."""
    gc.collect()  # captures of earlier tests' tracings no longer count
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


class Broken:
    """A guardrail that raises with what it was given, as a buggy custom one would."""

    name = "broken"
    points = frozenset({"input"})

    async def check(self, check: Check) -> None:
        raise ValueError(f"cannot parse {check.text!r}")


def fail_a_guardrail(text: str) -> None:
    point: Point = "input"
    outcome = asyncio.run(Guardrails([Broken()]).run(Check(point=point, agent="a", text=text)))
    assert outcome.verdict == "block"


def test_a_failing_guardrail_logs_no_content_when_capture_is_redacted(logged: io.StringIO) -> None:
    tracing, _ = make_tracing("redacted", environ={"MY_KEY": ENV_SECRET}, secret_env_vars=["MY_KEY"])
    fail_a_guardrail(CONTENT)
    text = logged.getvalue()
    assert "keel.guardrails ERROR guardrail broken failed" in text
    assert "Traceback" in text and "ValueError: cannot parse" in text
    for value in (EMAIL, SSN, IBAN, KEY, ENV_SECRET):
        assert value not in text, value
    for kind in ("email", "national_id", "iban", "api_key", "secret"):
        assert f"[REDACTED:{kind}]" in text
    assert tracing.capture.mode == "redacted"  # kept alive until here


@pytest.mark.parametrize("mode", ["off", "on"])
def test_other_modes_mask_secrets_in_logs_and_keep_personal_data(mode: str, logged: io.StringIO) -> None:
    tracing, _ = make_tracing(mode, environ={"MY_KEY": ENV_SECRET}, secret_env_vars=["MY_KEY"])
    logging.getLogger("keel.runtime").warning("run r failed on %s", CONTENT)
    text = logged.getvalue()
    assert KEY not in text and ENV_SECRET not in text
    assert EMAIL in text and SSN in text
    assert "keel.runtime WARNING run r failed on customer" in text
    assert tracing.capture.mode == mode


def test_a_disabled_tracing_still_masks_secrets_in_logs(logged: io.StringIO) -> None:
    from keel.config.schema import TracingConfig
    from keel.tracing import Tracing

    tracing = Tracing.create(
        TracingConfig(enabled=False), environ={"MY_KEY": ENV_SECRET}, secret_env_vars=["MY_KEY"]
    )
    logging.getLogger("keel").error("echo %s", CONTENT)
    assert not tracing.enabled
    text = logged.getvalue()
    assert KEY not in text and ENV_SECRET not in text


def test_other_libraries_logs_are_left_alone(logged: io.StringIO) -> None:
    tracing, _ = make_tracing("redacted")
    logging.getLogger("myapp.keelish").warning("echo %s", CONTENT)
    assert CONTENT in logged.getvalue()
    assert tracing.enabled


def test_the_strictest_live_policy_applies_and_ends_with_its_tracing(logged: io.StringIO) -> None:
    on, _ = make_tracing("on")
    redacted, _ = make_tracing("redacted")
    log = logging.getLogger("keel.evals.online")
    log.warning("evaluator failed: %s", EMAIL)
    del redacted
    gc.collect()
    log.warning("evaluator failed: %s", EMAIL)
    first, second = logged.getvalue().splitlines()
    assert first.endswith("evaluator failed: [REDACTED:email]")
    assert second.endswith(f"evaluator failed: {EMAIL}")
    assert on.capture.mode == "on"


def test_a_traceback_with_nothing_to_mask_keeps_the_exception(logged: io.StringIO) -> None:
    tracing, _ = make_tracing("redacted")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    log = logging.getLogger("keel.test")
    log.addHandler(handler)
    try:
        try:
            raise RuntimeError("nothing personal here")
        except RuntimeError:
            log.exception("plain failure")
        try:
            raise RuntimeError(f"bad {EMAIL}")
        except RuntimeError:
            log.exception("personal failure")
    finally:
        log.removeHandler(handler)
    plain, personal = records
    assert plain.exc_info is not None and plain.exc_info[0] is RuntimeError
    assert personal.exc_info is None and personal.exc_text is not None
    assert "RuntimeError: bad [REDACTED:email]" in personal.exc_text
    assert EMAIL not in logged.getvalue()
    assert tracing.enabled
