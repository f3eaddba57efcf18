"""Prompt-injection detection: recall and false-positive rate on the labelled set, and cost per 2 KB.

    python -m bench.injection [--runs 300] [--misses 12]

The set is tests/guardrails/injection_set/items.jsonl (how it was made: README.md there). Figures:

- per split (test, holdout, holdout2 ... holdout6), the heuristic rules alone, the classifier
  alone (`classifier_only=True`) and the two combined (`use_classifier=True`). The classifier never
  trained on any of them, but its threshold and its public training sources were chosen on the
  test split; the rules were tuned while looking at train, test and the first holdout. holdout2 to
  holdout6 were never tuned on: the closest figures to unseen text; holdout6 was written blind and
  measured once before any change (see the set's README for when each was measured);
- with `--system-docs`, false positives on paragraphs of the machine's own package documentation
  (/usr/share/doc: READMEs, .md and .txt files; never trained on; depends on what is installed);
- the external public set (`--external`, needs the pinned PyPI archives, downloaded once by pip
  into a cache): PyRIT's jailbreak prompts and deepeval's benign prompts, sources the classifier
  never trained on, per source;
- heuristics on everything (train + test + holdouts);
- recall per kind (injections) and false-positive rate per kind (benign), recall per obfuscation;
- what the misses on the test split and the later holdouts look like;
- cost of one `detect` on a 2 KB input, p50/p99 in ms, for inputs cut from the set's texts (some
  with encoded payloads), from its injections only (attack-dense text) and for plain prose, with
  and without the classifier.

Target (issue #6): at least 90% recall at most 2% false positives.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.common import machine_line, percentile
from keel.guardrails.injection import InjectionDetector

ROOT = Path(__file__).resolve().parents[1]
ITEMS = ROOT / "tests" / "guardrails" / "injection_set" / "items.jsonl"
SPLITS = ("test", "holdout", "holdout2", "holdout3", "holdout4", "holdout5", "holdout6")
INJECTION_KINDS = ("direct", "indirect_tool_result", "indirect_document")
BENIGN_KINDS = ("benign_lookalike", "benign")
PROSE = (
    "Thanks for your message about the delivery. The parcel left our warehouse on Tuesday and the carrier "
    "expects to deliver it by Friday afternoon. If nobody is at home, the driver will leave a card with "
    "instructions for collecting it from the local depot. Our support team is available from 9 am to 6 pm "
    "on weekdays, and you can also check the status of your order online at any time. "
)


def load(path: Path = ITEMS) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _rate(hits: int, total: int) -> str:
    return f"{hits / total:6.1%} ({hits}/{total})" if total else "     - (0/0)"


class Tally:
    def __init__(self) -> None:
        self.flagged: dict[str, int] = defaultdict(int)
        self.total: dict[str, int] = defaultdict(int)
        self.obfuscation: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        self.misses: list[tuple[dict[str, Any], float]] = []
        self.false_positives: list[tuple[dict[str, Any], list[str]]] = []

    def add(self, item: dict[str, Any], flagged: bool, score: float, reasons: list[str]) -> None:
        kind = item["kind"]
        self.total[kind] += 1
        self.flagged[kind] += flagged
        if item["label"] == "injection":
            self.obfuscation[item["obfuscation"]][0] += flagged
            self.obfuscation[item["obfuscation"]][1] += 1
            if not flagged:
                self.misses.append((item, score))
        elif flagged:
            self.false_positives.append((item, reasons))

    def recall(self) -> tuple[int, int]:
        return sum(self.flagged[k] for k in INJECTION_KINDS), sum(self.total[k] for k in INJECTION_KINDS)

    def false_positive(self) -> tuple[int, int]:
        return sum(self.flagged[k] for k in BENIGN_KINDS), sum(self.total[k] for k in BENIGN_KINDS)


def evaluate(detector: InjectionDetector, items: Iterable[dict[str, Any]]) -> Tally:
    tally = Tally()
    for item in items:
        verdict = detector.detect(item["text"])
        tally.add(item, verdict.flagged, verdict.score, verdict.reasons)
    return tally


def report(name: str, tally: Tally) -> None:
    r, rt = tally.recall()
    f, ft = tally.false_positive()
    target = "meets" if rt and ft and r / rt >= 0.9 and f / ft <= 0.02 else "misses"
    print(f"  {name:<34} recall {_rate(r, rt)}   false positives {_rate(f, ft)}   ({target} the target)")
    per_kind = "   ".join(f"{k} {_rate(tally.flagged[k], tally.total[k]).strip()}" for k in INJECTION_KINDS)
    print(f"    recall per kind: {per_kind}")
    per_kind = "   ".join(f"{k} {_rate(tally.flagged[k], tally.total[k]).strip()}" for k in BENIGN_KINDS)
    print(f"    false positives per kind: {per_kind}")


def _snippet(item: dict[str, Any], width: int = 110) -> str:
    text = item["text"].replace("\n", " ")
    if item["carrier"] != "none":
        return f"[{item['carrier']}] …{text[-width:]!r}"
    return repr(text[:width])


def cost(detector: InjectionDetector, inputs: list[str], runs: int) -> tuple[float, float]:
    for text in inputs[:20]:
        detector.detect(text)  # warm-up: compiled patterns, the model file
    timings: list[float] = []
    for n in range(runs):
        text = inputs[n % len(inputs)]
        start = time.perf_counter()
        detector.detect(text)
        timings.append((time.perf_counter() - start) * 1000)
    return percentile(timings, 50), percentile(timings, 99)


def inputs_2kb(items: list[dict[str, Any]], count: int = 100) -> list[str]:
    """2,048-character inputs made of consecutive texts of the set (some carry encoded payloads)."""
    out: list[str] = []
    buf = ""
    for item in items * 3:
        buf += item["text"] + "\n\n"
        if len(buf) >= 2048:
            out.append(buf[:2048])
            buf = ""
            if len(out) == count:
                break
    return out


def system_doc_paragraphs(count: int = 800, root: Path = Path("/usr/share/doc")) -> list[str]:
    """`count` paragraphs (120-1,500 characters, mostly letters) of the machine's package
    documentation, a fixed sample; changelogs and copyright files left out."""
    found: list[str] = []
    for path in sorted(root.rglob("*")):
        name = path.name.lower()
        readable = name.startswith("readme") or name.endswith((".md", ".txt", ".md.gz", ".txt.gz"))
        if not path.is_file() or not readable or "changelog" in name or "copyright" in name:
            continue
        try:
            raw = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError, EOFError):
            continue
        for block in re.split(r"\n\s*\n", text):
            paragraph = " ".join(line.strip() for line in block.splitlines())
            letters = sum(c.isalpha() for c in paragraph)
            if 120 <= len(paragraph) <= 1500 and paragraph.count(" ") > 15 and letters > 0.6 * len(paragraph):
                found.append(paragraph)
    return random.Random(2).sample(found, min(count, len(found)))


def external(misses: int, *detectors: InjectionDetector) -> None:
    """The public texts the classifier never trained on, per source (kind: the source)."""
    from tests.guardrails.injection_set import public

    texts = public.external()
    print(
        f"== external public set: {len(texts)} texts ({', '.join(f'{k} {a.version}' for k, a in public.ARCHIVES.items() if k in public.EXTERNAL_SOURCES)})"
    )
    rows = [
        {
            "text": t.text,
            "label": t.label,
            "kind": "direct" if t.label == "injection" else "benign",
            "obfuscation": "none",
            "carrier": "none",
            "source": t.source,
        }
        for t in texts
    ]
    for name, detector in zip(
        ("heuristics", "classifier alone", "heuristics + classifier"), detectors, strict=True
    ):
        tally = evaluate(detector, rows)
        report(name, tally)
        per_source: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for row in rows:
            flagged = detector.detect(row["text"]).flagged
            per_source[row["source"]][0] += flagged
            per_source[row["source"]][1] += 1
        print(
            "    flagged per source: "
            + "   ".join(f"{k} {_rate(h, t).strip()}" for k, (h, t) in sorted(per_source.items()))
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="timed detect calls per variant")
    parser.add_argument("--misses", type=int, default=12, help="misses shown per split")
    parser.add_argument(
        "--external",
        action="store_true",
        help="also the external public set (PyRIT, deepeval; downloads once)",
    )
    parser.add_argument(
        "--system-docs",
        action="store_true",
        help="also false positives on paragraphs of /usr/share/doc (benign, never trained on)",
    )
    args = parser.parse_args(argv)

    items = load()
    by_split: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        by_split[item["split"]].append(item)
    injections = sum(1 for i in items if i["label"] == "injection")
    print(
        f"set: {len(items)} items ({injections} injections, {len(items) - injections} benign), "
        + ", ".join(f"{s} {len(v)}" for s, v in sorted(by_split.items()))
    )
    heuristics = InjectionDetector()
    classifier = InjectionDetector(use_classifier=True)
    alone = InjectionDetector(classifier_only=True)

    results: dict[tuple[str, str], Tally] = {}
    for split in SPLITS:
        print(f"== split {split}")
        for name, detector in (
            ("heuristics", heuristics),
            ("classifier alone", alone),
            ("heuristics + classifier", classifier),
        ):
            results[split, name] = tally = evaluate(detector, by_split[split])
            report(name, tally)
    if args.external:
        external(args.misses, heuristics, alone, classifier)
    if args.system_docs:
        paragraphs = system_doc_paragraphs()
        print(f"== /usr/share/doc paragraphs (benign, never trained on): {len(paragraphs)}")
        for name, detector in (
            ("heuristics", heuristics),
            ("classifier alone", alone),
            ("heuristics + classifier", classifier),
        ):
            flagged = sum(detector.detect(text).flagged for text in paragraphs)
            print(f"  {name:<34} false positives {_rate(flagged, len(paragraphs))}")
    print("== everything (train + test + holdouts)")
    results["all", "heuristics"] = everything = evaluate(heuristics, items)
    report("heuristics", everything)
    print(
        "    recall per obfuscation: "
        + "   ".join(f"{k} {h}/{t}" for k, (h, t) in sorted(everything.obfuscation.items()))
    )

    for split in ("test", "holdout2", "holdout3", "holdout4", "holdout5", "holdout6"):
        tally = results[split, "heuristics + classifier"]
        print(f"== misses on {split} (heuristics + classifier), {len(tally.misses)} in all")
        for item, score in tally.misses[: args.misses]:
            print(f"  {item['kind']:<21} {score:.2f} {_snippet(item)}")
        for item, reasons in tally.false_positives[: args.misses]:
            print(f"  FALSE POSITIVE {item['kind']} {_snippet(item)} {reasons[:2]}")
    tally = everything
    print(f"== false positives on everything (heuristics), {len(tally.false_positives)} in all")
    for item, reasons in tally.false_positives[: args.misses]:
        print(f"  {item['kind']:<17} {_snippet(item)} {reasons[:1]}")

    print(f"== cost of one detect, 2 KB input, {args.runs} runs each")
    mixed = inputs_2kb(items)
    dense = inputs_2kb([i for i in items if i["label"] == "injection"])
    prose = [(PROSE * 8)[:2048]]
    for label, inputs in (("set texts", mixed), ("attacks only", dense), ("plain prose", prose)):
        for name, detector in (("heuristics", heuristics), ("heuristics + classifier", classifier)):
            p50, p99 = cost(detector, inputs, args.runs)
            print(f"  {label:<12} {name:<24} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
    print(machine_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
