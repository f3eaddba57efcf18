"""Masking of secrets (every mode) and personal data (redacted mode), pattern by pattern."""

from __future__ import annotations

import pytest

from keel.tracing import redact_pii, redact_secrets
from keel.tracing.redact import iban_valid, luhn_valid, secret_values, sensitive_key

# Built at run time so that no secret-looking literal sits in the repository.
OPENAI_KEY = "sk-proj-" + "Ab3dE5gH7jK9mN1pQ3sT5vX7zA"
ANTHROPIC_KEY = "sk-ant-api03-" + "x" * 40
AWS_KEY = "AKIA" + "IOSFODNN7EXAMPLE"
GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
GITHUB_PAT = "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnop"
SLACK_TOKEN = "xoxb-" + "1234567890-0987654321-AbCdEfGh"
GOOGLE_KEY = "AIza" + "SyA1234567890abcdefghijklmnopqrstu"
STRIPE_KEY = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
JWT = "eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0." + "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7x\nabcdef==\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("secret", "kind"),
    [
        (OPENAI_KEY, "api_key"),
        (ANTHROPIC_KEY, "api_key"),
        (AWS_KEY, "api_key"),
        (GITHUB_TOKEN, "api_key"),
        (GITHUB_PAT, "api_key"),
        (SLACK_TOKEN, "api_key"),
        (GOOGLE_KEY, "api_key"),
        (STRIPE_KEY, "api_key"),
        (JWT, "jwt"),
        (PEM, "private_key"),
    ],
)
@pytest.mark.parametrize("around", ["{}", "key: {} (rotate it)", "line one\n{}\nline three", '"{}"', "({})"])
def test_key_formats_are_masked(secret: str, kind: str, around: str) -> None:
    text = around.format(secret)
    masked = redact_secrets(text)
    assert secret not in masked
    assert secret[4:14] not in masked
    assert f"[REDACTED:{kind}]" in masked


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-123_456", "Authorization: Bearer [REDACTED:token]"),
        ("authorization: bearer abcdef123456", "authorization: bearer [REDACTED:token]"),
        ("Basic dXNlcjpwYXNzd29yZA==", "Basic [REDACTED:token]"),
        ("api_key=abc123def", "api_key=[REDACTED:secret]"),
        ("https://x.io/v1?api-key=abc123def&q=1", "https://x.io/v1?api-key=[REDACTED:secret]&q=1"),
        ("My API key: zzzz1234", "My API key: [REDACTED:secret]"),
        ("password: hunter22", "password: [REDACTED:secret]"),
        ('{"client_secret": "s3cr3t-value"}', '{"client_secret": "[REDACTED:secret]"}'),
        ("DB_PASSWORD=pa55word!", "DB_PASSWORD=[REDACTED:secret]"),
        ("x-auth-token: tok_abcdef", "x-auth-token: [REDACTED:secret]"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG", "aws_secret_access_key = [REDACTED:secret]"),
    ],
)
def test_credentials_after_keywords_are_masked(text: str, expected: str) -> None:
    assert redact_secrets(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "The secretary: Jane will call.",
        "input tokens: 1500, output tokens: 20",
        "The key to success is patience.",
        "Ask for the task-runner-for-the-week-of-june",
        "I ate an apple",
        "basic question",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_secrets(text) == text
    assert redact_pii(text) == text


def test_a_private_key_cut_short_is_masked_to_the_end() -> None:
    cut = PEM[:45]
    assert redact_secrets(f"here: {cut}") == "here: [REDACTED:private_key]"


def test_exact_values_are_masked_longest_first() -> None:
    values = secret_values(["short", None, "", "abcdefgh-value", "abcdefgh-value-longer"])
    assert values == ("abcdefgh-value-longer", "abcdefgh-value")
    masked = redact_secrets("a abcdefgh-value-longer b abcdefgh-value c short", values)
    assert masked == "a [REDACTED:secret] b [REDACTED:secret] c short"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("write to jane.doe+inbox@example.co.uk today", "email"),
        ("mail: A_B@sub.domain.org", "email"),
        ("call +1 (415) 555-2671 now", "phone"),
        ("call +14155552671 now", "phone"),
        ("call (415) 555-2671 now", "phone"),
        ("call 415-555-2671 now", "phone"),
        ("call 415.555.2671 now", "phone"),
        ("ring +44 20 7946 0958", "phone"),
        ("ring 020 7946 0958", "phone"),
        ("appelle le 06 12 34 56 78", "phone"),
        ("card 4111 1111 1111 1111 exp 12/29", "card"),
        ("card 4111-1111-1111-1111", "card"),
        ("card 5555555555554444.", "card"),
        ("amex 378282246310005", "card"),
        ("pay to DE89 3704 0044 0532 0130 00 please", "iban"),
        ("pay to GB29NWBK60161331926819", "iban"),
        ("pay to GB29 NWBK 6016 1331 9268 19", "iban"),
        ("server 192.168.10.254 is down", "ip"),
        ("from 8.8.8.8.", "ip"),
    ],
)
def test_personal_data_is_masked(text: str, kind: str) -> None:
    masked = redact_pii(text)
    assert f"[REDACTED:{kind}]" in masked, masked
    digits = "".join(c for c in text if c.isdigit())
    assert sum(c.isdigit() for c in masked) < len(digits) or kind == "email"


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 fails Luhn",
        "order 1700000000000 (a timestamp)",
        "released 2024-01-15 at 10:30:00",
        "on 01.02.2024",
        "python 3.11.7 and version 1.2.3",
        "total 12345678 items",
        "an@ sign alone, and user@localhost",
        "values 1.2.3.4.5 and 999.1.1.1",
    ],
)
def test_lookalikes_are_not_masked(text: str) -> None:
    assert redact_pii(text) == text


def test_an_iban_failing_its_check_is_not_called_an_iban() -> None:
    assert "[REDACTED:iban]" not in redact_pii("iban DE89 3704 0044 0532 0130 01 fails mod 97")


def test_checksums() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert iban_valid("DE89 3704 0044 0532 0130 00")
    assert not iban_valid("DE89 3704 0044 0532 0130 01")
    assert not iban_valid("DE89")


@pytest.mark.parametrize(
    ("key", "sensitive"),
    [
        ("password", True),
        ("api_key", True),
        ("apiKey", True),
        ("Authorization", True),
        ("x-auth-token", True),
        ("client_secret", True),
        ("refresh_token", True),
        ("sessionToken", True),
        ("X-Api-Key", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("max_tokens", False),
        ("input_tokens", False),
        ("secretary", False),
        ("name", False),
        ("keyboard", False),
    ],
)
def test_sensitive_keys(key: str, sensitive: bool) -> None:
    assert sensitive_key(key) is sensitive


def test_non_ascii_text_keeps_its_place() -> None:
    text = "İstanbul password: hunter22 ünïcode and mail é@x.com? no: ada@example.com"
    assert (
        redact_secrets(text)
        == "İstanbul password: [REDACTED:secret] ünïcode and mail é@x.com? no: ada@example.com"
    )
    assert redact_pii(text).endswith("no: [REDACTED:email]")
