"""Which version of a label a run gets.

A label points at one version, or splits traffic between several with weights in percent (a
canary: `[{version: 1.4.0, weight: 90}, {version: 1.5.0, weight: 10}]`). The choice is a hash of
the label and a sticky key, so the same user (or session) always lands on the same version while
the split stays as it is:

- `sticky: user`: the run's user id, else its session id, else the run id;
- `sticky: session`: the session id, else the user id, else the run id;
- `sticky: none`: the run id (every run drawn afresh).

The hash is SHA-256 of `tenant:prompt:label:key`, read as a number in [0, 1) with 10,000 buckets,
so weights are honoured to 0.01 %.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from keel.prompts.errors import PromptError

Sticky = Literal["user", "session", "none"]
STICKY: tuple[Sticky, ...] = get_args(Sticky)
BUCKETS = 10_000


@dataclass(frozen=True)
class Share:
    version: str
    weight: float  # percent

    def as_dict(self) -> dict[str, object]:
        return {"version": self.version, "weight": self.weight}


def check_rollout(shares: Sequence[Share]) -> tuple[Share, ...]:
    """The shares, checked: at least one, distinct versions, weights > 0 adding up to 100."""
    if not shares:
        raise PromptError("a label needs at least one version", code="invalid_rollout")
    versions = [s.version for s in shares]
    if len(set(versions)) != len(versions):
        raise PromptError("a version appears twice in the rollout", code="invalid_rollout")
    for share in shares:
        if not 0 < share.weight <= 100:
            raise PromptError(
                f"weight {share.weight:g} of {share.version} must be above 0 and at most 100",
                code="invalid_rollout",
            )
    total = sum(s.weight for s in shares)
    if abs(total - 100) > 1e-6:
        raise PromptError(f"the weights add up to {total:g}, not 100", code="invalid_rollout")
    return tuple(shares)


def sticky_key(sticky: str, *, run_id: str, user_id: str | None = None, session_id: str | None = None) -> str:
    if sticky == "user":
        return f"user:{user_id}" if user_id else f"session:{session_id}" if session_id else f"run:{run_id}"
    if sticky == "session":
        return f"session:{session_id}" if session_id else f"user:{user_id}" if user_id else f"run:{run_id}"
    return f"run:{run_id}"


def choose(shares: Sequence[Share], *, tenant_id: str, prompt: str, label: str, key: str) -> str:
    """The version `key` gets from `shares` (deterministic)."""
    if len(shares) == 1:
        return shares[0].version
    digest = hashlib.sha256(f"{tenant_id}:{prompt}:{label}:{key}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % BUCKETS
    edge = 0.0
    for share in shares:
        edge += share.weight * BUCKETS / 100
        if bucket < edge:
            return share.version
    return shares[-1].version
