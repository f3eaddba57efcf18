"""Turn a resolved model reference into a pydantic-ai `Model`, with the SDK's own retries off.

No hand-written provider clients: OpenAI and any OpenAI-compatible server (vLLM, Ollama,
llama.cpp) through `OpenAIChatModel`, Anthropic through `AnthropicModel`, Gemini through
`GoogleModel`. Keel owns retries (`keel.runtime.retry`), so each SDK is told to make exactly one
attempt per request; otherwise retries would be invisible and counted twice.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic_ai.models import Model

from keel.config.project import ResolvedModel
from keel.errors import UsageError

# The key used when a model points at a local OpenAI-compatible server that wants none.
_NO_KEY = "not-needed"


def api_key_for(model: ResolvedModel, environ: Mapping[str, str] | None = None) -> str | None:
    """The model's API key from the environment, or None when it may go without one.

    A model with its own `base_url` (a local or self-hosted server) may run without a key; a cloud
    provider without its key is a configuration mistake, reported before any request is sent.
    """
    env = os.environ if environ is None else environ
    key = env.get(model.api_key_env) if model.api_key_env else None
    if key:
        return key
    if model.base_url:
        return None
    if model.api_key_env:
        raise UsageError(
            f"model {model.ref!r} ({model.label}) needs an API key: set the environment variable "
            f"{model.api_key_env}, or give the model a base_url for a local server"
        )
    raise UsageError(f"model {model.ref!r} ({model.label}) has no api_key_env and no base_url")


class ModelFactory:
    """Builds models, sharing one SDK client (one connection pool) per provider, URL and key.

    Owned by a `Runner`; `aclose()` closes the clients it made.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ
        self._clients: dict[tuple[str, str | None, str | None], Any] = {}

    def __call__(self, model: ResolvedModel) -> Model:
        return build_model(model, self._environ, self._clients)

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()


def build_model(
    model: ResolvedModel,
    environ: Mapping[str, str] | None = None,
    clients: dict[tuple[str, str | None, str | None], Any] | None = None,
) -> Model:
    key = api_key_for(model, environ)
    cache: dict[tuple[str, str | None, str | None], Any] = {} if clients is None else clients
    cache_key = (model.provider, model.base_url, key)
    if model.provider in ("openai", "openai-compatible"):
        from openai import AsyncOpenAI
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        if cache_key not in cache:
            cache[cache_key] = AsyncOpenAI(api_key=key or _NO_KEY, base_url=model.base_url, max_retries=0)
        return OpenAIChatModel(model.model, provider=OpenAIProvider(openai_client=cache[cache_key]))
    if model.provider == "anthropic":
        from anthropic import AsyncAnthropic
        from pydantic_ai.models.anthropic import AnthropicModel
        from pydantic_ai.providers.anthropic import AnthropicProvider

        if cache_key not in cache:
            cache[cache_key] = AsyncAnthropic(api_key=key or _NO_KEY, base_url=model.base_url, max_retries=0)
        return AnthropicModel(model.model, provider=AnthropicProvider(anthropic_client=cache[cache_key]))
    if model.provider == "google":
        from google.genai.types import HttpRetryOptions
        from pydantic_ai.models.google import GoogleModel
        from pydantic_ai.providers.google import GoogleProvider

        provider = GoogleProvider(
            api_key=key or _NO_KEY, base_url=model.base_url, retry_options=HttpRetryOptions(attempts=1)
        )
        return GoogleModel(model.model, provider=provider)
    raise UsageError(f"unsupported provider {model.provider!r}")  # pragma: no cover - schema forbids it
