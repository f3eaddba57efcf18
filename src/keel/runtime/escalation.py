"""Escalation: a run handed to a person instead of going on, with a summary of what was tried.

An agent's `escalation:` names the triggers (keel.config.approvals.EscalationConfig):
- `human_request`: the user asks for a person (built-in phrases, plus `phrases`), checked on the
  run's input before the model sees it;
- `tools`: high-stakes tools: a call of one is not made; the run goes to a person;
- `failed_attempts`: once that many of the run's tool calls failed, were refused or rejected;
- `confidence`: a field of the structured answer below a threshold, checked on the answer.

The run then ends with status `escalated` and `RunResult.escalation` = {trigger, reason, summary}.
The summary is made from the run's own record (the request, each tool call and how it ended, the
last thing the model said), so the person taking over does not have to ask the user again; with
`summary_agent`, that agent rewrites it (keel.durable.approvals does this for durable runs).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from keel.config.approvals import EscalationConfig
from keel.runtime.result import ToolCall

_BUILT_IN_PHRASES = (
    r"\b(talk|speak|chat)\s+(to|with)\s+(a|an|some|real|actual|live)?\s*(human|person|people|someone|agent|representative|operator)\b",
    r"\b(real|actual|live)\s+(human|person|agent)\b",
    r"\bhuman\s+(agent|being|support|operator)\b",
    r"\b(customer\s+service\s+)?representative\b",
    r"\b(connect|transfer|put)\s+me\s+(to|through\s+to|with)\s+(a|an|someone|somebody)",
    r"\bi\s+want\s+(a|to\s+talk\s+to\s+a)\s+(human|person)\b",
    r"\bmit\s+einem\s+menschen\b",
    r"\bparler\s+à\s+(un|une)\s+(humain|personne|conseiller|conseillère)\b",
    r"\bhablar\s+con\s+(un|una)\s+(humano|persona|agente)\b",
)
_FAILED = ("error", "timeout")


class RunEscalated(Exception):
    """Raised inside a run to hand it to a person; the runner ends the run `escalated`."""

    def __init__(self, trigger: str, reason: str) -> None:
        super().__init__(reason)
        self.trigger, self.reason = trigger, reason


class Escalation:
    def __init__(self, config: EscalationConfig) -> None:
        self.config = config
        phrases = [
            *(_BUILT_IN_PHRASES if config.human_request else ()),
            *(re.escape(p) for p in config.phrases),
        ]
        self._human = re.compile("|".join(f"(?:{p})" for p in phrases), re.IGNORECASE) if phrases else None
        self._tools = frozenset(config.tools)

    def check_input(self, text: str) -> RunEscalated | None:
        if self._human is None:
            return None
        found = self._human.search(text)
        if found is None:
            return None
        return RunEscalated("human_request", f"the user asked for a person ({found.group(0)!r})")

    def check_action(self, tool: str, calls: Sequence[ToolCall]) -> RunEscalated | None:
        if tool in self._tools:
            return RunEscalated("high_stakes_tool", f"the model called {tool!r}, a tool a person must handle")
        limit = self.config.failed_attempts
        if limit is not None:
            failed = sum(1 for c in calls if c.status in _FAILED or c.status == "rejected")
            if failed >= limit:
                return RunEscalated(
                    "failed_attempts",
                    f"{failed} tool call{'s' if failed != 1 else ''} failed or were refused",
                )
        return None

    def check_output(self, output: Any) -> RunEscalated | None:
        trigger = self.config.confidence
        if trigger is None:
            return None
        value: Any = output
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                return RunEscalated("confidence", f"the answer has no {trigger.field!r} field (not JSON)")
        for part in trigger.field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, int | float) or isinstance(value, bool):
            return RunEscalated("confidence", f"the answer has no numeric {trigger.field!r} field")
        if value < trigger.below:
            return RunEscalated("confidence", f"{trigger.field} is {value:g}, below {trigger.below:g}")
        return None


def summarize(
    *,
    agent: str,
    input: Any,
    reason: str,
    tool_calls: Sequence[ToolCall],
    last_text: str,
    approvals: Sequence[dict[str, Any]] = (),
) -> str:
    """A plain-text account of the run for the person who takes it over."""
    request = input if isinstance(input, str) else json.dumps(input, ensure_ascii=False, default=str)
    lines = [
        f"Agent {agent!r} handed this run to a person: {reason}.",
        "",
        "What the user asked:",
        _indent(_clip(request, 2000)),
    ]
    if tool_calls:
        lines += ["", "What was tried:"]
        for n, call in enumerate(tool_calls, 1):
            args = json.dumps(call.args, ensure_ascii=False, default=str)
            outcome = call.status if call.error is None else f"{call.status}: {call.error}"
            lines.append(f"  {n}. {call.name}({_clip(args, 300)}) -> {_clip(outcome, 300)}")
    else:
        lines += ["", "No tool was called."]
    for approval in approvals:
        lines.append(f"  waiting for approval: {approval.get('tool')} ({approval.get('reason', '')})")
    if last_text.strip():
        lines += ["", "The agent's last words:", _indent(_clip(last_text.strip(), 1500))]
    lines += ["", f"Where it got stuck: {reason}."]
    return "\n".join(lines)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines() or [""])
