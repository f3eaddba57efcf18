"""Names and postal addresses: a light HEURISTIC, off unless asked for.

There is no model and no list of names here: a name is found only where the text announces one,
and an address only where it has the shape of one. Expect it to miss names mentioned in passing
("ask Maria about it") and addresses without a house number or street type, and to take the odd
capitalised phrase for a name. Use it to reduce exposure, never as a guarantee.

Names (subtype):
- `honorific`: after Mr, Mrs, Ms, Dr, Prof, Mme, Herr, Frau, Sr, Sra … ("Dr. Jane Doe").
- `introduction`: after "my name is", "I am"/"I'm"/"this is" (two words at least), "je m'appelle",
  "ich heiße", "me llamo".
- `greeting`: after Hi/Hello/Dear/Hey/Bonjour/Hallo/Hola, before a comma ("Dear Anna,").
- `signature`: on the line after Regards/Best/Thanks/Cheers/Sincerely/Cordialement/Grüße/Saludos.
- `field`: after a label such as "Name:", "Customer:", "Cardholder:", "Attn:".
- `display_name`: before an email address in angle brackets ("Jane Doe <jane@example.com>").

Addresses (subtype):
- `street_number_first`: house number, capitalised words and a street type (221B Baker Street,
  1600 Pennsylvania Avenue NW), with an optional unit, city, state and ZIP or UK postcode.
- `fr_street`: number and a French street word (12 rue de la Paix, 75002 Paris).
- `de_street`: a German or Dutch street name and number (Hauptstraße 5, 10115 Berlin; Keizersgracht 123).
- `es_it_street`: Calle/Avenida/Plaza/Via/Piazza … name and number (Calle Mayor 5, 28013 Madrid).
"""

from __future__ import annotations

import re

from keel.guardrails.pii_finding import Hit

_UP = "A-ZÀ-ÖØ-Þ"
_LOW = "a-zß-öø-ÿ"
_CAP = rf"[{_UP}][{_LOW}]+(?:['-][{_UP}]?[{_LOW}]+)?"
_PARTICLE = r"(?:van|von|der|den|de|da|di|du|del|la|le|bin|al|dos|das)"
_NAME = rf"{_CAP}(?:[ ](?:{_PARTICLE}[ ])*{_CAP}){{0,3}}"
_NAME2 = rf"{_CAP}(?:[ ](?:{_PARTICLE}[ ])*{_CAP}){{1,3}}"

# Capitalised words that open a greeting or fill a field without being a name, and honorifics.
_NOT_NAME_WORDS = (
    "team all there everyone everybody customer customers support sir madam folks guys friends "
    "colleagues both again and the our your my this that service sales billing admin hello thanks "
    "thank regards best morning afternoon evening monsieur madame señor señora herr frau "
    "mr mrs ms miss mx dr prof mme mlle sra srta sr"
)
_NOT_NAMES = frozenset(_NOT_NAME_WORDS.split())
_SIGN_OFFS = (
    "regards", "best", "wishes", "thanks", "thank you", "cheers", "sincerely", "yours", "cordialement",
    "bien à vous", "grüße", "gruß", "saludos", "saludo", "saluti",
)  # fmt: skip
_FIELDS = (
    "name", "customer", "holder", "contact", "patient", "attn", "passenger", "recipient", "sender",
    "employee", "nom", "vorname", "nachname", "nombre",
)  # fmt: skip

# (subtype, anchors, pattern, confidence): with anchors (lower case), the pattern is tried only
# where one of them occurs (case-insensitive patterns cannot skip ahead on their own); without,
# it runs over the whole text; ("<",) runs it over the whole text when a "<" occurs.
_NameRule = tuple[str, tuple[str, ...] | None, re.Pattern[str], float]
_NAME_RULES: tuple[_NameRule, ...] = (
    (
        "honorific",
        None,
        re.compile(
            rf"(?:Mrs|Mr|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Mme|Mlle|Herr|Frau|Sra|Srta|Sr|Señora|Señor)\.?[ ](?P<name>{_NAME})"
        ),
        0.7,
    ),
    (
        "introduction",
        ("my name is", "je m'appelle", "ich heiße", "ich heisse", "me llamo", "mi nombre es"),
        re.compile(
            rf"(?i:my name is|je m'appelle|ich heiße|ich heisse|me llamo|mi nombre es)[ ](?P<name>{_NAME})"
        ),
        0.7,
    ),
    (
        "introduction",
        ("i am", "i'm", "i’m", "this is"),
        re.compile(rf"(?:I am|I'm|I’m|[Tt]his is)[ ](?P<name>{_NAME2})"),
        0.7,
    ),
    (
        "greeting",
        None,
        re.compile(
            rf"(?:Hi|Hello|Dear|Hey|Bonjour|Hallo|Hola|Ciao|Good morning|Good afternoon)[ ](?P<name>{_NAME})[ ]?[,!\n]"
        ),
        0.6,
    ),
    (
        "signature",
        _SIGN_OFFS,
        re.compile(rf"(?i:{'|'.join(_SIGN_OFFS)})[,.!]?[ ]*\n[ ]*(?P<name>{_NAME})[ ]*(?:\n|\Z)"),
        0.6,
    ),
    ("signature", None, re.compile(rf"(?:—|--|-)[ ]?(?P<name>{_NAME2})[ ]*(?:\n|\Z)"), 0.6),
    (
        "field",
        _FIELDS,
        re.compile(rf"(?i:{'|'.join(_FIELDS)})[\"']?[ ]?[:=][ ]?[\"']?(?P<name>{_NAME})"),
        0.65,
    ),
    ("display_name", ("<",), re.compile(rf"(?P<name>{_NAME2})[ ]?<[^<>@\s]+@"), 0.7),
)

_STREET_TYPES = (
    r"Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Close|"
    r"Crescent|Square|Sq|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Row|Mews|Grove|Gardens|Hill|Park"
)
_UNIT = r"(?:,?[ ](?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|#)\.?[ ]?[0-9A-Za-z-]+)?"
_US_TAIL = rf",[ ]?{_CAP}(?:[ ]{_CAP})?(?:,[ ]?[A-Z]{{2}})?[ ][0-9]{{5}}(?:-[0-9]{{4}})?"
_UK_TAIL = rf"(?:,[ ]?{_CAP}(?:[ ]{_CAP})?)?,?[ ][A-Z]{{1,2}}[0-9][A-Z0-9]?[ ]?[0-9][A-Z]{{2}}\b"
_EU_TAIL = rf"(?:,?[ ](?:[A-Z]-)?[0-9]{{4,5}}(?:[ ]?[A-Z]{{2}})?[ ]{_CAP}(?:[- ]{_CAP})?)?"

_ADDRESS_RULES: tuple[tuple[str, re.Pattern[str], float], ...] = (
    (
        "street_number_first",
        re.compile(
            rf"[0-9](?<![0-9A-Za-z][0-9])[0-9]{{0,4}}[A-Za-z]?(?:-[0-9]{{1,5}})?[ ](?:(?:North|South|East|West|[NSEW])\.?[ ])?"
            rf"(?:{_CAP}[ ]){{1,3}}(?:{_STREET_TYPES})\b\.?(?:[ ](?:NW|NE|SW|SE|N|S|E|W)\b)?{_UNIT}(?:{_US_TAIL}|{_UK_TAIL})?"
        ),
        0.7,
    ),
    (
        "fr_street",
        re.compile(
            rf"[0-9](?<![0-9A-Za-z][0-9])[0-9]{{0,3}}(?:[ ]?(?:bis|ter))?,?[ ]"
            rf"(?:rue|avenue|boulevard|bd|place|allée|chemin|impasse|quai|route|cours|square)[ ]"
            rf"(?:(?:de|du|des|la|le|l'|d')[ ]?)*{_CAP}(?:[ -](?:(?:de|du|des|la|le|l'|d')[ ]?)*{_CAP}){{0,3}}{_EU_TAIL}"
        ),
        0.7,
    ),
    (
        "de_street",
        re.compile(
            rf"[{_UP}](?<![{_UP}{_LOW}0-9][{_UP}])[{_LOW}]+(?:-[{_UP}][{_LOW}]+)*"
            rf"(?:straße|strasse|str\.|weg|allee|platz|gasse|ring|damm|ufer|gracht|laan|plein|straat|steeg|kade)"
            rf"[ ][0-9]{{1,4}}[a-z]?\b{_EU_TAIL}"
        ),
        0.7,
    ),
    (
        "es_it_street",
        re.compile(
            rf"(?:Calle|Avenida|Avda\.|Plaza|Paseo|Carrer|Via|Viale|Piazza|Corso|Rua)[ ]"
            rf"(?:(?:de|del|la|las|los|dei|della|delle|di|do|da)[ ])*{_CAP}(?:[ ](?:(?:de|del|la|di|della)[ ])*{_CAP}){{0,3}},?[ ]"
            rf"(?:n\.?[ºo°]?[ ]?)?[0-9]{{1,4}}[A-Za-z]?{_EU_TAIL}"
        ),
        0.7,
    ),
)


def _lowered(text: str) -> str:
    """`text` lower-cased with its indices kept (a few non-ASCII letters lengthen when lowered)."""
    lower = text.lower()
    if len(lower) != len(text):
        lower = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    return lower


def _name_matches(
    text: str, lower: str, anchors: tuple[str, ...] | None, pattern: re.Pattern[str]
) -> list[re.Match[str]]:
    if anchors is None:
        return list(pattern.finditer(text))
    if anchors == ("<",):  # a display name comes before the anchor: one pass, when there is one
        return list(pattern.finditer(text)) if "<" in text else []
    found: list[re.Match[str]] = []
    for anchor in anchors:
        at = lower.find(anchor)
        while at != -1:
            match = pattern.match(text, at)
            if match is not None:
                found.append(match)
            at = lower.find(anchor, at + 1)
    return found


def names(text: str, hits: list[Hit]) -> None:
    lower = _lowered(text)
    for subtype, anchors, pattern, confidence in _NAME_RULES:
        for match in _name_matches(text, lower, anchors, pattern):
            start, end = match.span("name")
            words = text[start:end].split(" ")
            while words and words[-1].lower() in _NOT_NAMES:
                words.pop()
            if not words or words[0].lower() in _NOT_NAMES:
                continue
            hits.append((start, start + len(" ".join(words)), "name", subtype, None, confidence))


def addresses(text: str, hits: list[Hit]) -> None:
    for subtype, pattern, confidence in _ADDRESS_RULES:
        for match in pattern.finditer(text):
            hits.append((match.start(), match.end(), "address", subtype, None, confidence))
