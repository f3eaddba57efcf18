"""`TenantRuns`: the durable runs of one tenant, and nothing else.

The API never calls `DurableRuns` directly for a caller's runs: it asks for `TenantRuns(durable,
tenant_id)`, and every read and write goes through the one check here, so no route can forget the
tenant. A run of another tenant is indistinguishable from a run that does not exist (None, which
the API answers with 404). Run history reads use `keel.store.tenancy` through the store's
`tenant_id` arguments; queued and running runs (DBOS workflows, not Keel's tables) are checked by
the tenant recorded in the run's request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from keel.durable.service import DurableRuns, Submission, Submitted
from keel.store.callbacks import CallbackAttempt
from keel.store.results import RunPage


class TenantRuns:
    def __init__(self, durable: DurableRuns, tenant_id: str) -> None:
        self.durable = durable
        self.tenant_id = tenant_id

    def _own(self, view: dict[str, Any] | None) -> dict[str, Any] | None:
        if view is None or view.get("tenant_id") != self.tenant_id:
            return None
        return view

    async def submit(self, submission: Submission, *, hold: bool = False) -> Submitted:
        """Queue a run for this tenant (whatever tenant the submission named); `hold` as in
        `DurableRuns.submit`."""
        return await self.durable.submit(dataclasses.replace(submission, tenant_id=self.tenant_id), hold=hold)

    async def get(self, run_id: str) -> dict[str, Any] | None:
        """The run (queued, running or ended), or None if it is not this tenant's."""
        view = self._own(await self.durable.get(run_id))
        if view is None:
            record = await self.durable.store.get_run(run_id, tenant_id=self.tenant_id)
            if record is not None:
                from keel.durable.views import record_view

                view = self._own(record_view(record))
        return view

    async def wait(self, run_id: str, seconds: float) -> dict[str, Any] | None:
        return self._own(await self.durable.wait(run_id, seconds))

    async def cancel(self, run_id: str) -> dict[str, Any] | None:
        if self._own(await self.durable.get(run_id)) is None:
            return await self.get(run_id)  # an ended run is answered as it is; another tenant's: None
        return self._own(await self.durable.cancel(run_id))

    async def events(self, run_id: str, after: int) -> AsyncIterator[tuple[int, dict[str, Any]]] | None:
        """The run's event stream, or None if the run is not this tenant's."""
        if self._own(await self.durable.get(run_id)) is None:
            return None
        return self.durable.events(run_id, after)

    async def callback_attempts(self, run_id: str) -> list[CallbackAttempt] | None:
        if await self.get(run_id) is None:
            return None
        return await (await self.durable.callbacks.log()).attempts(run_id, tenant_id=self.tenant_id)

    async def history(self, **filters: Any) -> RunPage:
        """Ended runs from the run history (see `RunStore.list_runs`), this tenant's only."""
        return await self.durable.store.list_runs(**filters, tenant_id=self.tenant_id)

    async def active(
        self, agents: list[str], status: str, limit: int, session_id: str | None
    ) -> list[dict[str, Any]]:
        """Queued (`status="queued"`) or running runs of `agents`, this tenant's only."""
        from dbos import DBOS

        from keel.durable.queues import queue_name

        wanted = ["ENQUEUED", "DELAYED"] if status == "queued" else ["PENDING"]
        views: list[dict[str, Any]] = []
        offset = 0
        # The tenant is in each run's request, not in a DBOS column: page until `limit` are found.
        while len(views) < limit:
            found = await DBOS.list_workflows_async(
                queue_name=[queue_name(a) for a in agents],
                status=wanted,
                limit=500,
                offset=offset,
                load_output=False,
            )
            for workflow in found:
                view = self._own(await self.durable._view(workflow))
                if view is not None and (session_id is None or view.get("session_id") == session_id):
                    views.append(view)
            if len(found) < 500:
                break
            offset += 500
        return views[:limit]
