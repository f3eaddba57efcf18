"""Cost of Keel's span helpers per run: one agent span, two chat spans (the first fails and is
retried), one tool span, with the SpanRecord conversion and a no-op sink.

The payloads are those of a small real run: pydantic-ai messages (instructions, a user prompt, a
tool call and its result, about 1.5 KB in all), a dict tool argument and result, fresh for every
run. Measured for the bare OpenTelemetry SDK making the same spans (the floor), tracing disabled,
and each capture mode, in alternating blocks; reported as microseconds per run (median block,
and the best block), plus the time to mask a 2 KB string.

    python -m bench.tracing_overhead [--runs 6000] [--block 100]

Target: well under 300 µs per run with capture off and on.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable

from bench.common import machine_line


def payloads(count: int) -> list[tuple[object, ...]]:
    """Fresh messages for `count` runs, as real runs make them: new objects and new text
    (ContentCapture caches masked strings and each message's masked JSON, so reusing them across
    runs would flatter it)."""
    from pydantic_ai.messages import (
        ModelRequest,
        ModelResponse,
        TextPart,
        ToolCallPart,
        ToolReturnPart,
        UserPromptPart,
    )

    out: list[tuple[object, ...]] = []
    for index in range(count):
        unique = f"{time.perf_counter_ns()}-{index}"
        prompt = (
            f"Please look up the order 1234 for customer Jane Doe ({unique}) and tell me when it ships. " * 3
        )
        instructions = f"You are a helpful support agent ({unique}). " * 10
        first = [ModelRequest(parts=[UserPromptPart(prompt)], instructions=instructions)]
        call = ToolCallPart("lookup_order", {"order_id": 1234}, tool_call_id="call_1")
        result = {
            "order_id": 1234,
            "status": f"packed {unique}",
            "ships": "2025-06-02",
            "items": ["lamp", "chair"],
        }
        second = [
            *first,
            ModelResponse(parts=[call], model_name="gpt-4o-mini"),
            ModelRequest(parts=[ToolReturnPart("lookup_order", result, tool_call_id="call_1")]),
        ]
        answer = ModelResponse(
            parts=[TextPart(f"Your order 1234 ships on 2 June ({unique}).")], model_name="gpt-4o-mini"
        )
        out.append((prompt, first, result, second, answer, f"Your order 1234 ships on 2 June ({unique})."))
    return out


def bare_sdk() -> Callable[[tuple[object, ...]], None]:
    """The same four spans (same attribute and event counts) made with the OpenTelemetry SDK
    directly, without Keel's helpers, content policy or SpanRecord conversion: the floor."""
    from opentelemetry import context, trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON
    from opentelemetry.trace import Status, StatusCode

    tracer = TracerProvider(sampler=ALWAYS_ON, shutdown_on_exit=False).get_tracer("bench")
    ok, error = Status(StatusCode.OK), Status(StatusCode.ERROR, "rate limited")

    def span(name: str, count: int) -> tuple[trace.Span, object]:
        created = tracer.start_span(name, attributes={f"a{i}": "value" for i in range(count)})
        return created, context.attach(trace.set_span_in_context(created))

    def run(payload: tuple[object, ...]) -> None:
        agent, agent_token = span("invoke_agent support", 5)
        chat, token = span("chat gpt-4o-mini", 7)
        chat.set_attribute("error.type", "model_rate_limited")
        chat.set_status(error)
        chat.add_event("exception", {"exception.type": "x", "exception.message": "y"})
        chat.add_event("retry", {"keel.retry.delay_s": 0.5})
        context.detach(token)
        chat.end()
        tool, token = span("execute_tool lookup_order", 6)
        tool.set_attributes({"a": "ok", "b": 1, "c": 80})
        tool.set_status(ok)
        context.detach(token)
        tool.end()
        chat, token = span("chat gpt-4o-mini", 7)
        chat.set_attributes({"a": 1, "b": 2, "c": "model", "d": ["stop"]})
        chat.set_status(ok)
        context.detach(token)
        chat.end()
        agent.set_attributes({"a": "succeeded", "b": 1, "c": 2, "d": 3, "e": 0.1})
        agent.set_status(ok)
        context.detach(agent_token)
        agent.end()

    return run


def build(mode: str) -> Callable[[tuple[object, ...]], None]:
    from keel.config.schema import TracingConfig
    from keel.tracing import Tracing, agent_span, chat_span, tool_span

    if mode == "bare SDK":
        return bare_sdk()
    config = TracingConfig(enabled=False) if mode == "disabled" else TracingConfig(capture_content=mode)  # type: ignore[arg-type]
    tracing = Tracing.create(config, sink=lambda record: True, environ={"OPENAI_API_KEY": "sk-" + "x" * 40})

    def run(payload: tuple[object, ...]) -> None:
        prompt, first, result, second, answer, output = payload
        with agent_span(
            tracing,
            agent="support",
            run_id="run-1",
            model="openai:gpt-4o-mini",
            conversation_id=None,
            input=prompt,
        ) as agent:
            with chat_span(
                tracing, provider="openai", model="gpt-4o-mini", attempt=1, streamed=False, messages=first
            ) as chat:
                chat.failed("model_rate_limited", "model 'gpt-4o-mini' rate limited (HTTP 429)", retry_in=0.5)
            with tool_span(tracing, name="lookup_order", call_id="call_1", args={"order_id": 1234}) as tool:
                tool.ok(result, attempts=1)
            with chat_span(
                tracing, provider="openai", model="gpt-4o-mini", attempt=2, streamed=False, messages=second
            ) as chat:
                chat.ok(310, 12, "gpt-4o-mini-2024-07-18", ["stop"], answer)
            agent.finish("succeeded", None, None, output, 310, 12, 0.0001)

    return run


def redaction_us(repeat: int = 2000) -> list[float]:
    """Microseconds to mask 2 KB as capture `redacted` does (`redact_all`: the PII detector) and
    as every mode does (`redact_secrets`), on text with personal data and secrets, and on prose."""
    from keel.tracing.redact import redact_all, redact_secrets

    text = (
        "Hello, I am Jane (jane.doe@example.com, +44 20 7946 0958). My card is 4111 1111 1111 1111 and my "
        "IBAN DE89 3704 0044 0532 0130 00; the server at 10.1.2.3 uses key sk-abcdefghijklmnopqrstuvwx. "
    )
    text = (text * (2048 // len(text) + 1))[:2048]
    plain = ("The quick brown fox jumps over the lazy dog near the river bank. " * 40)[:2048]
    values = ("a-secret-env-value-123",)
    out = []
    for mask in (redact_all, redact_secrets):
        for sample in (text, plain):  # uncached: ContentCapture.scrub caches recent strings
            start = time.perf_counter()
            for _ in range(repeat):
                mask(sample, values)
            out.append((time.perf_counter() - start) / repeat * 1e6)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=6000, help="measured runs per mode")
    parser.add_argument("--block", type=int, default=100, help="runs per alternating block")
    args = parser.parse_args(argv)
    modes = ["bare SDK", "disabled", "off", "on", "redacted"]
    runs = {mode: build(mode) for mode in modes}
    for run in runs.values():  # warm up (imports, caches)
        for payload in payloads(200):
            run(payload)
    blocks: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(max(1, args.runs // args.block)):
        for mode in modes:
            run = runs[mode]
            fresh = payloads(args.block)
            gc.collect()
            start = time.perf_counter()
            for payload in fresh:
                run(payload)
            blocks[mode].append((time.perf_counter() - start) / args.block * 1e6)
    print(machine_line())
    print("per run: 1 agent span + 2 chat spans (1 failed, retried) + 1 tool span, no-op sink")
    print("  (bare SDK: the same spans made with the OpenTelemetry SDK alone, no Keel code: the floor)")
    for mode in modes:
        print(
            f"  {mode:9} median {statistics.median(blocks[mode]):7.1f} µs/run   best {min(blocks[mode]):7.1f} µs/run"
        )
    pii, plain, secrets_pii, secrets_plain = redaction_us()
    print(
        f"masking 2 KB, redacted mode (redact_all): {pii:.1f} µs with PII/secrets, {plain:.1f} µs plain text"
    )
    print(
        f"masking 2 KB, every mode (redact_secrets): {secrets_pii:.1f} µs with PII/secrets, {secrets_plain:.1f} µs plain text"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
