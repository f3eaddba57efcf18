"""One DBOS queue per agent, built from the agent's `queue:` settings.

- `max_concurrent_runs` is the queue's global concurrency: DBOS claims queued runs on Postgres
  under REPEATABLE READ / SERIALIZABLE, so the limit holds across all worker processes.
- `worker_concurrency` is the per-process limit.
- Fairness: with `fairness: user` (default) or `tenant`, the queue is partitioned by the
  submitter's group. At every poll a worker visits the groups with queued runs in random order,
  so a group with 10,000 queued runs gets the same chance at a free slot as a group with one;
  `max_concurrent_per_group` caps what one group may hold at once.
- Priority: every run is enqueued with an explicit priority (DBOS runs "no priority" before
  any priority, so leaving it unset on some runs would let them jump the queue).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keel.config.project import AgentSpec
from keel.config.schema import QueueConfig

PREFIX = "keel.agent."


def queue_name(agent: str) -> str:
    return PREFIX + agent


def partition_key(config: QueueConfig, tenant_id: str | None, user_id: str | None) -> str | None:
    """The fairness group of a run, or None for an unpartitioned queue. Never None on a
    partitioned queue: a run enqueued there without a key would wait forever."""
    if config.fairness == "none":
        return None
    tenant = tenant_id or "-"
    if config.fairness == "tenant":
        return tenant
    return f"{tenant}/{user_id or '-'}"


@dataclass(frozen=True)
class QueueSettings:
    name: str
    options: dict[str, Any]


def queue_settings(spec: AgentSpec, *, poll_interval: float) -> QueueSettings:
    config = spec.config.queue
    limit = config.max_concurrent_runs
    # DBOS refuses a per-worker limit above the global one (no worker could use it anyway).
    worker = config.worker_concurrency if limit is None else min(config.worker_concurrency, limit)
    options: dict[str, Any] = {
        "worker_concurrency": worker,
        "global_concurrency": limit,
        "polling_interval_sec": poll_interval,
    }
    if config.fairness != "none":
        per_group = config.max_concurrent_per_group
        options["partition_concurrency"] = per_group or limit
        options["partition_worker_concurrency"] = min(worker, per_group or worker)
    return QueueSettings(queue_name(spec.name), options)
