"""Shared bits of the benchmarks: percentiles and the machine line every report prints."""

from __future__ import annotations

import math
import os
import platform


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def machine_line() -> str:
    load1, load5, load15 = os.getloadavg()
    return (
        f"machine: {os.cpu_count()} cpus, load {load1:.2f} {load5:.2f} {load15:.2f}, "
        f"python {platform.python_version()}, {platform.machine()}"
    )
