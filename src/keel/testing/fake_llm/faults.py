"""Fault injection: which requests fail, and how, deterministically given a seed.

Per chat-completions request the injector first consumes the explicit `sequence` (one outcome per
request, `ok` included), then draws: with probability `rate` a fault happens, its kind drawn by the
relative `kinds` weights (default: 429, 500 and 503 equally). Two servers with the same seed and
configuration give the same outcomes for the same order of requests.
"""

from __future__ import annotations

import random
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from keel.errors import UsageError

FaultKind = Literal["429", "500", "503", "reset", "hang", "malformed", "cut_stream"]
Outcome = Literal["ok", "429", "500", "503", "reset", "hang", "malformed", "cut_stream"]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
DEFAULT_WEIGHTS: dict[FaultKind, float] = {"429": 1.0, "500": 1.0, "503": 1.0}


class Faults(BaseModel):
    """What goes wrong, how often. Immutable; swap it with `set_faults`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: Annotated[float, Field(ge=0, le=1, description="Share of requests that fail (0..1).")] = 0.0
    kinds: dict[FaultKind, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict,
        description="Relative weights of the kinds drawn when a fault happens; empty = 429/500/503 equally.",
    )
    sequence: list[Outcome] = Field(
        default_factory=list,
        description="Outcomes of the first requests, in order, before `rate` applies (e.g. 429, 429, ok).",
    )
    retry_after: Annotated[float | None, Field(ge=0)] = Field(
        default=1.0, description="Seconds sent in the Retry-After header of a 429 (None: no header)."
    )
    retry_after_ms_header: bool = Field(
        default=False, description="Also send `retry-after-ms` (OpenAI's millisecond header) with a 429."
    )
    hang_seconds: Annotated[float, Field(gt=0)] = Field(
        default=30.0, description="How long a `hang` holds the request before closing the connection."
    )
    cut_after_events: Annotated[int, Field(ge=0)] = Field(
        default=2, description="SSE events a `cut_stream` sends before closing (never the final ones)."
    )

    @model_validator(mode="before")
    @classmethod
    def _stringify(cls, data: object) -> object:
        """YAML and JSON give `429` as a number: accept it as the kind "429"."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        kinds = data.get("kinds")
        if isinstance(kinds, dict):
            data["kinds"] = {str(key): value for key, value in kinds.items()}
        sequence = data.get("sequence")
        if isinstance(sequence, list | tuple):
            data["sequence"] = [str(item) if isinstance(item, int) else item for item in sequence]
        return data

    @model_validator(mode="after")
    def _some_weight(self) -> Faults:
        if self.kinds and sum(self.kinds.values()) <= 0:
            raise ValueError("at least one fault kind needs a positive weight")
        return self

    @property
    def weights(self) -> dict[FaultKind, float]:
        return dict(self.kinds) if self.kinds else dict(DEFAULT_WEIGHTS)

    @property
    def active(self) -> bool:
        return self.rate > 0 or bool(self.sequence)

    @staticmethod
    def parse_weights(spec: str) -> dict[FaultKind, float]:
        """Parse `429=1,500=2,reset` (a kind without `=` weighs 1). Raises UsageError."""
        weights: dict[FaultKind, float] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            name, _, raw = item.partition("=")
            kind = name.strip()
            if kind not in FAULT_KINDS:
                raise UsageError(f"unknown fault kind {kind!r} (kinds: {', '.join(FAULT_KINDS)})")
            try:
                weight = float(raw) if raw.strip() else 1.0
            except ValueError:
                raise UsageError(f"fault weight for {kind} is not a number: {raw!r}") from None
            if weight < 0:
                raise UsageError(f"fault weight for {kind} must be >= 0")
            weights[kind] = weight
        return weights


class FaultInjector:
    """Draws the outcome of each request. Not thread-safe: the server calls it under its lock."""

    def __init__(self, faults: Faults, seed: int) -> None:
        self.faults = faults
        self.seed = seed
        self._weights = [(kind, weight) for kind, weight in faults.weights.items() if weight > 0]
        self._weights.sort(key=lambda pair: FAULT_KINDS.index(pair[0]))
        self._total = sum(weight for _, weight in self._weights)
        self.reset()

    def reset(self) -> None:
        """Rewind the sequence and re-seed the draws."""
        self._rng = random.Random(f"keel-fake-llm:faults:{self.seed}")
        self._position = 0

    def next(self) -> Outcome:
        sequence = self.faults.sequence
        if self._position < len(sequence):
            self._position += 1
            return sequence[self._position - 1]
        if self.faults.rate <= 0 or self._rng.random() >= self.faults.rate:
            return "ok"
        point = self._rng.random() * self._total
        for kind, weight in self._weights:
            point -= weight
            if point < 0:
                return kind
        return self._weights[-1][0]
