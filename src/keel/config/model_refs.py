"""Model references: a name from keel.yaml `models:` or `provider:model`, resolved and checked."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, get_args

from keel.config.project import DEFAULT_KEY_ENV, ResolvedModel
from keel.config.schema import ModelConfig, ProviderName
from keel.config.yaml_source import Flat, Loc
from keel.errors import ConfigIssue

# Providers usable as `provider:model` without a keel.yaml entry (openai-compatible needs a base_url).
DIRECT_PROVIDERS: tuple[ProviderName, ...] = tuple(
    p for p in get_args(ProviderName) if p != "openai-compatible"
)


class _Skip:
    """The reference names a keel.yaml model that is itself invalid (already reported)."""


def resolve_model(
    ref: str, named: Mapping[str, ModelConfig], skip: Callable[[str], bool]
) -> ResolvedModel | _Skip | None:
    """The model `ref` names; None when it names nothing."""
    if ref in named:
        cfg = named[ref]
        return ResolvedModel(
            ref=ref,
            provider=cfg.provider,
            model=cfg.model,
            base_url=cfg.base_url,
            api_key_env=cfg.api_key_env or DEFAULT_KEY_ENV[cfg.provider],
            price=cfg.price,
        )
    provider, sep, name = ref.partition(":")
    if skip(ref) and provider not in DIRECT_PROVIDERS:
        return _Skip()
    for direct in DIRECT_PROVIDERS:
        if sep and name and name == name.strip() and provider == direct:
            return ResolvedModel(ref=ref, provider=direct, model=name, api_key_env=DEFAULT_KEY_ENV[direct])
    return None


def unknown_model_message(shown: str, named: Collection[str]) -> str:
    names = ", ".join(sorted(named)) or "none"
    return (
        f"unknown model {shown} (named models: {names}; or use provider:model with provider one of "
        f"{', '.join(DIRECT_PROVIDERS)})"
    )


def _repeat_message(shown: str, ref: str, other_loc: Loc, other: ResolvedModel, doc: Flat) -> str:
    where = "the primary model" if other_loc == ("model",) else f"fallback_models[{other_loc[1]}]"
    if other.ref == ref:
        return f"model {shown} is listed twice in the chain (also {where})"
    # The resolved names are not shown: they may come from environment variables.
    return (
        f"model {shown} is the same model as {where}, {doc.show(other_loc, other.ref)} (same provider, "
        "model, base_url and api_key_env): a model may appear only once in the chain"
    )


def _identity(model: ResolvedModel) -> tuple[Any, ...]:
    return (model.provider, model.model, model.base_url, model.api_key_env)


def resolve_chain(
    primary: str | None,
    fallbacks: list[str] | None,
    named: Mapping[str, ModelConfig],
    skip: Callable[[str], bool],
    doc: Flat,
    names: Collection[str] = (),
) -> tuple[ResolvedModel | None, tuple[ResolvedModel, ...], list[ConfigIssue]]:
    """Resolve `model` and `fallback_models`; report unknown models and repeats in the chain.

    Either may be None when it is missing or already reported invalid; it is then skipped.
    """
    issues: list[ConfigIssue] = []
    chain: list[tuple[Loc, ResolvedModel]] = []
    entries: list[tuple[Loc, str]] = []
    if primary is not None:
        entries.append((("model",), primary))
    entries += [(("fallback_models", i), ref) for i, ref in enumerate(fallbacks or [])]
    resolved_primary: ResolvedModel | None = None
    resolved_fallbacks: list[ResolvedModel] = []
    for loc, ref in entries:
        shown = doc.show(loc, ref)
        model = resolve_model(ref, named, skip)
        if isinstance(model, _Skip):
            continue
        if model is None:
            issues.append(doc.issue(loc, unknown_model_message(shown, names or list(named))))
            continue
        repeat = next(
            ((other_loc, other) for other_loc, other in chain if _identity(other) == _identity(model)), None
        )
        if repeat is not None:
            issues.append(doc.issue(loc, _repeat_message(shown, ref, *repeat, doc)))
            continue
        chain.append((loc, model))
        if loc == ("model",):
            resolved_primary = model
        else:
            resolved_fallbacks.append(model)
    return resolved_primary, tuple(resolved_fallbacks), issues
