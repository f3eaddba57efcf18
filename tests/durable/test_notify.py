"""Reviewer notifications over real loopback sockets: the webhook is signed and retried on the
right answers, email reaches an SMTP server (plain, STARTTLS, implicit TLS, with login) and is
retried on 4xx, the channels do not wait for each other, a replayed workflow takes the same
steps, and no secret reaches the logs or the result."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import pytest

from keel.api.signing import verify
from keel.config.approvals import ApprovalsConfig, ReviewerWebhook, SmtpSettings
from keel.durable.notify import EMAIL_STEP, WEBHOOK_STEP, ReviewerNotifier, StepFn, build_email
from keel.errors import UsageError
from keel.testing.callback_receiver import CallbackReceiver, Reply
from keel.testing.smtp_receiver import SmtpReceiver, client_context, self_signed_certificate

SECRET = "whsec-4f9d1c2b8a7e"
PASSWORD = "hunter2-pa55word"
ENV = {"REVIEW_SECRET": SECRET, "SMTP_USER": "keel-bot", "SMTP_PASSWORD": PASSWORD}
REVIEWERS = ["alice@example.com", "bob@example.com"]

APPROVAL: dict[str, Any] = {
    "event": "approval.requested",
    "id": "appr_01",
    "run_id": "run-7f3a",
    "tenant_id": "acme",
    "agent": "refunds",
    "payload": {
        "tool": "issue_refund",
        "args": {"order": "A-1001", "amount": 129.5, "currency": "EUR"},
        "reason": "Refunds above 100 EUR need a person",
        "expires_at": "2026-12-08T10:00:00Z",
        "on_timeout": "reject",
    },
}
ESCALATION: dict[str, Any] = {
    "event": "escalation.created",
    "id": "esc_01",
    "run_id": "run-9b2c",
    "tenant_id": None,
    "agent": "support",
    "payload": {
        "reason": "the user asked for a person",
        "summary": "Tried the FAQ twice; the user wants a human.",
    },
}


class Workflow:
    """In-process stand-ins for DBOS: steps run at once and are recorded; sleeps are recorded
    and return at once (the schedule is what is under test, not the clock)."""

    def __init__(self, replay: list[tuple[str, dict[str, Any]]] | None = None) -> None:
        self.steps: list[tuple[str, dict[str, Any]]] = []
        self.sleeps: list[float] = []
        self._replay = list(replay or [])

    async def step(self, name: str, fn: StepFn) -> dict[str, Any]:
        if self._replay:  # a recovered workflow: checkpointed steps are not run again
            recorded_name, result = self._replay.pop(0)
            assert recorded_name == name, f"replay diverged: {name} where {recorded_name} was recorded"
        else:
            result = await fn()
        self.steps.append((name, result))
        return result

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.steps]


def approvals(
    *,
    webhook_url: str | None = None,
    smtp: SmtpReceiver | None = None,
    security: Literal["starttls", "ssl", "none"] = "none",
    login: bool = False,
    **extra: Any,
) -> ApprovalsConfig:
    webhook = (
        None
        if webhook_url is None
        else ReviewerWebhook(url=webhook_url + "/keel/reviews", secret_env="REVIEW_SECRET")
    )
    email = None
    if smtp is not None:
        email = SmtpSettings(
            host=smtp.host,
            port=smtp.port,
            security=security,
            sender="Keel <keel@reviews.example.com>",
            recipients=REVIEWERS,
            timeout=5,
            **({"username_env": "SMTP_USER", "password_env": "SMTP_PASSWORD"} if login else {}),
        )
    return ApprovalsConfig(webhook=webhook, email=email, **extra)


@asynccontextmanager
async def started(
    config: ApprovalsConfig, env: dict[str, str] | None = None, **options: Any
) -> AsyncIterator[ReviewerNotifier]:
    notifier = ReviewerNotifier(config, Path("."), ENV if env is None else env, **options)
    await notifier.start()
    try:
        yield notifier
    finally:
        await notifier.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("smtp-tls"))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- webhook ----------------------------------------------------------------------------------------


async def test_webhook_is_signed_retried_after_5xx_and_keeps_one_delivery_id() -> None:
    async with CallbackReceiver([SECRET], replies=[500, 503, 200]) as receiver:
        config = approvals(webhook_url=receiver.url, dashboard_url="https://keel.example.com/approvals/")
        workflow = Workflow()
        async with started(config) as notifier:
            result = await notifier.deliver(APPROVAL, step=workflow.step, sleep=workflow.sleep)
        deliveries = receiver.deliveries

    assert result == {"webhook": {"outcome": "delivered", "attempts": 3, "status_code": 200, "error": None}}
    assert len(deliveries) == 3
    assert workflow.names == [WEBHOOK_STEP] * 3
    for number, delivery in enumerate(deliveries, start=1):
        assert delivery.path == "/keel/reviews"
        verify([SECRET], delivery.headers, delivery.body)  # raises SignatureError if not signed right
        assert delivery.headers["keel-delivery"] == "approval.requested:appr_01:webhook"
        assert delivery.attempt == number
        assert delivery.headers["content-type"] == "application/json"
    # Exponential backoff from 2 s, with up to 20 % jitter taken off.
    first, second = workflow.sleeps
    assert 1.6 <= first <= 2.0 and 3.2 <= second <= 4.0
    body = deliveries[-1].json()
    assert body == {
        "type": "approval.requested",
        "id": "appr_01",
        "run_id": "run-7f3a",
        "tenant_id": "acme",
        "agent": "refunds",
        **APPROVAL["payload"],
        "links": {
            "approve": "https://keel.example.com/approvals/appr_01?decision=approve",
            "reject": "https://keel.example.com/approvals/appr_01?decision=reject",
            "inbox": "https://keel.example.com/approvals",
        },
    }


async def test_a_400_is_final_for_the_webhook() -> None:
    async with CallbackReceiver([SECRET], replies=[400], default=200) as receiver:
        workflow = Workflow()
        async with started(approvals(webhook_url=receiver.url)) as notifier:
            result = await notifier.deliver(APPROVAL, step=workflow.step, sleep=workflow.sleep)
        count = len(receiver.deliveries)
    assert result["webhook"]["outcome"] == "failed"
    assert result["webhook"]["attempts"] == 1 and result["webhook"]["status_code"] == 400
    assert "400" in result["webhook"]["error"]
    assert count == 1 and workflow.sleeps == []


@pytest.mark.parametrize("status", [408, 429])
async def test_408_and_429_are_retried_and_retry_after_is_honoured(status: int) -> None:
    async with CallbackReceiver([SECRET], replies=[Reply(status, retry_after=45)]) as receiver:
        workflow = Workflow()
        async with started(approvals(webhook_url=receiver.url)) as notifier:
            result = await notifier.deliver(APPROVAL, step=workflow.step, sleep=workflow.sleep)
    assert result["webhook"]["outcome"] == "delivered" and result["webhook"]["attempts"] == 2
    assert workflow.sleeps == [45.0]


async def test_the_webhook_gives_up_after_max_attempts() -> None:
    async with CallbackReceiver([SECRET], default=502) as receiver:
        workflow = Workflow()
        async with started(approvals(webhook_url=receiver.url, max_attempts=4)) as notifier:
            result = await notifier.deliver(APPROVAL, step=workflow.step, sleep=workflow.sleep)
        count = len(receiver.deliveries)
    assert result["webhook"] == {
        "outcome": "gave_up",
        "attempts": 4,
        "status_code": 502,
        "error": "HTTP 502 Bad Gateway",
    }
    assert count == 4 and len(workflow.sleeps) == 3
    assert workflow.sleeps == sorted(workflow.sleeps)


async def test_an_unreachable_webhook_is_retried_then_given_up() -> None:
    config = approvals(webhook_url=f"http://127.0.0.1:{closed_port()}", max_attempts=2)
    workflow = Workflow()
    async with started(config) as notifier:
        result = await notifier.deliver(APPROVAL, step=workflow.step, sleep=workflow.sleep)
    assert result["webhook"]["outcome"] == "gave_up" and result["webhook"]["attempts"] == 2
    assert result["webhook"]["status_code"] is None
    assert "ConnectError" in result["webhook"]["error"]


async def test_the_payload_cannot_override_the_envelope_and_links_in_the_payload_win() -> None:
    job = {
        **APPROVAL,
        "payload": {
            **APPROVAL["payload"],
            "type": "forged",
            "run_id": "other",
            "links": {"inbox": "https://x/i"},
        },
    }
    async with CallbackReceiver([SECRET]) as receiver:
        async with started(
            approvals(webhook_url=receiver.url, dashboard_url="https://keel.example.com")
        ) as n:
            await n.deliver(job, step=Workflow().step, sleep=Workflow().sleep)
        (delivery,) = receiver.deliveries
    body = delivery.json()
    assert body["type"] == "approval.requested" and body["run_id"] == "run-7f3a"
    assert body["links"] == {"inbox": "https://x/i"}


async def test_escalations_are_posted_with_their_reason_and_summary() -> None:
    async with CallbackReceiver([SECRET]) as receiver:
        async with started(approvals(webhook_url=receiver.url)) as notifier:
            result = await notifier.deliver(ESCALATION, step=Workflow().step, sleep=Workflow().sleep)
        (delivery,) = receiver.deliveries
    assert result["webhook"]["outcome"] == "delivered"
    assert delivery.signature_valid is True
    assert delivery.delivery_id == "escalation.created:esc_01:webhook"
    assert delivery.json() == {
        "type": "escalation.created",
        "id": "esc_01",
        "run_id": "run-9b2c",
        "tenant_id": None,
        "agent": "support",
        "reason": "the user asked for a person",
        "summary": "Tried the FAQ twice; the user wants a human.",
    }


# -- email ------------------------------------------------------------------------------------------


async def test_an_approval_email_reaches_the_reviewers() -> None:
    async with SmtpReceiver() as smtp:
        config = approvals(smtp=smtp, dashboard_url="https://keel.example.com/approvals")
        workflow = Workflow()
        async with started(config) as notifier:
            result = await notifier.deliver(APPROVAL, step=workflow.step, sleep=workflow.sleep)
        (received,) = smtp.messages

    assert result == {"email": {"outcome": "delivered", "attempts": 1, "status_code": 250, "error": None}}
    assert workflow.names == [EMAIL_STEP]
    assert received.sender == "keel@reviews.example.com"
    assert received.recipients == REVIEWERS
    message = received.message
    assert message["Subject"] == "[Keel] Approval needed: issue_refund in run run-7f3a (refunds)"
    assert message["To"] == "alice@example.com, bob@example.com"
    assert message["Message-ID"] == "<keel.approval.requested.appr_01@reviews.example.com>"
    assert message["Auto-Submitted"] == "auto-generated"
    text = received.text
    assert '    "order": "A-1001",\n    "amount": 129.5,' in text  # arguments pretty-printed
    assert "Reason: Refunds above 100 EUR need a person" in text
    assert "Decide by: 2026-12-08T10:00:00Z (after that, the call is rejected)" in text
    assert "Approve: https://keel.example.com/approvals/appr_01?decision=approve" in text
    assert "Reject:  https://keel.example.com/approvals/appr_01?decision=reject" in text
    assert "Inbox:   https://keel.example.com/approvals" in text
    assert "Tenant: acme" in text


async def test_an_escalation_email_carries_the_summary() -> None:
    async with SmtpReceiver() as smtp:
        async with started(approvals(smtp=smtp)) as notifier:
            await notifier.deliver(ESCALATION, step=Workflow().step, sleep=Workflow().sleep)
        (received,) = smtp.messages
    assert received.message["Subject"] == "[Keel] Run escalated: run run-9b2c (support)"
    assert "Reason: the user asked for a person" in received.text
    assert "Summary:\n  Tried the FAQ twice; the user wants a human." in received.text


async def test_smtp_refusing_twice_with_4xx_is_retried_with_the_same_message_id() -> None:
    async with SmtpReceiver() as smtp:
        smtp.fail_next(2, code=451)
        workflow = Workflow()
        async with started(approvals(smtp=smtp)) as notifier:
            result = await notifier.deliver(APPROVAL, step=workflow.step, sleep=workflow.sleep)
        messages, refused, attempts = smtp.messages, smtp.refused, smtp.attempts

    assert result["email"] == {"outcome": "delivered", "attempts": 3, "status_code": 250, "error": None}
    assert attempts == 3 and len(messages) == 1 and len(refused) == 2
    assert len(workflow.sleeps) == 2
    ids = {m.message["Message-ID"] for m in [*refused, *messages]}
    assert ids == {"<keel.approval.requested.appr_01@reviews.example.com>"}


@pytest.mark.parametrize("stage", ["mail", "rcpt", "data"])
async def test_a_5xx_from_smtp_is_final(stage: str) -> None:
    async with SmtpReceiver() as smtp:
        smtp.fail_next(1, code=554, stage=stage)  # type: ignore[arg-type]
        workflow = Workflow()
        async with started(approvals(smtp=smtp)) as notifier:
            result = await notifier.deliver(APPROVAL, step=workflow.step, sleep=workflow.sleep)
        messages = smtp.messages
    assert result["email"]["outcome"] == "failed" and result["email"]["attempts"] == 1
    assert result["email"]["status_code"] == 554
    assert messages == [] and workflow.sleeps == []


async def test_starttls_with_login(certificate: tuple[Path, Path]) -> None:
    async with SmtpReceiver(
        security="starttls", certificate=certificate, credentials=("keel-bot", PASSWORD)
    ) as smtp:
        config = approvals(smtp=smtp, security="starttls", login=True)
        async with started(config, tls=client_context(certificate[0])) as notifier:
            result = await notifier.deliver(APPROVAL, step=Workflow().step, sleep=Workflow().sleep)
        (received,) = smtp.messages
    assert result["email"]["outcome"] == "delivered"
    assert received.tls is True and received.login == "keel-bot"


async def test_implicit_tls_with_login(certificate: tuple[Path, Path]) -> None:
    async with SmtpReceiver(
        security="ssl", certificate=certificate, credentials=("keel-bot", PASSWORD)
    ) as smtp:
        config = approvals(smtp=smtp, security="ssl", login=True)
        async with started(config, tls=client_context(certificate[0])) as notifier:
            result = await notifier.deliver(APPROVAL, step=Workflow().step, sleep=Workflow().sleep)
        (received,) = smtp.messages
    assert result["email"]["outcome"] == "delivered"
    assert received.tls is True and received.login == "keel-bot"


async def test_an_untrusted_certificate_is_not_accepted(certificate: tuple[Path, Path]) -> None:
    async with SmtpReceiver(security="starttls", certificate=certificate) as smtp:
        config = approvals(smtp=smtp, security="starttls", max_attempts=2)
        async with started(config) as notifier:  # the system's trust store: the test CA is unknown
            result = await notifier.deliver(APPROVAL, step=Workflow().step, sleep=Workflow().sleep)
        messages = smtp.messages
    assert result["email"]["outcome"] == "gave_up"
    assert "SSLCertVerificationError" in result["email"]["error"]
    assert messages == []


async def test_starttls_is_never_skipped_when_the_server_does_not_offer_it() -> None:
    async with SmtpReceiver(security="none") as smtp:
        config = approvals(smtp=smtp, security="starttls")
        async with started(config) as notifier:
            result = await notifier.deliver(APPROVAL, step=Workflow().step, sleep=Workflow().sleep)
        messages = smtp.messages
    assert result["email"]["outcome"] == "failed" and result["email"]["attempts"] == 1
    assert "SMTPNotSupportedError" in result["email"]["error"]
    assert messages == []


async def test_an_unreachable_smtp_server_is_retried_then_given_up() -> None:
    config = ApprovalsConfig(
        email=SmtpSettings(
            host="127.0.0.1", port=closed_port(), security="none", sender="k@x.org", recipients=REVIEWERS
        ),
        max_attempts=3,
    )
    workflow = Workflow()
    async with started(config) as notifier:
        result = await notifier.deliver(APPROVAL, step=workflow.step, sleep=workflow.sleep)
    assert result["email"]["outcome"] == "gave_up" and result["email"]["attempts"] == 3
    assert result["email"]["status_code"] is None and "ConnectionRefusedError" in result["email"]["error"]
    assert len(workflow.sleeps) == 2


def test_the_message_id_is_stable_and_headers_cannot_be_injected() -> None:
    settings = SmtpSettings(host="h", sender="keel@reviews.example.com", recipients=REVIEWERS)
    job = {
        **APPROVAL,
        "id": "a/b c",
        "payload": {**APPROVAL["payload"], "tool": "x\r\nBcc: evil@example.com"},
    }
    first = build_email(ApprovalsConfig(email=settings), settings, job)
    second = build_email(ApprovalsConfig(email=settings), settings, job)
    assert first["Message-ID"] == second["Message-ID"]
    assert first["Message-ID"].startswith("<keel.approval.requested.") and " " not in first["Message-ID"]
    assert first["Bcc"] is None
    assert first["Subject"].startswith("[Keel] Approval needed: x Bcc: evil@example.com in run")


# -- both channels ----------------------------------------------------------------------------------


async def test_channels_are_independent_and_interleave_by_due_time() -> None:
    async with CallbackReceiver([SECRET], default=500) as receiver, SmtpReceiver() as smtp:
        smtp.fail_next(1, code=421)
        config = approvals(webhook_url=receiver.url, smtp=smtp, max_attempts=3)
        workflow = Workflow()
        async with started(config) as notifier:
            result = await notifier.deliver(APPROVAL, step=workflow.step, sleep=workflow.sleep)
    assert result["webhook"]["outcome"] == "gave_up" and result["webhook"]["attempts"] == 3
    assert result["email"]["outcome"] == "delivered" and result["email"]["attempts"] == 2
    # The email's first attempt does not wait for the webhook's retries.
    assert workflow.names[:2] == [WEBHOOK_STEP, EMAIL_STEP]
    assert sorted(workflow.names) == sorted([WEBHOOK_STEP] * 3 + [EMAIL_STEP] * 2)


async def test_a_replayed_workflow_takes_the_same_steps_and_sleeps_without_sending_again() -> None:
    async with (
        CallbackReceiver([SECRET], replies=[500, 503], default=200) as receiver,
        SmtpReceiver() as smtp,
    ):
        smtp.fail_next(2, code=451)
        config = approvals(webhook_url=receiver.url, smtp=smtp)
        first = Workflow()
        async with started(config) as notifier:
            expected = await notifier.deliver(APPROVAL, step=first.step, sleep=first.sleep)
        sent = len(receiver.deliveries), smtp.attempts
        assert sent == (3, 3)

        replayed = Workflow(replay=first.steps)  # every step checkpointed: nothing runs again
        async with started(config) as notifier:
            again = await notifier.deliver(APPROVAL, step=replayed.step, sleep=replayed.sleep)
        assert (len(receiver.deliveries), smtp.attempts) == sent

    assert again == expected
    assert replayed.names == first.names and replayed.sleeps == first.sleeps


async def test_a_workflow_recovered_between_attempts_makes_only_the_missing_ones() -> None:
    async with CallbackReceiver([SECRET], replies=[500, 500], default=200) as receiver:
        config = approvals(webhook_url=receiver.url)
        first = Workflow()
        async with started(config) as notifier:
            await notifier.deliver(APPROVAL, step=first.step, sleep=first.sleep)
        assert len(receiver.deliveries) == 3

        # The process died after two attempts; the run starts again from its checkpoints.
        receiver.clear()
        recovered = Workflow(replay=first.steps[:2])
        async with started(config) as notifier:
            result = await notifier.deliver(APPROVAL, step=recovered.step, sleep=recovered.sleep)
        (made,) = receiver.deliveries

    assert result["webhook"] == {"outcome": "delivered", "attempts": 3, "status_code": 200, "error": None}
    assert recovered.sleeps == first.sleeps
    assert made.attempt == 3 and made.delivery_id == "approval.requested:appr_01:webhook"


# -- secrets --------------------------------------------------------------------------------------


def test_a_missing_webhook_secret_is_a_clear_error() -> None:
    config = approvals(webhook_url="https://hooks.example.com")
    with pytest.raises(UsageError) as caught:
        ReviewerNotifier(config, Path("."), {})
    message = str(caught.value)
    assert "approvals.webhook.secret_env" in message and "REVIEW_SECRET is not set" in message


def test_a_missing_secret_file_and_smtp_credentials_are_all_reported(tmp_path: Path) -> None:
    config = ApprovalsConfig(
        webhook=ReviewerWebhook(url="https://hooks.example.com", secret_file="secrets/review.txt"),
        email=SmtpSettings(
            host="smtp.example.com",
            sender="k@example.com",
            recipients=REVIEWERS,
            username_env="SMTP_USER",
            password_env="SMTP_PASSWORD",
        ),
    )
    with pytest.raises(UsageError) as caught:
        ReviewerNotifier(config, tmp_path, {"SMTP_USER": "keel-bot", "SMTP_PASSWORD": ""})
    message = str(caught.value)
    assert "approvals.webhook.secret_file" in message and "review.txt" in message
    assert "approvals.email.password_env: the environment variable SMTP_PASSWORD is empty" in message
    assert "keel-bot" not in message


def test_a_user_name_without_a_password_is_refused() -> None:
    settings = SmtpSettings(host="h", sender="k@example.com", recipients=REVIEWERS, username_env="SMTP_USER")
    with pytest.raises(UsageError, match="set both username_env and password_env"):
        ReviewerNotifier(ApprovalsConfig(email=settings), Path("."), ENV)


def test_the_secret_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "review.txt").write_text(SECRET + "\n")
    config = ApprovalsConfig(webhook=ReviewerWebhook(url="https://h.example.com", secret_file="review.txt"))
    notifier = ReviewerNotifier(config, tmp_path, {})
    assert notifier.enabled and SECRET not in repr(notifier)
    assert not ReviewerNotifier(ApprovalsConfig(), tmp_path, {}).enabled


async def test_a_wrong_smtp_password_is_final(certificate: tuple[Path, Path]) -> None:
    async with SmtpReceiver(
        security="starttls", certificate=certificate, credentials=("keel-bot", "other")
    ) as smtp:
        config = approvals(smtp=smtp, security="starttls", login=True)
        async with started(config, tls=client_context(certificate[0])) as notifier:
            result = await notifier.deliver(APPROVAL, step=Workflow().step, sleep=Workflow().sleep)
    assert result["email"]["outcome"] == "failed" and result["email"]["status_code"] == 535
    assert result["email"]["attempts"] == 1 and PASSWORD not in json.dumps(result)


async def test_no_secret_reaches_the_logs_or_the_result(
    caplog: pytest.LogCaptureFixture, certificate: tuple[Path, Path]
) -> None:
    caplog.set_level(logging.DEBUG)
    async with (
        CallbackReceiver([SECRET], replies=[500], default=401) as receiver,
        SmtpReceiver(
            security="starttls", certificate=certificate, credentials=("keel-bot", PASSWORD)
        ) as smtp,
    ):
        # A server that repeats too much: the password and the signing secret in its refusals.
        smtp.fail_next(1, code=451, text=f"4.3.0 echoing {PASSWORD} back")
        smtp.fail_next(1, code=554, text=f"5.7.1 not {SECRET} either")
        config = approvals(
            webhook_url=receiver.url, smtp=smtp, security="starttls", login=True, max_attempts=3
        )
        async with started(config, tls=client_context(certificate[0])) as notifier:
            result = await notifier.deliver(APPROVAL, step=Workflow().step, sleep=Workflow().sleep)
    assert result["webhook"]["outcome"] == "failed" and result["webhook"]["status_code"] == 401
    assert result["email"]["outcome"] == "failed" and result["email"]["status_code"] == 554
    assert result["email"]["attempts"] == 2 and "***" in result["email"]["error"]
    logged = caplog.text
    assert "reviewer webhook" in logged and "reviewer email" in logged  # failures are logged...
    shown = logged + json.dumps(result)
    for secret in (SECRET, PASSWORD):  # ...without the secrets
        assert secret not in shown


def test_the_fake_receivers_refuse_mail_before_starttls(certificate: tuple[Path, Path]) -> None:
    import smtplib

    with SmtpReceiver(security="starttls", certificate=certificate) as smtp:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=5)
        try:
            client.ehlo()
            with pytest.raises(smtplib.SMTPSenderRefused) as caught:
                client.sendmail("a@example.com", ["b@example.com"], "Subject: x\r\n\r\nbody\r\n")
            assert caught.value.smtp_code == 530
        finally:
            client.close()
        assert smtp.messages == []
