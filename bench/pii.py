"""PII detection (keel.guardrails.pii) on the labelled synthetic corpus: precision and recall per
type, and the cost of detection per 2 KB of text.

    python -m bench.pii [--samples 3000] [--seed 20240601] [--rounds 5]

The corpus (tests/guardrails/pii_corpus.py) is generated locally from the seed: support emails,
chats, logs, forms and JSON tool calls with PII of each type in varied formats (some hidden
with zero-width or fullwidth characters), hard negatives, and filler. A label counts as found
when a finding of its type covers all its letters and digits; a finding is correct when it
overlaps a label of its type. "covered" counts labels covered by findings of any type (what
redaction hides). Names and addresses are measured with `entities=True`, apart.

The same set is run through keel.tracing.redact as content capture `redacted` uses it
(`redact_all`: this detector, plus exact values of secret variables), scored from its masks: the
same figures are expected, and the masked text must hold nothing the detector finds again.

A holdout set (tests/guardrails/pii_corpus_holdout.py, 600 texts) is scored apart: formats and
sentences written after the detector was tuned on the main corpus, some of them known gaps.

Cost: the corpus cut into 2 KB texts (dense with PII: about ten values each), one email or chat
message of the corpus filled up to 2 KB with prose (typical input: a few values), and 2 KB of
plain prose; p50 and p99 of single calls in milliseconds.

Target: recall at least 95% for each structured type.
"""

from __future__ import annotations

import argparse
import gc
import re
import sys
import time
from collections.abc import Callable

from bench.common import machine_line, percentile
from keel.guardrails.pii import STRUCTURED_TYPES, detect, redact
from tests.guardrails.pii_corpus import Sample, generate
from tests.guardrails.pii_corpus_holdout import generate_holdout
from tests.guardrails.pii_corpus_score import Tally, score

_MASK = re.compile(r"\[REDACTED:([a-z_]+)\]")
_THEIR_TYPES = {"api_key": "secret", "jwt": "secret", "private_key": "secret", "token": "secret"}  # fmt: skip
PLAIN = (
    "Thanks for getting back to me so quickly. The dashboard shows twelve failed jobs in the last hour, "
    "and nothing changed on our side since Monday. Could you look into this as soon as possible? "
)


def _ours(entities: bool) -> Callable[[str], list[tuple[str, int, int, str]]]:
    def spans(text: str) -> list[tuple[str, int, int, str]]:
        return [(f.type, f.start, f.end, f.subtype) for f in detect(text, entities=entities)]

    return spans


def _theirs(text: str) -> list[tuple[str, int, int, str]]:
    """keel.tracing.redact's masks (capture `redacted`) as spans, by aligning the masked text
    with the original."""
    from keel.tracing.redact import redact_all

    found: list[tuple[str, int, int, str]] = []
    for masked in (redact_all(text),):
        kinds = _MASK.findall(masked)
        if not kinds:
            continue
        pieces = _MASK.split(masked)[::2]
        match = re.fullmatch("(.+?)".join(re.escape(p) for p in pieces), text, re.DOTALL)
        if match is None:
            continue  # a mask masked again; rare, left out of the comparison
        for group, kind in enumerate(kinds, start=1):
            found.append((_THEIR_TYPES.get(kind, kind), *match.span(group), kind))
    return found


def _table(title: str, tallies: dict[str, Tally], types: list[str]) -> None:
    print(f"\n{title}")
    print(f"  {'type':12} {'labels':>7} {'recall':>7} {'covered':>8} {'precision':>10} {'findings':>9}")
    total = Tally()
    for kind in types:
        tally = tallies.get(kind, Tally())
        for field in ("labels", "found", "covered", "findings", "correct"):
            setattr(total, field, getattr(total, field) + getattr(tally, field))
        covered = tally.covered / tally.labels if tally.labels else 1.0
        print(
            f"  {kind:12} {tally.labels:7} {tally.recall:7.1%} {covered:8.1%} {tally.precision:10.1%} {tally.findings:9}"
        )
    covered = total.covered / total.labels if total.labels else 1.0
    print(
        f"  {'overall':12} {total.labels:7} {total.recall:7.1%} {covered:8.1%} {total.precision:10.1%} {total.findings:9}"
    )


def _chunks(samples: list[Sample], size: int = 2048) -> list[str]:
    chunks: list[str] = []
    current = ""
    for sample in samples:
        if len(current) + len(sample.text) + 1 > size:
            chunks.append((current + " " * size)[:size])
            current = ""
        current += sample.text + "\n"
    return chunks


def _cost(label: str, texts: list[str], call: Callable[[str], object], rounds: int) -> None:
    for text in texts[:20]:
        call(text)  # warm up
    times: list[float] = []
    gc.disable()
    try:
        for _ in range(rounds):
            for text in texts:
                started = time.perf_counter_ns()
                call(text)
                times.append((time.perf_counter_ns() - started) / 1e6)
    finally:
        gc.enable()
    print(
        f"  {label:54} p50 {percentile(times, 50):6.3f} ms   p99 {percentile(times, 99):6.3f} ms   ({len(times)} calls)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    print(machine_line())
    samples = generate(args.samples, seed=args.seed)
    labels = sum(len(s.labels) for s in samples)
    negatives = sum(len(s.negatives) for s in samples)
    hidden = sum(label.obfuscated for s in samples for label in s.labels)
    print(
        f"corpus: {len(samples)} texts (seed {args.seed}), {sum(len(s.text) for s in samples) / 1024:.0f} KB, "
        f"{labels} labelled values ({hidden} hidden with invisible or look-alike characters), {negatives} hard negatives"
    )

    structured = sorted(STRUCTURED_TYPES)
    tallies, misses = score(samples, _ours(entities=False))
    _table("keel.guardrails.pii, structured types (default)", tallies, structured)
    entity_tallies, _ = score(samples, _ours(entities=True))
    _table("names and addresses (entities=True, heuristic)", entity_tallies, ["name", "address"])
    holdout = generate_holdout(600, seed=7)
    holdout_tallies, holdout_misses = score(holdout, _ours(entities=False))
    _table(
        "holdout (tests/guardrails/pii_corpus_holdout.py: formats written after the detector was tuned)",
        holdout_tallies,
        structured,
    )
    gaps: dict[str, int] = {}
    for miss in holdout_misses:
        if miss.kind == "missed":
            gaps[f"{miss.type}/{miss.subtype}"] = gaps.get(f"{miss.type}/{miss.subtype}", 0) + 1
    print(
        "  missed on the holdout, by format: "
        + (", ".join(f"{k} {n}" for k, n in sorted(gaps.items())) or "none")
    )
    their_tallies, _ = score(samples, _theirs)
    _table("keel.tracing.redact, capture `redacted` (redact_all), from its masks", their_tallies, structured)

    missed: dict[tuple[str, str], int] = {}
    for miss in misses:
        if miss.kind == "missed" and miss.type in STRUCTURED_TYPES:
            missed[(miss.type, miss.subtype)] = missed.get((miss.type, miss.subtype), 0) + 1
    if missed:
        print(
            "\nmissed structured values, by format: "
            + ", ".join(f"{t}/{s} {n}" for (t, s), n in sorted(missed.items()))
        )
    wrong: dict[str, int] = {}
    for miss in misses:
        if miss.kind == "false_positive":
            wrong[miss.type] = wrong.get(miss.type, 0) + 1
    if wrong:
        print("false positives: " + ", ".join(f"{t} {n}" for t, n in sorted(wrong.items())))

    from keel.tracing.redact import redact_all, redact_secrets

    again = sum(1 for sample in samples if detect(redact_all(sample.text)))
    print(f"texts where the detector finds something in redact_all's output: {again} (expected 0)")

    failing = [kind for kind in structured if tallies[kind].recall < 0.95]
    print(
        f"target: recall >= 95% for each structured type: {'met' if not failing else 'NOT met for ' + ', '.join(failing)}"
    )

    print("\ncost per 2 KB of text:")
    dense = _chunks(samples)
    plain = [(PLAIN * 20)[:2048]] * 200
    # A support email or chat message with its few values, the rest of the 2 KB plain prose.
    typical = [(s.text + " " + PLAIN * 20)[:2048] for s in samples if s.genre in ("email", "chat")][:400]
    _cost("detect, structured types, PII-dense text", dense, detect, args.rounds)
    _cost("detect, secrets only, PII-dense text", dense, lambda t: detect(t, types={"secret"}), args.rounds)
    _cost(
        "detect, with names and addresses, PII-dense", dense, lambda t: detect(t, entities=True), args.rounds
    )
    _cost("redact (tags), PII-dense text", dense, redact, args.rounds)
    _cost("keel.tracing.redact_all (capture redacted), PII-dense", dense, redact_all, args.rounds)
    _cost("keel.tracing.redact_secrets (every mode), PII-dense", dense, redact_secrets, args.rounds)
    _cost("detect, structured types, one message + prose", typical, detect, args.rounds)
    _cost("detect, structured types, plain prose", plain, detect, args.rounds)
    _cost("keel.tracing.redact_all (capture redacted), plain prose", plain, redact_all, args.rounds)
    _cost("keel.tracing.redact_secrets (every mode), plain prose", plain, redact_secrets, args.rounds)
    print(machine_line())
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
