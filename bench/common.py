"""Shared bits of the benchmarks: percentiles and the machine line every report prints."""

from __future__ import annotations

import math
import os
import platform
import uuid
from collections.abc import Iterator
from contextlib import contextmanager


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


@contextmanager
def scratch_postgres(admin_url: str) -> Iterator[str | None]:
    """A throwaway Postgres database for one benchmark run (None, with a notice, if none answers)."""
    import psycopg
    from psycopg import sql
    from sqlalchemy import make_url

    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        print(f"postgres: skipped, server not reachable ({str(exc).splitlines()[0]})")
        yield None
        return
    name = f"keel_bench_{uuid.uuid4().hex[:8]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield (
            make_url(admin_url)
            .set(drivername="postgresql", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
