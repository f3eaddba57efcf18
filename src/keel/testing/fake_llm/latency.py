"""Simulated latency: fixed, uniform or normal (clipped at 0), seeded; plus an optional per-chunk delay.

The delay is applied before the response (for a stream: before its first event), to every
chat-completions request whatever its outcome. `chunk_ms` is added between the events of a stream.
"""

from __future__ import annotations

import random
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from keel.errors import UsageError

_Ms = Annotated[float, Field(ge=0)]


class Latency(BaseModel):
    """A latency distribution in milliseconds. Build one with `fixed`, `uniform`, `normal` or `parse`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["fixed", "uniform", "normal"] = "fixed"
    ms: _Ms = 0.0
    min_ms: _Ms = 0.0
    max_ms: _Ms = 0.0
    mean_ms: _Ms = 0.0
    stddev_ms: _Ms = 0.0
    chunk_ms: _Ms = Field(default=0.0, description="Delay between the events of a stream.")

    @model_validator(mode="after")
    def _ordered(self) -> Latency:
        if self.kind == "uniform" and self.max_ms < self.min_ms:
            raise ValueError("uniform latency needs max_ms >= min_ms")
        return self

    @classmethod
    def fixed(cls, ms: float, *, chunk_ms: float = 0.0) -> Latency:
        return cls(kind="fixed", ms=ms, chunk_ms=chunk_ms)

    @classmethod
    def uniform(cls, min_ms: float, max_ms: float, *, chunk_ms: float = 0.0) -> Latency:
        return cls(kind="uniform", min_ms=min_ms, max_ms=max_ms, chunk_ms=chunk_ms)

    @classmethod
    def normal(cls, mean_ms: float, stddev_ms: float, *, chunk_ms: float = 0.0) -> Latency:
        return cls(kind="normal", mean_ms=mean_ms, stddev_ms=stddev_ms, chunk_ms=chunk_ms)

    @classmethod
    def parse(cls, spec: str, *, chunk_ms: float = 0.0) -> Latency:
        """`50` (fixed), `10..50` (uniform), `40~10` (normal: mean~stddev). Raises UsageError."""
        text = spec.strip()
        try:
            if ".." in text:
                low, high = text.split("..", 1)
                return cls.uniform(float(low), float(high), chunk_ms=chunk_ms)
            if "~" in text:
                mean, stddev = text.split("~", 1)
                return cls.normal(float(mean), float(stddev), chunk_ms=chunk_ms)
            return cls.fixed(float(text), chunk_ms=chunk_ms)
        except ValueError as exc:  # float() or the model's validation (a ValueError too)
            raise UsageError(
                f"bad latency {spec!r}: expected MS, MIN..MAX or MEAN~STDDEV in milliseconds ({exc})"
            ) from None

    @property
    def is_zero(self) -> bool:
        if self.kind == "fixed":
            return self.ms == 0
        if self.kind == "uniform":
            return self.max_ms == 0
        return self.mean_ms == 0 and self.stddev_ms == 0


class LatencySampler:
    """Draws delays in seconds. Not thread-safe: the server calls it under its lock."""

    def __init__(self, latency: Latency, seed: int) -> None:
        self.latency = latency
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        self._rng = random.Random(f"keel-fake-llm:latency:{self.seed}")

    def sample(self) -> float:
        latency = self.latency
        if latency.kind == "fixed":
            ms = latency.ms
        elif latency.kind == "uniform":
            ms = self._rng.uniform(latency.min_ms, latency.max_ms)
        else:
            ms = max(0.0, self._rng.gauss(latency.mean_ms, latency.stddev_ms))
        return ms / 1000.0

    @property
    def chunk_delay(self) -> float:
        return self.latency.chunk_ms / 1000.0
