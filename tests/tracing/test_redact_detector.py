"""Trace redaction is keel.guardrails.pii's detector: what it finds never reaches a span stored
with capture `redacted`, including formats the older patterns missed (national ids, dashed or
lower-case IBANs, IPv6, values hidden with invisible or fullwidth characters, more key formats)."""

from __future__ import annotations

import json

import pytest

from keel.guardrails.pii import detect
from keel.tracing import ContentCapture, agent_span, redact_pii, redact_secrets, tool_span
from keel.tracing.redact import may_hold_secret, redact_all
from tests.tracing.helpers import make_tracing

# Each value is one the guardrail detector finds and keel.tracing.redact's own patterns missed.
LEAKED_BEFORE = {
    "us_ssn": ("SSN 123-45-6789 on file", "national_id"),
    "uk_nino": ("NI number AB 12 34 56 C", "national_id"),
    "fr_nir": ("NIR 2 84 12 76 451 089 93", "national_id"),
    "es_dni": ("DNI 12345678Z", "national_id"),
    "de_tax_id": ("Steuer-IdNr 65929970489", "national_id"),
    "dashed_iban": ("pay DE89-3704-0044-0532-0130-00 now", "iban"),
    "lower_iban": ("my iban is de89 3704 0044 0532 0130 00", "iban"),
    "ipv6": ("from 2001:db8::8a2e:370:7334 today", "ip"),
    "hidden_card": ("card 4111\u200b1111\u200b1111\u200b1111 ok", "card"),
    "fullwidth_card": ("card ４１１１ １１１１ １１１１ １１１１ ok", "card"),
    "obfuscated_email": ("write to jane.doe [at] example [dot] com", "email"),
    "gitlab_token": ("use glpat-" + "Ab1Cd2Ef3Gh4Ij5Kl6Mn7", "api_key"),
    "url_password": ("dsn postgres://app:" + "s3cretpw@db.internal/app", "secret"),
    "generic_token": ("the value Zq8" + "Lm4Tx7Kd2Wp9Rb3Yc6Hn1 works", "secret"),
}


@pytest.mark.parametrize("name", sorted(LEAKED_BEFORE))
def test_a_redacted_trace_holds_nothing_the_detector_finds(name: str) -> None:
    text, kind = LEAKED_BEFORE[name]
    found = detect(text)
    assert found, "the detector finds it"
    tracing, sink = make_tracing("redacted")
    with agent_span(
        tracing, agent="a", run_id="r", model="m", conversation_id=None, input={"text": text}
    ) as run:
        with tool_span(tracing, name="t", call_id="c", args={"q": text}) as tool:
            tool.ok({"found": [text]})
        run.finish("succeeded", None, None, text, 1, 1, None)
    stored = sink.text()
    for finding in found:
        assert json.dumps(finding.text, ensure_ascii=False)[1:-1] not in stored, (finding, stored)
    assert f"[REDACTED:{kind}]" in stored


@pytest.mark.parametrize("name", sorted(LEAKED_BEFORE))
def test_redact_all_masks_every_finding(name: str) -> None:
    text, kind = LEAKED_BEFORE[name]
    masked = redact_all(text)
    assert f"[REDACTED:{kind}]" in masked
    assert not detect(masked), masked


def test_the_exact_values_of_secret_variables_are_still_masked() -> None:
    value = "plain-looking-value-2024"  # no format the detector knows
    assert not detect(value)
    assert redact_all(f"x {value} y", (value,)) == "x [REDACTED:secret] y"
    assert redact_secrets(f"x {value} y", (value,)) == "x [REDACTED:secret] y"
    assert may_hold_secret(f"x {value} y", (value,))


def test_on_mode_masks_known_secret_formats_but_not_generated_looking_ids() -> None:
    """`on` masks secrets of known formats and after keywords (as before, with the detector's
    longer list of formats); generic high-entropy tokens only in `redacted`."""
    gitlab = "glpat-" + "Ab1Cd2Ef3Gh4Ij5Kl6Mn7"
    assert redact_secrets(f"use {gitlab}") == "use [REDACTED:api_key]"
    assert may_hold_secret(f"use {gitlab}")
    token = "Zq8" + "Lm4Tx7Kd2Wp9Rb3Yc6Hn1"
    assert redact_secrets(f"id {token}") == f"id {token}"
    assert redact_all(f"id {token}") == "id [REDACTED:secret]"
    on, redacted = ContentCapture("on"), ContentCapture("redacted")
    assert on.scrub(f"SSN 123-45-6789 {gitlab}") == "SSN 123-45-6789 [REDACTED:api_key]"
    assert redacted.scrub(f"SSN 123-45-6789 {gitlab}") == "SSN [REDACTED:national_id] [REDACTED:api_key]"


def test_personal_data_only_leaves_secrets_to_redact_secrets() -> None:
    key = "sk-proj-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2"
    assert redact_pii(f"SSN 123-45-6789 key {key}") == f"SSN [REDACTED:national_id] key {key}"


def test_may_hold_secret_is_a_superset_of_what_redact_secrets_masks() -> None:
    """`on` mode skips walking JSON when this says no: it must say yes wherever a secret is."""
    from tests.guardrails.pii_corpus import generate

    for sample in generate(300, seed=11):
        for text in (sample.text, json.dumps(sample.text)):
            if redact_secrets(text) != text:
                assert may_hold_secret(text), text


def test_the_shortcut_for_text_with_nothing_to_find_agrees_with_the_detector() -> None:
    """`redact_all` skips the detector on text it can tell holds nothing: over the corpus, cut
    into lines and sentences (short strings, as content capture sees them), it never skips one
    where the detector finds something."""
    from keel.tracing.redact import _nothing_to_find
    from tests.guardrails.pii_corpus import generate

    skipped = 0
    for sample in generate(400, seed=5):
        for piece in {*sample.text.splitlines(), *sample.text.split(". ")}:
            if _nothing_to_find(piece, ()):
                skipped += 1
                assert not detect(piece), piece
    assert skipped > 100
