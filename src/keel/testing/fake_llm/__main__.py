"""`python -m keel.testing.fake_llm`: run the fake OpenAI-compatible server in the foreground."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from keel.errors import ConfigError, UsageError
from keel.testing.fake_llm.faults import Faults, Outcome
from keel.testing.fake_llm.latency import Latency
from keel.testing.fake_llm.runners import DEFAULT_PORT, serve_forever


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m keel.testing.fake_llm",
        description="Keel's fake OpenAI-compatible LLM server (chat completions, JSON and SSE).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port, 0 for any (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--script",
        metavar="PATH",
        help="rules file (YAML or JSON), or a Python file defining script(request)",
    )
    parser.add_argument(
        "--latency-ms", metavar="SPEC", help="MS (fixed), MIN..MAX (uniform) or MEAN~STDDEV (normal)"
    )
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="delay between stream events")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests that fail, 0..1")
    parser.add_argument(
        "--faults", metavar="WEIGHTS", default="", help="fault kinds and weights, e.g. 429=1,500=1,reset=0.5"
    )
    parser.add_argument(
        "--fault-sequence",
        metavar="OUTCOMES",
        default="",
        help="outcomes of the first requests, e.g. 429,429,ok",
    )
    parser.add_argument(
        "--retry-after",
        metavar="SECONDS",
        default="1",
        help="Retry-After of a 429, may be fractional; 'none' omits it",
    )
    parser.add_argument("--retry-after-ms", action="store_true", help="also send the retry-after-ms header")
    parser.add_argument("--hang-seconds", type=float, default=30.0, help="how long a 'hang' fault lasts")
    parser.add_argument("--seed", type=int, default=0, help="seed of fault draws and latency samples")
    return parser


def faults_from_args(args: argparse.Namespace) -> Faults:
    """The `Faults` the command-line options describe. Raises UsageError."""
    retry_after: float | None = None
    if args.retry_after.strip().lower() != "none":
        try:
            retry_after = float(args.retry_after)
        except ValueError:
            raise UsageError(
                f"--retry-after must be a number of seconds or 'none', not {args.retry_after!r}"
            ) from None
    sequence: list[Outcome | str] = [item.strip() for item in args.fault_sequence.split(",") if item.strip()]
    try:
        return Faults.model_validate(
            {
                "rate": args.fault_rate,
                "kinds": Faults.parse_weights(args.faults),
                "sequence": sequence,
                "retry_after": retry_after,
                "retry_after_ms_header": args.retry_after_ms,
                "hang_seconds": args.hang_seconds,
            }
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise UsageError(f"invalid fault options: {problems}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        latency = None
        if args.latency_ms is not None or args.chunk_delay_ms:
            latency = Latency.parse(args.latency_ms or "0", chunk_ms=args.chunk_delay_ms)
        faults = faults_from_args(args)
        serve_forever(args.host, args.port, args.script, latency, faults, args.seed)
    except (ConfigError, UsageError) as exc:
        print(f"keel fake-llm: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"keel fake-llm: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
