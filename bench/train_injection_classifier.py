"""Train the optional prompt-injection classifier and write its weights into the package.

    python -m bench.train_injection_classifier [--check]

Reads the training split of tests/guardrails/injection_set/items.jsonl (never the test split),
scans each text with the heuristic layers (`keel.guardrails.injection.scan`), and fits a logistic
regression over `keel.guardrails.injection_model.features` with AdaGrad and L2 regularization:
fixed epochs, a fixed seed for the example order, weights rounded to 4 decimals, so the output is
the same file on every run. Writes src/keel/guardrails/injection_model.json; `--check` only
compares a fresh training with the shipped file and exits 1 if they differ. No network.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
from pathlib import Path

from keel.guardrails.injection import scan
from keel.guardrails.injection_model import DEFAULT_DIMS, MODEL_PATH, InjectionModel, features, sigmoid

ROOT = Path(__file__).resolve().parents[1]
ITEMS = ROOT / "tests" / "guardrails" / "injection_set" / "items.jsonl"
SEED = 7
EPOCHS = 30
LEARNING_RATE = 0.5
L2 = 1e-4
MIN_WEIGHT = 5e-4  # smaller weights are left out of the file


def load_train(path: Path = ITEMS) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        items = [json.loads(line) for line in f if line.strip()]
    return [i for i in items if i["split"] == "train"]


def train(items: list[dict[str, str]], dims: int = DEFAULT_DIMS) -> InjectionModel:
    data = [(features(scan(i["text"]), dims), 1.0 if i["label"] == "injection" else 0.0) for i in items]
    positives = sum(y for _, y in data)
    # Class weights so that the two labels count equally, whatever their shares.
    weight = {1.0: len(data) / (2 * positives), 0.0: len(data) / (2 * (len(data) - positives))}
    w: dict[int, float] = {}
    g2: dict[int, float] = {}
    bias, bias_g2 = 0.0, 0.0
    rng = random.Random(SEED)
    order = list(range(len(data)))
    for _epoch in range(EPOCHS):
        rng.shuffle(order)
        for n in order:
            x, y = data[n]
            p = sigmoid(bias + sum(w.get(i, 0.0) * v for i, v in x.items()))
            err = (p - y) * weight[y]
            for i in sorted(x):
                grad = err * x[i] + L2 * w.get(i, 0.0)
                g2[i] = g2.get(i, 0.0) + grad * grad
                w[i] = w.get(i, 0.0) - LEARNING_RATE * grad / (math.sqrt(g2[i]) + 1e-8)
            bias_g2 += err * err
            bias -= LEARNING_RATE * err / (math.sqrt(bias_g2) + 1e-8)
    kept = {i: round(v, 4) for i, v in w.items() if abs(v) >= MIN_WEIGHT}
    digest = hashlib.sha256(ITEMS.read_bytes()).hexdigest()[:16]
    meta = {
        "trained_on": "tests/guardrails/injection_set/items.jsonl, split=train",
        "set_sha256_16": digest,
        "items": len(data),
        "injections": int(positives),
        "epochs": EPOCHS,
        "learning_rate": LEARNING_RATE,
        "l2": L2,
        "seed": SEED,
    }
    return InjectionModel(dims=dims, bias=round(bias, 4), weights=kept, threshold=0.5, meta=meta)


def serialize(model: InjectionModel) -> str:
    return json.dumps(model.to_json(), separators=(",", ":"), sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped file, write nothing")
    args = parser.parse_args(argv)
    model = train(load_train())
    text = serialize(model)
    if args.check:
        same = MODEL_PATH.exists() and MODEL_PATH.read_text(encoding="utf-8") == text
        print("shipped model is up to date" if same else "shipped model differs from a fresh training")
        return 0 if same else 1
    MODEL_PATH.write_text(text, encoding="utf-8")
    print(
        f"{MODEL_PATH}: {len(model.weights)} weights, {len(text) / 1024:.0f} KB, {model.meta['items']} training items"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
