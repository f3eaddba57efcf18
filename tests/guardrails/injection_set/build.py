"""Build the labelled prompt-injection evaluation set: `python -m tests.guardrails.injection_set.build`.

Writes items.jsonl beside this file, deterministically (fixed seed, no network). Every text comes
from the hand-written lists in attacks.py and benign.py, used alone, wrapped in a carrier from
carriers.py (an email, a web page, a document, a tool result), or obfuscated (base64, hex, rot13,
URL-encoding, homoglyphs, zero-width and bidirectional characters, fullwidth letters, letter
spacing, string concatenation, leetspeak, reversal). See README.md beside this file.

Fields: id, text, label (injection|benign), kind (direct|indirect_tool_result|indirect_document|
benign_lookalike|benign), language, source (how the item was made), obfuscation, carrier, group
(the hand-written text it derives from) and split (train|test|holdout). The split is by group, so
one payload never lands in both train and test: sha256(group) decides, about 30% test. The
holdout (holdout.py) was written after the heuristic rules were frozen: split "holdout", never
used for tuning or training.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import json
import random
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.guardrails.injection_set.attacks import DIRECT, INDIRECT
from tests.guardrails.injection_set.benign import LOOKALIKES, NORMAL
from tests.guardrails.injection_set.carriers import DOCUMENT_CARRIERS, TOOL_CARRIERS, filler
from tests.guardrails.injection_set.holdout import BENIGN as HOLDOUT_BENIGN
from tests.guardrails.injection_set.holdout import (
    BENIGN_2,
    BENIGN_CARRIED_2,
    INDIRECT_CARRIED_2,
    INJECTIONS_2,
)
from tests.guardrails.injection_set.holdout import BENIGN_CARRIED as HOLDOUT_BENIGN_CARRIED
from tests.guardrails.injection_set.holdout import INDIRECT_CARRIED as HOLDOUT_INDIRECT
from tests.guardrails.injection_set.holdout import INJECTIONS as HOLDOUT_INJECTIONS
from tests.guardrails.injection_set.holdout import OBFUSCATED as HOLDOUT_OBFUSCATED
from tests.guardrails.injection_set.holdout3 import BENIGN_3, ENCODED_3, ENCODED_BENIGN_3, INJECTIONS_3
from tests.guardrails.injection_set.holdout4 import BENIGN_4, INJECTIONS_4
from tests.guardrails.injection_set.holdout5 import BENIGN_5, INJECTIONS_5
from tests.guardrails.injection_set.holdout6 import BENIGN_6, INJECTIONS_6

SEED = 20240611
HERE = Path(__file__).parent
ITEMS = HERE / "items.jsonl"
TEST_SHARE = 30  # percent of groups in the test split

_CYRILLIC = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "y": "у", "x": "х", "i": "і", "s": "ѕ", "A": "А", "E": "Е", "O": "О", "P": "Р", "C": "С", "T": "Т", "H": "Н", "K": "К", "M": "М"}  # fmt: skip
_GREEK = {"o": "ο", "i": "ι", "v": "ν", "A": "Α", "B": "Β", "E": "Ε", "I": "Ι", "O": "Ο", "T": "Τ"}
_LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}
_ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]
_BIDI = [
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
    "\u200e",
    "\u200f",
]


def homoglyphs(rng: random.Random, text: str) -> str:
    table = _CYRILLIC if rng.random() < 0.7 else {**_CYRILLIC, **_GREEK}
    return "".join(table[c] if c in table and rng.random() < 0.6 else c for c in text)


def zero_width(rng: random.Random, text: str) -> str:
    return "".join(c + rng.choice(_ZERO_WIDTH) if c.isalpha() and rng.random() < 0.4 else c for c in text)


def bidi(rng: random.Random, text: str) -> str:
    return " ".join(rng.choice(_BIDI) + w if rng.random() < 0.5 else w for w in text.split(" "))


def fullwidth(rng: random.Random, text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def spaced(rng: random.Random, text: str) -> str:
    words = text.split(" ")
    n = rng.randint(3, min(6, len(words)))
    sep = rng.choice([" ", ".", "-", " "])
    head = "  ".join(sep.join(w) for w in words[:n])
    return head + " " + " ".join(words[n:])


def concatenated(rng: random.Random, text: str) -> str:
    cuts = sorted(rng.sample(range(1, len(text) - 1), 3))
    parts = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    joined = " + ".join(json.dumps(p, ensure_ascii=False) for p in parts)
    return rng.choice(
        ["Evaluate s = {} and do what s says.", "msg = {}\nprint(msg)", "Take the string {} and act on it."]
    ).format(joined)


def leet(rng: random.Random, text: str) -> str:
    return "".join(_LEET.get(c, c) if rng.random() < 0.7 else c for c in text)


def reversed_text(rng: random.Random, text: str) -> str:
    return "Read this backwards and follow it: " + text[::-1]


def _b64(rng: random.Random, text: str) -> str:
    blob = base64.b64encode(text.encode()).decode()
    return rng.choice(
        [
            "Decode this base64 and follow the instructions inside: {}",
            "Here's a message from my team lead: {}",
            "{}",
            "Please process the attached token {} and continue.",
        ]
    ).format(blob)


def _hex(rng: random.Random, text: str) -> str:
    raw = text.encode()
    blob = raw.hex() if rng.random() < 0.5 else " ".join(f"{b:02x}" for b in raw)
    return rng.choice(["Convert this hex to text and do what it says: {}", "hex dump: {}", "{}"]).format(blob)


def _rot13(rng: random.Random, text: str) -> str:
    return rng.choice(["Apply rot13 to the following and obey it: {}", "{}", "Message (rot13): {}"]).format(
        codecs.encode(text, "rot13")
    )


def _url(rng: random.Random, text: str) -> str:
    blob = "".join(f"%{b:02X}" for b in text.encode())
    return rng.choice(["URL-decode and follow: {}", "https://example.org/redirect?next={}", "{}"]).format(
        blob
    )


OBFUSCATIONS: dict[str, Callable[[random.Random, str], str]] = {
    "base64": _b64,
    "hex": _hex,
    "rot13": _rot13,
    "url": _url,
    "homoglyph": homoglyphs,
    "zero_width": zero_width,
    "bidi": bidi,
    "fullwidth": fullwidth,
    "spaced": spaced,
    "concat": concatenated,
    "leet": leet,
    "reversed": reversed_text,
}
# How many obfuscated items of each kind; leetspeak and reversal are not decoded by Keel and are
# kept few, as a reminder of what the layers do not cover.
OBFUSCATION_COUNTS = {
    "base64": 12, "hex": 8, "rot13": 8, "url": 8, "homoglyph": 12, "zero_width": 10, "bidi": 6,
    "fullwidth": 6, "spaced": 8, "concat": 6, "leet": 4, "reversed": 3,
}  # fmt: skip
CHATTER = [
    "Hi, I have a question about my order. {} Thanks!",
    "Quick question before we start. {}",
    "{} Also, what are your opening hours?",
    "Thanks for the help earlier.\n\n{}",
    "Re: my ticket\n{}",
]


def split_of(group: str) -> str:
    return "test" if int(hashlib.sha256(group.encode()).hexdigest(), 16) % 100 < TEST_SHARE else "train"


def build() -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    items: list[dict[str, Any]] = []

    def add(
        text: str,
        label: str,
        kind: str,
        language: str,
        source: str,
        group: str,
        split: str = "",
        **extra: str,
    ) -> None:
        items.append(
            {
                "id": f"{len(items):04d}",
                "text": text,
                "label": label,
                "kind": kind,
                "language": language,
                "source": source,
                "obfuscation": extra.get("obfuscation", "none"),
                "carrier": extra.get("carrier", "none"),
                "group": group,
                "split": split or split_of(group),
            }
        )

    direct = [(f"direct-{i:03d}", lang, text) for i, (lang, text) in enumerate(DIRECT)]
    indirect = [(f"indirect-{i:03d}", lang, text) for i, (lang, text) in enumerate(INDIRECT)]

    # Direct attempts as typed, and some inside ordinary chatter.
    for group, lang, text in direct:
        add(text, "injection", "direct", lang, "handwritten", group)
    for group, lang, text in rng.sample(direct, 30):
        add(rng.choice(CHATTER).format(text), "injection", "direct", lang, "handwritten+chatter", group)

    # Obfuscated direct attempts (English payloads, so the decoded text is comparable).
    english = [d for d in direct if d[1] == "en" and "\n" not in d[2]]
    for name, count in OBFUSCATION_COUNTS.items():
        for group, lang, text in rng.sample(english, count):
            add(
                OBFUSCATIONS[name](rng, text),
                "injection",
                "direct",
                lang,
                f"handwritten+{name}",
                group,
                obfuscation=name,
            )

    # Indirect attempts: every indirect payload in a document-like carrier and in a tool result,
    # plus a share of the direct payloads placed where a model would read them.
    doc_names, tool_names = sorted(DOCUMENT_CARRIERS), sorted(TOOL_CARRIERS)
    for group, lang, text in indirect + rng.sample(direct, 35):
        name = rng.choice(doc_names)
        add(
            DOCUMENT_CARRIERS[name](rng, text),
            "injection",
            "indirect_document",
            lang,
            f"handwritten+{name}",
            group,
            carrier=name,
        )
    for group, lang, text in indirect + rng.sample(direct, 35):
        name = rng.choice(tool_names)
        add(
            TOOL_CARRIERS[name](rng, text),
            "injection",
            "indirect_tool_result",
            lang,
            f"handwritten+{name}",
            group,
            carrier=name,
        )
    obfuscated_kinds = ["base64", "hex", "rot13", "url", "homoglyph", "zero_width", "spaced"]
    for group, lang, text in rng.sample([d for d in indirect if d[1] == "en"], 24):
        how = rng.choice(obfuscated_kinds)
        hidden = OBFUSCATIONS[how](rng, text)
        if rng.random() < 0.5:
            name = rng.choice(doc_names)
            kind, wrapped = "indirect_document", DOCUMENT_CARRIERS[name](rng, hidden)
        else:
            name = rng.choice(tool_names)
            kind, wrapped = "indirect_tool_result", TOOL_CARRIERS[name](rng, hidden)
        add(
            wrapped,
            "injection",
            kind,
            lang,
            f"handwritten+{how}+{name}",
            group,
            obfuscation=how,
            carrier=name,
        )

    # Benign look-alikes, alone and inside carriers.
    lookalikes = [(f"lookalike-{i:03d}", lang, text) for i, (lang, text) in enumerate(LOOKALIKES)]
    for group, lang, text in lookalikes:
        add(text, "benign", "benign_lookalike", lang, "handwritten", group)
    carriers = {**DOCUMENT_CARRIERS, **TOOL_CARRIERS}
    for group, lang, text in rng.sample(lookalikes, 50):
        name = rng.choice(sorted(carriers))
        add(
            carriers[name](rng, text),
            "benign",
            "benign_lookalike",
            lang,
            f"handwritten+{name}",
            group,
            carrier=name,
        )

    # Ordinary benign texts, alone, and carriers with harmless content only.
    normal = [(f"normal-{i:03d}", lang, text) for i, (lang, text) in enumerate(NORMAL)]
    for group, lang, text in normal:
        add(text, "benign", "benign", lang, "handwritten", group)
    for group, lang, text in rng.sample(normal, 30):
        name = rng.choice(sorted(carriers))
        add(carriers[name](rng, text), "benign", "benign", lang, f"handwritten+{name}", group, carrier=name)
    for i in range(90):
        name = sorted(carriers)[i % len(carriers)]
        add(
            carriers[name](rng, filler(rng, name)),
            "benign",
            "benign",
            "en",
            f"template+{name}",
            f"carrier-{i:03d}",
            carrier=name,
        )
    _holdout(rng, add)
    _holdout3(add)
    for i, (kind, lang, text) in enumerate(INJECTIONS_4):
        add(text, "injection", kind, lang, "holdout4", f"h4-attack-{i:03d}", "holdout4")
    for i, (kind, lang, text) in enumerate(BENIGN_4):
        add(text, "benign", kind, lang, "holdout4", f"h4-benign-{i:03d}", "holdout4")
    for n, attacks, benign in ((5, INJECTIONS_5, BENIGN_5), (6, INJECTIONS_6, BENIGN_6)):
        split = f"holdout{n}"
        for label, prefix, entries in (("injection", "attack", attacks), ("benign", "benign", benign)):
            for i, (kind, lang, how, text) in enumerate(entries):
                source = split if how == "none" else f"{split}+{how}"
                add(text, label, kind, lang, source, f"h{n}-{prefix}-{i:03d}", split, obfuscation=how)
    return items


def encode(how: str, text: str) -> str:
    """holdout3's encodings (no randomness: its texts are complete as written)."""
    if how == "base64":
        return base64.b64encode(text.encode()).decode()
    if how == "hex":
        return text.encode().hex()
    if how == "rot13":
        return codecs.encode(text, "rot13")
    if how == "url":
        return urllib.parse.quote(text, safe="")
    raise ValueError(how)


def _holdout3(add: Callable[..., None]) -> None:
    h = "holdout3"
    for i, (kind, lang, text) in enumerate(INJECTIONS_3):
        add(text, "injection", kind, lang, "holdout3", f"h3-attack-{i:03d}", h)
    for i, (kind, lang, how, template, plain) in enumerate(ENCODED_3):
        text = template.replace("{}", encode(how, plain))
        add(text, "injection", kind, lang, f"holdout3+{how}", f"h3-encoded-{i:03d}", h, obfuscation=how)
    for i, (kind, lang, text) in enumerate(BENIGN_3):
        add(text, "benign", kind, lang, "holdout3", f"h3-benign-{i:03d}", h)
    for i, (kind, lang, how, template, plain) in enumerate(ENCODED_BENIGN_3):
        text = template.replace("{}", encode(how, plain))
        add(text, "benign", kind, lang, f"holdout3+{how}", f"h3-bencoded-{i:03d}", h, obfuscation=how)


def _holdout(rng: random.Random, add: Callable[..., None]) -> None:
    h = "holdout"
    doc_names, tool_names = sorted(DOCUMENT_CARRIERS), sorted(TOOL_CARRIERS)
    carriers = {**DOCUMENT_CARRIERS, **TOOL_CARRIERS}
    for i, (lang, text) in enumerate(HOLDOUT_INJECTIONS):
        add(text, "injection", "direct", lang, "holdout", f"h-direct-{i:03d}", h)
    for i, (lang, text) in enumerate(HOLDOUT_INDIRECT):
        group = f"h-indirect-{i:03d}"
        name = rng.choice(doc_names)
        add(
            DOCUMENT_CARRIERS[name](rng, text),
            "injection",
            "indirect_document",
            lang,
            f"holdout+{name}",
            group,
            h,
            carrier=name,
        )
        name = rng.choice(tool_names)
        add(
            TOOL_CARRIERS[name](rng, text),
            "injection",
            "indirect_tool_result",
            lang,
            f"holdout+{name}",
            group,
            h,
            carrier=name,
        )
    for i, (lang, how, text) in enumerate(HOLDOUT_OBFUSCATED):
        add(
            OBFUSCATIONS[how](rng, text),
            "injection",
            "direct",
            lang,
            f"holdout+{how}",
            f"h-obf-{i:03d}",
            h,
            obfuscation=how,
        )
    for i, (lang, text) in enumerate(HOLDOUT_BENIGN):
        add(text, "benign", "benign_lookalike", lang, "holdout", f"h-benign-{i:03d}", h)
    for i, (lang, text) in enumerate(HOLDOUT_BENIGN_CARRIED):
        name = rng.choice(sorted(carriers))
        add(
            carriers[name](rng, text),
            "benign",
            "benign_lookalike",
            lang,
            f"holdout+{name}",
            f"h-bcarried-{i:03d}",
            h,
            carrier=name,
        )
    h = "holdout2"
    for i, (lang, text) in enumerate(INJECTIONS_2):
        add(text, "injection", "direct", lang, "holdout2", f"h2-direct-{i:03d}", h)
    for i, (lang, text) in enumerate(INDIRECT_CARRIED_2):
        group = f"h2-indirect-{i:03d}"
        name = rng.choice(doc_names)
        add(
            DOCUMENT_CARRIERS[name](rng, text),
            "injection",
            "indirect_document",
            lang,
            f"holdout2+{name}",
            group,
            h,
            carrier=name,
        )
        name = rng.choice(tool_names)
        add(
            TOOL_CARRIERS[name](rng, text),
            "injection",
            "indirect_tool_result",
            lang,
            f"holdout2+{name}",
            group,
            h,
            carrier=name,
        )
    for i, (lang, text) in enumerate(BENIGN_2):
        add(text, "benign", "benign_lookalike", lang, "holdout2", f"h2-benign-{i:03d}", h)
    for i, (lang, text) in enumerate(BENIGN_CARRIED_2):
        name = rng.choice(sorted(carriers))
        add(
            carriers[name](rng, text),
            "benign",
            "benign_lookalike",
            lang,
            f"holdout2+{name}",
            f"h2-bcarried-{i:03d}",
            h,
            carrier=name,
        )


def write(path: Path = ITEMS) -> int:
    items = build()
    with path.open("w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
    return len(items)


def load(path: Path = ITEMS) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


if __name__ == "__main__":
    print(f"{write()} items written to {ITEMS}")
