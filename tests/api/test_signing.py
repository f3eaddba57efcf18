"""Callback signatures: what Keel sends verifies; anything altered, stale or unsigned does not."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from keel.api.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    sign,
    signature_headers,
    verify,
)

BODY = b'{"run_id": "r1", "status": "succeeded", "output": {"x": "\xc3\xa9"}}'
NOW = 1_763_799_000.0


def test_sign_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"s3cret", b"1763799000." + BODY, hashlib.sha256).hexdigest()
    assert sign("s3cret", 1763799000, BODY) == expected


def test_round_trip() -> None:
    headers = signature_headers(["s3cret"], BODY, now=NOW)
    assert headers[TIMESTAMP_HEADER] == "1763799000"
    assert verify(["s3cret"], headers, BODY, now=NOW + 10) == 1763799000


def test_header_names_are_case_insensitive() -> None:
    headers = {k.lower(): v for k, v in signature_headers(["s3cret"], BODY, now=NOW).items()}
    verify(["s3cret"], headers, BODY, now=NOW)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h, b: (h, b + b" "), "does not match"),
        (lambda h, b: ({**h, TIMESTAMP_HEADER: str(int(NOW) + 1)}, b), "does not match"),
        (lambda h, b: ({TIMESTAMP_HEADER: h[TIMESTAMP_HEADER]}, b), "missing"),
        (lambda h, b: ({**h, TIMESTAMP_HEADER: "yesterday"}, b), "not a Unix timestamp"),
        (lambda h, b: ({**h, SIGNATURE_HEADER: "v0=abc"}, b), "no v1= signature"),
        (lambda h, b: ({**h, SIGNATURE_HEADER: "v1=" + "0" * 64}, b), "does not match"),
    ],
)
def test_tampering_is_rejected(mutate: object, message: str) -> None:
    headers, body = mutate(signature_headers(["s3cret"], BODY, now=NOW), BODY)  # type: ignore[operator]
    with pytest.raises(SignatureError, match=message):
        verify(["s3cret"], headers, body, now=NOW)


def test_wrong_secret_is_rejected() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        verify(["other"], signature_headers(["s3cret"], BODY, now=NOW), BODY, now=NOW)


@pytest.mark.parametrize("skew", [301, -301, 86_400])
def test_replays_outside_the_window_are_rejected(skew: int) -> None:
    headers = signature_headers(["s3cret"], BODY, now=NOW)
    with pytest.raises(SignatureError, match="away from now"):
        verify(["s3cret"], headers, BODY, now=NOW + skew)
    verify(["s3cret"], headers, BODY, now=NOW + skew, tolerance_s=abs(skew))


def test_secret_rotation_either_side() -> None:
    rotating = signature_headers(["new", "old"], BODY, now=NOW)
    verify(["old"], rotating, BODY, now=NOW)  # a receiver not yet updated
    verify(["new"], rotating, BODY, now=NOW)  # a receiver already updated
    verify(["new", "old"], signature_headers(["old"], BODY, now=NOW), BODY, now=NOW)


def test_signing_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        signature_headers([], BODY)
