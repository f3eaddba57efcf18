"""Cost per request and per run: keel.yaml overrides, genai-prices, and unpriced models."""

from __future__ import annotations

from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price

from keel.config.project import ResolvedModel
from keel.config.schema import ModelPrice
from keel.pricing import Pricer
from keel.runtime.runner import Runner
from keel.testing.fake_llm import FakeLLMThread, Faults, Reply
from tests.runtime.helpers import make_project


@pytest.mark.parametrize(
    ("provider", "model"),
    [("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5"), ("google", "gemini-2.5-flash")],
)
@pytest.mark.parametrize("input_tokens", [1, 1_000, 250_000])  # 250k crosses Anthropic's long-context tier
def test_prices_match_genai_prices_exactly(provider: str, model: str, input_tokens: int) -> None:
    expected = calc_price(Usage(input_tokens=input_tokens, output_tokens=700), model, provider_id=provider)
    assert Pricer().cost(ResolvedModel(model, provider, model), input_tokens, 700) == expected.total_price  # type: ignore[arg-type]


def test_keel_yaml_price_overrides_win() -> None:
    price = ModelPrice(input_per_mtok=0.5, output_per_mtok=1.5)
    pricer = Pricer()
    assert pricer.cost(
        ResolvedModel("gpt", "openai", "gpt-4o-mini", price=price), 2_000_000, 1_000_000
    ) == Decimal("2.5")
    assert pricer.cost(ResolvedModel("gpt", "openai", "gpt-4o-mini"), 1_000_000, 0) == Decimal("0.15")


def test_unknown_models_are_unpriced_not_free() -> None:
    pricer = Pricer()
    assert pricer.cost(ResolvedModel("local", "openai-compatible", "llama3.1"), 100, 100) is None
    assert pricer.cost(ResolvedModel("x", "openai", "no-such-model-anywhere"), 100, 100) is None


async def test_run_cost_is_tokens_times_price_including_retries() -> None:
    price = ModelPrice(input_per_mtok=2, output_per_mtok=8)
    with FakeLLMThread(Reply(text="priced")) as fake:
        fake.set_faults(Faults(sequence=["500", "ok"]))
        project = make_project(base_url=fake.base_url, price=price, retry_options={"initial_delay": 0.01})
        async with Runner(project) as runner:
            result = await runner.run("agent", "hello")
        stats = fake.stats()
    assert result.succeeded
    expected = (stats.prompt_tokens * Decimal(2) + stats.completion_tokens * Decimal(8)) / Decimal(1_000_000)
    assert result.cost_usd == expected
    assert [c.cost_usd for c in result.model_calls] == [Decimal(0), expected]
    assert result.to_dict()["cost_usd"] == format(expected, "f")


async def test_a_run_on_an_unpriced_model_has_no_cost() -> None:
    with FakeLLMThread(Reply(text="free?")) as fake:
        async with Runner(make_project(base_url=fake.base_url)) as runner:
            result = await runner.run("agent", "hello")
    assert result.succeeded
    assert result.cost_usd is None
    assert result.to_dict()["cost_usd"] is None
