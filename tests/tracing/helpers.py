"""Helpers for the tracing tests: a collecting sink and a Tracing built on it."""

from __future__ import annotations

import json
from typing import Any

from keel.config.schema import OtlpConfig, TracingConfig
from keel.store.records import SpanRecord
from keel.tracing import Tracing


class Collector:
    """A span sink that keeps every record; `accept=False` makes it refuse (a full buffer)."""

    def __init__(self, accept: bool = True) -> None:
        self.accept = accept
        self.records: list[SpanRecord] = []

    def __call__(self, record: SpanRecord) -> bool:
        self.records.append(record)
        return self.accept

    def named(self, name: str) -> list[SpanRecord]:
        return [record for record in self.records if record.name == name]

    def one(self, name: str) -> SpanRecord:
        found = self.named(name)
        assert len(found) == 1, f"expected one span {name!r}, got {[r.name for r in self.records]}"
        return found[0]

    def text(self) -> str:
        """Every attribute and event of every span, and status messages, as one string."""
        return json.dumps(
            [
                [r.name, r.status_message, r.attributes, [[e.name, e.attributes] for e in r.events]]
                for r in self.records
            ],
            ensure_ascii=False,
        )


def make_tracing(
    capture: str = "off",
    *,
    sink: Any = None,
    otlp: OtlpConfig | None = None,
    environ: dict[str, str] | None = None,
    **kwargs: Any,
) -> tuple[Tracing, Collector]:
    collector = sink if sink is not None else Collector()
    config = TracingConfig(capture_content=capture, otlp=otlp, service_name="keel-test")  # type: ignore[arg-type]
    return Tracing.create(config, sink=collector, environ=environ or {}, **kwargs), collector
