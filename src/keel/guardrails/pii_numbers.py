"""Payment cards, IBANs and national identity numbers, each confirmed by its checksum or rules.

National identity numbers recognised (subtype, check):

- `us_ssn`: US Social Security number, `123-45-6789`, `123 45 6789` or `123.45.6789` (no
  checksum: the invalid ranges 000, 666, 9xx, group 00 and serial 0000 are excluded); 9 bare
  digits only after "SSN" or "social security".
- `uk_nino`: UK National Insurance number, `AB 12 34 56 C` or `AB 123456 C` (allocated prefixes,
  suffix A-D).
- `fr_nir`: French social security number, 15 characters with its mod-97 key.
- `es_dni` / `es_nie`: Spanish DNI `12345678Z` and NIE `X1234567L`, letter = number mod 23.
- `de_tax_id`: German tax id (Steuer-IdNr), 11 digits, digit-frequency rule and ISO 7064 MOD 11,10.
- `nl_bsn`: Dutch citizen service number, 9 digits with the 11-check; written `1234.56.782`, or
  in other groupings or bare after "BSN", "burgerservicenummer" or "sofinummer".
- `it_codice_fiscale`: Italian fiscal code, 16 characters with its check letter.

Letter-bearing values (IBANs, NINOs, NIEs, fiscal codes) are matched in upper case; in lower case
only when the text names them ("IBAN", "national insurance", "NINO", "codice fiscale", "C.F.", "NIE").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from keel.guardrails.pii_checks import (
    IBAN_LENGTHS,
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
from keel.guardrails.pii_finding import Hit


def _ends_clean(text: str, end: int) -> bool:
    """Whether `end` is not in the middle of a longer number, word or code (`-XL`, `.5`)."""
    if end >= len(text):
        return True
    after = text[end]
    if after.isalnum() or after == "_":
        return False
    return not (
        after in ".-/"
        and end + 1 < len(text)
        and (text[end + 1].isdigit() or (after == "-" and text[end + 1].isalpha()))
    )


def _compact(text: str) -> str:
    return text.replace(" ", "").replace("-", "").replace(".", "").replace("/", "")


# --- payment cards ----------------------------------------------------------------------------------

_CARD = re.compile(r"[0-9](?<![0-9A-Za-z_.][0-9])(?:(?:[ .-]| {2})?[0-9]){12,18}")


def _card(text: str, match: re.Match[str]) -> Hit | None:
    """The card at the start of `match`, dropping trailing groups (an expiry date, a number after
    it) until what is left passes; None if nothing does."""
    start, end = match.span()
    value = match.group()
    while True:
        digits = _compact(value)
        if len(digits) < 13:
            return None
        brand = card_brand(digits)
        if brand is not None and _ends_clean(text, end) and luhn_valid(digits):
            return (start, end, "card", brand, "luhn", 0.97 if end == match.end() else 0.85)
        cut = max(value.rfind(" "), value.rfind("-"), value.rfind("."))
        if cut <= 0:
            return None
        value = value[:cut].rstrip(" ")
        end = start + len(value)


def cards(text: str, hits: list[Hit]) -> None:
    for match in _CARD.finditer(text):
        hit = _card(text, match)
        if hit is None:
            # A short number just before the card, one space away ("qty 2 4111 …", "exp 12 25
            # 4111 …"): try from the next group, and the one after, when what is skipped is one
            # or two digits (never a group of a longer number, such as a tracking number's).
            value = match.group()
            position = 0
            for _ in range(2):
                space = value.find(" ", position)
                if not 0 < space - position <= 2:
                    break
                position = space + 1
                again = _CARD.match(text, match.start() + position)
                if again is not None and (hit := _card(text, again)) is not None:
                    break
        if hit is not None:
            hits.append(hit)


# --- IBAN -------------------------------------------------------------------------------------------

# Upper case, in groups of four separated by a space or a dash, or in one piece.
_IBAN = re.compile(
    r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z][0-9]{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,3})?(?![a-z0-9])"
)


def _upper(text: str, words: tuple[str, ...]) -> str:
    """`text` upper-cased when it names one of `words` (so a value typed in lower case after its
    name is found too) and upper-casing keeps every index; else `text` itself."""
    lower = text.lower()
    if any(word in lower for word in words):
        upper = text.upper()
        if len(upper) == len(text):
            return upper
    return text


# ASCII upper-case letters to "A", digits to "9", space, "." and "-" to themselves, the rest to "#".
_SHAPE = str.maketrans(
    {
        c: "A" if "A" <= c <= "Z" else "9" if c.isdigit() else c if c in " .-" else "#"
        for c in map(chr, range(128))
    }
)


def _shaped(pattern: re.Pattern[str], text: str, shapes: tuple[str, ...]) -> Iterator[re.Match[str]]:
    """`pattern.finditer(text)`, for a pattern every match of which begins with one of `shapes`
    (in `_SHAPE`'s terms): in ASCII text it is tried only where those begin, found by `str.find`
    on the text's shape, instead of wherever its first character class occurs. `Pattern.match`
    sees the text before the place it is tried, so look-behinds hold as in `finditer`."""
    if not text.isascii():
        yield from pattern.finditer(text)
        return
    shape = text.translate(_SHAPE)
    starts: set[int] = set()
    for begin in shapes:
        at = shape.find(begin)
        while at >= 0:
            starts.add(at)
            at = shape.find(begin, at + 1)
    end = 0
    for at in sorted(starts):
        if at < end:
            continue
        match = pattern.match(text, at)
        if match is not None:
            yield match
            end = match.end()


_IBAN_SHAPES = ("AA99",)


def ibans(text: str, hits: list[Hit]) -> None:
    text = _upper(text, ("iban",))
    for match in _shaped(_IBAN, text, _IBAN_SHAPES):
        start, end = match.span()
        value = match.group()
        expected = IBAN_LENGTHS.get(value[:2])
        compact = value.replace(" ", "").replace("-", "")
        if expected is not None and len(compact) > expected:
            # Cut at the country's length (the pattern may have run into the next word).
            kept = 0
            for index, char in enumerate(value):
                if char not in " -":
                    kept += 1
                    if kept == expected:
                        end = start + index + 1
                        break
            if end < len(text) and text[end] not in " -":
                continue
            compact = compact[:expected]
        elif end < len(text) and text[end].isupper():
            continue
        if not iban_mod97(compact):
            continue
        if expected is None:
            hits.append((start, end, "iban", "iban", "mod97", 0.7))  # a country outside the registry
        elif len(compact) == expected:
            hits.append((start, end, "iban", "iban", "mod97", 0.99))


# --- national identity numbers ------------------------------------------------------------------------


def _context(pattern: re.Pattern[str]) -> Callable[[str, int], bool]:
    def near(text: str, start: int) -> bool:
        return pattern.search(text, max(0, start - 48), start) is not None

    return near


_SSN_WORDS = _context(
    re.compile(r"(?i:\bssn|social security(?: number| no\.?| #)?|\bsoc\.? ?sec\.?)\b[^0-9\n]{0,16}\Z")
)
_BSN_WORDS = _context(
    re.compile(r"(?i:\bbsn|burgerservicenummer|sofi-?nummer|citizen service number)\b[^0-9\n]{0,16}\Z")
)

# A rule: (subtype, first character class, the rest of the pattern, validator name, check,
# confidence, context test or None). The rest may use a named group only under the rule's own name.
_IdRule = tuple[str, str, str, str, Callable[[str], bool], float, Callable[[str, int], bool] | None]

_DIGIT_RULES: tuple[_IdRule, ...] = (
    (
        "fr_nir",
        "[1-478]",
        r"(?P<nir>[ .-]?)[0-9]{2}(?P=nir)[0-9]{2}(?P=nir)(?:[0-9]{2}|2[AB])(?P=nir)[0-9]{3}(?P=nir)[0-9]{3}(?P=nir)[0-9]{2}",
        "mod97",
        fr_nir_valid,
        0.97,
        None,
    ),
    (
        "de_tax_id",
        "[1-9]",
        r"[0-9](?:[0-9]{9}| [0-9]{3} [0-9]{3} [0-9]{3})",
        "mod11-10",
        de_tax_id_valid,
        0.9,
        None,
    ),
    (
        "es_dni",
        "[0-9]",
        r"(?:[0-9]{7}|[0-9]\.[0-9]{3}\.[0-9]{3})[- ]?[A-Z]",
        "mod23",
        es_dni_valid,
        0.95,
        None,
    ),
    (
        "us_ssn",
        "[0-9]",
        r"[0-9]{2}(?P<ssn>[ .-])[0-9]{2}(?P=ssn)[0-9]{4}",
        "ssn-ranges",
        us_ssn_valid,
        0.85,
        None,
    ),
    ("nl_bsn", "[0-9]", r"[0-9]{3}\.[0-9]{2}\.[0-9]{3}", "11-check", nl_bsn_valid, 0.85, None),
    ("us_ssn", "[0-9]", r"[0-9]{8}", "ssn-ranges", us_ssn_valid, 0.8, _SSN_WORDS),
    (
        "nl_bsn",
        "[0-9]",
        r"(?:[0-9]{8}|[0-9]{2} [0-9]{2} [0-9]{3}|[0-9]{3} [0-9]{2} [0-9]{3}|[0-9]{2}\.[0-9]{3}\.[0-9]{3})",
        "11-check",
        nl_bsn_valid,
        0.9,
        _BSN_WORDS,
    ),
)
_LETTER_RULES: tuple[_IdRule, ...] = (
    (
        "it_codice_fiscale",
        "[A-Z]",
        r"[A-Z]{5}[0-9LMNPQRSTUV]{2}[A-EHLMPR-T][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]",
        "check-letter",
        it_codice_fiscale_valid,
        0.97,
        None,
    ),
    (
        "uk_nino",
        "[A-Z]",
        r"[A-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]",
        "nino-format",
        uk_nino_valid,
        0.9,
        None,
    ),
    ("es_nie", "[XYZ]", r"-?[0-9]{7}[- ]?[A-Z]", "mod23", es_dni_valid, 0.95, None),
)


def _candidates(first: str, not_before: str, rules: tuple[_IdRule, ...]) -> re.Pattern[str]:
    """One pattern matching wherever one of `rules` may: a single pass over the text, whose first
    character class lets the engine skip ahead, instead of one pass per rule."""
    branches = "|".join(f"(?<={rule[1]}){rule[2]}" for rule in rules)
    return re.compile(f"{first}(?<!{not_before}{first})(?:{branches})")


def _standalone(rules: tuple[_IdRule, ...]) -> tuple[tuple[_IdRule, re.Pattern[str]], ...]:
    return tuple((rule, re.compile(rule[1] + rule[2])) for rule in rules)


_DIGIT_CANDIDATE = _candidates("[0-9]", "[0-9A-Za-z_.]", _DIGIT_RULES)
_LETTER_CANDIDATE = _candidates("[A-Z]", "[0-9A-Za-z]", _LETTER_RULES)
_DIGIT_STANDALONE = _standalone(_DIGIT_RULES)
_LETTER_STANDALONE = _standalone(_LETTER_RULES)


def _national_ids(
    text: str, candidate: re.Pattern[str], rules: tuple[tuple[_IdRule, re.Pattern[str]], ...], hits: list[Hit]
) -> None:
    for found in candidate.finditer(text):
        start = found.start()
        # The first branch that matched may fail its check where another rule holds: try each.
        for (subtype, _, _, validator, check, confidence, context), pattern in rules:
            match = pattern.match(text, start)
            if match is None or not _ends_clean(text, match.end()):
                continue
            if context is not None and not context(text, start):
                continue
            if check(_compact(match.group())):
                hits.append((start, match.end(), "national_id", subtype, validator, confidence))
                break


_LETTER_ID_WORDS = ("insurance", "nino", "ni no", "ni number", "codice", "fiscal", "c.f.", "nie")


def national_ids(text: str, hits: list[Hit]) -> None:
    _national_ids(text, _DIGIT_CANDIDATE, _DIGIT_STANDALONE, hits)
    _national_ids(_upper(text, _LETTER_ID_WORDS), _LETTER_CANDIDATE, _LETTER_STANDALONE, hits)
