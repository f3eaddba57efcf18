"""API key format, parsing, hashing, scopes and expiry: the pure part, no database."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from keel.errors import UsageError
from keel.gateway import (
    SCOPES,
    ApiKeyRefused,
    InvalidExpiry,
    InvalidScope,
    generate_key,
    hash_secret,
    key_pepper,
    parse_expiry,
    parse_key,
    secret_matches,
    validate_scopes,
)
from keel.gateway.keys import DEFAULT_PEPPER, PEPPER_ENV

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEY_SHAPE = re.compile(r"^keel_[a-z2-7]{12}_[A-Za-z0-9_-]{43}$")


def test_generated_keys_have_the_documented_shape_and_parse_back() -> None:
    generated = generate_key()
    assert KEY_SHAPE.fullmatch(generated.key)
    assert generated.key == f"keel_{generated.prefix}_{generated.secret}"
    parsed = parse_key(generated.key)
    assert (parsed.prefix, parsed.secret) == (generated.prefix, generated.secret)


def test_generated_keys_are_random() -> None:
    keys = [generate_key() for _ in range(200)]
    assert len({k.prefix for k in keys}) == 200
    assert len({k.secret for k in keys}) == 200


def test_repr_never_shows_the_secret() -> None:
    generated = generate_key()
    for shown in (repr(generated), repr(parse_key(generated.key)), str(generated)):
        assert generated.secret not in shown
        assert generated.prefix in shown


def _good() -> str:
    return generate_key().key


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: "", id="empty"),
        pytest.param(lambda: "keel", id="scheme-only"),
        pytest.param(lambda: "keel__", id="empty-parts"),
        pytest.param(lambda: _good().replace("keel_", "kel_", 1), id="wrong-scheme"),
        pytest.param(lambda: _good().upper(), id="upper-case"),
        pytest.param(lambda: _good()[:-1], id="secret-too-short"),
        pytest.param(lambda: _good() + "A", id="secret-too-long"),
        pytest.param(lambda: _good() + "\n", id="trailing-newline"),
        pytest.param(lambda: " " + _good(), id="leading-space"),
        pytest.param(lambda: "keel_" + "a" * 11 + "_" + "A" * 43, id="prefix-too-short"),
        pytest.param(lambda: "keel_" + "a" * 11 + "1_" + "A" * 43, id="prefix-not-base32"),
        pytest.param(lambda: "keel_" + "a" * 12 + "_" + "A" * 42 + "=", id="secret-padding"),
        pytest.param(lambda: "keel_" + "a" * 12 + "_" + "A" * 42 + "+", id="secret-not-url-safe"),
        pytest.param(lambda: "Bearer " + _good(), id="with-scheme-word"),
        pytest.param(lambda: None, id="none"),
        pytest.param(lambda: _good().encode(), id="bytes"),
    ],
)
def test_malformed_keys_are_refused_as_malformed(make: Callable[[], object]) -> None:
    with pytest.raises(ApiKeyRefused) as caught:
        parse_key(make())
    assert caught.value.reason == "malformed"
    assert str(caught.value) == "invalid API key"


def test_the_hash_is_an_hmac_of_the_secret_and_never_contains_it() -> None:
    generated = generate_key()
    digest = hash_secret(generated.secret, DEFAULT_PEPPER)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest == hmac.new(DEFAULT_PEPPER, generated.secret.encode(), hashlib.sha256).hexdigest()
    assert generated.secret not in digest
    assert digest != hashlib.sha256(generated.secret.encode()).hexdigest()  # keyed, not a bare hash
    assert hash_secret(generated.secret, b"another pepper") != digest
    assert secret_matches(generated.secret, digest, DEFAULT_PEPPER)
    assert not secret_matches(generate_key().secret, digest, DEFAULT_PEPPER)
    assert not secret_matches(generated.secret, digest, b"another pepper")


def test_the_pepper_comes_from_the_environment_else_the_default() -> None:
    assert key_pepper({PEPPER_ENV: "s3cret-pepper"}) == b"s3cret-pepper"
    assert key_pepper({}) == DEFAULT_PEPPER
    assert key_pepper({PEPPER_ENV: "  "}) == DEFAULT_PEPPER


def test_scopes_are_a_closed_set() -> None:
    assert set(SCOPES) == {
        "runs:write",
        "runs:read",
        "approvals:decide",
        "prompts:read",
        "prompts:write",
        "prompts:deploy",
        "evals:run",
        "keys:admin",
        "admin",
    }
    assert validate_scopes(["runs:read", "runs:write", "runs:read"]) == ("runs:write", "runs:read")
    assert validate_scopes("admin") == ("admin",)


@pytest.mark.parametrize(
    ("scopes", "message"),
    [
        (["runs:read", "runs:delete"], "unknown scope 'runs:delete'"),
        (["Runs:Read"], "unknown scope 'Runs:Read'"),
        (["*"], "unknown scope '\\*'"),
        (["root", "sudo"], "unknown scopes 'root', 'sudo'"),
        ([], "at least one scope"),
    ],
)
def test_unknown_or_missing_scopes_are_refused_clearly(scopes: list[str], message: str) -> None:
    with pytest.raises(InvalidScope, match=message) as caught:
        validate_scopes(scopes)
    assert "known scopes: runs:write, runs:read" in str(caught.value)
    assert isinstance(caught.value, UsageError)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("30d", NOW + timedelta(days=30)),
        ("12h", NOW + timedelta(hours=12)),
        ("90m", NOW + timedelta(minutes=90)),
        ("2w", NOW + timedelta(weeks=2)),
        ("45s", NOW + timedelta(seconds=45)),
        (timedelta(hours=1), NOW + timedelta(hours=1)),
        ("2026-04-01T00:00:00", datetime(2026, 4, 1, tzinfo=UTC)),
        ("2026-04-01T02:00:00+02:00", datetime(2026, 4, 1, tzinfo=UTC)),
        (datetime(2027, 1, 1), datetime(2027, 1, 1, tzinfo=UTC)),
    ],
)
def test_expiry_is_a_duration_or_a_time(
    value: str | datetime | timedelta | None, expected: datetime | None
) -> None:
    parsed = parse_expiry(value, now=NOW)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("30 days", "expected a duration like 30d"),
        ("30y", "expected a duration like 30d"),
        ("-1d", "expected a duration like 30d"),
        ("0s", "must be in the future"),
        ("2020-01-01", "must be in the future"),
        (timedelta(seconds=-5), "must be in the future"),
        ("999999999w", "too far in the future"),
    ],
)
def test_bad_expiries_are_refused(value: str | timedelta, message: str) -> None:
    with pytest.raises(InvalidExpiry, match=message):
        parse_expiry(value, now=NOW)
