"""Scoring a detector against the labelled corpus (pii_corpus.py): per-type recall, coverage and
precision, and the misses, for the tests and bench/pii.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.guardrails.pii_corpus import Sample


@dataclass
class Tally:
    """Counts for one type: labels found (same type, every letter and digit covered), labels
    covered by a finding of any type, findings that match a label of their type, and the rest."""

    labels: int = 0
    found: int = 0
    covered: int = 0
    findings: int = 0
    correct: int = 0

    @property
    def recall(self) -> float:
        return self.found / self.labels if self.labels else 1.0

    @property
    def precision(self) -> float:
        return self.correct / self.findings if self.findings else 1.0


@dataclass(frozen=True)
class Miss:
    """A label not found, or a finding that matches no label (for diagnosis)."""

    kind: str  # "missed" or "false_positive"
    type: str
    subtype: str
    text: str
    sample: int


def _letters(text: str, start: int, end: int) -> set[int]:
    return {i for i in range(start, end) if text[i].isalnum()}


def score(
    samples: list[Sample], spans: Callable[[str], list[tuple[str, int, int, str]]]
) -> tuple[dict[str, Tally], list[Miss]]:
    """Per-type tallies of a detector on `samples`; `spans(text)` gives (type, start, end,
    subtype) per finding."""
    tallies: dict[str, Tally] = {}
    misses: list[Miss] = []
    for index, sample in enumerate(samples):
        text = sample.text
        found = spans(text)
        by_type: dict[str, set[int]] = {}
        for kind, start, end, _ in found:
            by_type.setdefault(kind, set()).update(range(start, end))
        everything = set().union(*by_type.values()) if by_type else set()
        for label in sample.labels:
            tally = tallies.setdefault(label.type, Tally())
            tally.labels += 1
            letters = _letters(text, label.start, label.end)
            if letters <= everything:
                tally.covered += 1
            if any(
                kind == label.type and letters <= set(range(start, end))
                for kind, start, end, _ in found
                if start < label.end and end > label.start
            ):
                tally.found += 1
            else:
                misses.append(Miss("missed", label.type, label.subtype, text[label.start : label.end], index))
        for kind, start, end, subtype in found:
            tally = tallies.setdefault(kind, Tally())
            tally.findings += 1
            if any(label.type == kind and start < label.end and end > label.start for label in sample.labels):
                tally.correct += 1
            else:
                misses.append(Miss("false_positive", kind, subtype, text[start:end], index))
    return tallies, misses
