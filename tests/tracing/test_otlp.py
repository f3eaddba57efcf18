"""OTLP/HTTP export to the real receiver over loopback, and the receiver itself."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from keel.config.schema import OtlpConfig, TracingConfig
from keel.errors import UsageError
from keel.testing.otlp_receiver import OtlpReceiver
from keel.tracing import Tracing, agent_span, chat_span, tool_span
from tests.tracing.helpers import make_tracing


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


def test_spans_reach_the_collector_with_headers_from_the_environment(receiver: OtlpReceiver) -> None:
    otlp = OtlpConfig(
        endpoint=receiver.endpoint,
        headers_env={"Authorization": "COLLECTOR_AUTH", "x-tenant": "COLLECTOR_TENANT"},
        timeout=5,
    )
    environ = {"COLLECTOR_AUTH": "Bearer test-token-123", "COLLECTOR_TENANT": "acme"}
    tracing, sink = make_tracing(otlp=otlp, environ=environ)
    with agent_span(tracing, agent="inbox", run_id="run-7", model="openai:gpt-4o-mini", input="hi") as run:
        with chat_span(tracing, provider="openai", model="gpt-4o-mini", attempt=1, streamed=True) as chat:
            chat.failed("model_rate_limited", "HTTP 429", retry_in=0.5)
        with chat_span(tracing, provider="openai", model="gpt-4o-mini", attempt=2) as chat:
            chat.ok(10, 2, "gpt-4o-mini-2024-07-18", ["stop"])
        with tool_span(tracing, name="lookup", call_id="call_1", args={"id": 1}) as tool:
            tool.ok({"ok": True}, attempts=1)
        run.finish("succeeded", output="done", input_tokens=10, output_tokens=2, cost_usd=0.001)
    assert tracing.force_flush(timeout=5)
    spans = receiver.wait_for(4, timeout=5)
    tracing.shutdown()

    request = receiver.requests[0]
    assert request.content_type == "application/x-protobuf"
    assert request.headers["authorization"] == "Bearer test-token-123"
    assert request.headers["x-tenant"] == "acme"

    by_name = {span.name: span for span in spans if span.name != "chat gpt-4o-mini"}
    agent = by_name["invoke_agent inbox"]
    tool_record = by_name["execute_tool lookup"]
    failed, ok = receiver.named("chat gpt-4o-mini")
    assert agent.trace_id == run.trace_id and agent.span_id == run.span_id
    assert agent.parent_span_id is None
    assert {failed.parent_span_id, ok.parent_span_id, tool_record.parent_span_id} == {agent.span_id}
    assert {span.trace_id for span in spans} == {run.trace_id}
    assert agent.resource["service.name"] == "keel-test"
    assert agent.scope == "keel"
    assert agent.kind == "internal" and failed.kind == "client"
    assert agent.status == "ok"
    assert agent.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert agent.attributes["gen_ai.usage.input_tokens"] == 10
    assert agent.attributes["keel.cost.usd"] == pytest.approx(0.001)
    assert agent.attributes["keel.run.id"] == "run-7"
    assert failed.status == "error" and failed.status_message == "HTTP 429"
    assert failed.attributes["error.type"] == "model_rate_limited"
    assert failed.attributes["gen_ai.request.stream"] is True
    assert failed.event("retry").attributes == {"keel.retry.delay_s": 0.5}
    assert failed.event("exception").attributes["exception.type"] == "model_rate_limited"
    assert ok.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert tool_record.attributes["gen_ai.tool.call.id"] == "call_1"
    # The store's sink got the same spans.
    assert sorted(r.span_id for r in sink.records) == sorted(span.span_id for span in spans)


def test_a_missing_header_variable_is_a_clear_error_naming_it_not_its_neighbours_values() -> None:
    otlp = OtlpConfig(
        endpoint="http://127.0.0.1:4318/v1/traces",
        headers_env={"Authorization": "PRESENT_VAR", "x-key": "MISSING_VAR"},
    )
    with pytest.raises(UsageError) as caught:
        Tracing.create(TracingConfig(otlp=otlp), environ={"PRESENT_VAR": "super-secret-value"})
    message = str(caught.value)
    assert "MISSING_VAR" in message
    assert "super-secret-value" not in message
    assert "PRESENT_VAR" not in message


def test_two_runners_export_to_their_own_collectors() -> None:
    with OtlpReceiver() as first_receiver, OtlpReceiver() as second_receiver:
        first, _ = make_tracing(otlp=OtlpConfig(endpoint=first_receiver.endpoint))
        second, _ = make_tracing(otlp=OtlpConfig(endpoint=second_receiver.endpoint))
        with agent_span(first, agent="one", run_id="r1", model="m"):
            pass
        with agent_span(second, agent="two", run_id="r2", model="m"):
            pass
        assert first.shutdown() and second.shutdown()
        assert [s.name for s in first_receiver.wait_for(1)] == ["invoke_agent one"]
        assert [s.name for s in second_receiver.wait_for(1)] == ["invoke_agent two"]


def test_a_failing_collector_does_not_disturb_the_run() -> None:
    with OtlpReceiver(status=400) as receiver:
        tracing, sink = make_tracing(otlp=OtlpConfig(endpoint=receiver.endpoint, timeout=1))
        with agent_span(tracing, agent="a", run_id="r", model="m") as run:
            run.finish("succeeded")
        tracing.shutdown(timeout=5)
        receiver.wait_for(1)  # the span arrived; the collector refused it
        assert len(receiver.requests) == 1  # 400 is not retried
    assert [r.name for r in sink.records] == ["invoke_agent a"]


def _post(url: str, body: bytes, content_type: str, encoding: str | None = None) -> int:
    headers = {"Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


OTLP_JSON = {
    "resourceSpans": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
            "scopeSpans": [
                {
                    "scope": {"name": "handmade"},
                    "spans": [
                        {
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": "eee19b7ec3c1b174",
                            "parentSpanId": "eee19b7ec3c1b173",
                            "name": "chat m",
                            "kind": 3,
                            "startTimeUnixNano": "1544712660000000000",
                            "endTimeUnixNano": "1544712661000000000",
                            "attributes": [
                                {"key": "n", "value": {"intValue": "3"}},
                                {"key": "f", "value": {"doubleValue": 0.5}},
                                {"key": "b", "value": {"boolValue": True}},
                                {"key": "l", "value": {"arrayValue": {"values": [{"stringValue": "x"}]}}},
                                {
                                    "key": "kv",
                                    "value": {
                                        "kvlistValue": {
                                            "values": [{"key": "k", "value": {"stringValue": "v"}}]
                                        }
                                    },
                                },
                            ],
                            "status": {"code": 2, "message": "boom"},
                        }
                    ],
                }
            ],
        }
    ]
}


def test_the_receiver_accepts_otlp_json(receiver: OtlpReceiver) -> None:
    assert _post(receiver.endpoint, json.dumps(OTLP_JSON).encode(), "application/json") == 200
    (span,) = receiver.wait_for(1)
    assert span.trace_id == "5b8efff798038103d269b633813fc60c"
    assert span.span_id == "eee19b7ec3c1b174"
    assert span.parent_span_id == "eee19b7ec3c1b173"
    assert span.kind == "client"
    assert span.attributes == {"n": 3, "f": 0.5, "b": True, "l": ["x"], "kv": {"k": "v"}}
    assert (span.status, span.status_message) == ("error", "boom")
    assert span.resource == {"service.name": "json-svc"}
    assert span.scope == "handmade"
    assert span.end_time_unix_nano - span.start_time_unix_nano == 1_000_000_000


def test_the_receiver_accepts_gzip_and_rejects_what_is_not_otlp(receiver: OtlpReceiver) -> None:
    body = ExportTraceServiceRequest().SerializeToString()
    assert _post(receiver.endpoint, gzip.compress(body), "application/x-protobuf", "gzip") == 200
    assert _post(receiver.url + "/v1/metrics", body, "application/x-protobuf") == 404
    assert _post(receiver.endpoint, body, "text/plain") == 415
    assert _post(receiver.endpoint, b"\xff\xff not protobuf", "application/x-protobuf") == 400
    assert len(receiver.requests) == 1
    receiver.clear()
    assert receiver.requests == [] and receiver.spans == []


def test_waiting_for_spans_that_never_come_times_out(receiver: OtlpReceiver) -> None:
    with pytest.raises(TimeoutError, match=r"expected 1 spans within 0\.05s, received 0"):
        receiver.wait_for(1, timeout=0.05)


def test_the_receiver_must_be_started_to_have_a_url() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = OtlpReceiver().endpoint
