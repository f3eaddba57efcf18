"""One guardrail interface for three points: input, output and action.

    guardrails = Guardrails([MaxInputChars(20_000), InjectionGuard(verdict="block"), PiiGuard(...)])
    outcome = await guardrails.run(Check(point="input", agent="inbox", text=user_text))
    if outcome.verdict == "block": ...        # outcome.reason says which guardrail and why
    text = outcome.text                       # redactions applied, in order

- `input`: the run's input, before the model sees anything;
- `output`: the run's answer, before it leaves;
- `action`: a tool call (its name and arguments), before the tool runs.

Each guardrail looks at a `Check` and returns a `Decision`: `allow`, `block`, `redact` (with the
new text or arguments), `warn` or `require_approval`, with a reason. `Guardrails.run` applies an
agent's guardrails in order: a redaction is what the next one sees; `block` and `require_approval`
stop there; warnings are collected. The outcome's verdict is the strongest decision (block >
require_approval > redact > warn > allow) and every decision is kept for the trace. A guardrail that
raises blocks (deny unless allowed), with the error as its reason.

Writing your own: any object with `name`, `points` and `async check(check) -> Decision`, or a plain
function `(check) -> Decision | bool | None` wrapped by `FunctionGuardrail` (keel.guardrails.builtin
`python`).

Per-tenant guardrails: `Guardrails(agent_list, tenants={"acme": acme_list})` runs the agent's list,
then the list of the check's tenant (`check.tenant_id`), as one chain; other tenants' runs see only
the agent's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

log = logging.getLogger("keel.guardrails")

Point = Literal["input", "output", "action"]
POINTS: tuple[Point, ...] = get_args(Point)
Verdict = Literal["allow", "block", "redact", "warn", "require_approval"]
_STRENGTH: dict[str, int] = {"allow": 0, "warn": 1, "redact": 2, "require_approval": 3, "block": 4}


@dataclass(frozen=True)
class ContextItem:
    """Something the run retrieved: a tool's result (`source` `tool:<name>`) or a document
    (`document:<name>`), as text. What a grounding check compares the answer with."""

    source: str
    text: str
    tool: str | None = None  # the tool whose result this is (None for a document)
    call_id: str | None = None


@dataclass(frozen=True)
class Check:
    """What a guardrail looks at. `text` for input and output; `tool` and `args` for an action."""

    point: Point
    agent: str
    text: str | None = None
    tool: str | None = None
    args: Mapping[str, Any] | None = None
    run_id: str | None = None
    tenant_id: str | None = None
    principal: str | None = None  # who asked for the run: `user:<id>`, `service:<key prefix>`, ...
    roles: tuple[str, ...] = ()  # that principal's roles (from its token), for per-principal rules
    instructions: str | None = None  # the run's system prompt (for leak detection on output)
    tool_calls: Mapping[str, int] = field(default_factory=dict)  # calls so far in this run, per tool
    user_id: str | None = None  # the user the run is for, when known
    # The run's retrieved context so far (tool results, documents), in the order retrieved; filled
    # for output checks (the grounding check reads it).
    context: tuple[ContextItem, ...] = ()
    # The run's tool calls so far (keel.runtime.result.ToolCall, with their arguments and status),
    # this call excluded; filled for action checks (spend caps sum their arguments).
    calls: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    guardrail: str
    reason: str = ""
    text: str | None = None  # the redacted text (verdict redact, input and output)
    args: Mapping[str, Any] | None = None  # the redacted arguments (verdict redact, action)

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "guardrail": self.guardrail, "reason": self.reason}


def allow(name: str) -> Decision:
    return Decision("allow", name)


class Guardrail(Protocol):
    name: str
    points: frozenset[Point]

    async def check(self, check: Check) -> Decision: ...


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    text: str | None
    args: Mapping[str, Any] | None
    decisions: tuple[Decision, ...]

    @property
    def reason(self) -> str:
        """The deciding guardrails and their reasons, for people (and the run's error message)."""
        deciding = [d for d in self.decisions if d.verdict == self.verdict and d.verdict != "allow"]
        return "; ".join(f"{d.guardrail}: {d.reason}" if d.reason else d.guardrail for d in deciding)

    @property
    def warnings(self) -> list[Decision]:
        return [d for d in self.decisions if d.verdict == "warn"]


class Guardrails:
    """An agent's guardrails, in order, and the extra guardrails of some tenants (after the agent's)."""

    def __init__(
        self,
        guardrails: Sequence[Guardrail] = (),
        *,
        tenants: Mapping[str, Sequence[Guardrail]] | None = None,
    ) -> None:
        self.guardrails = tuple(guardrails)
        self.tenants: dict[str, tuple[Guardrail, ...]] = {
            tenant: tuple(extra) for tenant, extra in (tenants or {}).items() if extra
        }

    def for_tenant(self, tenant_id: str | None) -> tuple[Guardrail, ...]:
        """The chain a run of `tenant_id` goes through: the agent's guardrails, then the tenant's."""
        extra = self.tenants.get(tenant_id) if tenant_id is not None else None
        return self.guardrails + extra if extra else self.guardrails

    def at(self, point: Point, tenant_id: str | None = None) -> bool:
        """Whether any guardrail applies at `point`: for `tenant_id`'s runs, or (None) for any tenant's."""
        if tenant_id is None:
            chains: list[tuple[Guardrail, ...]] = [self.guardrails, *self.tenants.values()]
        else:
            chains = [self.for_tenant(tenant_id)]
        return any(point in g.points for chain in chains for g in chain)

    async def run(self, check: Check) -> Outcome:
        text, args = check.text, check.args
        decisions: list[Decision] = []
        verdict: Verdict = "allow"
        for guardrail in self.for_tenant(check.tenant_id):
            if check.point not in guardrail.points:
                continue
            current = Check(**{**check.__dict__, "text": text, "args": args})
            try:
                decision = await guardrail.check(current)
            except Exception as exc:  # deny unless allowed: a broken guardrail blocks
                log.exception("guardrail %s failed", guardrail.name)
                decision = Decision(
                    "block", guardrail.name, f"the guardrail failed: {type(exc).__name__}: {exc}"
                )
            decisions.append(decision)
            if _STRENGTH[decision.verdict] > _STRENGTH[verdict]:
                verdict = decision.verdict
            if decision.verdict == "redact":
                text = decision.text if decision.text is not None else text
                args = decision.args if decision.args is not None else args
            if decision.verdict in ("block", "require_approval"):
                break
        return Outcome(verdict, text, args, tuple(decisions))
