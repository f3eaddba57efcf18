"""Hard negatives for the synthetic PII corpus (pii_corpus.py): values that look like PII and are
not (order numbers, dates, versions, tracking numbers, 16-digit numbers failing Luhn, UUIDs, hashes,
prices, MAC addresses, ISBNs, EAN barcodes, base64 data, public keys, object ids, identifiers, and
values failing their checksum), with the sentences they appear in."""

from __future__ import annotations

import base64
import random
import string
import uuid
from collections.abc import Callable

from tests.guardrails import pii_corpus_values as values

NEGATIVES: dict[str, tuple[str, ...]] = {
    "order_number": ("Your order {n} has shipped.", "order={n}", "Re: order {n} missing item"),
    "date": ("The meeting moved to {n}.", "Delivered on {n}.", "created_at={n}", "Termin am {n}"),
    "time": ("The call is at {n} today.", "latency spike at {n}"),
    "version": ("Upgraded to {n} last night.", "version={n}", "Running build {n}."),
    "tracking": ("Tracking number: {n}", "Your parcel {n} is out for delivery.", "tracking={n}"),
    "not_luhn": ("Reference {n} on the statement.", "account ref {n}", "Transaction {n} pending."),
    "uuid": ("request_id={n}", "Ticket {n} was merged.", "session {n} expired"),
    "hex_hash": ("commit {n}", "sha256={n}", "The file hash is {n}."),
    "price": ("The total was {n} including VAT.", "amount={n}", "Refund of {n} issued."),
    "mac": ("device MAC {n}", "mac={n}"),
    "isbn": ("ISBN {n}", "The book ({n}) is back in stock."),
    "quantity": ("Ordered {n} units.", "Disk usage at {n} on the cluster."),
    "bad_checksum": ("Is {n} a valid number?", "The form rejected {n}.", "value={n} (invalid)"),
    "object_id": ("charge {n} succeeded", "customer={n}"),
    "identifier": ("See {n} for details.", "handler={n}"),
    "barcode": ("EAN {n}", "The barcode {n} does not scan.", "gtin={n}"),
    "base64_data": ("payload={n}", "The webhook body was {n} (base64)."),
    "public_key": ("Here is our public key:\n{n}\n", "cert: {n}"),
}


def _not_luhn(rng: random.Random) -> str:
    while True:
        digits = rng.choice("45") + "".join(rng.choice(string.digits) for _ in range(15))
        if not _luhn(digits):
            return values.group_card(digits, rng.choice([" ", "-", ""]))


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


_PLAIN = (
    '{"event": "order.created", "id": 4412, "total": 129.5}',
    "Hello world, this is a test message from the staging webhook.",
    '{"user": "guest", "roles": ["reader"], "exp": 1767225600}',
    "name=widget&qty=3&color=blue&size=XL",
)


def _ean13(rng: random.Random) -> str:
    body = rng.choice(["40", "50", "30", "76"]) + "".join(rng.choice(string.digits) for _ in range(10))
    check = (10 - sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body)) % 10) % 10
    return body + str(check)


def _public_pem(rng: random.Random) -> str:
    kind = rng.choice(["PUBLIC KEY", "CERTIFICATE", "RSA PUBLIC KEY"])
    body = base64.b64encode(bytes(rng.getrandbits(8) for _ in range(48 * rng.randint(2, 5)))).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {kind}-----\n{lines}\n-----END {kind}-----"


def _bad_checksum(rng: random.Random) -> str:
    kind = rng.choice(["iban", "ssn", "dni", "nir", "bsn", "tax"])
    if kind == "iban":
        good = values.iban_compact(rng)
        check = int(good[2:4])
        bad = f"{good[:2]}{(check + rng.randint(1, 90)) % 97 + 2:02d}{good[4:]}"
        return " ".join(bad[i : i + 4] for i in range(0, len(bad), 4))
    if kind == "ssn":
        area = rng.choice(["000", "666", str(rng.randint(900, 999))])
        return f"{area}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
    if kind == "dni":
        good = values.dni(rng)
        letters = "TRWAGMYFPDXBNJZSQVHLCKE".replace(good[8], "")
        return good[:8] + rng.choice(letters)
    if kind == "nir":
        good = values.nir(rng)
        return good[:13] + f"{(int(good[13:]) + rng.randint(1, 90)) % 97 + 1:02d}"
    if kind == "bsn":
        good = values.bsn(rng)
        return "BSN " + good[:8] + str((int(good[8]) + rng.randint(1, 9)) % 10)
    good = values.de_tax_id(rng)
    return good[:10] + str((int(good[10]) + rng.randint(1, 9)) % 10)


def negative(rng: random.Random, kind: str) -> str:
    """A hard negative of `kind` (a key of NEGATIVES)."""
    year = rng.randint(2019, 2026)
    month, day = rng.randint(1, 12), rng.randint(1, 28)
    hour, minute = rng.randint(0, 23), rng.randint(0, 59)
    makers: dict[str, Callable[[], str]] = {
        "order_number": lambda: rng.choice(
            [
                f"#{rng.randint(100000, 999999999)}",
                f"A-{year}-{rng.randint(100000, 999999)}",
                f"PO-{rng.randint(10000, 99999)}-{rng.randint(10, 99)}",
                f"{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}-{rng.randint(100, 999)}",
                f"ORD-{year}{month:02d}{day:02d}-{rng.randint(1, 9999):04d}",
            ]
        ),
        "date": lambda: rng.choice(
            [
                f"{year}-{month:02d}-{day:02d}",
                f"{day:02d}/{month:02d}/{year}",
                f"{month:02d}.{day:02d}.{year}",
                f"{day:02d}.{month:02d}.{year} {hour:02d}:{minute:02d}",
                f"{year}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:00Z",
                f"{day:02d}.{month:02d}.{year} {hour:02d}.{minute:02d}",
            ]
        ),
        "time": lambda: f"{hour:02d}:{minute:02d}" + rng.choice(["", f":{rng.randint(0, 59):02d}"]),
        "version": lambda: rng.choice(
            [
                f"v{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 20)}",
                f"{rng.randint(1, 4)}.{rng.randint(0, 12)}.{rng.randint(0, 9)}-beta.{rng.randint(1, 5)}",
                f"{rng.randint(1, 9)}.{rng.randint(10, 30)}.{rng.randint(0, 9)}.{rng.randint(1000, 9999)}",
                f"Python 3.{rng.randint(8, 13)}.{rng.randint(0, 12)}",
            ]
        ),
        "tracking": lambda: rng.choice(
            [
                "1Z" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16)),
                "9400 1"
                + " ".join("".join(rng.choice(string.digits) for _ in range(4)) for _ in range(4))
                + " 00",
                "94001" + "".join(rng.choice(string.digits) for _ in range(17)),
                " ".join("".join(rng.choice(string.digits) for _ in range(4)) for _ in range(3)),
            ]
        ),
        "not_luhn": lambda: _not_luhn(rng),
        "uuid": lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "hex_hash": lambda: "".join(rng.choice("0123456789abcdef") for _ in range(rng.choice([7, 40, 64]))),
        "price": lambda: rng.choice(
            [
                f"${rng.randint(1, 9)},{rng.randint(100, 999)}.{rng.randint(0, 99):02d}",
                f"€{rng.randint(1, 999)},{rng.randint(0, 99):02d}",
                f"USD {rng.randint(1, 99)},000",
            ]
        ),
        "mac": lambda: ":".join(f"{rng.randint(0, 255):02X}" for _ in range(6)),
        "isbn": lambda: (
            f"978-{rng.randint(0, 9)}-{rng.randint(10, 99)}-{rng.randint(100000, 999999)}-{rng.randint(0, 9)}"
        ),
        "quantity": lambda: rng.choice(
            [
                f"{rng.randint(2, 500)}",
                f"{rng.randint(1, 99)}.{rng.randint(0, 9)}%",
                f"+{rng.randint(1, 40)}%",
            ]
        ),
        "bad_checksum": lambda: _bad_checksum(rng),
        "object_id": lambda: (
            rng.choice(["ch_", "cus_", "pi_", "evt_"])
            + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(24))
        ),
        "barcode": lambda: _ean13(rng),
        "base64_data": lambda: base64.b64encode(rng.choice(_PLAIN).encode()).decode(),
        "public_key": lambda: _public_pem(rng),
        "identifier": lambda: rng.choice(
            [
                "getUserAccountSettingsV2Handler",
                "AbstractSingletonProxyFactoryBean",
                "quarterly_report_2024_final_v3.xlsx",
                "com.example.payments.RefundServiceImpl",
            ]
        ),
    }
    return makers[kind]()
