"""The storage sink: SpanRecords, drops, failures; the provider is Keel's own; disabled tracing."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry import trace

from keel.config.schema import TracingConfig
from keel.store.records import SpanEvent, SpanRecord
from keel.tracing import Tracing, agent_span, chat_span, tool_span
from tests.tracing.helpers import Collector, make_tracing


def test_records_carry_ids_parents_times_status_and_events() -> None:
    tracing, sink = make_tracing()
    before = datetime.now(UTC) - timedelta(milliseconds=1)  # clocks round to the microsecond
    with agent_span(tracing, agent="inbox", run_id="run-1", model="m") as run:
        with chat_span(tracing, provider="openai", model="gpt", attempt=1) as chat:
            chat.failed("model_unavailable", "HTTP 503", retry_in=1.5)
        run.finish("succeeded")
    after = datetime.now(UTC) + timedelta(milliseconds=1)
    chat_record, agent_record = sink.records
    assert all(isinstance(r, SpanRecord) for r in sink.records)
    assert agent_record.trace_id == run.trace_id
    assert agent_record.span_id == run.span_id
    assert len(agent_record.trace_id) == 32 and len(agent_record.span_id) == 16
    int(agent_record.trace_id, 16), int(agent_record.span_id, 16)
    assert chat_record.parent_span_id == agent_record.span_id
    assert chat_record.trace_id == agent_record.trace_id
    for record in sink.records:
        assert record.start_time.tzinfo is not None
        assert before <= record.start_time <= record.end_time <= after
    assert agent_record.start_time <= chat_record.start_time <= chat_record.end_time <= agent_record.end_time
    assert (agent_record.kind, agent_record.status, agent_record.status_message) == ("internal", "ok", None)
    assert (chat_record.kind, chat_record.status, chat_record.status_message) == (
        "client",
        "error",
        "HTTP 503",
    )
    assert chat_record.run_id == agent_record.run_id == "run-1"
    exception, retry = chat_record.events
    assert isinstance(exception, SpanEvent)
    assert exception.name == "exception"
    assert retry == SpanEvent("retry", retry.time, {"keel.retry.delay_s": 1.5})
    assert chat_record.start_time <= exception.time <= retry.time <= chat_record.end_time


def test_records_hold_plain_json_values() -> None:
    tracing, sink = make_tracing()
    with chat_span(tracing, provider="openai", model="x") as chat:
        chat.ok(1, 2, "x", ["stop", "length"])
    record = sink.one("chat x")
    assert record.attributes["gen_ai.response.finish_reasons"] == ["stop", "length"]
    assert isinstance(record.attributes["gen_ai.response.finish_reasons"], list)


def test_records_the_sink_refuses_are_counted_as_dropped() -> None:
    sink = Collector(accept=False)
    tracing, _ = make_tracing(sink=sink)
    with (
        agent_span(tracing, agent="a", run_id="r", model="m"),
        tool_span(tracing, name="t", call_id="c") as tool,
    ):
        tool.ok(None)
    assert len(sink.records) == 2
    assert tracing.dropped == 2
    assert tracing.sink_errors == 0


def test_a_sink_that_raises_never_breaks_the_run_and_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def broken(record: SpanRecord) -> bool:
        calls.append(record.name)
        raise OSError("disk full")

    tracing, _ = make_tracing(sink=broken)
    with caplog.at_level(logging.WARNING, logger="keel.tracing"):
        for _ in range(3):
            with agent_span(tracing, agent="a", run_id="r", model="m") as run:
                with chat_span(tracing, provider="openai", model="x") as chat:
                    chat.ok(1, 1)
                run.finish("succeeded")
    assert len(calls) == 6
    assert tracing.dropped == 6
    assert tracing.sink_errors == 6
    warnings = [r for r in caplog.records if r.name == "keel.tracing"]
    assert len(warnings) == 1
    assert "sink raised" in warnings[0].getMessage()


def test_no_sink_is_fine() -> None:
    tracing = Tracing.create(TracingConfig(), environ={})
    with agent_span(tracing, agent="a", run_id="r", model="m") as run:
        run.finish("succeeded")
    assert run.trace_id is not None
    assert tracing.dropped == 0


def test_the_global_tracer_provider_is_never_touched() -> None:
    before = trace.get_tracer_provider()
    first, first_sink = make_tracing()
    second, second_sink = make_tracing("on")
    with agent_span(first, agent="one", run_id="r1", model="m"):
        pass
    with agent_span(second, agent="two", run_id="r2", model="m"):
        pass
    first.shutdown()
    second.shutdown()
    assert trace.get_tracer_provider() is before
    assert first.provider is None and second.provider is None
    # Each runner's spans went to its own sink only.
    assert [r.name for r in first_sink.records] == ["invoke_agent one"]
    assert [r.name for r in second_sink.records] == ["invoke_agent two"]


def test_the_resource_names_the_service() -> None:
    tracing, _ = make_tracing()
    assert tracing.provider is not None
    assert tracing.provider.resource.attributes["service.name"] == "keel-test"


def test_after_shutdown_nothing_is_recorded() -> None:
    tracing, sink = make_tracing()
    assert tracing.shutdown() is True
    assert tracing.shutdown() is True  # idempotent
    assert tracing.force_flush() is True
    with agent_span(tracing, agent="a", run_id="r", model="m") as run:
        run.finish("succeeded")
    assert sink.records == []
    assert run.trace_id is None


def test_disabled_tracing_is_a_no_op() -> None:
    sink = Collector()
    tracing = Tracing.create(TracingConfig(enabled=False, capture_content="on"), sink=sink, environ={})
    assert tracing.enabled is False
    assert tracing.provider is None
    with agent_span(tracing, agent="a", run_id="r", model="m", input="secret stuff") as run:
        with chat_span(tracing, provider="openai", model="x", messages=["hi"]) as chat:
            chat.failed("model_timeout", "slow", retry_in=1.0)
        with tool_span(tracing, name="t", call_id="c", args={"a": 1}) as tool:
            tool.ok("result")
        run.event("fallback", to_model="b")
        run.finish("succeeded", output="out")
        assert not trace.get_current_span().get_span_context().is_valid
    assert run.trace_id is None and run.span_id is None and run.span is None
    assert sink.records == []
    assert tracing.dropped == 0
    assert tracing.force_flush() is True
    assert tracing.shutdown() is True


def test_disabled_handles_are_shared_and_safe_to_reuse() -> None:
    tracing = Tracing.disabled()
    first = agent_span(tracing, agent="a", run_id="r1", model="m")
    second = agent_span(tracing, agent="b", run_id="r2", model="m")
    assert first is second
    with first, second:
        first.finish("succeeded")
        second.finish("failed", "internal", "x")
    with pytest.raises(ValueError, match="boom"), tool_span(tracing, name="t", call_id="c"):
        raise ValueError("boom")


def test_otel_sdk_disabled_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    tracing, sink = make_tracing()
    assert tracing.enabled is False
    with agent_span(tracing, agent="a", run_id="r", model="m") as run:
        run.finish("succeeded")
    assert sink.records == [] and run.trace_id is None


def test_leaving_a_handle_twice_is_harmless() -> None:
    tracing, sink = make_tracing()
    handle = tool_span(tracing, name="t", call_id="c")
    with handle:
        pass
    handle.__exit__(None, None, None)
    with handle:  # a used handle does not start a second span
        pass
    assert len(sink.records) == 1
    assert not trace.get_current_span().get_span_context().is_valid
