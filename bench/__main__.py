"""Run every benchmark in turn: `python -m bench` (or `make bench`)."""

from __future__ import annotations

import sys

from bench import (
    gateway,
    guardrails,
    history_overhead,
    injection,
    loop_overhead,
    online_evals,
    pii,
    server_crash,
    server_inflight,
    server_throughput,
    store_writer,
    tracing_overhead,
)


def main() -> int:
    failures = 0
    for name, bench in [
        ("loop_overhead", loop_overhead.main),
        ("history_overhead", history_overhead.main),
        ("tracing_overhead", tracing_overhead.main),
        ("store_writer", store_writer.main),
        ("gateway", gateway.main),
        ("online_evals", online_evals.main),
        ("pii", pii.main),
        ("injection", injection.main),
        ("guardrails", guardrails.main),
        ("server_throughput", server_throughput.main),
        ("server_inflight", server_inflight.main),
        ("server_crash", server_crash.main),
    ]:
        print(f"== {name}")
        failures += bench([]) != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
