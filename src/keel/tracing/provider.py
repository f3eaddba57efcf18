"""`Tracing`: one OpenTelemetry `TracerProvider` per `Runner`, never the global one.

Several runners may live in one process (tests, the API server with several projects), each with
its own configuration, sink and exporter, so Keel builds its own provider and never calls
`opentelemetry.trace.set_tracer_provider`. The provider has:

- `RecordProcessor`: each finished span becomes a `SpanRecord` for the store's sink;
- when `tracing.otlp` is set, a `BatchSpanProcessor` exporting over OTLP/HTTP (protobuf), with
  headers read from the environment variables named in `headers_env`.

`enabled: false` gives a disabled `Tracing`: its tracer is a no-op and the span helpers return
shared do-nothing handles.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import NoOpTracer, Tracer

from keel.config.schema import OtlpConfig, TracingConfig
from keel.errors import UsageError
from keel.tracing import logs, semconv
from keel.tracing.content import DEFAULT_MAX_CHARS, ContentCapture
from keel.tracing.sink import RecordProcessor, SpanSink

# Environment variables that commonly hold provider keys; their values are masked in spans even
# when the caller names none.
WELL_KNOWN_SECRET_ENV_VARS: tuple[str, ...] = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_OPENAI_API_KEY",
    "MISTRAL_API_KEY",
    "GROQ_API_KEY",
    "LANGFUSE_SECRET_KEY",
)

INSTRUMENTATION_SCOPE = "keel"


class Tracing:
    """The tracing of one runner: provider, tracer, content policy and the sink's drop counters.

    Build with `Tracing.create(config, sink=...)`, or `Tracing.disabled()`. Pass it to the span
    helpers (`agent_span`, `chat_span`, `tool_span`). `shutdown()` when the runner closes, to send
    the spans still batched for OTLP.
    """

    def __init__(
        self,
        *,
        tracer: Tracer,
        capture: ContentCapture,
        provider: TracerProvider | None = None,
        records: RecordProcessor | None = None,
        exporting: bool = False,
    ) -> None:
        self.tracer = tracer
        self.capture = capture
        self.provider = provider
        self.enabled = provider is not None
        self._records = records
        self._exporting = exporting

    @classmethod
    def create(
        cls,
        config: TracingConfig,
        *,
        sink: SpanSink | None = None,
        environ: Mapping[str, str] | None = None,
        secret_env_vars: Iterable[str] = (),
        max_content_chars: int = DEFAULT_MAX_CHARS,
    ) -> Tracing:
        """Tracing per `config`.

        `sink` receives a `SpanRecord` for each finished span (it must not block; False means the
        record was dropped). `environ` (default `os.environ`) is where OTLP header variables and
        the values of `secret_env_vars` are read; those values, and those of
        `WELL_KNOWN_SECRET_ENV_VARS` and the OTLP header variables, are masked in every span.
        Raises `UsageError` when an OTLP header's environment variable is not set.
        """
        env = os.environ if environ is None else environ
        names = [*WELL_KNOWN_SECRET_ENV_VARS, *secret_env_vars]
        if not config.enabled:  # no spans, but Keel's logs are still masked (secrets only)
            return cls._disabled_with(ContentCapture("off", secret_values=[env.get(n) for n in names]))
        headers = _otlp_headers(config.otlp, env) if config.otlp is not None else {}
        if config.otlp is not None:
            names.extend(config.otlp.headers_env.values())
        capture = ContentCapture(
            config.capture_content,
            max_chars=max_content_chars,
            secret_values=[env.get(name) for name in names] + list(headers.values()),
        )
        logs.install(capture)  # Keel's log records are masked as this capture masks content
        provider = TracerProvider(
            sampler=ALWAYS_ON,
            resource=Resource.create({semconv.SERVICE_NAME: config.service_name}),
            shutdown_on_exit=config.otlp is not None,  # flush the OTLP batch at exit
            meter_provider=NoOpMeterProvider(),
        )
        records = RecordProcessor(sink)
        provider.add_span_processor(records)
        if config.otlp is not None:
            exporter = OTLPSpanExporter(
                endpoint=config.otlp.endpoint,
                headers=headers,
                timeout=config.otlp.timeout,
                meter_provider=NoOpMeterProvider(),
            )
            provider.add_span_processor(BatchSpanProcessor(exporter, meter_provider=NoOpMeterProvider()))
        tracer = provider.get_tracer(INSTRUMENTATION_SCOPE, _keel_version())
        if isinstance(tracer, NoOpTracer):  # OTEL_SDK_DISABLED=true: honour it, at no cost
            provider.shutdown()
            return cls._disabled_with(capture)
        return cls(
            tracer=tracer,
            capture=capture,
            provider=provider,
            records=records,
            exporting=config.otlp is not None,
        )

    @classmethod
    def disabled(cls) -> Tracing:
        """Tracing that records nothing: spans cost a function call."""
        return cls(tracer=NoOpTracer(), capture=ContentCapture("off"))

    @classmethod
    def _disabled_with(cls, capture: ContentCapture) -> Tracing:
        """Disabled tracing whose `capture` still decides how Keel's log records are masked."""
        logs.install(capture)
        return cls(tracer=NoOpTracer(), capture=capture)

    @property
    def dropped(self) -> int:
        """Span records the sink refused (returned False) or failed on (raised)."""
        return self._records.dropped if self._records is not None else 0

    @property
    def sink_errors(self) -> int:
        """Span records lost because the sink raised (also counted in `dropped`)."""
        return self._records.sink_errors if self._records is not None else 0

    def force_flush(self, timeout: float = 5.0) -> bool:
        """Export the spans batched for OTLP; False when that did not finish within `timeout`
        seconds. Blocking: from async code, call it through `asyncio.to_thread`."""
        provider = self.provider
        if provider is None or not self._exporting:
            return True
        return _within(timeout, lambda: provider.force_flush(int(timeout * 1000)))

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Flush and stop: later spans are not recorded. Idempotent. Blocking like `force_flush`."""
        provider, self.provider = self.provider, None
        if provider is None:
            return True
        self.enabled = False
        self.tracer = NoOpTracer()

        def stop() -> bool:
            provider.shutdown()
            return True

        return _within(timeout, stop) if self._exporting else stop()


def _otlp_headers(otlp: OtlpConfig, env: Mapping[str, str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    missing = [var for var in otlp.headers_env.values() if not env.get(var)]
    if missing:
        names = ", ".join(sorted(set(missing)))
        raise UsageError(
            f"tracing.otlp.headers_env needs the environment variable{'s' if len(missing) > 1 else ''} "
            f"{names}: set {'them' if len(missing) > 1 else 'it'}, or remove the header from keel.yaml"
        )
    for header, var in otlp.headers_env.items():
        headers[header] = env[var]
    return headers


def _within(timeout: float, work: Callable[[], bool]) -> bool:
    """Run `work` in a daemon thread and wait at most `timeout` seconds for it (the SDK's flush
    and shutdown do not honour their own timeouts while an export is retrying)."""
    outcome: list[bool] = []

    def run() -> None:
        outcome.append(bool(work()))

    thread = threading.Thread(target=run, name="keel-tracing-flush", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(outcome and outcome[0])


def _keel_version() -> str:
    try:
        from importlib.metadata import version

        return version("keel")
    except Exception:  # not installed as a distribution (a source checkout on sys.path)
        return "0"
