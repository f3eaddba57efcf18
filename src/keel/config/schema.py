"""The YAML schema of a Keel project: `keel.yaml` and `agents/*.yaml`.

These pydantic models are the single source of truth: the loader validates against them,
`keel schema` writes their JSON Schema for editors, and the README's configuration reference
describes them. Every model forbids unknown keys, so a typo is an error, never silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from keel.config.approvals import AgentApprovals, ApprovalsConfig, EscalationConfig, ToolApproval
from keel.config.gateway import GatewayConfig
from keel.evals.evaluators import EvaluatorConfigError, parse_spec
from keel.gateway.keys import Scope

ProviderName = Literal["openai", "anthropic", "google", "openai-compatible"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelPrice(_Strict):
    """Price overrides in USD per million tokens (self-hosted or negotiated prices)."""

    input_per_mtok: Annotated[float, Field(ge=0)] = 0.0
    output_per_mtok: Annotated[float, Field(ge=0)] = 0.0


class ModelConfig(_Strict):
    """A named model in `keel.yaml`."""

    provider: ProviderName
    model: Annotated[str, Field(min_length=1, description="The provider's model name, e.g. gpt-4o-mini.")]
    base_url: str | None = Field(
        default=None, description="Base URL, for OpenAI-compatible servers (vLLM, Ollama, llama.cpp)."
    )
    api_key_env: str | None = Field(
        default=None,
        description="Name of the environment variable that holds the API key. Keys never go in YAML.",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
    )
    price: ModelPrice | None = None

    @model_validator(mode="after")
    def _compatible_needs_url(self) -> ModelConfig:
        if self.provider == "openai-compatible" and not self.base_url:
            raise ValueError("provider 'openai-compatible' needs a base_url")
        return self


class RetryOptions(_Strict):
    """Retries of model requests on 429, 5xx, timeouts and connection errors."""

    attempts: Annotated[int, Field(ge=1, le=10, description="Attempts per model, counting the first.")] = 3
    initial_delay: Annotated[float, Field(ge=0, le=60, description="Seconds before the first retry.")] = 0.5
    max_delay: Annotated[float, Field(ge=0, le=600, description="Upper bound of one backoff delay.")] = 20.0
    jitter: Annotated[float, Field(ge=0, le=1, description="Random share of each delay (0 = none).")] = 0.2
    max_retry_after: Annotated[
        float, Field(ge=0, le=3600, description="A Retry-After longer than this is not waited for.")
    ] = 60.0


class CircuitBreakerConfig(_Strict):
    """Circuit breakers of an agent's models and tools (docs/guardrails.md#circuit-breakers).

    A breaker opens after `failure_threshold` consecutive failures (transient provider errors,
    timeouts, a tool's exceptions), or when at least `slow_call_rate` of the last `window` calls
    took `slow_call_ms` or more; while open, calls are refused at once (the next model in the
    chain, or the tool-error path); after `cool_down` seconds, `half_open_max_calls` trial calls
    go through: all succeed → closed, one fails → open again.
    """

    enabled: bool = Field(
        default=False, description="Breakers on for this agent's models and tools (per tool: that tool)."
    )
    failure_threshold: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=5, description="Consecutive failed calls that open the circuit."
    )
    cool_down: Annotated[float, Field(gt=0, le=86_400)] = Field(
        default=30.0, description="Seconds an open circuit refuses calls before letting trial calls through."
    )
    half_open_max_calls: Annotated[int, Field(ge=1, le=100)] = Field(
        default=1, description="Trial calls let through after the cool-down; all must succeed to close."
    )
    slow_call_ms: Annotated[float | None, Field(gt=0)] = Field(
        default=None,
        description="A call taking this many milliseconds or more is slow; null: no slow-call rule.",
    )
    slow_call_rate: Annotated[float, Field(gt=0, le=1)] = Field(
        default=0.5, description="Share of slow calls among the last `window` that opens the circuit."
    )
    window: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=20, description="Calls the slow-call share is computed over (once that many were made)."
    )

    def merged(self, override: CircuitBreakerConfig | None) -> CircuitBreakerConfig:
        """These settings with the keys `override` sets (a tool's own `circuit_breaker`)."""
        if override is None or not override.model_fields_set:
            return self
        return self.model_copy(update={k: getattr(override, k) for k in override.model_fields_set})


class ToolRetry(_Strict):
    """Retries of a failing tool call before the failure is reported."""

    attempts: Annotated[int, Field(ge=1, le=10)] = 1
    initial_delay: Annotated[float, Field(ge=0, le=60)] = 0.2
    max_delay: Annotated[float, Field(ge=0, le=600)] = 5.0
    jitter: Annotated[float, Field(ge=0, le=1)] = 0.2


class ToolConfig(_Strict):
    """A Python callable exposed to the model as a tool."""

    function: Annotated[
        str,
        Field(
            pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
            description="Import path, `package.module:function`.",
        ),
    ]
    name: Annotated[str | None, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")] = None
    description: str | None = None
    timeout: Annotated[
        float | None, Field(gt=0, description="Seconds per call; overrides timeouts.tool_call.")
    ] = None
    retry: ToolRetry = ToolRetry()
    on_failure: Literal["report", "fail"] = Field(
        default="report",
        description="report: the model is told the tool failed and carries on; fail: the run fails.",
    )
    requires: list[Scope] = Field(
        default=[],
        description="Scopes the agent's own identity (identity.scopes) must hold for it to have this tool.",
    )
    circuit_breaker: CircuitBreakerConfig | None = Field(
        default=None,
        description="This tool's circuit breaker: the keys given override the agent's circuit_breaker.",
    )
    approval: ToolApproval | None = Field(
        default=None,
        description="Every call of this tool waits for a person's approval (see docs/approvals.md).",
    )
    trusted: bool = Field(
        default=False,
        description="true: this tool's results reach the model as they are, not marked as untrusted data "
        "(for tools whose output no outsider can write, e.g. a calculator).",
    )


class UntrustedConfig(_Strict):
    """Where content that others wrote is marked as data, not instructions, before the model sees it
    (see docs/guardrails.md#untrusted-content)."""

    input: bool = Field(
        default=False,
        description="Mark the run's input as untrusted data: for agents whose input is third-party content "
        "(an email body, a ticket, a web page) rather than their user's request.",
    )
    tool_results: bool = Field(
        default=True, description="Mark what tools return (except tools with trusted: true)."
    )


class Timeouts(_Strict):
    run: Annotated[float | None, Field(gt=0, description="Seconds for the whole run.")] = 300.0
    model_request: Annotated[float | None, Field(gt=0, description="Seconds per model request attempt.")] = (
        60.0
    )
    tool_call: Annotated[float | None, Field(gt=0, description="Seconds per tool call attempt.")] = 60.0


class Limits(_Strict):
    max_model_requests: Annotated[int | None, Field(ge=1)] = 50
    max_tool_calls: Annotated[int | None, Field(ge=0)] = 100
    max_tokens: Annotated[int | None, Field(ge=1, description="Input plus output tokens per run.")] = None


class ModelSettingsConfig(_Strict):
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    max_tokens: Annotated[int | None, Field(ge=1, description="Maximum output tokens per response.")] = None
    top_p: Annotated[float | None, Field(ge=0, le=1)] = None
    seed: int | None = None
    presence_penalty: Annotated[float | None, Field(ge=-2, le=2)] = None
    frequency_penalty: Annotated[float | None, Field(ge=-2, le=2)] = None
    stop_sequences: list[str] | None = None
    parallel_tool_calls: bool | None = None


class FileRef(_Strict):
    """A reference to a file in the project, relative to the project root."""

    file: Annotated[str, Field(min_length=1)]


class PromptRef(_Strict):
    """Instructions from the prompt registry: the version a label points at, rendered per run."""

    prompt: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")] = Field(
        description="The prompt's name: prompts/<name>.md in the project."
    )
    label: Annotated[str | None, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")] = Field(
        default=None, description="The label to follow; default: prompts.deploy_label (production)."
    )
    variables: dict[str, Any] = Field(
        default={}, description="Values of the prompt's variables for this agent (a run's own values win)."
    )


class PromptsConfig(_Strict):
    """The prompt registry and releases (`keel deploy`, `keel rollback`)."""

    deploy_label: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")] = Field(
        default="production",
        description="The label `keel deploy` and `keel rollback` move, and agents follow by default.",
    )
    protected_labels: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]] = Field(
        default=["production"],
        description="Labels only callers with the prompts:deploy scope may move.",
    )
    refresh_interval: Annotated[float, Field(gt=0, le=60)] = Field(
        default=1.0,
        description="Seconds between a server's checks for a new live release and for label moves.",
    )


def _instructions_kind(value: Any) -> str:
    """`{prompt: ...}` is a PromptRef, any other mapping a FileRef (so errors name one of them)."""
    if isinstance(value, PromptRef) or (isinstance(value, dict) and "prompt" in value):
        return "PromptRef"
    return "FileRef"


class DeployGateConfig(_Strict):
    """An evaluation `keel deploy` must pass before it makes a release live."""

    dataset: Annotated[str, Field(min_length=1)] = Field(
        description="The dataset file, relative to the project (e.g. evals/golden.yaml)."
    )
    agent: str | None = Field(
        default=None, description="The agent evaluated; default: the dataset's `agent`."
    )
    baseline: Literal["live", "last", "none"] = Field(
        default="live",
        description="What the candidate is compared with: what is live now, the last passing evaluation, or nothing.",
    )
    max_regression: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.0, description="Allowed drop of any pass rate against the baseline (0.02 = 2 points)."
    )
    min_pass_rate: Annotated[float | None, Field(ge=0, le=1)] = Field(
        default=None, description="Required share of cases passed, whatever the baseline."
    )
    concurrency: Annotated[int, Field(ge=1, le=500)] = 10


class ProjectEvalsConfig(_Strict):
    """Evaluations (docs/evals.md)."""

    deploy_gate: DeployGateConfig | None = None


JsonSchema = dict[str, Any]


class QueueConfig(_Strict):
    """How an agent's durable runs are queued and shared out (`keel serve`)."""

    max_concurrent_runs: Annotated[int | None, Field(ge=1)] = Field(
        default=None,
        description="Runs of this agent executing at once across all workers; null for no global limit.",
    )
    worker_concurrency: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=50, description="Runs of this agent executing at once in one worker process."
    )
    fairness: Literal["tenant", "user", "none"] = Field(
        default="user",
        description="Fair share between submitters: queued runs are grouped per tenant, or per tenant and "
        "user, and groups take turns, so one group's backlog cannot starve another's.",
    )
    max_concurrent_per_group: Annotated[int | None, Field(ge=1)] = Field(
        default=None,
        description="Runs of one fairness group executing at once across all workers; null for no "
        "limit beyond max_concurrent_runs.",
    )
    priority: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        default=1000, description="Default priority of a run; lower runs first. A request may set its own."
    )
    session_policy: Literal["enqueue", "reject", "interrupt"] = Field(
        default="enqueue",
        description="A session has one active run at a time. A second submission waits its turn (enqueue), "
        "is refused with 409 (reject), or cancels the active run (interrupt).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> QueueConfig:
        if (
            self.max_concurrent_per_group is not None
            and self.max_concurrent_runs is not None
            and self.max_concurrent_per_group > self.max_concurrent_runs
        ):
            raise ValueError("max_concurrent_per_group cannot exceed max_concurrent_runs")
        return self


class AgentIdentity(_Strict):
    """The agent's own principal: tools and other agents are called as the agent, with these
    scopes, never with the rights of the user the run is for."""

    scopes: list[Scope] = Field(default=[], description="The agent's scopes. None by default.")


def _guardrail(raw: dict[str, Any]) -> dict[str, Any]:
    """A guardrail mapping, checked by `keel.guardrails.builtin` (its type and settings)."""
    from keel.guardrails.builtin import GuardrailConfigError
    from keel.guardrails.builtin import parse_spec as parse_guardrail

    try:
        parse_guardrail(raw)
    except GuardrailConfigError as exc:
        raise ValueError(exc.message) from None
    return raw


def _evaluator(raw: dict[str, Any]) -> dict[str, Any]:
    """An evaluator mapping, checked as datasets check theirs (`keel.evals.evaluators`)."""
    try:
        parse_spec(raw)
    except EvaluatorConfigError as exc:
        raise ValueError(exc.message) from None
    return raw


class OnlineEvalConfig(_Strict):
    """A share of this agent's live runs scored in the background (docs/evals.md)."""

    sample_rate: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.1,
        description="Share of runs scored, 0 to 1; decided per run id, so a replayed run decides the same.",
    )
    evaluators: Annotated[
        list[Annotated[dict[str, Any], AfterValidator(_evaluator)]], Field(min_length=1)
    ] = Field(description="Evaluator mappings, as in datasets (type, name, settings).")

    @model_validator(mode="after")
    def _distinct_names(self) -> OnlineEvalConfig:
        names = [str(e.get("name") or e["type"]) for e in self.evaluators]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(
                f"evaluators named {', '.join(repeated)} more than once: give each a distinct `name`"
            )
        return self


class EvalsConfig(_Strict):
    """Evaluation of this agent's runs."""

    online: OnlineEvalConfig | None = Field(
        default=None, description="Online evaluation of live runs; null for none."
    )


class AgentConfig(_Strict):
    """One agent, from `agents/<name>.yaml` merged over `agents/_defaults.yaml`."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
    description: str = ""
    model: Annotated[str, Field(min_length=1, description="A named model from keel.yaml, or provider:model.")]
    fallback_models: list[str] = []
    instructions: (
        str
        | Annotated[
            Annotated[FileRef, Tag("FileRef")] | Annotated[PromptRef, Tag("PromptRef")],
            Discriminator(_instructions_kind),
        ]
    ) = ""
    tools: list[ToolConfig] = []
    input_schema: JsonSchema | FileRef | None = None
    output_schema: JsonSchema | FileRef | None = None
    output_mode: Literal["tool", "native", "prompted"] = Field(
        default="tool",
        description="How structured output is requested: a final tool call, the provider's JSON mode, or prompting.",
    )
    output_retries: Annotated[int, Field(ge=0, le=10, description="Corrections of invalid output.")] = 2
    retry_options: RetryOptions = RetryOptions()
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()
    timeouts: Timeouts = Timeouts()
    limits: Limits = Limits()
    model_settings: ModelSettingsConfig = ModelSettingsConfig()
    queue: QueueConfig = QueueConfig()
    identity: AgentIdentity = AgentIdentity()
    evals: EvalsConfig = EvalsConfig()
    approvals: AgentApprovals = AgentApprovals()
    escalation: EscalationConfig = EscalationConfig()
    untrusted: UntrustedConfig = UntrustedConfig()
    guardrails: list[Annotated[dict[str, Any], AfterValidator(_guardrail)]] = Field(
        default=[],
        description="Input, output and action guardrails, in order (docs/guardrails.md).",
    )
    metadata: dict[str, Any] = {}

    @model_validator(mode="after")
    def _tools_within_identity(self) -> AgentConfig:
        held = set(self.identity.scopes)
        for tool in self.tools:
            missing = [scope for scope in tool.requires if scope not in held]
            if missing:
                raise ValueError(
                    f"tool {tool.name or tool.function} requires {', '.join(missing)}, which the agent's "
                    "identity.scopes do not hold"
                )
        return self

    @model_validator(mode="before")
    @classmethod
    def _tool_shorthand(cls, data: Any) -> Any:
        # `tools: [pkg.mod:func]` is shorthand for `tools: [{function: pkg.mod:func}]`.
        if isinstance(data, dict) and isinstance(data.get("tools"), list):
            data = dict(data)
            data["tools"] = [{"function": t} if isinstance(t, str) else t for t in data["tools"]]
        return data


class CallbackEndpoint(_Strict):
    """A destination runs may deliver their results to. A `callback_url` must start with one of
    these URLs; anything else is refused (deny unless allowed)."""

    url: Annotated[str, Field(pattern=r"^https?://[^/?#]+(/[^?#]*)?$")] = Field(
        description="Prefix of the allowed callback URLs, e.g. https://hooks.example.com/keel/."
    )
    secret_env: str | None = Field(
        default=None, description="Environment variable holding the signing secret."
    )
    secret_file: str | None = Field(
        default=None,
        description="File holding the signing secret (relative to the project), e.g. a mounted secret.",
    )
    previous_secret_env: str | None = Field(
        default=None,
        description="Environment variable holding the previous secret during a rotation; deliveries are "
        "signed with both.",
    )

    @model_validator(mode="after")
    def _one_secret(self) -> CallbackEndpoint:
        if (self.secret_env is None) == (self.secret_file is None):
            raise ValueError("set exactly one of secret_env or secret_file")
        return self


class CallbacksConfig(_Strict):
    endpoints: list[CallbackEndpoint] = Field(
        default=[], description="Allowed callback destinations, each with its own signing secret."
    )
    max_attempts: Annotated[int, Field(ge=1, le=100)] = Field(
        default=10, description="Delivery attempts before giving up."
    )
    initial_delay: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=1.0, description="Seconds before the first retry; doubles each attempt (with jitter)."
    )
    max_delay: Annotated[float, Field(gt=0, le=86_400)] = Field(
        default=600.0, description="Longest wait between two attempts, in seconds."
    )
    timeout: Annotated[float, Field(gt=0, le=300)] = Field(
        default=10.0, description="Seconds to wait for the receiver's answer to one attempt."
    )


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    poll_interval: Annotated[float, Field(ge=0.01, le=10)] = Field(
        default=0.05, description="Seconds between a worker's checks of the run queues."
    )
    max_wait: Annotated[float, Field(ge=0, le=3600)] = Field(
        default=300.0, description="Largest `wait` a create-run request may ask for, in seconds."
    )
    heartbeat_interval: Annotated[float, Field(gt=0, le=300)] = Field(
        default=5.0, description="Seconds between a worker's heartbeats (Postgres, several workers)."
    )
    worker_timeout: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=30.0,
        description="A worker silent this long is dead: another worker takes over its unfinished runs.",
    )
    shutdown_grace: Annotated[float, Field(ge=0, le=3600)] = Field(
        default=30.0,
        description="On shutdown, seconds to let running runs finish; runs still going resume on the next start.",
    )
    callbacks: CallbacksConfig = CallbacksConfig()

    @model_validator(mode="after")
    def _timeouts(self) -> ServerConfig:
        if self.worker_timeout <= 2 * self.heartbeat_interval:
            raise ValueError("worker_timeout must be more than twice heartbeat_interval")
        return self


class StorageConfig(_Strict):
    """Where run history and traces are stored. `KEEL_DATABASE_URL` overrides `url`."""

    url: str = Field(
        default="sqlite:///.keel/keel.db",
        description="sqlite:///relative/or/absolute/path.db, or postgresql://user@host:port/db. "
        "Relative SQLite paths are relative to the project folder.",
    )
    enabled: bool = Field(default=True, description="Store runs and spans. Off: nothing is written.")
    buffer_size: Annotated[int, Field(ge=100, le=1_000_000)] = Field(
        default=10_000,
        description="Records (runs and spans) held in memory while the database is slow or unavailable; "
        "beyond this they are dropped and counted.",
    )
    flush_interval: Annotated[float, Field(gt=0, le=60)] = Field(
        default=0.2, description="Seconds between batched writes."
    )


class OtlpConfig(_Strict):
    endpoint: str = Field(description="OTLP/HTTP traces endpoint, e.g. http://127.0.0.1:4318/v1/traces.")
    headers_env: dict[str, str] = Field(
        default={},
        description="HTTP headers to send, each read from the named environment variable (for API keys).",
    )
    timeout: Annotated[float, Field(gt=0, le=120)] = 10.0


class TracingConfig(_Strict):
    enabled: bool = True
    capture_content: Literal["off", "on", "redacted"] = Field(
        default="off",
        description="Whether prompts, outputs and tool arguments go into spans: off, on, or redacted "
        "(secrets and personal data masked).",
    )
    otlp: OtlpConfig | None = Field(default=None, description="Also export spans to an OTLP/HTTP collector.")
    service_name: str = Field(default="keel", description="The service.name resource attribute.")


class TenantConfig(_Strict):
    """Settings of one tenant's runs (keel.yaml `tenants:`)."""

    guardrails: list[Annotated[dict[str, Any], AfterValidator(_guardrail)]] = Field(
        default=[],
        description="Guardrails for this tenant's runs of every agent, after the agent's own "
        "(docs/guardrails.md#per-tenant-guardrails).",
    )


class ProjectConfig(_Strict):
    """`keel.yaml`: project-wide settings."""

    project: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    models: dict[str, ModelConfig] = {}
    defaults: dict[str, Any] = Field(
        default={},
        description="Agent fields applied to every agent, below agents/_defaults.yaml and the agent's own file.",
    )
    python_path: list[str] = Field(
        default=["."], description="Folders, relative to the project, from which tool modules are imported."
    )
    storage: StorageConfig = StorageConfig()
    tracing: TracingConfig = TracingConfig()
    server: ServerConfig = ServerConfig()
    gateway: GatewayConfig = GatewayConfig()
    prompts: PromptsConfig = PromptsConfig()
    evals: ProjectEvalsConfig = ProjectEvalsConfig()
    tenants: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:@-]{1,128}$")], TenantConfig] = Field(
        default={}, description="Per-tenant settings, by tenant id: their extra guardrails."
    )
    approvals: ApprovalsConfig = ApprovalsConfig()
