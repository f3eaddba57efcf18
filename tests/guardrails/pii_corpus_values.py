"""Value generators for the synthetic PII corpus (see pii_corpus.py): each returns
(surface text, subtype) drawn from a `random.Random`, with valid checksums where the format has
one. Nothing here is a real person's data: names come from short lists, numbers are random."""

from __future__ import annotations

import base64
import json
import random
import string

from keel.guardrails.pii_checks import IBAN_LENGTHS


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST = _words(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard "
    "Susan Joseph Jessica Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa Anthony Betty Mark "
    "Sandra Paul Ashley Steven Emily Andrew Donna Joshua Michelle Kevin Carol Brian Amanda George "
    "Melissa Timothy Deborah Jean Marie Pierre Camille Lucas Chloe Hugo Lea Thomas Manon Lukas Anna "
    "Jonas Lena Felix Sofia Javier Lucia Pablo Carmen Marco Giulia Luca Francesca Sven Ingrid Pieter "
    "Sanne Priya Arjun Yuki Haruto Wei Mei Omar Fatima Kwame Amara Olga Ivan"
)
LAST = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Wilson Anderson Taylor Thomas Moore Jackson Martin Lee Thompson White Harris Clark Lewis Walker "
    "Hall Young Dupont Durand Lefebvre Moreau Laurent Muller Schmidt Schneider Fischer Weber Becker "
    "Fernandez Gonzalez Sanchez Rossi Russo Bianchi Romano Jansen Bakker Visser Andersson Nilsson "
    "Patel Sharma Tanaka Suzuki Chen Wang Haddad Mensah Okafor Ivanova Petrov O'Brien Murphy Kelly"
)
_ALNUM = string.ascii_letters + string.digits
_UPPER_DIGITS = string.ascii_uppercase + string.digits


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(count))


def _chars(rng: random.Random, alphabet: str, count: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(count))


def person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST), rng.choice(LAST)


# --- email -------------------------------------------------------------------------------------------

_DOMAINS = _words(
    "example.com gmail.com outlook.com yahoo.fr web.de mail.co.uk acme-corp.io startup.dev "
    "uni-koeln.de sub.example.org proton.me company.es posteo.net example.co.jp shop.example.nl"
)


def email(rng: random.Random) -> tuple[str, str]:
    first, last = (part.lower().replace("'", "") for part in person(rng))
    local = rng.choice(
        [
            f"{first}.{last}",
            f"{first[0]}{last}",
            f"{first}_{last}{rng.randint(1, 99)}",
            f"{first}+{rng.choice(['inbox', 'shop', 'news'])}",
            f"{last}.{first}{rng.randint(1970, 2005)}",
            f"{first}",
        ]
    )
    domain = rng.choice(_DOMAINS)
    if rng.random() < 0.04:  # written to dodge address scrapers
        at, dot = rng.choice([(" [at] ", " [dot] "), ("(at)", "."), (" (at) ", " (dot) "), ("[at]", "[dot]")])
        return f"{local}{at}{domain.replace('.', dot)}", "email_at"
    address = f"{local}@{domain}"
    if rng.random() < 0.1:
        address = address.title() if rng.random() < 0.5 else address.upper()
    return address, "email"


# --- phone -------------------------------------------------------------------------------------------


def _nanp(rng: random.Random) -> tuple[str, str, str]:
    def part() -> str:
        while True:
            value = str(rng.randint(2, 9)) + _digits(rng, 2)
            if value[1:] != "11":
                return value

    return part(), part(), _digits(rng, 4)


def phone(rng: random.Random) -> tuple[str, str]:
    """A telephone number in one of the common international and national formats."""
    a, b, c = _nanp(rng)
    uk_mobile = "7" + _digits(rng, 9)
    uk_london = "20" + rng.choice("378") + _digits(rng, 7)
    fr = rng.choice("67") + _digits(rng, 8)
    de = rng.choice(["30", "89", "40", "171", "151", "160"])
    de_rest = _digits(rng, 11 - 1 - len(de))
    nl = "6" + _digits(rng, 8)
    es = rng.choice("679") + _digits(rng, 8)
    au = rng.choice(["2", "3", "4"]) + _digits(rng, 8)
    jp = rng.choice(["3", "90", "80"])
    jp_rest = _digits(rng, 10 - 1 - len(jp) + 1)
    formats = [
        ("us", f"{a}-{b}-{c}"),
        ("us", f"({a}) {b}-{c}"),
        ("us", f"{a}.{b}.{c}"),
        ("us", f"{a} {b} {c}"),
        ("us", f"+1 {a} {b} {c}"),
        ("us", f"+1-{a}-{b}-{c}"),
        ("us", f"+1 ({a}) {b}-{c}"),
        ("e164", f"+1{a}{b}{c}"),
        ("us", f"1-800-{b}-{c}"),
        ("uk", f"0{uk_london[:2]} {uk_london[2:6]} {uk_london[6:]}"),
        ("uk", f"0{uk_mobile[:4]} {uk_mobile[4:]}"),
        ("uk", f"+44 {uk_london[:2]} {uk_london[2:6]} {uk_london[6:]}"),
        ("uk", f"+44 (0){uk_london[:2]} {uk_london[2:6]} {uk_london[6:]}"),
        ("e164", f"+44{uk_mobile}"),
        ("uk", f"0044 {uk_mobile[:4]} {uk_mobile[4:]}"),
        ("fr", "0" + fr[0] + " " + " ".join(fr[i : i + 2] for i in range(1, 9, 2))),
        ("fr", "0" + fr[0] + "." + ".".join(fr[i : i + 2] for i in range(1, 9, 2))),
        ("fr", "0" + fr),
        ("fr", f"+33 {fr[0]} " + " ".join(fr[i : i + 2] for i in range(1, 9, 2))),
        ("e164", f"+33{fr}"),
        ("de", f"0{de} {de_rest}"),
        ("de", f"0{de}-{de_rest}"),
        ("de", f"+49 {de} {de_rest}"),
        ("de", f"+49 (0){de} {de_rest[:4]} {de_rest[4:]}"),
        ("nl", f"0{nl[0]}-{nl[1:]}"),
        ("nl", f"+31 {nl[0]} {nl[1:]}"),
        ("es", f"+34 {es[:3]} {es[3:6]} {es[6:]}"),
        ("it", f"+39 06 {_digits(rng, 4)} {_digits(rng, 4)}"),
        ("it", f"+39 3{_digits(rng, 2)} {_digits(rng, 3)} {_digits(rng, 4)}"),
        ("au", f"(0{au[0]}) {au[1:5]} {au[5:]}" if au[0] != "4" else f"0{au[:3]} {au[3:6]} {au[6:]}"),
        ("au", f"+61 {au[0]} {au[1:5]} {au[5:]}"),
        ("jp", f"0{jp}-{jp_rest[:4]}-{jp_rest[4:8]}"),
        ("jp", f"+81 {jp} {jp_rest[:4]} {jp_rest[4:8]}"),
        ("in", f"+91 9{_digits(rng, 4)} {_digits(rng, 5)}"),
        ("br", f"+55 11 9{_digits(rng, 4)}-{_digits(rng, 4)}"),
        ("ch", f"+41 44 {_digits(rng, 3)} {_digits(rng, 2)} {_digits(rng, 2)}"),
        ("us", f"+1.{a}.{b}.{c}"),
        ("us", f"{a} {b}{c}"),
        ("uk", f"(+44) {uk_london[:2]} {uk_london[2:6]} {uk_london[6:]}"),
        ("uk", f"+44-{uk_london[:2]}-{uk_london[2:6]}-{uk_london[6:]}"),
        ("uk", f"0800 {_digits(rng, 3)} {_digits(rng, 4)}"),
        ("fr", "0" + fr[0] + "-" + "-".join(fr[i : i + 2] for i in range(1, 9, 2))),
        ("fr", f"+33 (0){fr[0]} " + " ".join(fr[i : i + 2] for i in range(1, 9, 2))),
        ("de", f"0{de}/{de_rest}"),
        ("de", f"+49 {de}/{de_rest}"),
        ("jp", f"(0{jp}) {jp_rest[:4]}-{jp_rest[4:8]}"),
        ("ru", f"+7 495 {_digits(rng, 3)}-{_digits(rng, 2)}-{_digits(rng, 2)}"),
        ("cn", f"+86 13{_digits(rng, 1)} {_digits(rng, 4)} {_digits(rng, 4)}"),
        ("mx", f"+52 55 {_digits(rng, 4)} {_digits(rng, 4)}"),
        ("e164", f"+{rng.choice(['44', '49', '33', '31'])}{rng.choice('23456789')}{_digits(rng, 9)}"),
    ]
    subtype, value = rng.choice(formats)
    return value, subtype


def bare_us_phone(rng: random.Random) -> tuple[str, str]:
    """Ten bare digits: a number only after a word such as "call me at" or "phone:"."""
    a, b, c = _nanp(rng)
    return f"{a}{b}{c}", "us_bare"


# --- cards -------------------------------------------------------------------------------------------


def luhn_complete(rng: random.Random, prefix: str, length: int) -> str:
    """`prefix` completed with random digits and a Luhn check digit to `length` digits."""
    body = prefix + _digits(rng, length - len(prefix) - 1)
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return body + str((10 - total % 10) % 10)


_CARD_BRANDS = (
    ("visa", lambda r: "4", (16, 16, 16, 16, 19)),
    (
        "mastercard",
        lambda r: str(r.randint(51, 55)) if r.random() < 0.7 else str(r.randint(2221, 2720)),
        (16,),
    ),
    ("amex", lambda r: r.choice(["34", "37"]), (15,)),
    ("discover", lambda r: r.choice(["6011", "65"]), (16,)),
    ("jcb", lambda r: str(r.randint(3528, 3589)), (16,)),
    ("diners", lambda r: "36", (14,)),
    ("unionpay", lambda r: "62", (16, 19)),
)


def group_card(digits: str, separator: str) -> str:
    if len(digits) == 15 or len(digits) == 14:
        groups = [digits[:4], digits[4:10], digits[10:]]
    elif len(digits) == 13:
        groups = [digits[:4], digits[4:8], digits[8:]]
    else:
        groups = [digits[i : i + 4] for i in range(0, len(digits), 4)]
    return separator.join(groups)


def card(rng: random.Random) -> tuple[str, str]:
    brand, prefix, lengths = rng.choice(_CARD_BRANDS)
    digits = luhn_complete(rng, prefix(rng), rng.choice(lengths))
    return group_card(digits, rng.choice([" ", " ", " ", "-", "-", "", "", "."])), brand


# --- IBAN -------------------------------------------------------------------------------------------

# BBAN shapes: n digits, a upper-case letters, c either.
_BBAN = {
    "DE": "18n", "FR": "10n11c2n", "GB": "4a14n", "ES": "20n", "IT": "1a10n12c", "NL": "4a10n",
    "BE": "12n", "CH": "5n12c", "AT": "16n", "PL": "24n", "PT": "21n", "IE": "4a14n", "SE": "20n",
    "NO": "11n", "DK": "14n", "FI": "14n", "LU": "3n13c", "MT": "4a5n18c", "SA": "2n18c", "GR": "7n16c",
}  # fmt: skip


def _bban(rng: random.Random, shape: str) -> str:
    out = []
    number = ""
    for char in shape:
        if char.isdigit():
            number += char
            continue
        alphabet = {"n": string.digits, "a": string.ascii_uppercase, "c": _UPPER_DIGITS}[char]
        out.append(_chars(rng, alphabet, int(number)))
        number = ""
    return "".join(out)


def iban_compact(rng: random.Random, country: str | None = None) -> str:
    country = country or rng.choice(sorted(_BBAN))
    bban = _bban(rng, _BBAN[country])
    assert len(bban) + 4 == IBAN_LENGTHS[country]
    numeric = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - numeric % 97:02d}{bban}"


def iban(rng: random.Random) -> tuple[str, str]:
    compact = iban_compact(rng)
    if rng.random() < 0.02:  # typed in lower case (not supported: see docs/guardrails.md)
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4)).lower(), "lowercase"
    if rng.random() < 0.6:
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4)), compact[:2]
    return compact, compact[:2]


# --- national identity numbers ------------------------------------------------------------------------


def ssn(rng: random.Random) -> str:
    while True:
        area = rng.randint(1, 899)
        if area != 666:
            break
    return f"{area:03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"


def nino(rng: random.Random) -> str:
    while True:
        prefix = rng.choice("ABCEGHJKLMNOPRSTWXYZ") + rng.choice("ABCEGHJKLMNPRSTWXYZ")
        if prefix not in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ"):
            return prefix + _digits(rng, 6) + rng.choice("ABCD")


def nir(rng: random.Random) -> str:
    department = rng.choice([f"{rng.randint(1, 95):02d}", "2A", "2B", f"{rng.randint(1, 95):02d}"])
    body = f"{rng.choice('12')}{rng.randint(0, 99):02d}{rng.randint(1, 12):02d}{department}{rng.randint(1, 990):03d}{rng.randint(1, 999):03d}"
    numeric = int(body.replace("2A", "19").replace("2B", "18")) if department in ("2A", "2B") else int(body)
    return f"{body}{97 - numeric % 97:02d}"


_DNI = "TRWAGMYFPDXBNJZSQVHLCKE"


def dni(rng: random.Random) -> str:
    number = rng.randint(1_000_000, 99_999_999)
    return f"{number:08d}{_DNI[number % 23]}"


def nie(rng: random.Random) -> str:
    letter = rng.choice("XYZ")
    number = rng.randint(0, 9_999_999)
    return f"{letter}{number:07d}{_DNI[int(str('XYZ'.index(letter)) + f'{number:07d}') % 23]}"


def de_tax_id(rng: random.Random) -> str:
    while True:
        pool = list(string.digits)
        rng.shuffle(pool)
        head = [*pool[:9], rng.choice(pool[:9])]
        rng.shuffle(head)
        if head[0] == "0" or any(head[i] == head[i + 1] == head[i + 2] for i in range(8)):
            continue
        product = 10
        for char in head:
            total = (int(char) + product) % 10 or 10
            product = total * 2 % 11
        check = 11 - product
        return "".join(head) + str(0 if check == 10 else check)


def bsn(rng: random.Random) -> str:
    while True:
        head = _digits(rng, 8)
        total = sum(int(d) * w for d, w in zip(head, range(9, 1, -1), strict=True))
        last = total % 11
        if last < 10 and head != "00000000":
            return head + str(last)


_CF_ODD = dict(zip("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", [
    1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 1, 0, 5, 7, 9, 13, 15, 17, 19, 21,
    2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23,
], strict=True))  # fmt: skip


def codice_fiscale(rng: random.Random) -> str:
    consonants = "BCDFGHJKLMNPQRSTVWXZ"
    day = rng.randint(1, 28) + (40 if rng.random() < 0.5 else 0)
    body = (
        _chars(rng, consonants, 6)
        + f"{rng.randint(0, 99):02d}"
        + rng.choice("ABCDEHLMPRST")
        + f"{day:02d}"
        + rng.choice("ABCDEFGHILM")
        + _digits(rng, 3)
    )
    total = sum(
        _CF_ODD[c] if i % 2 == 0 else (int(c) if c.isdigit() else ord(c) - 65) for i, c in enumerate(body)
    )
    return body + chr(65 + total % 26)


def national_id(rng: random.Random) -> tuple[str, str]:
    """A national id, formatted as people write it (subtype names the format)."""
    kind = rng.choice(
        ["us_ssn", "us_ssn", "uk_nino", "fr_nir", "es_dni", "es_nie", "de_tax_id", "nl_bsn", "it_cf"]
    )
    if kind == "us_ssn":
        value = ssn(rng)
        sep = rng.choice(["-", "-", " "])
        return f"{value[:3]}{sep}{value[3:5]}{sep}{value[5:]}", kind
    if kind == "uk_nino":
        value = nino(rng)
        spaced = f"{value[:2]} {value[2:4]} {value[4:6]} {value[6:8]} {value[8]}"
        return (spaced if rng.random() < 0.5 else value), kind
    if kind == "fr_nir":
        v = nir(rng)
        spaced = f"{v[0]} {v[1:3]} {v[3:5]} {v[5:7]} {v[7:10]} {v[10:13]} {v[13:]}"
        return (spaced if rng.random() < 0.6 else v), kind
    if kind == "es_dni":
        value = dni(rng)
        return (value if rng.random() < 0.7 else f"{value[:8]}-{value[8]}"), kind
    if kind == "es_nie":
        return nie(rng), kind
    if kind == "de_tax_id":
        v = de_tax_id(rng)
        return (v if rng.random() < 0.6 else f"{v[:2]} {v[2:5]} {v[5:8]} {v[8:]}"), kind
    if kind == "nl_bsn":
        v = bsn(rng)
        return (v if rng.random() < 0.7 else f"{v[:4]}.{v[4:6]}.{v[6:]}"), kind
    return codice_fiscale(rng), kind


# --- IP addresses --------------------------------------------------------------------------------------


def ip(rng: random.Random) -> tuple[str, str]:
    kind = rng.random()
    if kind < 0.6:
        first = rng.choice([10, 172, 192, rng.randint(1, 223), rng.randint(1, 223)])
        return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}", "ipv4"
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    if kind < 0.75:
        return ":".join(groups), "ipv6"
    if kind < 0.9:
        return f"2001:db8:{groups[2]}::{groups[7]}", "ipv6"
    if kind < 0.95:
        return f"fe80::{groups[4]}:{groups[5]}", "ipv6"
    return f"::ffff:192.0.2.{rng.randint(1, 254)}", "ipv6"


# --- secrets -----------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(rng: random.Random) -> str:
    header = {"alg": rng.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"}
    payload = {"sub": str(rng.randint(1, 10**9)), "iat": rng.randint(1_600_000_000, 1_800_000_000)}
    if rng.random() < 0.5:
        payload["email_verified"] = True
    signature = bytes(rng.getrandbits(8) for _ in range(32))
    return (
        ".".join(_b64url(json.dumps(part).encode()) for part in (header, payload)) + "." + _b64url(signature)
    )


def pem(rng: random.Random) -> str:
    kind = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
    body = base64.b64encode(bytes(rng.getrandbits(8) for _ in range(48 * rng.randint(3, 8)))).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----"


def password(rng: random.Random) -> str:
    return (
        _chars(rng, string.ascii_letters, 4)
        + _chars(rng, string.digits, 3)
        + _chars(rng, _ALNUM + "!#$%*_-.?", 6)
    )


def secret(rng: random.Random) -> tuple[str, str]:
    """A key of a known format, or a generated token (what is labelled; context comes from the
    template: see pii_corpus)."""
    kind = rng.choice(
        [
            "openai_key", "anthropic_key", "aws_access_key", "github_token", "github_pat", "gitlab_token",
            "slack_token", "google_key", "stripe_key", "huggingface_token", "sendgrid_key", "jwt", "jwt",
            "private_key",
        ]
    )  # fmt: skip
    value = {
        "openai_key": lambda: "sk-" + rng.choice(["proj-", ""]) + _chars(rng, _ALNUM + "_-", 48),
        "anthropic_key": lambda: "sk-ant-api03-" + _chars(rng, _ALNUM + "_-", 93) + "AA",
        "aws_access_key": lambda: rng.choice(["AKIA", "ASIA"]) + _chars(rng, _UPPER_DIGITS, 16),
        "github_token": lambda: rng.choice(["ghp_", "gho_", "ghs_"]) + _chars(rng, _ALNUM, 36),
        "github_pat": lambda: (
            "github_pat_11" + _chars(rng, _UPPER_DIGITS, 20) + "_" + _chars(rng, _ALNUM, 59)
        ),
        "gitlab_token": lambda: "glpat-" + _chars(rng, _ALNUM + "_-", 20),
        "slack_token": lambda: (
            f"xox{rng.choice('bpa')}-{_digits(rng, 11)}-{_digits(rng, 12)}-{_chars(rng, _ALNUM, 24)}"
        ),
        "google_key": lambda: "AIza" + _chars(rng, _ALNUM + "_-", 35),
        "stripe_key": lambda: rng.choice(["sk_live_", "rk_live_", "sk_test_"]) + _chars(rng, _ALNUM, 24),
        "huggingface_token": lambda: "hf_" + _chars(rng, string.ascii_letters, 34),
        "sendgrid_key": lambda: "SG." + _chars(rng, _ALNUM + "_-", 22) + "." + _chars(rng, _ALNUM + "_-", 43),
        "jwt": lambda: jwt(rng),
        "private_key": lambda: pem(rng),
    }[kind]()
    return value, kind


def token(rng: random.Random) -> str:
    """A generated opaque token (bearer tokens, session tokens, unknown API keys)."""
    while True:
        value = _chars(rng, _ALNUM, rng.randint(24, 48))
        if (
            any(c.isdigit() for c in value)
            and any(c.isupper() for c in value)
            and any(c.islower() for c in value)
        ):
            return value


# --- names and addresses --------------------------------------------------------------------------------

_STREETS = _words("Baker Oak Maple Cedar Elm Pine Washington Lincoln Park Lake Hill Church Station Mill")
_STREET_TYPES = _words("Street St Avenue Ave Road Rd Lane Drive Boulevard Way Court Place")
_US_CITIES = (("Springfield", "IL", "62704"), ("Austin", "TX", "78701"), ("Portland", "OR", "97205"))
_UK_CITIES = (("London", "NW1 6XE"), ("Manchester", "M1 1AE"), ("Leeds", "LS1 4AP"))
_FR = ("de la Paix", "Victor Hugo", "du Faubourg Saint-Honoré", "des Lilas", "Jean Jaurès")
_DE = ("Haupt", "Bahnhof", "Goethe", "Schiller", "Linden", "Berliner")
_DE_TYPES = ("straße", "strasse", "weg", "allee", "platz")
_ES = (
    "Calle Mayor",
    "Avenida de la Constitución",
    "Plaza Mayor",
    "Via Roma",
    "Piazza Garibaldi",
    "Calle de Alcalá",
)


def address(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(["us", "us", "uk", "fr", "de", "es_it"])
    if kind == "us":
        street = f"{rng.randint(1, 9999)} {rng.choice(_STREETS)} {rng.choice(_STREET_TYPES)}"
        if rng.random() < 0.3:
            street += f", Apt {rng.randint(1, 40)}{rng.choice('ABC')}"
        if rng.random() < 0.6:
            city, state, zip_code = rng.choice(_US_CITIES)
            street += f", {city}, {state} {zip_code}"
        return street, "us"
    if kind == "uk":
        city, postcode = rng.choice(_UK_CITIES)
        return (
            f"{rng.randint(1, 300)}{rng.choice(['', 'B'])} {rng.choice(_STREETS)} {rng.choice(['Street', 'Road', 'Lane'])}, {city} {postcode}",
            "uk",
        )
    if kind == "fr":
        way = rng.choice(["rue", "avenue", "boulevard", "place"])
        return (
            f"{rng.randint(1, 120)} {way} {rng.choice(_FR)}, {rng.randint(10, 95)}0{rng.randint(10, 99)} {rng.choice(['Paris', 'Lyon', 'Lille'])}",
            "fr",
        )
    if kind == "de":
        return (
            f"{rng.choice(_DE)}{rng.choice(_DE_TYPES)} {rng.randint(1, 150)}, {rng.randint(10000, 99999)} "
            f"{rng.choice(['Berlin', 'Hamburg', 'München', 'Köln'])}",
            "de",
        )
    return (
        f"{rng.choice(_ES)} {rng.randint(1, 200)}, {rng.randint(10000, 50000)} {rng.choice(['Madrid', 'Roma', 'Sevilla'])}",
        "es_it",
    )
