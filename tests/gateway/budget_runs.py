"""Simulated runs for the budget concurrency tests, shared by the test and its worker processes.

A "run" reserves its estimate, calls a fake provider only if the reservation succeeded, then
settles with an actual amount equal to the estimate. `run_all` starts every run at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal

from keel.gateway.budgets import Budget, BudgetExceeded
from keel.store.ledger import BudgetLedger

TENANT = "acme"
LIMIT = Decimal("3.00")
ESTIMATE = Decimal("0.10")  # LIMIT / ESTIMATE = 30 runs exactly
TOKENS = 1_000


def crash_budget(run_id: str) -> Budget:
    """A run budget worth 10 estimates (a run window never ends, whatever the clock says)."""
    return Budget("run", run_id, "usd", "run", ESTIMATE * 10, tenant_id=TENANT)


def budgets_for(run_id: str) -> list[Budget]:
    """The budgets of one run: the tenant's daily USD budget (the one that binds), the run's own
    USD budget and the agent's monthly token budget, so every reservation locks three counters."""
    return [
        Budget("tenant", TENANT, "usd", "day", LIMIT, soft_threshold=0.8),
        Budget("run", run_id, "usd", "run", Decimal("1.00"), tenant_id=TENANT),
        Budget("agent", "support", "tokens", "month", 1_000_000_000, tenant_id=TENANT),
    ]


@dataclass
class Outcome:
    """What a batch of runs did: which ran, which were refused, which reached the provider."""

    succeeded: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    refused_by: list[str] = field(default_factory=list)  # the scope of the budget that refused
    provider_calls: list[str] = field(default_factory=list)
    refused_before_call: int = 0
    soft_crossings: int = 0
    hard_crossings: int = 0


async def one_run(ledger: BudgetLedger, run_id: str, outcome: Outcome) -> None:
    try:
        reservation = await ledger.reserve(
            budgets_for(run_id), amount_usd=ESTIMATE, tokens=TOKENS, run_id=run_id
        )
    except BudgetExceeded as refused:
        outcome.refused_by.append(refused.budget.scope)
        if run_id not in outcome.provider_calls:
            outcome.refused_before_call += 1
        outcome.refused.append(run_id)
        return
    await fake_provider(run_id, outcome)
    settlement = await ledger.settle(reservation, actual_usd=ESTIMATE, actual_tokens=TOKENS)
    outcome.soft_crossings += sum(1 for crossing in settlement.crossed if not crossing.hard)
    outcome.hard_crossings += sum(1 for crossing in settlement.crossed if crossing.hard)
    outcome.succeeded.append(run_id)


async def fake_provider(run_id: str, outcome: Outcome) -> None:
    """The model request: only ever called after a successful reservation."""
    outcome.provider_calls.append(run_id)
    await asyncio.sleep(0)  # yield, so other runs reserve and settle meanwhile


async def run_all(ledger: BudgetLedger, run_ids: list[str]) -> Outcome:
    outcome = Outcome()
    await asyncio.gather(*(one_run(ledger, run_id, outcome) for run_id in run_ids))
    return outcome
