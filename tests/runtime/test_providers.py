"""Every provider is built by configuration, with the SDK's own retries off; keys come from the environment."""

from __future__ import annotations

import pytest
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.google import GoogleModel
from pydantic_ai.models.openai import OpenAIChatModel

from keel.config.project import ResolvedModel
from keel.errors import UsageError
from keel.runtime.providers import ModelFactory, build_model


def test_openai_and_compatible_servers() -> None:
    model = build_model(
        ResolvedModel("fast", "openai", "gpt-4o-mini", api_key_env="OPENAI_API_KEY"),
        {"OPENAI_API_KEY": "sk-test"},
    )
    assert isinstance(model, OpenAIChatModel)
    assert model.model_name == "gpt-4o-mini"
    assert model.client.max_retries == 0
    local = build_model(
        ResolvedModel("local", "openai-compatible", "llama3.1", base_url="http://127.0.0.1:11434/v1"), {}
    )
    assert isinstance(local, OpenAIChatModel)
    assert str(local.client.base_url).startswith("http://127.0.0.1:11434/v1")


def test_anthropic() -> None:
    model = build_model(
        ResolvedModel("claude", "anthropic", "claude-sonnet-4-5", api_key_env="ANTHROPIC_API_KEY"),
        {"ANTHROPIC_API_KEY": "sk-ant-test"},
    )
    assert isinstance(model, AnthropicModel)
    assert model.client.max_retries == 0


def test_google() -> None:
    model = build_model(
        ResolvedModel("gemini", "google", "gemini-2.5-flash", api_key_env="GEMINI_API_KEY"),
        {"GEMINI_API_KEY": "k"},
    )
    assert isinstance(model, GoogleModel)
    assert model.model_name == "gemini-2.5-flash"


def test_a_cloud_model_without_its_key_is_a_clear_error() -> None:
    with pytest.raises(UsageError, match="set the environment variable OPENAI_API_KEY"):
        build_model(ResolvedModel("fast", "openai", "gpt-4o-mini", api_key_env="OPENAI_API_KEY"), {})


async def test_the_factory_shares_and_closes_clients() -> None:
    factory = ModelFactory({"OPENAI_API_KEY": "sk-test"})
    ref = ResolvedModel("fast", "openai", "gpt-4o-mini", api_key_env="OPENAI_API_KEY")
    first, second = (
        factory(ref),
        factory(ResolvedModel("big", "openai", "gpt-4o", api_key_env="OPENAI_API_KEY")),
    )
    assert isinstance(first, OpenAIChatModel)
    assert isinstance(second, OpenAIChatModel)
    assert first.client is second.client
    await factory.aclose()
    assert first.client.is_closed()
