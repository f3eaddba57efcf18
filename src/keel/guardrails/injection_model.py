"""The optional classifier layer of prompt-injection detection: a logistic regression, pure Python.

It reads the text only (not the heuristic findings), so its score is a second, independent
opinion that `InjectionDetector` can combine with the rules' score.

Features of a piece of text (lower-cased, digits folded to 0): character 3-, 4- and 5-grams
(across word boundaries, so `system:`, `<sys` and `ignor` are features; they survive inflection,
spelling changes and related languages), word unigrams and word bigrams. Features are binary,
scaled by 1/sqrt(their number). The model keeps a weight per feature string that training found
useful (a sparse vocabulary, no hashing collisions); an unknown feature weighs nothing.

A text is scored in windows (`WINDOW` characters, half overlapping) and so is each decoded
variant (base64, hex, ...); the probability is the highest of any window. An instruction hidden in
one paragraph of a long document is judged on its own paragraph, not diluted by the rest.

The weights are trained offline by `bench/train_injection_classifier.py` (the training split of
the shipped evaluation set plus generated texts, deterministically) and stored in
`injection_model.json` beside this module. Nothing is downloaded at run time.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keel.guardrails.injection import Scan

MODEL_PATH = Path(__file__).with_name("injection_model.json")
FORMAT = "keel-injection-logreg/2"
WINDOW = 300  # characters per window; windows start every WINDOW // 2
MAX_CHARS = 20_000  # of the input and of each decoded variant
MAX_VARIANTS = 8
CHAR_NS = (3, 4, 5)

_WORD = re.compile(r"\w+")
_DIGIT = re.compile(r"\d")
_SPACE = re.compile(r"\s+")


def _prepare(text: str) -> str:
    text = _SPACE.sub(" ", text.lower())
    return _DIGIT.sub("0", text) if any(c.isdigit() for c in text) else text


def features(text: str) -> set[str]:
    """The feature strings of one window of text (`c:` character n-grams, `w:` words, `b:` bigrams)."""
    t = f" {_prepare(text)} "
    grams: set[str] = set()
    for n in CHAR_NS:
        grams.update("c:" + t[i : i + n] for i in range(len(t) - n + 1))
    words = _WORD.findall(t)
    grams.update("w:" + w for w in words)
    grams.update(f"b:{a} {b}" for a, b in itertools.pairwise(words))
    return grams


def windows(text: str, size: int = WINDOW) -> Iterator[str]:
    """`text` cut into windows of `size` characters starting every `size // 2` (one if it is short)."""
    text = text[:MAX_CHARS]
    if len(text) <= size:
        yield text
        return
    step = size // 2
    for start in range(0, len(text) - step, step):
        yield text[start : start + size]


def units(found: Scan) -> Iterator[str]:
    """What the classifier scores for one scanned text: windows of the input and of its decoded variants."""
    yield from windows(found.normalized)
    for variant in found.variants[:MAX_VARIANTS]:
        yield from windows(variant.text)


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(frozen=True)
class InjectionModel:
    bias: float
    weights: dict[str, float]
    threshold: float  # for the classifier's probability alone
    meta: dict[str, Any]

    def logit(self, grams: Iterable[str]) -> float:
        w = self.weights
        values = [w.get(g, 0.0) for g in grams]
        if not values:
            return self.bias
        return self.bias + sum(values) / math.sqrt(len(values))

    def probability(self, text: str) -> float:
        """The probability that one window of text is an injection."""
        return sigmoid(self.logit(features(text)))

    def predict(self, found: Scan) -> float:
        """The highest probability over the windows of the input and of its decoded variants."""
        return sigmoid(max(self.logit(features(u)) for u in units(found)))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "bias": self.bias,
            "threshold": self.threshold,
            "meta": self.meta,
            "weights": dict(sorted(self.weights.items())),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InjectionModel:
        if data.get("format") != FORMAT:
            raise ValueError(
                f"not a Keel injection model (format {data.get('format')!r}, expected {FORMAT!r})"
            )
        return cls(
            bias=float(data["bias"]),
            weights={str(k): float(v) for k, v in data["weights"].items()},
            threshold=float(data["threshold"]),
            meta=dict(data.get("meta", {})),
        )


@lru_cache(maxsize=4)
def load_model(path: str | None = None) -> InjectionModel:
    """The shipped model (or the one at `path`), loaded once per process."""
    with open(path or MODEL_PATH, encoding="utf-8") as f:
        return InjectionModel.from_json(json.load(f))
