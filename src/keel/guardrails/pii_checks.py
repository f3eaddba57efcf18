"""Checksums and validity rules of the structured PII formats. Pure functions on compact strings
(separators already removed, letters upper-cased where the format is upper-case)."""

from __future__ import annotations

# --- payment cards ----------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn checksum of payment card numbers."""
    kept, doubled = digits[-1::-2], digits[-2::-2]
    total = sum(map(int, kept)) + sum(map(int, doubled.translate(_DOUBLED)))
    return total % 10 == 0


# A digit doubled, its two digits added (Luhn): 5 -> 10 -> 1.
_DOUBLED = str.maketrans("0123456789", "0246813579")


# (brand, IIN ranges as (low, high) over a prefix of the same length, valid lengths)
_CARD_BRANDS: tuple[tuple[str, tuple[tuple[int, int], ...], frozenset[int]], ...] = (
    ("amex", ((34, 34), (37, 37)), frozenset({15})),
    ("visa", ((4, 4),), frozenset({16, 19})),
    ("mastercard", ((51, 55), (2221, 2720)), frozenset({16})),
    ("discover", ((6011, 6011), (644, 649), (65, 65)), frozenset({16, 19})),
    ("diners", ((300, 305), (36, 36), (38, 39)), frozenset({14, 16, 19})),
    ("jcb", ((3528, 3589),), frozenset({16, 17, 18, 19})),
    ("unionpay", ((62, 62),), frozenset({16, 17, 18, 19})),
    ("mir", ((2200, 2204),), frozenset({16, 17, 18, 19})),
    ("maestro", ((50, 50), (56, 58), (60, 69)), frozenset({16, 17, 18, 19})),
)
# No 13-digit length: Visa has issued none for years, and EAN-13 barcodes would pass the Luhn
# check one time in ten.


# Per length, the brands issuing it with their ranges as (low, high, prefix width), in the order above.
_BRANDS_BY_LENGTH: dict[int, tuple[tuple[str, tuple[tuple[int, int, int], ...]], ...]] = {
    length: tuple(
        (brand, tuple((low, high, len(str(low))) for low, high in ranges))
        for brand, ranges, lengths in _CARD_BRANDS
        if length in lengths
    )
    for length in range(12, 20)
}


def card_brand(digits: str) -> str | None:
    """The card scheme whose issuer prefix and length `digits` match, or None."""
    for brand, ranges in _BRANDS_BY_LENGTH.get(len(digits), ()):
        for low, high, width in ranges:
            if low <= int(digits[:width]) <= high:
                return brand
    return None


# --- IBAN -------------------------------------------------------------------------------------------

# Lengths of the IBAN of each country in the SWIFT IBAN registry.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def iban_mod97(compact: str) -> bool:
    """Whether an IBAN without spaces (upper case) passes its mod-97 check (ISO 13616)."""
    if not 15 <= len(compact) <= 34 or not compact.isalnum() or not compact[2:4].isdigit():
        return False
    return int((compact[4:] + compact[:4]).translate(_BASE36)) % 97 == 1


# Letters as their base-36 values (A = 10 … Z = 35), digits as they are: the number mod 97 checks.
_BASE36 = {ord(c): str(int(c, 36)) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"}


# --- national identity numbers ------------------------------------------------------------------------


def us_ssn_valid(digits: str) -> bool:
    """US Social Security number: 9 digits, area not 000, 666 or 900-999, group not 00, serial
    not 0000, and not one of the numbers known from advertising (no checksum exists)."""
    if len(digits) != 9 or not digits.isdigit():
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return digits not in ("078051120", "219099999")


_NINO_FIRST = frozenset("ABCEGHJKLMNOPRSTWXYZ")
_NINO_SECOND = frozenset("ABCEGHJKLMNPRSTWXYZ")
_NINO_NOT_ALLOCATED = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def uk_nino_valid(compact: str) -> bool:
    """UK National Insurance number: two prefix letters from the allocated ranges, six digits,
    suffix A-D (the format's rules; there is no checksum)."""
    return (
        len(compact) == 9
        and compact[0] in _NINO_FIRST
        and compact[1] in _NINO_SECOND
        and compact[:2] not in _NINO_NOT_ALLOCATED
        and compact[2:8].isdigit()
        and compact[8] in "ABCD"
    )


def fr_nir_valid(compact: str) -> bool:
    """French social security number (NIR): 13 characters (sex, year, month, department, commune,
    order; Corsica as 2A/2B) and a 2-digit key, 97 minus the number mod 97."""
    if len(compact) != 15 or compact[0] not in "123478":
        return False
    body, key = compact[:13], compact[13:]
    if not key.isdigit():
        return False
    month = body[3:5]
    if not month.isdigit() or not (1 <= int(month) <= 12 or 20 <= int(month) <= 99):
        return False
    department = body[5:7]
    if department == "2A":
        body = body[:5] + "19" + body[7:]
    elif department == "2B":
        body = body[:5] + "18" + body[7:]
    if not body.isdigit():
        return False
    return 97 - int(body) % 97 == int(key)


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def es_dni_valid(compact: str) -> bool:
    """Spanish DNI (8 digits and a letter) or NIE (X, Y or Z, 7 digits and a letter): the letter
    is the number mod 23 in the official table."""
    if len(compact) != 9:
        return False
    head = compact[:8]
    if head[0] in "XYZ":
        head = str("XYZ".index(head[0])) + head[1:]
    if not head.isdigit():
        return False
    return _DNI_LETTERS[int(head) % 23] == compact[8]


def de_tax_id_valid(digits: str) -> bool:
    """German tax identification number (Steuer-IdNr): 11 digits, the first not 0; in the first 10
    exactly one digit repeats (twice, or thrice but not three in a row); check digit by ISO 7064
    MOD 11,10."""
    if len(digits) != 11 or not digits.isdigit() or digits[0] == "0":
        return False
    head = digits[:10]
    counts = sorted((head.count(d) for d in set(head)), reverse=True)
    if counts[0] not in (2, 3) or (len(counts) > 1 and counts[1] > 1):
        return False
    if counts[0] == 3 and any(head[i] == head[i + 1] == head[i + 2] for i in range(8)):
        return False
    product = 10
    for char in head:
        total = (int(char) + product) % 10 or 10
        product = total * 2 % 11
    check = 11 - product
    return (0 if check == 10 else check) == int(digits[10])


def nl_bsn_valid(digits: str) -> bool:
    """Dutch citizen service number (BSN): 9 digits passing the 11-check
    (9·d1 + 8·d2 + … + 2·d8 − d9 ≡ 0 mod 11), not all zeros."""
    if len(digits) != 9 or not digits.isdigit() or digits == "000000000":
        return False
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True)) - int(digits[8])
    return total % 11 == 0


_CF_ODD = dict(zip("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", [
    1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 1, 0, 5, 7, 9, 13, 15, 17, 19, 21,
    2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23,
], strict=True))  # fmt: skip
_CF_EVEN = {c: (int(c) if c.isdigit() else ord(c) - 65) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
_CF_DIGITS = "LMNPQRSTUV"  # stand-ins for 0-9 when two people would share a code ("omocodia")


def it_codice_fiscale_valid(compact: str) -> bool:
    """Italian fiscal code: 6 letters, birth year, month letter, day (+40 for women), place code,
    and a check letter computed from the other 15 characters with the odd/even tables."""
    if len(compact) != 16 or not compact.isalnum():
        return False
    if not compact[:6].isalpha() or compact[8] not in "ABCDEHLMPRST" or not compact[11].isalpha():
        return False
    for index in (6, 7, 9, 10, 12, 13, 14):
        if not (compact[index].isdigit() or compact[index] in _CF_DIGITS):
            return False
    total = sum((_CF_ODD if i % 2 == 0 else _CF_EVEN)[c] for i, c in enumerate(compact[:15]))
    return chr(65 + total % 26) == compact[15]


# --- telephone numbers --------------------------------------------------------------------------------

# ITU-T E.164 country calling codes: the one- and two-digit codes, and the three-digit ranges by
# their first two digits (every code in those ranges is allocated or reserved for a country).
_CC_SHORT = frozenset(
    [
        "1",
        "7",
        "20",
        "27",
        "30",
        "31",
        "32",
        "33",
        "34",
        "36",
        "39",
        "40",
        "41",
        "43",
        "44",
        "45",
        "46",
        "47",
        "48",
        "49",
        "51",
        "52",
        "53",
        "54",
        "55",
        "56",
        "57",
        "58",
        "60",
        "61",
        "62",
        "63",
        "64",
        "65",
        "66",
        "81",
        "82",
        "84",
        "86",
        "90",
        "91",
        "92",
        "93",
        "94",
        "95",
        "98",
    ]
)
_CC_LONG_PREFIXES = frozenset(
    [
        "21",
        "22",
        "23",
        "24",
        "25",
        "26",
        "29",
        "35",
        "37",
        "38",
        "42",
        "50",
        "59",
        "67",
        "68",
        "69",
        "80",
        "85",
        "87",
        "88",
        "96",
        "97",
        "99",
    ]
)


def country_code(digits: str) -> str | None:
    """The E.164 country calling code `digits` (after the `+`) starts with, or None."""
    for size in (1, 2):
        if digits[:size] in _CC_SHORT:
            return digits[:size]
    if len(digits) >= 3 and digits[:2] in _CC_LONG_PREFIXES:
        return digits[:3]
    return None


def nanp_valid(digits: str) -> bool:
    """A 10-digit North American number: area code and exchange start 2-9 and are not N11."""
    if len(digits) != 10 or not digits.isdigit():
        return False
    area, exchange = digits[:3], digits[3:6]
    return area[0] >= "2" and exchange[0] >= "2" and area[1:] != "11" and exchange[1:] != "11"
