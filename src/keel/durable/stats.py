"""Queue depth and queue wait, per agent, from DBOS's own workflow table."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from dbos import DBOS

from keel.durable.queues import queue_name

if TYPE_CHECKING:
    from keel.durable.service import DurableRuns

RECENT_S = 300.0  # queue wait is reported over the runs started in the last five minutes


def _percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


async def queue_stats(service: DurableRuns) -> list[dict[str, Any]]:
    now_ms = time.time() * 1000
    stats: list[dict[str, Any]] = []
    for name, spec in service.project.agents.items():
        queue = queue_name(name)
        waiting = await DBOS.list_workflows_async(
            queue_name=queue, status=["ENQUEUED", "DELAYED"], load_input=False, load_output=False
        )
        running = await DBOS.list_workflows_async(
            queue_name=queue, status="PENDING", load_input=False, load_output=False
        )
        recent = await DBOS.list_workflows_async(
            queue_name=queue,
            dequeued_after=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - RECENT_S)),
            load_input=False,
            load_output=False,
        )
        waits = [
            (w.dequeued_at - w.created_at) / 1000
            for w in recent
            if w.dequeued_at is not None and w.created_at is not None
        ]
        queued = [w for w in waiting if w.status == "ENQUEUED"]
        oldest = min((w.created_at or now_ms for w in queued), default=None)
        config = spec.config.queue
        stats.append(
            {
                "agent": name,
                "queue": queue,
                "queued": len(queued),
                "waiting_for_session": len(waiting) - len(queued),
                "running": len(running),
                "oldest_queued_s": None if oldest is None else round((now_ms - oldest) / 1000, 3),
                "wait_p50_s": _percentile(waits, 50),
                "wait_p95_s": _percentile(waits, 95),
                "max_concurrent_runs": config.max_concurrent_runs,
                "worker_concurrency": config.worker_concurrency,
                "fairness": config.fairness,
            }
        )
    return stats
