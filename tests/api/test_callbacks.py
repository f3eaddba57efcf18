"""Callback delivery over real loopback HTTP: signed, classified, retried on the right answers,
bounded in time, and recorded in the callback log on both databases."""

from __future__ import annotations

import logging
import random
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from keel.api.callbacks import (
    AttemptResult,
    CallbackEndpoints,
    ResolvedEndpoint,
    attempt_delivery,
    next_delay,
    parse_retry_after,
)
from keel.api.signing import SIGNATURE_HEADER
from keel.config.schema import CallbackEndpoint, CallbacksConfig
from keel.store import CallbackLog
from keel.testing.callback_receiver import CallbackReceiver, Reply

BODY = b'{"type":"run.finished","run":{"id":"run-1","status":"succeeded","output":"\xc3\xa9"}}'
CONFIG = CallbacksConfig(max_attempts=4, initial_delay=1.0, max_delay=60.0, timeout=2.0)


def endpoint_for(url: str, env: dict[str, str] | None = None, **secrets: str) -> ResolvedEndpoint:
    spec = CallbackEndpoint(url=url, **(secrets or {"secret_env": "HOOK_SECRET"}))
    config = CallbacksConfig(endpoints=[spec])
    return CallbackEndpoints.from_config(config, Path("."), env or {"HOOK_SECRET": "s3cret"}).require(url)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


async def deliver(
    client: httpx.AsyncClient,
    receiver: CallbackReceiver,
    *,
    attempt: int = 1,
    config: CallbacksConfig = CONFIG,
    log: CallbackLog | None = None,
    run_id: str = "run-1",
) -> AttemptResult:
    url = receiver.url + "/hooks/run?token=abc"
    return await attempt_delivery(
        client,
        endpoint_for(receiver.url + "/hooks/"),
        run_id=run_id,
        tenant_id="acme",
        url=url,
        body=BODY,
        attempt=attempt,
        config=config,
        log=log,
    )


async def test_a_delivery_is_signed_and_identified(client: httpx.AsyncClient) -> None:
    async with CallbackReceiver(secrets=["s3cret"]) as receiver:
        result = await deliver(client, receiver, attempt=2)
        (delivery,) = receiver.deliveries

    assert result == AttemptResult("delivered", 200, None, result.duration_ms, None)
    assert result.final and result.duration_ms > 0
    assert delivery.signature_valid is True
    assert delivery.body == BODY
    assert delivery.path == "/hooks/run?token=abc"
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.delivery_id == "run-1:2"
    assert delivery.attempt == 2


async def test_a_wrong_secret_does_not_verify(client: httpx.AsyncClient) -> None:
    async with CallbackReceiver(secrets=["another"]) as receiver:
        await deliver(client, receiver)
    (delivery,) = receiver.deliveries
    assert delivery.signature_valid is False
    assert delivery.signature_error is not None and "does not match" in delivery.signature_error


async def test_during_a_rotation_both_secrets_sign(client: httpx.AsyncClient) -> None:
    env = {"NEW": "new-secret", "OLD": "old-secret"}
    with CallbackReceiver(secrets=["old-secret"]) as old, CallbackReceiver(secrets=["new-secret"]) as new:
        for receiver in (old, new):
            url = receiver.url + "/hooks/"
            endpoint = endpoint_for(url, env, secret_env="NEW", previous_secret_env="OLD")
            await attempt_delivery(
                client, endpoint, run_id="r", tenant_id=None, url=url, body=BODY, attempt=1, config=CONFIG
            )
    for receiver in (old, new):
        (delivery,) = receiver.deliveries
        assert delivery.signature_valid is True
        assert delivery.headers[SIGNATURE_HEADER.lower()].count("v1=") == 2


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"),
        (202, "delivered"),
        (204, "delivered"),
        (408, "retry"),
        (409, "retry"),
        (425, "retry"),
        (429, "retry"),
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
        (504, "retry"),
        (400, "failed"),
        (401, "failed"),
        (403, "failed"),
        (404, "failed"),
        (410, "failed"),
        (422, "failed"),
        (301, "failed"),
        (304, "failed"),
        (307, "failed"),
    ],
)
async def test_statuses_are_classified(client: httpx.AsyncClient, status: int, outcome: str) -> None:
    async with CallbackReceiver(default=status) as receiver:
        result = await deliver(client, receiver)
    assert (result.outcome, result.status_code) == (outcome, status)
    assert (result.retry_in is not None) is (outcome == "retry")
    assert (result.error is None) is (outcome == "delivered")
    if outcome != "delivered":
        assert result.error is not None and result.error.startswith(f"HTTP {status}")


async def test_a_transient_failure_on_the_last_attempt_gives_up(client: httpx.AsyncClient) -> None:
    async with CallbackReceiver(default=503) as receiver:
        result = await deliver(client, receiver, attempt=CONFIG.max_attempts)
    assert (result.outcome, result.retry_in, result.final) == ("gave_up", None, True)


async def test_redirects_are_not_followed(client: httpx.AsyncClient) -> None:
    with CallbackReceiver() as elsewhere:
        location = (("Location", elsewhere.url + "/stolen"),)
        async with CallbackReceiver(replies=[Reply(302, headers=location)]) as receiver:
            result = await deliver(client, receiver)
    assert result.outcome == "failed"
    assert result.error == "HTTP 302 Found: redirects are not followed"
    assert elsewhere.deliveries == []


async def test_connection_refused_is_retried(client: httpx.AsyncClient) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hooks/run?token=abc"
    result = await attempt_delivery(
        client,
        endpoint_for(f"http://127.0.0.1:{port}/hooks/"),
        run_id="r",
        tenant_id=None,
        url=url,
        body=BODY,
        attempt=1,
        config=CONFIG,
    )
    assert (result.outcome, result.status_code) == ("retry", None)
    assert result.error is not None and result.error.startswith("ConnectError")
    assert "abc" not in result.error


async def test_a_receiver_that_never_answers_times_out(client: httpx.AsyncClient) -> None:
    config = CONFIG.model_copy(update={"timeout": 0.3})
    async with CallbackReceiver(default=Reply(hang=True)) as receiver:
        result = await deliver(client, receiver, config=config)
        assert len(receiver.deliveries) == 1
    assert (result.outcome, result.status_code) == ("retry", None)
    assert result.error == "no answer within 0.3s"
    assert 250 <= result.duration_ms < 3000


async def test_a_slow_answer_within_the_timeout_counts(client: httpx.AsyncClient) -> None:
    async with CallbackReceiver(default=Reply(200, delay=0.2)) as receiver:
        result = await deliver(client, receiver)
    assert result.outcome == "delivered"
    assert result.duration_ms >= 200


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        (30, 30.0),  # longer than the backoff: the receiver wins
        (3600, 60.0),  # but never beyond max_delay
        ("soon", None),  # unreadable: the backoff
        (0, None),  # shorter than the backoff: the backoff
    ],
)
async def test_retry_after_in_seconds(
    client: httpx.AsyncClient, retry_after: int | str, expected: float | None
) -> None:
    async with CallbackReceiver(default=Reply(429, retry_after=retry_after)) as receiver:
        result = await deliver(client, receiver)
    assert result.retry_in is not None
    if expected is None:
        assert 0.8 <= result.retry_in <= 1.0  # attempt 1: initial_delay less up to 20%
    else:
        assert result.retry_in == expected


async def test_retry_after_as_an_http_date(client: httpx.AsyncClient) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=40), usegmt=True)
    async with CallbackReceiver(default=Reply(503, retry_after=when)) as receiver:
        result = await deliver(client, receiver)
    assert result.retry_in is not None and 37 <= result.retry_in <= 40


def test_parse_retry_after() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after(" 7 ", now=now) == 7.0
    assert parse_retry_after("Sun, 01 Mar 2026 12:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Sun, 01 Mar 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("-5", now=now) is None
    assert parse_retry_after("tomorrow", now=now) is None
    assert parse_retry_after(None) is None


class Fixed:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_backoff_doubles_with_jitter_and_a_cap() -> None:
    config = CallbacksConfig(initial_delay=2.0, max_delay=100.0)
    assert [next_delay(n, config, rng=Fixed(0.0)) for n in range(1, 8)] == [2, 4, 8, 16, 32, 64, 100]
    assert next_delay(1, config, rng=Fixed(1.0)) == pytest.approx(1.6)  # 20% off at most
    rng = random.Random(7)
    for attempt in range(1, 101):
        base = min(2.0 * 2 ** (attempt - 1), 100.0)
        assert 0.8 * base <= next_delay(attempt, config, rng=rng) <= base
    assert next_delay(1, config, retry_after=50, rng=Fixed(0.5)) == 50
    assert next_delay(1, config, retry_after=500, rng=Fixed(0.5)) == 100
    assert next_delay(3, config, retry_after=1, rng=Fixed(0.5)) == pytest.approx(7.2)
    with pytest.raises(ValueError, match="count from 1"):
        next_delay(0, config)


async def test_attempts_are_recorded_in_the_log(client: httpx.AsyncClient, store_url: str) -> None:
    async with (
        CallbackLog(store_url) as log,
        CallbackReceiver(replies=[500, Reply(503, retry_after=9), 200]) as receiver,
    ):
        results = [await deliver(client, receiver, attempt=n, log=log) for n in (1, 2, 3)]
        await deliver(client, receiver, attempt=3, log=log)  # a step re-executed after a crash
        attempts = await log.attempts("run-1", tenant_id="acme")
        assert await log.attempts("run-1", tenant_id="other") == []

    assert [r.outcome for r in results] == ["retry", "retry", "delivered"]
    assert [(a.attempt, a.outcome, a.status_code) for a in attempts] == [
        (1, "retry", 500),
        (2, "retry", 503),
        (3, "delivered", 200),
    ]
    assert attempts[1].error == "HTTP 503 Service Unavailable"
    assert all(a.url.endswith("/hooks/run?token=abc") and a.tenant_id == "acme" for a in attempts)
    retry_at = attempts[1].next_attempt_at
    assert retry_at is not None and 8 <= (retry_at - attempts[1].attempted_at).total_seconds() <= 11
    assert attempts[2].next_attempt_at is None
    assert [d.delivery_id for d in receiver.deliveries] == ["run-1:1", "run-1:2", "run-1:3", "run-1:3"]


async def test_a_database_outage_loses_the_log_line_not_the_result(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="keel.api")
    async with CallbackLog("postgresql://keel:pw@127.0.0.1:1/keel") as log, CallbackReceiver() as receiver:
        result = await deliver(client, receiver, log=log)
    assert result.outcome == "delivered"
    assert "could not record callback attempt 1 of run run-1" in caplog.text
    assert "pw" not in caplog.text.replace("keel.api", "")


async def test_run_ids_that_cannot_go_in_a_header_are_percent_encoded(client: httpx.AsyncClient) -> None:
    async with CallbackReceiver() as receiver:
        result = await deliver(client, receiver, run_id="idem:café:agent:1")
    assert result.outcome == "delivered"
    assert receiver.deliveries[0].delivery_id == "idem%3Acaf%C3%A9%3Aagent%3A1:1"


async def test_programming_errors_raise(client: httpx.AsyncClient) -> None:
    endpoint = endpoint_for("https://hooks.example.com/keel/")
    common = {"run_id": "r", "tenant_id": None, "body": BODY, "config": CONFIG}
    with pytest.raises(ValueError, match="attempt must be 1 to 4"):
        await attempt_delivery(client, endpoint, url="https://hooks.example.com/keel/x", attempt=5, **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not under the endpoint"):
        await attempt_delivery(client, endpoint, url="https://elsewhere.example/", attempt=1, **common)  # type: ignore[arg-type]


def test_the_receiver_works_from_sync_code() -> None:
    with CallbackReceiver(secrets=["s3cret"], replies=[500, 201]) as receiver:
        with httpx.Client() as http:
            statuses = [http.post(receiver.url + "/x", content=b"{}").status_code for _ in range(3)]
        deliveries = receiver.wait_for(3, timeout=2)
        with pytest.raises(TimeoutError, match="expected 4 deliveries"):
            receiver.wait_for(4, timeout=0.1)
    assert statuses == [500, 201, 200]
    assert [d.signature_valid for d in deliveries] == [False, False, False]  # unsigned
    assert deliveries[0].signature_error is not None and "missing" in deliveries[0].signature_error
    assert deliveries[0].json() == {}
