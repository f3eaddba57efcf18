"""A real OTLP/HTTP trace receiver on loopback, for tests: what did the collector get?

    with OtlpReceiver() as receiver:
        config = TracingConfig(otlp=OtlpConfig(endpoint=receiver.endpoint))
        ...  # run, then tracing.force_flush()
        spans = receiver.wait_for(4, timeout=5)
        assert receiver.requests[0].headers["authorization"] == "Bearer test"

A stdlib `ThreadingHTTPServer` in a daemon thread accepts `POST /v1/traces` with
`application/x-protobuf` (what `opentelemetry-exporter-otlp-proto-http` sends) or
`application/json` (OTLP/JSON, ids in hex), gzip- or deflate-encoded or not, decodes the
`ExportTraceServiceRequest`, and keeps each span as a `ReceivedSpan` with plain Python values.
`status` makes it answer with another HTTP status (e.g. 503) to test export failures.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

__all__ = ["OtlpReceiver", "ReceivedEvent", "ReceivedRequest", "ReceivedSpan", "decode_request"]

TRACES_PATH = "/v1/traces"
_KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUSES = {
    Status.STATUS_CODE_UNSET: "unset",
    Status.STATUS_CODE_OK: "ok",
    Status.STATUS_CODE_ERROR: "error",
}


@dataclass(frozen=True)
class ReceivedEvent:
    name: str
    time_unix_nano: int
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the collector got it; ids in hex, attributes as Python values."""

    name: str
    trace_id: str  # 32 hex characters
    span_id: str  # 16 hex characters
    parent_span_id: str | None
    kind: str  # internal | server | client | producer | consumer | unspecified
    start_time_unix_nano: int
    end_time_unix_nano: int
    attributes: dict[str, Any]
    events: tuple[ReceivedEvent, ...]
    status: str  # unset | ok | error
    status_message: str
    resource: dict[str, Any]
    scope: str

    def event(self, name: str) -> ReceivedEvent:
        """The first event named `name` (KeyError if none)."""
        for event in self.events:
            if event.name == name:
                return event
        raise KeyError(f"span {self.name!r} has no event {name!r}: {[e.name for e in self.events]}")


@dataclass(frozen=True)
class ReceivedRequest:
    """One export request: its headers (names lower-cased), content type and span count."""

    path: str
    headers: dict[str, str]
    content_type: str
    spans: int


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    pair: KeyValue
    for pair in pairs:
        out[pair.key] = _value(pair.value)
    return out


def _span(span: Span, resource: dict[str, Any], scope: str) -> ReceivedSpan:
    return ReceivedSpan(
        name=span.name,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex() or None,
        kind=_KINDS.get(span.kind, str(span.kind)),
        start_time_unix_nano=span.start_time_unix_nano,
        end_time_unix_nano=span.end_time_unix_nano,
        attributes=_attributes(span.attributes),
        events=tuple(
            ReceivedEvent(event.name, event.time_unix_nano, _attributes(event.attributes))
            for event in span.events
        ),
        status=_STATUSES.get(span.status.code, "unset"),
        status_message=span.status.message,
        resource=resource,
        scope=scope,
    )


def decode_request(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    """Every span of an export request, with its resource's attributes and its scope's name."""
    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            spans.extend(_span(span, resource, scope_spans.scope.name) for span in scope_spans.spans)
    return spans


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON writes trace and span ids in hex; protobuf's JSON mapping wants base64."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                out[key] = base64.b64encode(bytes.fromhex(value)).decode()
            else:
                out[key] = _hex_ids_to_base64(value)
        return out
    if isinstance(node, list):
        return [_hex_ids_to_base64(item) for item in node]
    return node


def _parse(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    if content_type == "application/json":
        from google.protobuf import json_format  # type: ignore[import-untyped,unused-ignore]

        json_format.ParseDict(_hex_ids_to_base64(json.loads(body)), request, ignore_unknown_fields=True)
    else:
        request.ParseFromString(body)
    return request


class OtlpReceiver:
    """An OTLP/HTTP trace collector on 127.0.0.1 that remembers what it received."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, status: int = 200) -> None:
        self.status = status
        self._host, self._port = host, port
        self._spans: list[ReceivedSpan] = []
        self._requests: list[ReceivedRequest] = []
        self._changed = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> OtlpReceiver:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((self._host, self._port), _handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="otlp-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- where -----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The server's base URL, e.g. http://127.0.0.1:43117 (what OTEL_EXPORTER_OTLP_ENDPOINT takes)."""
        if self._server is None:
            raise RuntimeError("the receiver is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def endpoint(self) -> str:
        """The traces endpoint, e.g. http://127.0.0.1:43117/v1/traces (what `tracing.otlp.endpoint` takes)."""
        return self.url + TRACES_PATH

    # -- what was received -----------------------------------------------------------------------
    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._changed:
            return list(self._spans)

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._changed:
            return list(self._requests)

    def named(self, name: str) -> list[ReceivedSpan]:
        """The received spans called `name`, in arrival order."""
        return [span for span in self.spans if span.name == name]

    def clear(self) -> None:
        with self._changed:
            self._spans.clear()
            self._requests.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedSpan]:
        """Wait until at least `count` spans arrived; return them all. TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._spans) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    names = [span.name for span in self._spans]
                    raise TimeoutError(
                        f"expected {count} spans within {timeout:g}s, received {len(names)}: {names}"
                    )
                self._changed.wait(left)
            return list(self._spans)

    def _record(self, request: ReceivedRequest, spans: list[ReceivedSpan]) -> None:
        with self._changed:
            self._requests.append(request)
            self._spans.extend(spans)
            self._changed.notify_all()


def _handler(receiver: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if self.path.split("?", 1)[0] != TRACES_PATH:
                self._reply(404, b"not found", "text/plain")
                return
            content_type = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            if content_type not in ("application/x-protobuf", "application/json"):
                self._reply(415, b"unsupported content type", "text/plain")
                return
            try:
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                spans = decode_request(_parse(body, content_type))
            except Exception as exc:  # a malformed request is the client's problem: answer 400
                self._reply(400, f"cannot decode: {exc}".encode(), "text/plain")
                return
            headers = {name.lower(): value for name, value in self.headers.items()}
            receiver._record(ReceivedRequest(self.path, headers, content_type, len(spans)), spans)
            if receiver.status != 200:
                self._reply(receiver.status, b"", "text/plain")
            elif content_type == "application/json":
                self._reply(200, b"{}", "application/json")
            else:
                self._reply(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the receiver
            pass

    return Handler
