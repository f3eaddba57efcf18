"""Prompt-injection detection in layers, and marking of untrusted content as data.

Layers, in order:

1. normalization (`normalize`): NFKC, invisible characters removed, homoglyphs folded;
2. decoding (`decoded_variants`): base64, hex, URL-encoded and rot13 payloads, letter-spaced and
   string-concatenated words, at most two layers deep; each decoded variant is scanned too, and an
   instruction found inside an encoded payload is a finding of its own;
3. patterns and heuristics (`injection_rules.RULES`): instruction overrides in several languages,
   role and system impersonation, chat-template tokens, fake tool results, system-prompt
   extraction, exfiltration through links and images, jailbreak personas, instructions addressed to
   the model, covert actions, authority claims. Weights combine per category as a noisy OR; a
   match quoted in a text that discusses injection counts for less;
4. optionally, a classifier (`injection_model`): logistic regression over hashed word and
   character n-grams plus the heuristic findings, trained offline on the training split of the
   shipped evaluation set and loaded from `injection_model.json`. With it on, its probability is
   the score.

Matched spans are offsets into the variant they were found in: `variant == "input"` is the
normalized input (`normalize(text)`), not the raw text; other variants name their decoding layers.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from keel.guardrails.injection_match import Folded, plan_of, rule_matches
from keel.guardrails.injection_rules import COMPACT_PHRASES, DISCUSSION, QUOTES, RULES, Rule
from keel.guardrails.normalize import (
    DEFAULT_LIMITS,
    DecodeLimits,
    Variant,
    collapse_whitespace,
    decoded_variants,
    prepare,
)
from keel.guardrails.untrusted import mark_untrusted

__all__ = [
    "DEFAULT_THRESHOLD",
    "InjectionDetector",
    "InjectionVerdict",
    "MatchedSpan",
    "Scan",
    "detect_injection",
    "mark_untrusted",
    "rescale",
    "scan",
]

DEFAULT_THRESHOLD = 0.5
# Instructions hidden inside an encoded payload are suspicious in themselves.
ENCODED_WEIGHT = 0.6
# How much a quoted match counts in a text that discusses injection, and an unquoted one.
QUOTED_DISCUSSION_FACTOR = 0.25
DISCUSSION_FACTOR = 0.55
NEGATED_FACTOR = 0.4
MAX_SPANS_PER_RULE = 3
# An override preceded by a negation or a question about it ("why does it ignore the system
# prompt?", "make sure it doesn't ignore its instructions") describes behaviour, it doesn't ask for it.
_NEGATION = re.compile(
    r"(?:\bnot|n't|\bnever|\bwithout|\bwhy (?:does|do|did|would) (?:it|the \w+|my \w+)|\bkeeps?|\bstop it from|"
    r"\bprevent (?:it|the \w+) from|\bavoid)\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class MatchedSpan:
    rule: str
    category: str
    variant: str
    start: int
    end: int
    text: str
    weight: float


@dataclass
class InjectionVerdict:
    score: float
    flagged: bool
    reasons: list[str] = field(default_factory=list)
    spans: list[MatchedSpan] = field(default_factory=list)
    heuristic_score: float = 0.0
    classifier_score: float | None = None

    @property
    def categories(self) -> dict[str, float]:
        """The strongest weight found per category."""
        out: dict[str, float] = {}
        for span in self.spans:
            out[span.category] = max(out.get(span.category, 0.0), span.weight)
        return out


@dataclass(frozen=True)
class Scan:
    """What the heuristic layers found, before any classifier."""

    normalized: str
    variants: tuple[Variant, ...]
    spans: tuple[MatchedSpan, ...]
    categories: dict[str, float]
    score: float
    reasons: tuple[str, ...]


def _inside_quotes(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] sits between quote marks on its line (apostrophes in words don't count)."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end

    def quotes(segment: str, offset: int) -> int:
        count = 0
        for i, c in enumerate(segment):
            if c not in QUOTES:
                continue
            j = offset + i
            before = text[j - 1] if j > 0 else " "
            after = text[j + 1] if j + 1 < len(text) else " "
            if c in "'’" and before.isalpha() and after.isalpha():
                continue  # don't, it's
            count += 1
        return count

    window = max(line_start, start - 80)
    opening = max(text.rfind(q, window, start) for q in QUOTES)
    if opening < 0 or re.search(r"[:\[,]\s*$", text[max(line_start, opening - 3) : opening]):
        return False  # no quote before it, or a JSON string value: not a quotation
    return (
        quotes(text[line_start:start], line_start) % 2 == 1
        and quotes(text[end : min(line_end, end + 80)], end) > 0
    )


def _noisy_or(weights: Sequence[float]) -> float:
    remaining = 1.0
    for w in weights:
        remaining *= 1.0 - min(max(w, 0.0), 1.0)
    return 1.0 - remaining


class _Discussion:
    """The number of distinct discussion markers in the input, counted once and only if needed."""

    def __init__(self, text: str | None) -> None:
        self.text = text
        self.folded: Folded | None = None  # set by `_scan_variant`, for `rule_matches`
        self._count: int | None = None

    @property
    def count(self) -> int:
        if self._count is None:
            found = (
                rule_matches(DISCUSSION, self.text, self.folded, sys.maxsize)
                if self.text is not None
                else iter(())
            )
            self._count = len({m.group(0).lower() for m in found})
        return self._count


def _scan_variant(
    text: str,
    variant: str,
    rules: Sequence[Rule],
    discussion: _Discussion,
    spans: list[MatchedSpan],
    *,
    prefilter: bool = True,
) -> None:
    """Match every rule, trying each only where its prefixes occur (see `keel.guardrails.injection_match`).

    `prefilter=False` runs each rule's `finditer` over the whole text instead: the reference.
    """
    folded = Folded(text) if prefilter else None
    discussion.folded = folded
    for rule in rules:
        if prefilter:
            matches: Iterator[re.Match[str]] = rule_matches(rule.pattern, text, folded, MAX_SPANS_PER_RULE)
        else:
            matches = itertools.islice(rule.pattern.finditer(text), MAX_SPANS_PER_RULE)
        for match in matches:
            weight = rule.weight
            if variant == "input" and rule.discountable and discussion.count:
                if _inside_quotes(text, match.start(), match.end()):
                    weight *= QUOTED_DISCUSSION_FACTOR
                elif discussion.count >= 2:
                    weight *= DISCUSSION_FACTOR
                if rule.category == "override" and _NEGATION.search(
                    text, max(0, match.start() - 24), match.start()
                ):
                    weight *= NEGATED_FACTOR
            spans.append(
                MatchedSpan(
                    rule.name, rule.category, variant, match.start(), match.end(), match.group(0), weight
                )
            )


def _scan_compact(text: str, variant: str, spans: list[MatchedSpan]) -> None:
    compact = re.sub(r"[^a-z]", "", text.lower())
    for phrase, category, weight in COMPACT_PHRASES:
        at = compact.find(phrase)
        if at >= 0:
            spans.append(
                MatchedSpan(f"compact:{phrase}", category, variant, at, at + len(phrase), phrase, weight)
            )


def _rule_weight(rules: Sequence[Rule], name: str) -> float:
    return next((r.weight for r in rules if r.name == name), 1.0)


def scan(
    text: str, *, rules: Sequence[Rule] = RULES, limits: DecodeLimits = DEFAULT_LIMITS, prefilter: bool = True
) -> Scan:
    """Run normalization, decoding and the pattern rules; score = noisy OR of the category maxima.

    `prefilter=False` runs every rule's `finditer` over every variant: slower, the same matches.
    """
    for pattern in (DISCUSSION, *(rule.pattern for rule in rules)):
        plan_of(pattern)  # before any text is folded: see `injection_match._char_unsafe`
    prepared = prepare(text)
    normalized = collapse_whitespace(prepared)
    variants = tuple(decoded_variants(prepared, limits))
    spans: list[MatchedSpan] = []
    _scan_variant(normalized, "input", rules, _Discussion(normalized), spans, prefilter=prefilter)
    for v in variants:
        before = len(spans)
        _scan_variant(v.text, v.name, rules, _Discussion(None), spans, prefilter=prefilter)
        if v.layers[-1] == "joined":
            _scan_compact(v.text, v.name, spans)
        strong = [s for s in spans[before:] if s.weight >= 0.5 and s.category != "encoded_instruction"]
        if strong and v.layers != ("joined",):
            s = strong[0]
            spans.append(
                MatchedSpan(
                    "encoded_payload", "encoded_instruction", v.name, s.start, s.end, s.text, ENCODED_WEIGHT
                )
            )
    categories: dict[str, float] = {}
    best: dict[str, MatchedSpan] = {}
    for span in spans:
        if span.weight > categories.get(span.category, 0.0):
            categories[span.category] = span.weight
            best[span.category] = span
    reasons = tuple(
        f"{cat}: {best[cat].rule} {best[cat].text[:80]!r}"
        + (f" (in {best[cat].variant})" if best[cat].variant != "input" else "")
        + (" (discounted)" if best[cat].weight < _rule_weight(rules, best[cat].rule) else "")
        for cat in sorted(categories, key=lambda c: -categories[c])
    )
    return Scan(normalized, variants, tuple(spans), categories, _noisy_or(list(categories.values())), reasons)


def rescale(probability: float, cut: float, target: float) -> float:
    """Map [0, cut] onto [0, target] and [cut, 1] onto [target, 1], linearly: a probability at the
    classifier's threshold becomes a score at the detector's."""
    if probability < cut:
        return target * probability / cut if cut > 0 else target
    return target + (1.0 - target) * (probability - cut) / (1.0 - cut) if cut < 1 else 1.0


class InjectionDetector:
    """Configured detection: thresholds, decoding limits, and whether the classifier layer is on.

    Without the classifier, `score` is the heuristic score and `flagged` is `score >= threshold`.
    With `use_classifier`, the classifier's probability is rescaled so that its threshold
    (`classifier_threshold`, default the model's) lands on `threshold`, and the score is the larger
    of that and the heuristic score: either layer alone flags what it is confident about.
    `classifier_only` scores with the rescaled probability alone. The model is loaded once, on
    first use.
    """

    def __init__(
        self,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        use_classifier: bool = False,
        classifier_threshold: float | None = None,
        classifier_only: bool = False,
        limits: DecodeLimits = DEFAULT_LIMITS,
        rules: Sequence[Rule] = RULES,
        model_path: str | None = None,
    ) -> None:
        self.threshold = threshold
        self.use_classifier = use_classifier or classifier_only
        self.classifier_threshold = classifier_threshold
        self.classifier_only = classifier_only
        self.limits = limits
        self.rules = tuple(rules)
        self.model_path = model_path

    def detect(self, text: str) -> InjectionVerdict:
        found = scan(text, rules=self.rules, limits=self.limits)
        reasons = list(found.reasons)
        heuristic = round(found.score, 4)
        if not self.use_classifier:
            return InjectionVerdict(
                score=heuristic,
                flagged=found.score >= self.threshold,
                reasons=reasons,
                spans=list(found.spans),
                heuristic_score=heuristic,
            )
        from keel.guardrails.injection_model import load_model

        model = load_model(self.model_path)
        probability = model.predict(found)
        cut = model.threshold if self.classifier_threshold is None else self.classifier_threshold
        rescaled = rescale(probability, cut, self.threshold)
        score = rescaled if self.classifier_only else max(found.score, rescaled)
        flagged = score >= self.threshold
        reasons.append(f"classifier: {probability:.3f} (threshold {cut:.2f})")
        return InjectionVerdict(
            score=round(score, 4),
            flagged=flagged,
            reasons=reasons,
            spans=list(found.spans),
            heuristic_score=heuristic,
            classifier_score=round(probability, 4),
        )


def detect_injection(
    text: str, *, use_classifier: bool = False, threshold: float | None = None
) -> InjectionVerdict:
    """Detect with default settings; `threshold` overrides the one of the score (see `InjectionDetector`)."""
    if use_classifier:
        return InjectionDetector(
            use_classifier=True, threshold=DEFAULT_THRESHOLD if threshold is None else threshold
        ).detect(text)
    return InjectionDetector(threshold=DEFAULT_THRESHOLD if threshold is None else threshold).detect(text)
