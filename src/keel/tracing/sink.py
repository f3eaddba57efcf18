"""Finished spans to `SpanRecord`s, handed to the store's non-blocking writer.

`RecordProcessor` is an OpenTelemetry `SpanProcessor` on Keel's own `TracerProvider`. When a span
ends it is converted (a few microseconds: ids to hex, times to `datetime`, attributes copied;
content was already cut when it was set) and passed to the sink. The sink must not block: it
returns False when it had to drop the record (its buffer is full), which is counted in `dropped`.
A sink that raises is counted too (in `dropped` and `sink_errors`), logged once, and never breaks
the run.

The processor also stamps `keel.run.id` on every span started while a run's agent span is
current, so spans from `tracing.tracer` used directly are found by run too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from keel.store.records import SpanEvent, SpanRecord
from keel.tracing import semconv

_log = logging.getLogger("keel.tracing")

SpanSink = Callable[[SpanRecord], bool]

# The run whose agent span is current (set by `agent_span`), read when any span starts.
current_run_id: ContextVar[str | None] = ContextVar("keel_tracing_run_id", default=None)

_KINDS = {kind: kind.name.lower() for kind in SpanKind}
_STATUSES = {code: code.name.lower() for code in StatusCode}


def _time(ns: int | None) -> datetime:
    return datetime.fromtimestamp((ns or 0) / 1e9, UTC)


def _plain(attributes: Any) -> dict[str, Any]:
    """A plain copy of span or event attributes, sequences as lists.

    Reads the SDK's `BoundedAttributes` dict directly when it has one: going through the
    `Mapping` protocol costs a Python call per attribute, which is most of a conversion."""
    if not attributes:
        return {}
    raw = getattr(attributes, "_dict", None)
    items = raw.items() if type(raw) is dict else attributes.items()
    return {key: list(value) if type(value) is tuple else value for key, value in items}


def span_to_record(span: ReadableSpan) -> SpanRecord:
    """The `SpanRecord` of a finished span."""
    context = span.context
    parent = span.parent
    attributes = _plain(getattr(span, "_attributes", None) or span.attributes)
    events = tuple(
        SpanEvent(name=event.name, time=_time(event.timestamp), attributes=_plain(event.attributes))
        for event in span.events
    )
    run_id = attributes.get(semconv.RUN_ID)
    status = span.status
    return SpanRecord(
        trace_id=format(context.trace_id, "032x") if context is not None else "0" * 32,
        span_id=format(context.span_id, "016x") if context is not None else "0" * 16,
        parent_span_id=format(parent.span_id, "016x") if parent is not None else None,
        name=span.name,
        kind=_KINDS.get(span.kind, "internal"),
        start_time=_time(span.start_time),
        end_time=_time(span.end_time),
        status=_STATUSES.get(status.status_code, "unset"),
        status_message=status.description,
        run_id=run_id if isinstance(run_id, str) else None,
        attributes=attributes,
        events=events,
    )


class RecordProcessor(SpanProcessor):
    """Stamps `keel.run.id` on start; converts each finished span and hands it to `sink`."""

    def __init__(self, sink: SpanSink | None) -> None:
        self._sink = sink
        self._lock = threading.Lock()
        self.dropped = 0
        self.sink_errors = 0
        self._logged = False

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        run_id = current_run_id.get()
        if run_id is not None and (span.attributes is None or semconv.RUN_ID not in span.attributes):
            span.set_attribute(semconv.RUN_ID, run_id)

    def on_end(self, span: ReadableSpan) -> None:
        sink = self._sink
        if sink is None:
            return
        try:
            accepted = sink(span_to_record(span))
        except Exception:  # the sink (or a conversion bug) must never break the run
            with self._lock:
                self.dropped += 1
                self.sink_errors += 1
                first, self._logged = not self._logged, True
            if first:
                _log.warning("the span sink raised; spans it fails on are dropped", exc_info=True)
            return
        if accepted is False:
            with self._lock:
                self.dropped += 1

    def shutdown(self) -> None:
        self._sink = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
