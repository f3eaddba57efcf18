"""The optional classifier layer of prompt-injection detection: a logistic regression, pure Python.

Features, hashed into `dims` buckets with CRC-32 (stable across processes and platforms):

- word unigrams and bigrams of the normalized input and of its decoded variants;
- character 4-grams of each distinct word (padded with spaces), which survive small spelling
  changes and inflections;
- the heuristic layer's findings: the strongest weight per category, the heuristic score, and
  which decoding layers found a payload.

Hashed n-gram features are binary and scaled by 1/sqrt(their number), so long texts don't
dominate. The weights are trained offline by `bench/train_injection_classifier.py` on the
training split of the shipped evaluation set and stored in `injection_model.json` beside this
module (sparse: only the buckets training touched). Nothing is downloaded at run time.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keel.guardrails.injection import Scan

MODEL_PATH = Path(__file__).with_name("injection_model.json")
FORMAT = "keel-injection-logreg/1"
DEFAULT_DIMS = 1 << 16
MAX_FEATURE_CHARS = 8_000  # only this much of the input and of the decoded text feeds the n-grams

_TOKEN = re.compile(r"\w+|[^\w\s]")


def _bucket(feature: str, dims: int) -> int:
    return zlib.crc32(feature.encode("utf-8")) % dims


def features(found: Scan, dims: int = DEFAULT_DIMS) -> dict[int, float]:
    """The feature vector of one scanned text, as {bucket: value}."""
    text = found.normalized[:MAX_FEATURE_CHARS].lower()
    decoded = " ".join(v.text for v in found.variants)[:MAX_FEATURE_CHARS].lower()
    grams: set[str] = set()
    for prefix, source in (("w", text), ("d", decoded)):
        tokens = _TOKEN.findall(source)
        grams.update(f"{prefix}1:{t}" for t in tokens)
        grams.update(f"{prefix}2:{a} {b}" for a, b in itertools.pairwise(tokens))
        for word in {t for t in tokens if len(t) > 2}:
            padded = f" {word} "
            grams.update(f"c4:{padded[i : i + 4]}" for i in range(len(padded) - 3))
    vector: dict[int, float] = {}
    if grams:
        scale = 1.0 / math.sqrt(len(grams))
        for g in grams:
            b = _bucket(g, dims)
            vector[b] = vector.get(b, 0.0) + scale
    named: dict[str, float] = {f"cat:{c}": w for c, w in found.categories.items()}
    named["heuristic"] = found.score
    named["heuristic_flag"] = 1.0 if found.score >= 0.5 else 0.0
    for v in found.variants:
        named[f"layer:{v.layers[-1]}"] = 1.0
    for name, value in named.items():
        b = _bucket("n:" + name, dims)
        vector[b] = vector.get(b, 0.0) + value
    return vector


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(frozen=True)
class InjectionModel:
    dims: int
    bias: float
    weights: dict[int, float]
    threshold: float
    meta: dict[str, Any]

    def probability(self, vector: dict[int, float]) -> float:
        w = self.weights
        return sigmoid(self.bias + sum(w.get(i, 0.0) * x for i, x in vector.items()))

    def predict(self, found: Scan) -> float:
        return self.probability(features(found, self.dims))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "dims": self.dims,
            "bias": self.bias,
            "threshold": self.threshold,
            "meta": self.meta,
            "weights": {str(i): self.weights[i] for i in sorted(self.weights)},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InjectionModel:
        if data.get("format") != FORMAT:
            raise ValueError(
                f"not a Keel injection model (format {data.get('format')!r}, expected {FORMAT!r})"
            )
        return cls(
            dims=int(data["dims"]),
            bias=float(data["bias"]),
            weights={int(k): float(v) for k, v in data["weights"].items()},
            threshold=float(data["threshold"]),
            meta=dict(data.get("meta", {})),
        )


@lru_cache(maxsize=4)
def load_model(path: str | None = None) -> InjectionModel:
    """The shipped model (or the one at `path`), loaded once per process."""
    with open(path or MODEL_PATH, encoding="utf-8") as f:
        return InjectionModel.from_json(json.load(f))
