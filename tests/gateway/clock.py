"""A clock for the gateway tests that only moves when told to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)


@dataclass
class Clock:
    """Aware UTC time, starting at T0; `advance` moves it."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)
