"""The records Keel stores: plain, immutable, JSON-friendly values.

The runtime and the tracer build these; the store writes and queries them. Neither side knows
the other's internals: this module is the contract between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

JsonValue = Any  # str | int | float | bool | None | list[JsonValue] | dict[str, JsonValue]

TRIGGERS = ("cli", "api", "webhook", "schedule", "eval", "pipeline", "test")


@dataclass(frozen=True)
class ModelUsageRecord:
    """Tokens and cost of one run on one model (a run that fell back has one per model used)."""

    model: str  # provider:model, e.g. "openai:gpt-4o-mini"
    requests: int  # provider requests, failed attempts included
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal | None  # None when no price is known for the model


@dataclass(frozen=True)
class RunRecord:
    """One run, as it ended."""

    id: str
    agent: str
    config_hash: str
    status: str  # succeeded | failed | timed_out | cancelled
    trigger: str  # one of TRIGGERS
    started_at: datetime  # timezone-aware, UTC
    ended_at: datetime
    duration_ms: float
    input: JsonValue
    output: JsonValue
    error_category: str | None = None
    error_message: str | None = None
    model_requests: int = 0
    tool_calls: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal | None = None  # None when the price of some model used is unknown
    usage: tuple[ModelUsageRecord, ...] = ()
    tool_failures: tuple[str, ...] = ()  # names of tools whose calls failed (one entry per failed call)
    tools_called: tuple[str, ...] = ()  # names of tools called (one entry per call)
    prompt_version: str | None = None
    release: int | None = None  # the release the run ran on (None: the project's files)
    session_id: str | None = None
    user_id: str | None = None
    tenant_id: str | None = None
    parent_run_id: str | None = None
    trace_id: str | None = None  # 32 hex chars
    tags: tuple[str, ...] = ()
    metadata: dict[str, JsonValue] = field(default_factory=dict)


@dataclass(frozen=True)
class SpanEvent:
    name: str
    time: datetime
    attributes: dict[str, JsonValue] = field(default_factory=dict)


@dataclass(frozen=True)
class SpanRecord:
    """One finished OpenTelemetry span, as Keel stores it."""

    trace_id: str  # 32 hex chars
    span_id: str  # 16 hex chars
    parent_span_id: str | None
    name: str  # e.g. "invoke_agent inbox", "chat gpt-4o-mini", "execute_tool lookup_customer"
    kind: str  # internal | client | server | producer | consumer
    start_time: datetime
    end_time: datetime
    status: str  # unset | ok | error
    status_message: str | None
    run_id: str | None  # the keel.run.id attribute, for lookups by run
    attributes: dict[str, JsonValue] = field(default_factory=dict)
    events: tuple[SpanEvent, ...] = ()
