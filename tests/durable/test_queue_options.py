"""Every valid `queue:` configuration gives queue options that DBOS accepts, and they mean what the
configuration says (a bug once made `max_concurrent_runs` below `worker_concurrency` crash
`keel serve` at start-up: DBOS refuses a per-worker limit above the global one)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from dbos._queue import Queue

from keel.config.schema import QueueConfig
from keel.durable.queues import queue_settings

GRID = [
    {
        "max_concurrent_runs": limit,
        "worker_concurrency": worker,
        "fairness": fairness,
        "max_concurrent_per_group": group,
    }
    for limit, worker, fairness, group in itertools.product(
        [None, 1, 3, 50, 200], [1, 3, 50], ["user", "tenant", "none"], [None, 1, 2, 3, 60]
    )
    if group is None or limit is None or group <= limit
]


class _Spec:
    """The two attributes of an AgentSpec that queue_settings reads."""

    def __init__(self, queue: QueueConfig) -> None:
        self.name = "agent"
        self.config = type("C", (), {"queue": queue})()


@pytest.mark.parametrize("raw", GRID, ids=lambda raw: "-".join(f"{v}" for v in raw.values()))
def test_dbos_accepts_the_options_and_they_keep_the_limits(raw: dict[str, Any]) -> None:
    config = QueueConfig.model_validate(raw)
    spec: Any = _Spec(config)
    options = queue_settings(spec, poll_interval=0.05).options
    Queue._validate_queue(name="keel.agent.agent", concurrency=None, limiter=None, **options)
    limit, worker, group = (
        raw["max_concurrent_runs"],
        raw["worker_concurrency"],
        raw["max_concurrent_per_group"],
    )
    assert options["global_concurrency"] == limit
    assert options["worker_concurrency"] == (worker if limit is None else min(worker, limit))
    if raw["fairness"] == "none":
        assert "partition_concurrency" not in options
    else:
        assert options["partition_concurrency"] == (group or limit)
        assert options["partition_worker_concurrency"] == min(options["worker_concurrency"], group or worker)
