"""Crash recovery under load: 200 runs in flight, the server SIGKILLed 3 times, on SQLite and Postgres.

The scenario is the SIGKILL test's (tests/server/crash.py): a real `keel serve` subprocess, the fake
provider in this process answering every model request after 1.5 s, a tool that appends its
idempotency key to a side file. After each kill, the completed steps are read from DBOS's tables;
at the end the provider's counters and the side file say whether any of them happened again.

Printed per backend: runs completed, completed model requests and tool calls repeated (target 0),
steps re-executed because they were in flight at a kill (allowed: at least once), the time each
restart took until /readyz answered, and the time from the last restart until every run had ended.

    python -m bench.server_crash [--runs 200] [--kills 3] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

from bench.common import machine_line, scratch_postgres
from bench.servers import POSTGRES_ADMIN


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server_crash", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the scenario lives in tests/
    from tests.server.crash import run_crash_scenario

    delays = [(1.0, 2.2, 1.2)[i % 3] for i in range(args.kills)]
    print(machine_line())
    print(f"{args.runs} runs, {args.kills} SIGKILLs after {delays} s, provider latency 1500 ms per request")
    failed = False
    for backend in args.backends.split(","):
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="keel-crash-"))
            url: str | None = f"sqlite:///{tmp}/keel.db"
            if backend == "postgres":
                url = stack.enter_context(scratch_postgres(POSTGRES_ADMIN))
            if url is None:
                continue
            report = run_crash_scenario(Path(tmp), url, runs=args.runs, kill_after=delays)
        models, tools = report.reexecuted
        replay_ok = report.replay_same_run and report.replay_new_requests == 0
        ok = report.succeeded == args.runs and not report.repeated and not report.missing and replay_ok
        failed |= not ok
        print(
            f"{backend:8} completed {report.succeeded}/{args.runs} "
            f"({dict(report.statuses)}, unfinished {report.unfinished}); "
            f"repeated after checkpoint: {len(report.repeated)}; "
            f"re-executed in flight: {models} model requests, {tools} tool calls; "
            f"runs checkpointed at each kill: {report.runs_checkpointed_at_kill}; "
            f"restart to ready: {', '.join(f'{s:.1f}' for s in report.restart_s)} s; "
            f"last restart to all done: {report.drain_s:.1f} s; "
            f"idempotent replay: {'same run, 0 requests' if replay_ok else 'FAILED'}"
        )
        for line in report.repeated[:10]:
            print(f"  repeated: {line}")
    print(machine_line())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
