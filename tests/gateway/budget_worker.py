"""A worker process of the budget concurrency test: `python -m tests.gateway.budget_worker URL
PREFIX COUNT`. Opens its own ledger (its own engine), prints `ready`, waits for a line on stdin,
runs COUNT runs at once and prints their outcome as one JSON line."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys

from keel.store.ledger import BudgetLedger
from tests.gateway.budget_runs import run_all


async def main(url: str, prefix: str, count: int) -> None:
    async with BudgetLedger(url) as ledger:
        await ledger.spent("tenant", "warm-up", "day")  # connect before the start line
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        outcome = await run_all(ledger, [f"{prefix}-{index}" for index in range(count)])
    print(json.dumps(dataclasses.asdict(outcome)), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
