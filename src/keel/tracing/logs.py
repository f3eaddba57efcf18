"""Masking of Keel's log records, as span content is masked.

Keel's logs can carry a run's content: a guardrail, an after-run observer, a run-ended hook or an
online evaluator that raises on what it was given has its exception message and traceback logged
(`log.exception`), and those quote prompts, outputs and tool arguments. So every record of a
`keel` logger (`keel`, `keel.runtime`, `keel.guardrails` …) is masked when it is made, before any
handler sees it:

- secrets always, as in every capture mode: the detector's secrets of known formats and after
  keywords, and the exact values of the secret environment variables of every `Tracing` (see
  `keel.tracing.redact.redact_secrets`);
- everything `keel.guardrails.pii`'s detector finds (`redact_all`) while a `Tracing` of the process
  captures content `redacted`: logs are process-wide, so the strictest live policy applies.

The message is masked after formatting (`record.msg` becomes the masked text, `record.args` None)
only when masking changes it. A traceback that holds something to mask is formatted, masked and
kept as `record.exc_text` (which `logging.Formatter` prints) and `record.exc_info` is cleared, so a
handler cannot format the exception again from the object; a traceback with nothing to mask is
left as it is. Records of other libraries' loggers are not touched. Installed by `Tracing.create`
(`install`), once per process, as a log record factory wrapping the one in place.
"""

from __future__ import annotations

import logging
import threading
import traceback
import weakref
from collections.abc import Callable
from typing import Any

from keel.tracing import redact
from keel.tracing.content import ContentCapture

_lock = threading.Lock()
_captures: set[weakref.ref[ContentCapture]] = set()
_installed = False
_version = 0  # changes when a capture is added or collected
# (version it was computed at, secret values, whether personal data is masked)
_policy: tuple[int, tuple[str, ...], bool] = (0, (), False)


def _forget(reference: weakref.ref[ContentCapture]) -> None:
    global _version
    _captures.discard(reference)
    _version += 1


def install(capture: ContentCapture) -> None:
    """Mask Keel's log records by `capture`'s policy too (its secret values; everything the
    detector finds when its mode is `redacted`), for as long as `capture` lives."""
    global _installed, _version
    with _lock:
        _captures.add(weakref.ref(capture, _forget))
        _version += 1
        if not _installed:
            logging.setLogRecordFactory(_masking(logging.getLogRecordFactory()))
            _installed = True


def policy() -> tuple[tuple[str, ...], bool]:
    """The secret values to mask in log records, and whether to mask personal data too."""
    global _policy
    version, values, pii = _policy
    if version != _version:
        current = _version
        live = [capture for capture in (ref() for ref in list(_captures)) if capture is not None]
        values = redact.secret_values(v for capture in live for v in capture.secret_values)
        pii = any(capture.mode == "redacted" for capture in live)
        _policy = (current, values, pii)
    return values, pii


def mask(text: str) -> str:
    """`text` masked as Keel's log records are now."""
    values, pii = policy()
    return redact.redact_all(text, values) if pii else redact.redact_secrets(text, values)


def mask_record(record: logging.LogRecord) -> None:
    """Mask `record`'s message and traceback in place (see the module doc)."""
    message = record.getMessage()
    masked = mask(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        masked = mask(text)
        if masked != text:
            record.exc_text, record.exc_info = masked, None


def _masking(make: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        name = record.name
        if name == "keel" or name.startswith("keel."):
            try:
                mask_record(record)
            except Exception:  # masking must never stop a record, nor the code that logs it
                record.msg, record.args, record.exc_info = "<log record not masked: dropped>", None, None
        return record

    return factory
