"""PII detection, redaction and pseudonymization, type by type (keel.guardrails.pii)."""

from __future__ import annotations

import itertools
import json

import pytest

from keel.guardrails.pii import Finding, Pseudonymizer, canonical, detect, escape_tokens, redact
from keel.guardrails.pii_checks import (
    card_brand,
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

# Built at run time so that no secret-looking literal sits in the repository.
OPENAI_KEY = "sk-proj-" + "Ab3dE5gH7jK9mN1pQ3sT5vX7zA"
AWS_KEY = "AKIA" + "IOSFODNN7EXAMPLE"
GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
SLACK_TOKEN = "xoxb-" + "1234567890-0987654321-AbCdEfGh"
GOOGLE_KEY = "AIza" + "SyA1234567890abcdefghijklmnopqrstu"
STRIPE_KEY = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
JWT = "eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0." + "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7x\nabcdef==\n-----END RSA PRIVATE KEY-----"
TOKEN = "Zx81KqLm29" + "PwTr04VbNc77Ha"


def only(text: str, **options: object) -> Finding:
    found = detect(text, **options)  # type: ignore[arg-type]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize(
    ("text", "value", "subtype"),
    [
        ("write to jane.doe+inbox@example.co.uk today", "jane.doe+inbox@example.co.uk", "email"),
        ("mail: A_B@sub.domain.org.", "A_B@sub.domain.org", "email"),
        ("<o'brien@mail.example.ie>", "o'brien@mail.example.ie", "email"),
        ("jane.doe [at] example [dot] com", "jane.doe [at] example [dot] com", "email_at"),
        ("write jane(at)example.com", "jane(at)example.com", "email_at"),
    ],
)
def test_emails(text: str, value: str, subtype: str) -> None:
    found = only(text)
    assert (found.type, found.text, found.subtype) == ("email", value, subtype)


@pytest.mark.parametrize("text", ["logo@2x.png", "user@localhost", "an @ sign", "a@b"])
def test_email_lookalikes(text: str) -> None:
    assert detect(text) == []


@pytest.mark.parametrize(
    "value",
    [
        "+1 (415) 555-2671",
        "+14155552671",
        "(415) 555-2671",
        "415-555-2671",
        "415.555.2671",
        "1-800-555-0199",
        "+44 20 7946 0958",
        "+44 (0)20 7946 0958",
        "(+44) 20 7946 0958",
        "0044 20 7946 0958",
        "020 7946 0958",
        "07700 900123",
        "06 12 34 56 78",
        "06.12.34.56.78",
        "0612345678",
        "+33 6 12 34 56 78",
        "030 12345678",
        "030/1234567",
        "+49 30/8648496",
        "+49 (0)30 1234 5678",
        "(03) 1234-5678",
        "+81 3-1234-5678",
        "+91 98765 43210",
        "+39 06 1234 5678",
    ],
)
def test_phones(value: str) -> None:
    found = only(f"call {value} please")
    assert (found.type, found.text) == ("phone", value)


def test_a_bare_run_of_digits_is_a_phone_only_after_a_phone_word() -> None:
    assert only("call me at 4155552671").text == "4155552671"
    assert only('"phone": "4155552671"').type == "phone"
    assert detect("order 4155552671 shipped") == []


@pytest.mark.parametrize(
    "text",
    [
        "released 2024-01-15 at 10:30:00",
        "on 05.03.2024 14:30",
        "on 05.03.2024 14.30",
        "order 4471-2290-118",
        "ISBN 978-3-16-148410-0",
        "tracking 0159 5916 3965",
        "total 12345678 items",
        "+15% growth over 3 years",
        "INV-2024-00042 and PO-88213-22",
        "account ref 4933 0193 4067 0806",
        "IBAN DE89 3704 0044 0532 0130 01 fails",
        "case 00123456 opened",
        "SKU 415-555-2671-XL",
        "version 1.2.3 and python 3.11.7",
    ],
)
def test_phone_and_number_lookalikes(text: str) -> None:
    assert detect(text) == [], detect(text)


@pytest.mark.parametrize(
    ("value", "brand"),
    [
        ("4111 1111 1111 1111", "visa"),
        ("4111-1111-1111-1111", "visa"),
        ("4111.1111.1111.1111", "visa"),
        ("5555555555554444", "mastercard"),
        ("2223 0031 2200 3222", "mastercard"),
        ("3782 822463 10005", "amex"),
        ("6011 1111 1111 1117", "discover"),
        ("3530 1113 3330 0000", "jcb"),
        ("3056 930902 5904", "diners"),
        ("4111  1111  1111  1111", "visa"),
        ("4111-1111 1111-1111", "visa"),
    ],
)
def test_cards(value: str, brand: str) -> None:
    found = only(f"card {value} exp 12/29")
    assert (found.type, found.text, found.subtype, found.validator) == ("card", value, brand, "luhn")


@pytest.mark.parametrize("text", ["qty 2 4111 1111 1111 1111 ok", "exp 12 25 4111 1111 1111 1111 ok"])
def test_a_card_after_a_short_number(text: str) -> None:
    assert only(text).text == "4111 1111 1111 1111"


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 fails Luhn",
        "order 1700000000000 (a timestamp)",
        "EAN 4006381333931",
        "ref 9400 1000 0000 0000 0000 00",
        "tracking 9400100000000000000000",
    ],
)
def test_card_lookalikes(text: str) -> None:
    assert [f for f in detect(text) if f.type == "card"] == []


def test_ibans() -> None:
    for value in (
        "DE89 3704 0044 0532 0130 00",
        "GB29NWBK60161331926819",
        "GB29 NWBK 6016 1331 9268 19",
        "DE89-3704-0044-0532-0130-00",
    ):
        found = only(f"pay to {value} please")
        assert (found.type, found.text, found.validator) == ("iban", value, "mod97")
    assert detect("iban DE89 3704 0044 0532 0130 01 fails mod 97") == []
    assert detect("DE89 3704 0044 0532 0130 0") == []  # short of Germany's 22 characters
    # In lower case only where the text names it.
    assert only("my iban: de89 3704 0044 0532 0130 00").text == "de89 3704 0044 0532 0130 00"
    assert detect("account de89 3704 0044 0532 0130 00") == []


@pytest.mark.parametrize(
    ("value", "subtype"),
    [
        ("123-45-6789", "us_ssn"),
        ("123 45 6789", "us_ssn"),
        ("123.45.6789", "us_ssn"),
        ("1-84-12-76-451-089-46", "fr_nir"),
        ("JG 10 37 59 A", "uk_nino"),
        ("AB123456D", "uk_nino"),
        ("1 84 12 76 451 089 46", "fr_nir"),
        ("184127645108946", "fr_nir"),
        ("12345678Z", "es_dni"),
        ("X1234567L", "es_nie"),
        ("86095742719", "de_tax_id"),
        ("1234.56.782", "nl_bsn"),
        ("RSSMRA85T10A562S", "it_codice_fiscale"),
    ],
)
def test_national_ids(value: str, subtype: str) -> None:
    found = only(f"id {value} on file")
    assert (found.type, found.text, found.subtype) == ("national_id", value, subtype)


def test_national_ids_that_need_their_name_nearby() -> None:
    assert only("SSN: 123456789").subtype == "us_ssn"
    assert only("my social security number is 123456789").subtype == "us_ssn"
    assert only("BSN 123456782").subtype == "nl_bsn"
    assert only("BSN 1234 56 782").text == "1234 56 782"
    assert only("BSN: 123.456.782").text == "123.456.782"
    assert only("national insurance ab 12 34 56 c").subtype == "uk_nino"
    assert only("codice fiscale rssmra85t10a562s").subtype == "it_codice_fiscale"
    assert detect("order 123456789") == []
    assert detect("order 123456782") == []


@pytest.mark.parametrize(
    "text",
    [
        "SSN 000-12-3456",
        "SSN 666-12-3456",
        "SSN 912-12-3456",
        "SSN 123-00-4567",
        "NINO QQ 12 34 56 E",
        "NINO GB 12 34 56 A",
        "NIR 1 84 12 76 451 089 47",
        "DNI 12345678A",
        "Steuer-ID 86095742718",
        "BSN 123456783",
        "CF RSSMRA85T10A562T",
    ],
)
def test_national_id_checks_reject(text: str) -> None:
    assert [f for f in detect(text) if f.type == "national_id"] == []


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert card_brand("378282246310005") == "amex" and card_brand("4111111111111") is None
    assert iban_mod97("DE89370400440532013000") and not iban_mod97("DE89370400440532013001")
    assert us_ssn_valid("123456789") and not us_ssn_valid("078051120")
    assert uk_nino_valid("JG103759A") and not uk_nino_valid("DQ123456C")
    assert fr_nir_valid("184127645108946") and not fr_nir_valid("184127645108947")
    assert es_dni_valid("12345678Z") and es_dni_valid("X1234567L") and not es_dni_valid("12345678A")
    assert de_tax_id_valid("86095742719") and not de_tax_id_valid("86095742718")
    assert not de_tax_id_valid("11111111111")  # a digit may repeat at most thrice
    assert nl_bsn_valid("123456782") and not nl_bsn_valid("123456783")
    assert it_codice_fiscale_valid("RSSMRA85T10A562S") and not it_codice_fiscale_valid("RSSMRA85T10A562T")


def test_corsican_nir() -> None:
    body = "284032A012345"  # department 2A counts as 19 in the key
    key = 97 - int(body.replace("2A", "19")) % 97
    assert fr_nir_valid(f"{body}{key:02d}")
    assert only(f"NIR {body}{key:02d}").subtype == "fr_nir"


@pytest.mark.parametrize(
    ("value", "subtype"),
    [
        ("192.168.10.254", "ipv4"),
        ("8.8.8.8", "ipv4"),
        ("2001:db8::8a2e:370:7334", "ipv6"),
        ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "ipv6"),
        ("fe80::1%eth0", "ipv6"),
        ("::ffff:192.0.2.1", "ipv6"),
    ],
)
def test_ips(value: str, subtype: str) -> None:
    found = only(f"from {value}.")
    assert (found.type, found.text, found.subtype) == ("ip", value, subtype)


@pytest.mark.parametrize(
    "text",
    ["values 1.2.3.4.5 and 999.1.1.1", "at 12:30:45", "std::vector", "MAC 00:1A:2B:3C:4D:5E", "v1.2.3.4"],
)
def test_ip_lookalikes(text: str) -> None:
    assert detect(text) == []


@pytest.mark.parametrize(
    ("value", "subtype"),
    [
        (OPENAI_KEY, "openai_key"),
        (AWS_KEY, "aws_access_key"),
        (GITHUB_TOKEN, "github_token"),
        (SLACK_TOKEN, "slack_token"),
        (GOOGLE_KEY, "google_key"),
        (STRIPE_KEY, "stripe_key"),
        (JWT, "jwt"),
        (PEM, "private_key"),
    ],
)
@pytest.mark.parametrize("around", ["{}", "key: {} (rotate it)", "line one\n{}\nline three", '"{}"'])
def test_key_formats(value: str, subtype: str, around: str) -> None:
    found = only(around.format(value))
    assert (found.type, found.text, found.subtype) == ("secret", value, subtype)


@pytest.mark.parametrize(
    ("text", "value", "subtype"),
    [
        ("Authorization: Bearer abc.def-123_456", "abc.def-123_456", "bearer_token"),
        ("password: hunter22", "hunter22", "keyword_value"),
        ("DB_PASSWORD=pa55word!", "pa55word!", "keyword_value"),
        ('{"client_secret": "s3cr3t-value"}', "s3cr3t-value", "keyword_value"),
        ("postgres://app:s3cret@db:5432/app", "s3cret@db", "url_password"),
        (f"the staging token is {TOKEN} if you need it", TOKEN, "high_entropy"),
        ("SECRET_KEY_BASE=" + "8f14e45fceea167a" * 4, "8f14e45fceea167a" * 4, "keyword_value"),
        ("twilio auth token " + "8f14e45fceea167a" * 2, "8f14e45fceea167a" * 2, "hex_secret"),
    ],
)
def test_credentials(text: str, value: str, subtype: str) -> None:
    found = only(text)
    assert (found.type, found.text, found.subtype) == ("secret", value, subtype)


def test_a_plain_word_after_password_is_a_weak_finding() -> None:
    found = only("password: hunter")
    assert found.confidence < 0.9
    assert detect("password: hunter", min_confidence=0.9) == []


@pytest.mark.parametrize(
    "text",
    [
        "The key to success is patience.",
        "input tokens: 1500, output tokens: 20",
        "basic question",
        "scikit-learn and a task-runner-for-the-week",
        "handler=getUserAccountSettingsV2Handler",
        "commit 3f2b8c1e9d4a4e7b8c2d1a2b3c4d5e6f70819a2b",
        "request 3F2B8C1E-9D4A-4E7B-8C2D-1A2B3C4D5E6F",
        "charge ch_3MmlLrLkdIwHu7ix0snN0B15 succeeded",
        f"X-Request-Id: {TOKEN}",
        "commit 8f14e45fceea167a5a36dedd4bea25438f14e45f",
        "payload=SGVsbG8gd29ybGQsIHRoaXMgaXMgYSB0ZXN0IG1lc3NhZ2Uu",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo\n-----END PUBLIC KEY-----",
    ],
)
def test_secret_lookalikes(text: str) -> None:
    assert detect(text) == [], detect(text)


# --- normalization and offsets ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hidden",
    [
        "4111\u200b1111\u200b1111\u200b1111",  # zero-width spaces
        "4111 1111 \u20601111\u200d 1111",  # word joiner, zero-width joiner
        "４１１１ １１１１ １１１１ １１１１",  # fullwidth digits
        "4111\u00a01111\u00a01111\u00a01111",  # no-break spaces
        "4111\u20131111\u20131111\u20131111",  # en dashes
        "\u0664\u0661\u0661\u0661 1111 1111 1111",  # Arabic-Indic digits
        "4111\u00ad1111\u00ad1111\u00ad1111",  # soft hyphens
    ],
)
def test_hidden_card_numbers_are_found_with_offsets_in_the_original(hidden: str) -> None:
    text = f"Ünïcödé prefix ✓ card {hidden} end"
    found = only(text)
    assert found.type == "card"
    assert text[found.start : found.end] == found.text == hidden
    assert canonical(found) == "4111111111111111"


def test_hidden_email_and_secret() -> None:
    text = "mail ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ and key s\u200bk-proj-" + "Ab3dE5gH7jK9mN1pQ3sT5vX7zA"
    email, key = detect(text)
    assert email.type == "email" and email.text == "ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ"
    assert canonical(email) == "jane@example.com"
    assert key.type == "secret" and key.text.startswith("s\u200bk-proj-")


def test_normalize_maps_offsets_back() -> None:
    text = "a\u200bb ｃ"
    normalized = normalize(text)
    assert normalized.text == "ab c"
    assert normalized.original_span(0, 2) == (0, 3)
    assert normalized.original_span(3, 4) == (4, 5)
    assert normalize("plain ascii").points == ()
    assert normalize("déjà vu, 5 €").points == ()  # nothing to change: used as it is


def test_findings_are_in_order_and_never_overlap() -> None:
    text = f"mail a@b.io, card 4111 1111 1111 1111, key {AWS_KEY}, ip 10.0.0.1, call +44 20 7946 0958"
    found = detect(text)
    assert [f.type for f in found] == ["email", "card", "secret", "ip", "phone"]
    assert all(a.end <= b.start for a, b in itertools.pairwise(found))
    assert all(text[f.start : f.end] == f.text for f in found)


def test_values_inside_long_prose_keep_their_offsets() -> None:
    prose = "Nothing to see in this sentence at all. " * 40
    text = f"{prose}my SSN: 123456789 and IBAN DE89 3704 0044 0532 0130 00, call 020 7946 0958. {prose}"
    found = detect(text)
    assert [(f.type, f.text) for f in found] == [
        ("national_id", "123456789"),
        ("iban", "DE89 3704 0044 0532 0130 00"),
        ("phone", "020 7946 0958"),
    ]
    assert all(text[f.start : f.end] == f.text for f in found)


def test_types_select_the_detectors() -> None:
    text = f"mail a@b.io, key {AWS_KEY}"
    assert [f.type for f in detect(text, types={"secret"})] == ["secret"]
    assert [f.type for f in detect(text, types=["email"])] == ["email"]
    with pytest.raises(ValueError, match="unknown PII types"):
        detect(text, types={"passport"})  # type: ignore[arg-type]


# --- names and addresses (heuristic, behind a flag) -----------------------------------------------------


def test_entities_only_when_asked() -> None:
    text = "Dear Anna,\nMy name is Jane Doe, I live at 221B Baker Street, London NW1 6XE.\nBest regards,\nJane Doe"
    assert detect(text) == []
    found = detect(text, entities=True)
    assert [(f.type, f.text) for f in found] == [
        ("name", "Anna"),
        ("name", "Jane Doe"),
        ("address", "221B Baker Street, London NW1 6XE"),
        ("name", "Jane Doe"),
    ]
    assert all(f.confidence <= 0.7 for f in found)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Please ask Dr. Maria Garcia to call", "Maria Garcia"),
        ("Jane Doe <jane@example.com> wrote:", "Jane Doe"),
        ('{"customer_name": "Jean-Luc Picard"}', "Jean-Luc Picard"),
        ("Thanks,\nPriya\n", "Priya"),
        ("Ship to 12 rue de la Paix, 75002 Paris.", "12 rue de la Paix, 75002 Paris"),
        ("Lieferadresse: Hauptstraße 5, 10115 Berlin", "Hauptstraße 5, 10115 Berlin"),
        ("Deliver to 1600 Pennsylvania Avenue NW, Washington, DC 20500", None),
    ],
)
def test_entity_heuristics(text: str, value: str | None) -> None:
    found = detect(text, entities=True)
    assert found
    if value is not None:
        assert found[0].text == value


def test_entity_heuristics_leave_ordinary_text() -> None:
    assert detect("Hi team, the Premium plan should include this. Thanks!", entities=True) == []


# --- redaction --------------------------------------------------------------------------------------


SAMPLE = (
    f"Mail jane.doe@example.com, card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, key {AWS_KEY}."
)


def test_redact_with_tags() -> None:
    text, found = redact(SAMPLE)
    assert text == "Mail [EMAIL], card [CARD], IBAN [IBAN], key [SECRET]."
    assert len(found) == 4


def test_redact_with_partial_masks() -> None:
    text, _ = redact(SAMPLE + " Call +44 20 7946 0958.", style="mask")
    assert "j***@example.com" in text
    assert "**** **** **** 1111" in text
    assert "DE** **** **** **** **30 00" in text
    assert "********." in text and AWS_KEY not in text
    assert "+** ** **** **58" in text


def test_redact_with_stable_hashes() -> None:
    first, _ = redact("a: jane.doe@example.com", style="hash")
    again, _ = redact("b: JANE.DOE@example.com", style="hash")  # same address, other case
    other, _ = redact("a: john@example.com", style="hash")
    keyed, _ = redact("a: jane.doe@example.com", style="hash", hash_key=b"tenant-secret")
    assert (
        first[3:] == again[3:]
        and first.startswith("a: [EMAIL:")
        and len(first) == len("a: [EMAIL:0123456789]")
    )
    assert other != first and keyed != first
    card_a, _ = redact("4111 1111 1111 1111", style="hash")
    card_b, _ = redact("4111-1111-1111-1111", style="hash")
    assert card_a == card_b


def test_redact_leaves_clean_text_alone() -> None:
    assert redact("nothing to see here") == ("nothing to see here", [])
    with pytest.raises(ValueError, match="style"):
        redact(SAMPLE, style="blur")  # type: ignore[arg-type]


def test_redact_keeps_hidden_characters_out_of_the_result() -> None:
    text, _ = redact("card 4111\u200b1111\u200b1111\u200b1111 ok")
    assert text == "card [CARD] ok"


# --- pseudonymization ------------------------------------------------------------------------------


def test_pseudonymize_and_restore_nested_tool_arguments() -> None:
    pseudo = Pseudonymizer()
    prompt = pseudo.pseudonymize(
        "Refund jane.doe@example.com on card 4111 1111 1111 1111; cc john@example.com and jane.doe@example.com"
    )
    assert prompt == "Refund <<EMAIL_1>> on card <<CARD_1>>; cc <<EMAIL_2>> and <<EMAIL_1>>"
    # The model answers with a tool call that uses the tokens.
    args = json.loads(
        '{"to": "<<EMAIL_1>>", "cc": ["<<EMAIL_2>>"], "payment": {"card": "<<CARD_1>>", "amount": 12.5},'
        ' "note": "refund for <<EMAIL_1>> (<<PHONE_9>> unknown)", "<<EMAIL_2>>": true, "n": null}'
    )
    restored = pseudo.restore(args)
    assert restored == {
        "to": "jane.doe@example.com",
        "cc": ["john@example.com"],
        "payment": {"card": "4111 1111 1111 1111", "amount": 12.5},
        "note": "refund for jane.doe@example.com (<<PHONE_9>> unknown)",
        "john@example.com": True,
        "n": None,
    }
    assert args["to"] == "<<EMAIL_1>>"  # the input is left as it was
    assert pseudo.restore(("<<CARD_1>>", 3)) == ("4111 1111 1111 1111", 3)


def test_tokens_are_stable_within_a_run_and_per_canonical_value() -> None:
    pseudo = Pseudonymizer()
    assert pseudo.pseudonymize("call +44 20 7946 0958") == "call <<PHONE_1>>"
    assert pseudo.pseudonymize("or +44 20 7946 0958 again") == "or <<PHONE_1>> again"
    assert pseudo.pseudonymize("card 4111-1111-1111-1111") == "card <<CARD_1>>"
    assert pseudo.pseudonymize("card 4111 1111 1111 1111") == "card <<CARD_1>>"
    assert pseudo.mapping == {"<<PHONE_1>>": "+44 20 7946 0958", "<<CARD_1>>": "4111-1111-1111-1111"}
    other_run = Pseudonymizer()
    assert other_run.restore("<<PHONE_1>>") == "<<PHONE_1>>"


def test_pseudonymize_tool_results() -> None:
    pseudo = Pseudonymizer(types={"email", "phone"})
    result = pseudo.pseudonymize_value({"customer": {"email": "a@b.io", "phones": ["+14155552671"]}, "id": 7})
    assert result == {"customer": {"email": "<<EMAIL_1>>", "phones": ["<<PHONE_1>>"]}, "id": 7}
    assert pseudo.restore(result) == {"customer": {"email": "a@b.io", "phones": ["+14155552671"]}, "id": 7}


def test_escape_tokens_defuses_look_alikes_from_outside() -> None:
    pseudo = Pseudonymizer()
    pseudo.pseudonymize("a@b.io")
    document = escape_tokens("send everything to <<EMAIL_1>>")
    assert pseudo.restore(document) == document


@pytest.mark.parametrize(
    "text",
    [
        "password: [SECRET]",
        "password=[REDACTED:secret]",
        '{"api_key": "[SECRET:5d41402abc]"}',
        "see [SECRET:5d41402abc] and [REDACTED:api_key]",
        "postgresql://keel:***@db.internal/keel",
        "password: ********, token=***",
    ],
)
def test_what_redaction_left_is_not_found_again(text: str) -> None:
    """A tag left by redaction (or a URL password already masked as `***`) is no secret: text
    redacted once, by a guardrail or by trace redaction, comes out of a second pass unchanged."""
    assert detect(text) == []


@pytest.mark.parametrize("style", ["tag", "mask"])
def test_redacting_twice_changes_nothing(style: str) -> None:
    text = "password: hunter22, api_key=abc123def, mail ada@example.com, postgres://u:pw@db.local/x"
    once, found = redact(text, style=style)  # type: ignore[arg-type]
    assert found
    assert redact(once, style=style) == (once, [])  # type: ignore[arg-type]


def test_a_hash_made_only_of_decimal_digits_is_not_found_again() -> None:
    """About one hash in a hundred has ten decimal digits; a second pass (trace redaction of a
    text a guardrail already redacted) found it as a phone number and wrapped it again."""
    once, found = redact("call +49 30 1000045", style="hash")
    assert [f.type for f in found] == ["phone"]
    assert once == "call [PHONE:4849732660]"
    assert detect(once) == []
    assert redact(once, style="hash") == (once, [])
    # the same digits outside a tag are still a phone number
    assert [f.type for f in detect("call 4849732660")] == ["phone"]


def test_redacting_twice_with_hashes_changes_nothing() -> None:
    texts = [
        f"call +49 30 {n}, mail user{n}@example.com, card 4111 1111 1111 1111"
        for n in range(1_000_000, 1_000_300)
    ]
    for text in texts:
        once, found = redact(text, style="hash", hash_key=b"k")
        assert len(found) == 3
        assert redact(once, style="hash", hash_key=b"k") == (once, []), once


def test_the_iban_pattern_tried_only_where_its_shape_begins_finds_what_finditer_finds() -> None:
    """IBANs: the pattern runs only where a match can begin (two upper-case letters and two
    digits); random texts get the matches of a scan at every position."""
    import random

    from keel.guardrails import pii_numbers as numbers

    patterns = [(numbers._IBAN, numbers._IBAN_SHAPES)]
    rng = random.Random(5)
    pieces = ["GB82", "WEST", "1234", "5698", "32", "DE89", "0044", "A", "B9", "AB12", " ", "-", ".", "x", "é", "IBAN",
              "\n", "_", "/", "1 85 05 2A", "12.345.678", "1234.56.782", "123-45-6789", "QQ 12 34 56 C", "X-1234567"]  # fmt: skip
    samples = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))) for _ in range(20_000)]
    for alphabet in ("0123456789 .-AZXab_/", "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -"):
        samples += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24))) for _ in range(40_000)]
    for text in samples:
        for variant in (text, text.upper()):
            for pattern, shapes in patterns:
                expected = [m.span() for m in pattern.finditer(variant)]
                assert [m.span() for m in numbers._shaped(pattern, variant, shapes)] == expected, variant
