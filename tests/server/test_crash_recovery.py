"""SIGKILL a real `keel serve` in the middle of 200 runs, three times; every run must complete,
and no model request or tool call that had been checkpointed may happen again.

What counts as "checkpointed" is read from DBOS's own tables right after each kill: that is
exactly what survived (see tests/server/crash.py, shared with `python -m bench.server_crash`).
"""

from __future__ import annotations

from pathlib import Path

from tests.server.crash import run_crash_scenario

RUNS = 200


def test_sigkill_three_times_during_200_runs(tmp_path: Path, database_url: str) -> None:
    report = run_crash_scenario(tmp_path, database_url, runs=RUNS, kill_after=(1.0, 2.2, 1.2))
    assert report.unfinished == 0, f"{report.unfinished} runs did not finish:\n{report.server_tail}"
    assert report.statuses == {"succeeded": RUNS}
    assert report.repeated == []
    # A run under way at a kill keeps its start (and so its timeout budget) through the recovery.
    assert report.restarted_starts == []
    # Every run made each of its two requests and its tool call at least once.
    assert report.missing == []
    # The events of every completed tool step were stored (in Keel's table) before the step was.
    assert report.lost_events == []
    # Re-submitting with the same key returns the same run and runs nothing again.
    assert report.replay_same_run and report.replay_new_requests == 0
    # The check above means something only if the kills landed after some checkpoints.
    assert sum(1 for n in report.runs_checkpointed_at_kill if n) >= 2, report.runs_checkpointed_at_kill
