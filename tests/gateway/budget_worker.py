"""A worker process of the budget concurrency tests.

`python -m tests.gateway.budget_worker URL PREFIX COUNT`: opens its own ledger (its own engine),
prints `ready`, waits for a line on stdin, runs COUNT runs at once and prints their outcome as one
JSON line.

`python -m tests.gateway.budget_worker URL hold RUN_ID`: reserves one request against the run
budget of `budget_runs.crash_budget(RUN_ID)` (so its ledger leases room), prints `held` and waits
for stdin to close; the test kills it first, so its lease is left behind as by a crash.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys

from keel.store.ledger import BudgetLedger
from tests.gateway.budget_runs import ESTIMATE, TOKENS, crash_budget, run_all


async def main(url: str, prefix: str, count: int) -> None:
    async with BudgetLedger(url) as ledger:
        await ledger.spent("tenant", "warm-up", "day")  # connect before the start line
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        outcome = await run_all(ledger, [f"{prefix}-{index}" for index in range(count)])
    print(json.dumps(dataclasses.asdict(outcome)), flush=True)


async def hold(url: str, run_id: str) -> None:
    ledger = BudgetLedger(url)
    await ledger.reserve([crash_budget(run_id)], amount_usd=ESTIMATE, tokens=TOKENS, run_id=run_id)
    await ledger.flush()
    print("held", flush=True)
    await asyncio.to_thread(sys.stdin.read)  # killed before this returns
    await ledger.close()


if __name__ == "__main__":
    if sys.argv[2] == "hold":
        asyncio.run(hold(sys.argv[1], sys.argv[3]))
    else:
        asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
