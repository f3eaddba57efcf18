"""A holdout set for PII detection: formats and sentences written after the detector was frozen,
to measure what the main corpus (pii_corpus.py, written alongside the detector) cannot: how it
does on writing it was not tuned for. Some formats are ones the detector is known not to handle
(lower-case IBANs and NINOs, "at ... dot" emails without brackets, 7-digit local numbers); they
are in on purpose.

    samples = generate_holdout(600, seed=7)

Same `Sample`/`Label` shapes as the main corpus, scored the same way. Values are random with
valid checksums, as in the main corpus.
"""

from __future__ import annotations

import random
import string

from tests.guardrails import pii_corpus_values as values
from tests.guardrails.pii_corpus import Label, Sample

_HEX = "0123456789abcdef"


def _d(rng: random.Random, count: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(count))


def _chars(rng: random.Random, alphabet: str, count: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(count))


def _email(rng: random.Random) -> tuple[str, str]:
    first, last = (p.lower().replace("'", "") for p in values.person(rng))
    return rng.choice(
        [
            (f"{first}.{last}@dept.company-name.co.uk", "subdomain"),
            (f"support-team@{last}.ai", "short_tld"),
            (f"{first.upper()}.{last.upper()}@MAIL.IE", "upper"),
            (f"{first}.{last} at example dot com", "at_dot_plain"),
            (f"{first}_{last}@example.museum", "long_tld"),
            (f"{first}@{last}.com.au", "two_level_tld"),
            (f"{first[0]}.{last}+billing@example.org", "plus"),
        ]
    )


def _phone(rng: random.Random) -> tuple[str, str]:
    a, b = str(rng.randint(2, 9)) + _d(rng, 2), str(rng.randint(2, 9)) + _d(rng, 2)
    c = _d(rng, 4)
    return rng.choice(
        [
            (f"+1 {a}-{b}-{c}", "us_dashed_intl"),
            (f"({a}){b}-{c}", "us_no_space"),
            (f"{a}/{b}-{c}", "us_slash"),
            (f"1 ({a}) {b}-{c}", "us_one_parens"),
            (f"07{_d(rng, 9)}", "uk_mobile_compact"),
            (f"+44 7{_d(rng, 3)} {_d(rng, 3)} {_d(rng, 3)}", "uk_mobile_3_3_3"),
            (f"020-{_d(rng, 4)}-{_d(rng, 4)}", "uk_dashed"),
            (f"+353 8{_d(rng, 1)} {_d(rng, 3)} {_d(rng, 4)}", "ie"),
            (f"+852 2{_d(rng, 3)} {_d(rng, 4)}", "hk"),
            (f"+65 6{_d(rng, 3)} {_d(rng, 4)}", "sg"),
            (f"+31 (0)20 {_d(rng, 3)} {_d(rng, 4)}", "nl_trunk"),
            (f"0049 30 {_d(rng, 7)}", "de_00"),
            (f"+46 8 {_d(rng, 3)} {_d(rng, 3)} {_d(rng, 2)}", "se"),
            (f"+48 12 {_d(rng, 3)} {_d(rng, 2)} {_d(rng, 2)}", "pl"),
            (f"+90 212 {_d(rng, 3)} {_d(rng, 2)} {_d(rng, 2)}", "tr"),
            (f"06 {_d(rng, 4)} {_d(rng, 4)}", "nl_mobile_2_4_4"),
            (f"{b}-{c}", "us_local_7"),
        ]
    )


def _card(rng: random.Random) -> tuple[str, str]:
    visa = values.luhn_complete(rng, "4", 16)
    mc = values.luhn_complete(rng, "55", 16)
    amex = values.luhn_complete(rng, "37", 15)
    disc = values.luhn_complete(rng, "6011", 16)
    union = values.luhn_complete(rng, "62", 19)
    return rng.choice(
        [
            (f"{visa[:4]}-{visa[4:8]} {visa[8:12]}-{visa[12:]}", "mixed_separators"),
            ("  ".join(visa[i : i + 4] for i in range(0, 16, 4)), "double_spaces"),
            (" ".join(mc[i : i + 4] for i in range(0, 16, 4)), "mastercard"),
            (f"{amex[:4]} {amex[4:10]} {amex[10:]}", "amex"),
            ("-".join(disc[i : i + 4] for i in range(0, 16, 4)), "discover_dashed"),
            (" ".join(union[i : i + 4] for i in range(0, 19, 4)), "unionpay_19"),
            (visa, "compact"),
        ]
    )


def _iban(rng: random.Random) -> tuple[str, str]:
    compact = values.iban_compact(rng)
    grouped = " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return rng.choice(
        [
            ("-".join(compact[i : i + 4] for i in range(0, len(compact), 4)), "dashed"),
            (grouped, "grouped"),
            (compact, "compact"),
            (grouped.lower(), "lowercase"),
        ]
    )


def _national_id(rng: random.Random) -> tuple[str, str, str]:
    """(context sentence with {v}, value, subtype)"""
    ssn, nino, nir = values.ssn(rng), values.nino(rng), values.nir(rng)
    dni, tax, bsn, cf = values.dni(rng), values.de_tax_id(rng), values.bsn(rng), values.codice_fiscale(rng)
    return rng.choice(
        [
            ("SSN#: {v}", f"{ssn[:3]} {ssn[3:5]} {ssn[5:]}", "ssn_spaced"),
            ("ssn {v}", f"{ssn[:3]}.{ssn[3:5]}.{ssn[5:]}", "ssn_dotted"),
            ("Employee SSN {v} on the W-2", f"{ssn[:3]}-{ssn[3:5]}-{ssn[5:]}", "ssn_dashed"),
            ("NI no. {v}", f"{nino[:2]} {nino[2:8]} {nino[8]}", "nino_2_6_1"),
            ("national insurance {v}", nino.lower(), "nino_lower"),
            (
                "Sécu : {v}",
                "-".join([nir[0], nir[1:3], nir[3:5], nir[5:7], nir[7:10], nir[10:13], nir[13:]]),
                "nir_dashed",
            ),
            ("n° de sécu {v}", nir, "nir_compact"),
            ("DNI {v}", f"{dni[:8]} {dni[8]}", "dni_space"),
            ("Steuer-IdNr. {v}", f"{tax[:2]} {tax[2:5]} {tax[5:8]} {tax[8:]}", "tax_spaced"),
            ("BSN {v}", f"{bsn[:4]} {bsn[4:6]} {bsn[6:]}", "bsn_4_2_3"),
            ("BSN: {v}", f"{bsn[:3]}.{bsn[3:6]}.{bsn[6:]}", "bsn_3_3_3"),
            ("C.F. {v}", cf.lower(), "cf_lower"),
        ]
    )


def _ip(rng: random.Random) -> tuple[str, str, str]:
    v4 = f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    groups = [f"{rng.randint(1, 0xFFFF):X}" for _ in range(8)]
    return rng.choice(
        [
            ("route {v}/24 via the VPN", v4, "cidr"),
            ("listening on [{v}]:8443", f"2001:db8::{groups[0].lower()}", "bracketed_v6"),
            ("peer {v} dropped", ":".join(groups), "upper_v6"),
            ("curl http://{v}:3000/health", v4, "url_port"),
            ("The NAS is at {v}.", v4, "plain"),
        ]
    )


def _secret(rng: random.Random) -> tuple[str, str, str]:
    alnum = string.ascii_letters + string.digits
    token = values.token(rng)
    aws_secret = _chars(rng, alnum + "/+", 40)
    return rng.choice(
        [
            ("Authorization: token {v}", "ghp_" + _chars(rng, alnum, 36), "github"),
            ("AWS_SECRET_ACCESS_KEY={v}", aws_secret, "aws_secret"),
            ("export OPENAI_API_KEY={v}", "sk-proj-" + _chars(rng, alnum, 48), "openai"),
            ("X-Api-Key: {v}", _chars(rng, _HEX, 32), "hex_api_key"),
            ("twilio auth token {v}", _chars(rng, _HEX, 32), "hex_no_keyword"),
            ("mongodb+srv://admin:{v}@cluster0.abcde.mongodb.net/db", values.password(rng), "mongo_url"),
            ("Use the key '{v}' for staging", token, "quoted_token"),
            ("Cookie: session={v}", values.jwt(rng), "jwt_cookie"),
            ("SECRET_KEY_BASE={v}", _chars(rng, _HEX, 64), "hex_keyword"),
            (
                "here is my recovery code {v}",
                "-".join(_chars(rng, "abcdefghjkmnpqrstuvwxyz23456789", 5) for _ in range(4)),
                "recovery_code",
            ),
        ]
    )


_NEGATIVES = (
    lambda r: f"Rechnung Nr. {r.randint(2019, 2026)}-{r.randint(1, 9999):04d}",
    lambda r: (
        f"logged at {r.randint(2019, 2026)}-0{r.randint(1, 9)}-1{r.randint(0, 9)} 14:30:00,{r.randint(100, 999)}"
    ),
    lambda r: f"stamp 2024031{r.randint(0, 9)}T14{r.randint(10, 59)}00Z",
    lambda r: f"Windows build 10.0.{r.randint(17000, 22631)}.{r.randint(1000, 4000)}",
    lambda r: f"OID 1.2.840.113549.1.1.{r.randint(1, 13)}",
    lambda r: f"GPS {r.randint(10, 60)}.{_d(r, 4)},-{r.randint(10, 120)}.{_d(r, 4)}",
    lambda r: f"routing number {_d(r, 9)} for the wire",
    lambda r: f"git {''.join(r.choice(_HEX) for _ in range(40))}",
    lambda r: (
        "![logo](data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
        + "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==)"
    ),
    lambda r: f"X-Request-Id: {values.token(r)}",
    lambda r: f"SKU {r.randint(100, 999)}-{r.randint(100, 999)}-{r.randint(1000, 9999)}-XL",
    lambda r: f"Population {r.randint(1, 9)},{_d(r, 3)},{_d(r, 3)} in {r.randint(1990, 2024)}",
    lambda r: f"part no. {r.randint(10, 99)} {_d(r, 3)} {_d(r, 3)} {_d(r, 3)}",
)

_CARRIERS = {
    "email": ("Please write to {v} instead.", "From: {v}", "mailto:{v}", "cc: {v}"),
    "phone": ("Reach me on {v} in the afternoon.", "Tel. {v}", "fax {v}", "Our hotline: {v}"),
    "card": ("Card: {v}", "charged {v} twice", "the number on the card is {v}"),
    "iban": ("Account {v}", "Payee IBAN {v}", "IBAN: {v}"),
}
_FILLER = (
    "Following up on my last message.",
    "The issue started after the update.",
    "Everything else works fine.",
    "Let us know what you find.",
)


def generate_holdout(count: int = 600, seed: int = 7) -> list[Sample]:
    rng = random.Random(seed)
    samples: list[Sample] = []
    for _ in range(count):
        parts: list[str] = []
        labels: list[Label] = []
        negatives: list[tuple[str, int, int]] = []
        size = 0
        for _ in range(rng.randint(1, 3)):
            kind = rng.choice(
                ["email", "phone", "card", "iban", "national_id", "ip", "secret", "negative", "filler"]
            )
            if kind == "filler":
                sentence = rng.choice(_FILLER)
                parts.append(sentence + " ")
                size += len(sentence) + 1
                continue
            if kind == "negative":
                value = rng.choice(_NEGATIVES)(rng)
                negatives.append(("holdout", size, size + len(value)))
                parts.append(value + ". ")
                size += len(value) + 2
                continue
            if kind in _CARRIERS:
                value, subtype = {"email": _email, "phone": _phone, "card": _card, "iban": _iban}[kind](rng)
                template = rng.choice(_CARRIERS[kind])
            else:
                template, value, subtype = {"national_id": _national_id, "ip": _ip, "secret": _secret}[kind](
                    rng
                )
            before, after = template.split("{v}")
            labels.append(Label(kind, size + len(before), size + len(before) + len(value), subtype))
            sentence = before + value + after + rng.choice([" ", "\n", ". "])
            parts.append(sentence)
            size += len(sentence)
        samples.append(Sample("".join(parts), tuple(labels), tuple(negatives), "holdout"))
    return samples
