"""What a model request cost, in USD.

Prices come from `keel.yaml` first (`models.<name>.price`, for self-hosted or negotiated prices),
then from genai-prices' bundled snapshot (offline; no network at run time). A model neither
knows is unpriced: its cost is `None`, never a guessed zero.

genai-prices' general calculation costs ~0.1 ms a call, too much to pay on every model request,
so a `Pricer` looks each model up once and, when its price is a plain per-token rate (no tier
reached, no cache tokens), multiplies directly; otherwise it defers to genai-prices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from keel.config.project import ResolvedModel

_MTOK = Decimal(1_000_000)
# Keel's provider names, as genai-prices knows them. OpenAI-compatible servers have no public price.
_PROVIDER_IDS: Mapping[str, str] = {"openai": "openai", "anthropic": "anthropic", "google": "google"}


@dataclass(frozen=True)
class _Rates:
    input_mtok: Decimal
    output_mtok: Decimal


@dataclass(frozen=True)
class _Known:
    """A genai-prices model: its plain rates (when it has them) and what it takes to price it exactly."""

    rates: _Rates | None
    first_tier: int | None  # input tokens from which a tiered price applies
    provider: Any
    model: Any


class Pricer:
    """Prices requests per model. Owned by a Runner; caches lookups for its lifetime."""

    def __init__(self) -> None:
        self._cache: dict[ResolvedModel, _Rates | _Known | None] = {}

    def cost(
        self, model: ResolvedModel, input_tokens: int, output_tokens: int, cache_read_tokens: int = 0
    ) -> Decimal | None:
        entry = self._cache.get(model, _MISSING)
        if entry is _MISSING:
            entry = self._cache[model] = _lookup(model)
        if entry is None:
            return None
        if isinstance(entry, _Rates):
            return (input_tokens * entry.input_mtok + output_tokens * entry.output_mtok) / _MTOK
        assert isinstance(entry, _Known)
        tiered = entry.first_tier is not None and input_tokens >= entry.first_tier
        if entry.rates is not None and not tiered and not cache_read_tokens:
            return (input_tokens * entry.rates.input_mtok + output_tokens * entry.rates.output_mtok) / _MTOK
        from genai_prices import Usage

        usage = Usage(
            input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cache_read_tokens
        )
        total: Decimal = entry.model.calc_price(usage, entry.provider).total_price
        return total


_MISSING: Any = object()


def _lookup(model: ResolvedModel) -> _Rates | _Known | None:
    if model.price is not None:
        return _Rates(Decimal(str(model.price.input_per_mtok)), Decimal(str(model.price.output_per_mtok)))
    provider_id = _PROVIDER_IDS.get(model.provider)
    if provider_id is None:
        return None
    from genai_prices import Usage
    from genai_prices.data_snapshot import get_snapshot

    try:
        provider, info = get_snapshot().find_provider_model(model.model, None, provider_id, None)
        price = info.calc_price(Usage(input_tokens=0, output_tokens=0), provider).model_price
    except LookupError:
        return None
    rates, first_tier = None, None
    inputs, outputs = getattr(price, "input_mtok", None), getattr(price, "output_mtok", None)
    tiers = [getattr(p, "tiers", None) for p in (inputs, outputs)]
    starts = [tier.start for group in tiers if group for tier in group]
    first_tier = min(starts) if starts else None
    base_in = getattr(inputs, "base", inputs)
    base_out = getattr(outputs, "base", outputs)
    if isinstance(base_in, Decimal) and isinstance(base_out, Decimal):
        rates = _Rates(base_in, base_out)
    return _Known(rates, first_tier, provider, info)
