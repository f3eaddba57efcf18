"""The synthetic corpus (tests/guardrails/pii_corpus.py) and what the detector achieves on it: a
correctness check on a fixed seed (bench/pii.py reports the figures on the full set)."""

from __future__ import annotations

import itertools

import pytest

from keel.guardrails.pii import STRUCTURED_TYPES, detect
from keel.guardrails.pii_checks import (
    de_tax_id_valid,
    es_dni_valid,
    fr_nir_valid,
    iban_mod97,
    it_codice_fiscale_valid,
    luhn_valid,
    nl_bsn_valid,
    uk_nino_valid,
    us_ssn_valid,
)
from keel.guardrails.pii_normalize import normalize
from keel.tracing import ContentCapture
from tests.guardrails.pii_corpus import Sample, generate
from tests.guardrails.pii_corpus_score import score

SEED = 20240601
SLICE = 600

_ID_CHECKS = {
    "us_ssn": us_ssn_valid,
    "uk_nino": uk_nino_valid,
    "fr_nir": fr_nir_valid,
    "es_dni": es_dni_valid,
    "es_nie": es_dni_valid,
    "de_tax_id": de_tax_id_valid,
    "nl_bsn": nl_bsn_valid,
    "it_cf": it_codice_fiscale_valid,
}


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return generate(SLICE, seed=SEED)


def _compact(value: str) -> str:
    return "".join(c for c in normalize(value).text if c.isalnum()).upper()


def test_generation_is_deterministic(samples: list[Sample]) -> None:
    assert generate(50, seed=SEED) == samples[:50]
    assert generate(50, seed=SEED + 1) != samples[:50]


def test_every_type_and_hard_negative_is_present(samples: list[Sample]) -> None:
    types = {label.type for sample in samples for label in sample.labels}
    assert types == set(STRUCTURED_TYPES) | {"name", "address"}
    negatives = {kind for sample in samples for kind, _, _ in sample.negatives}
    assert {
        "date",
        "order_number",
        "version",
        "tracking",
        "not_luhn",
        "uuid",
        "hex_hash",
        "price",
    } <= negatives
    assert sum(label.obfuscated for sample in samples for label in sample.labels) > 50


def test_generated_values_pass_their_checks(samples: list[Sample]) -> None:
    for sample in samples:
        for label in sample.labels:
            value = _compact(sample.text[label.start : label.end])
            if label.type == "card":
                assert luhn_valid(value), value
            elif label.type == "iban":
                assert iban_mod97(value), value
            elif label.type == "national_id":
                assert _ID_CHECKS[label.subtype](value), (label.subtype, value)


def test_labels_and_hard_negatives_do_not_overlap(samples: list[Sample]) -> None:
    for sample in samples:
        spans = sorted(
            [(label.start, label.end) for label in sample.labels] + [(s, e) for _, s, e in sample.negatives]
        )
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


def test_recall_of_each_structured_type_is_at_least_95_percent(samples: list[Sample]) -> None:
    tallies, _ = score(samples, lambda text: [(f.type, f.start, f.end, f.subtype) for f in detect(text)])
    for kind in STRUCTURED_TYPES:
        tally = tallies[kind]
        assert tally.labels >= 40, kind
        assert tally.recall >= 0.95, (kind, tally)
        assert tally.precision >= 0.9, (kind, tally)


def test_trace_redaction_leaves_nothing_the_detector_finds(samples: list[Sample]) -> None:
    """Content captured with `redacted` goes through this detector (keel.tracing.redact): what
    is stored holds none of the values it finds, and masks are not read as values again."""
    capture = ContentCapture("redacted")
    masked_values = 0
    for sample in samples:
        found = detect(sample.text)
        stored = capture.scrub(sample.text)
        assert not detect(stored), (stored, detect(stored))
        for finding in found:
            masked_values += 1
            assert finding.text not in stored or len(finding.text) < 6, (finding, stored)
    assert masked_values > 1000
