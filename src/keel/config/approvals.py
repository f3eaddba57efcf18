"""The YAML of human approval and escalation (see docs/approvals.md).

- a tool's `approval:` (in an agent's `tools:` entry): every call of the tool waits for a person;
- an agent's `approvals:`: the defaults of its gated calls (timeout, what happens at the timeout);
- an agent's `escalation:`: when a run is handed to a person instead of going on;
- `keel.yaml`'s `approvals:`: how reviewers are told (signed webhook, email) and how often
  expired approvals are settled.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

OnTimeout = Literal["reject", "escalate", "approve"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolApproval(_Strict):
    """A tool whose every call needs a person's approval before it runs."""

    required: bool = Field(
        default=True, description="false turns the gate off (e.g. in _defaults overrides)."
    )
    timeout: Annotated[float | None, Field(gt=0, le=30 * 86_400)] = Field(
        default=None, description="Seconds a reviewer has to decide; default the agent's approvals.timeout."
    )
    on_timeout: OnTimeout | None = Field(
        default=None,
        description="What happens when nobody decides in time: reject the call, escalate the run to a "
        "person, or approve (only for low-risk tools); default the agent's approvals.on_timeout.",
    )
    reason: str = Field(default="", max_length=500, description="Shown to reviewers: why this tool is gated.")


class AgentApprovals(_Strict):
    """Defaults for an agent's gated tool calls (a tool's `approval:` or a guardrail's
    `require_approval` verdict)."""

    timeout: Annotated[float, Field(gt=0, le=30 * 86_400)] = Field(
        default=86_400.0, description="Seconds a reviewer has to decide a call."
    )
    on_timeout: OnTimeout = Field(default="reject", description="reject, escalate or approve.")
    max_pauses: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=20,
        description="Most times one run may stop for approval; beyond it the run is escalated to a person.",
    )


class ConfidenceTrigger(_Strict):
    field: Annotated[str, Field(min_length=1, description="Dotted path into the structured output.")]
    below: Annotated[float, Field(description="Escalate when the field's value is below this.")]


class EscalationConfig(_Strict):
    """When a run is handed to a human queue, with a summary of what was tried."""

    confidence: ConfidenceTrigger | None = None
    human_request: bool = Field(
        default=False,
        description="Escalate when the user asks for a person (built-in phrases, and `phrases`).",
    )
    phrases: list[Annotated[str, Field(min_length=3)]] = Field(
        default=[], description="More phrases (case-insensitive) that mean the user wants a person."
    )
    failed_attempts: Annotated[int | None, Field(ge=1, le=1000)] = Field(
        default=None,
        description="Escalate once this many tool calls of the run have failed, been refused or rejected.",
    )
    tools: list[str] = Field(
        default=[], description="High-stakes tools: a call of one hands the run to a person instead."
    )
    summary_agent: str | None = Field(
        default=None,
        description="An agent of the project that writes the summary for the human queue (default: a "
        "summary made from the run's record, without a model).",
    )

    @property
    def enabled(self) -> bool:
        return bool(
            self.confidence or self.human_request or self.phrases or self.failed_attempts or self.tools
        )


class ReviewerWebhook(_Strict):
    url: Annotated[str, Field(pattern=r"^https?://[^/?#]+(/[^?#]*)?$")] = Field(
        description="Where approval requests and escalations are POSTed (signed like callbacks)."
    )
    secret_env: str | None = Field(
        default=None, description="Environment variable holding the signing secret."
    )
    secret_file: str | None = Field(
        default=None, description="File holding the signing secret (relative to the project)."
    )

    @model_validator(mode="after")
    def _one_secret(self) -> ReviewerWebhook:
        if (self.secret_env is None) == (self.secret_file is None):
            raise ValueError("set exactly one of secret_env or secret_file")
        return self


class SmtpSettings(_Strict):
    host: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    security: Literal["starttls", "ssl", "none"] = Field(
        default="starttls", description="starttls (port 587), ssl (port 465) or none (a local relay only)."
    )
    username_env: str | None = Field(default=None, description="Environment variable holding the user name.")
    password_env: str | None = Field(default=None, description="Environment variable holding the password.")
    sender: Annotated[str, Field(min_length=3, description="The From address.")]
    recipients: list[Annotated[str, Field(min_length=3)]] = Field(
        min_length=1, description="Reviewers' addresses."
    )
    timeout: Annotated[float, Field(gt=0, le=120)] = 10.0


class ApprovalsConfig(_Strict):
    """`keel.yaml` `approvals:`: how reviewers learn of work for them."""

    webhook: ReviewerWebhook | None = None
    email: SmtpSettings | None = None
    dashboard_url: str | None = Field(
        default=None, description="Base URL of the approvals inbox, for links in notifications."
    )
    sweep_interval: Annotated[float, Field(ge=0.05, le=3600)] = Field(
        default=5.0, description="Seconds between checks for approvals past their timeout."
    )
    max_attempts: Annotated[int, Field(ge=1, le=100)] = Field(
        default=8, description="Delivery attempts per notification before giving up."
    )
