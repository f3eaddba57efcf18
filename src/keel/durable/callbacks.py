"""Durable callback delivery: the `keel.callback` workflow's body.

When a run with a `callback_url` ends, its workflow starts a child workflow on the
`keel.callbacks` queue (so retries never hold a run slot). Each attempt is a checkpointed step
that signs the body afresh (timestamp and HMAC-SHA256 with the endpoint's secret), POSTs it and
records the attempt in `callback_attempts`; between attempts the workflow sleeps durably. A
process killed between attempts resumes the schedule where it was; an attempt cut off by a crash
is made again (at-least-once: receivers deduplicate on the `Keel-Delivery` header).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
from dbos import DBOS

from keel.config.project import Project
from keel.store import CallbackLog


class CallbackRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CallbackDeliverer:
    def __init__(self, project: Project, database_url: str, environ: Mapping[str, str]) -> None:
        self.config = project.config.server.callbacks
        self.endpoints: Any = None
        if self.config.endpoints:  # secrets are resolved (and checked) at start-up
            from keel.api.callbacks import CallbackEndpoints

            self.endpoints = CallbackEndpoints.from_config(self.config, project.root, environ)
        self._url = database_url
        self._client: httpx.AsyncClient | None = None
        self._log: CallbackLog | None = None

    def check_url(self, url: str) -> None:
        if self.endpoints is None or self.endpoints.match(url) is None:
            raise CallbackRefused(
                "callback_url is not allowed: it must start with one of the URLs configured under "
                "server.callbacks.endpoints"
            )

    async def start(self) -> None:
        self._client = httpx.AsyncClient(follow_redirects=False)

    async def log(self) -> CallbackLog:
        if self._log is None:
            self._log = CallbackLog(self._url)
        return self._log

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._log is not None:
            await self._log.close()
            self._log = None

    async def deliver(self, job: dict[str, Any]) -> dict[str, Any]:
        """Attempts until delivered, refused for good, or `max_attempts` are spent."""
        body = json.dumps({"type": "run.finished", "run": job["run"]}, ensure_ascii=False).encode()
        attempt = 0
        outcome: dict[str, Any] = {"outcome": "gave_up", "attempts": 0}
        while attempt < self.config.max_attempts:
            attempt += 1

            async def one(number: int = attempt) -> dict[str, Any]:
                endpoint = None if self.endpoints is None else self.endpoints.match(job["url"])
                if endpoint is None:  # the endpoint was removed from the configuration since
                    return {"outcome": "failed", "retry_in": None, "status_code": None}
                from keel.api.callbacks import attempt_delivery

                assert self._client is not None
                result = await attempt_delivery(
                    self._client,
                    endpoint,
                    run_id=job["run_id"],
                    tenant_id=job.get("tenant_id"),
                    url=job["url"],
                    body=body,
                    attempt=number,
                    config=self.config,
                    log=await self.log(),
                )
                return {
                    "outcome": result.outcome,
                    "retry_in": result.retry_in,
                    "status_code": result.status_code,
                }

            result = await DBOS.run_step_async({"name": "keel.callback.attempt"}, one)
            outcome = {
                "outcome": result["outcome"],
                "attempts": attempt,
                "status_code": result["status_code"],
            }
            if result["outcome"] != "retry" or result["retry_in"] is None:
                break
            await DBOS.sleep_async(result["retry_in"])
        return outcome
