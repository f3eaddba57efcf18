"""Email addresses, telephone numbers and IP addresses.

Patterns start with a literal or a single character class, so Python's regex engine skips at C
speed to where a match may start; boundary checks that need the character before a match are
lookbehinds placed after the first character, or plain Python on the (rare) candidates.
"""

from __future__ import annotations

import ipaddress
import re

from keel.guardrails.pii_checks import country_code, nanp_valid
from keel.guardrails.pii_finding import Hit

# --- email -------------------------------------------------------------------------------------------

_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9._%+'-]{1,64}\Z")
_EMAIL_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?:[A-Za-z]{2,24}|xn--[A-Za-z0-9-]{1,59})(?![A-Za-z0-9-])"
)
# A file name such as logo@2x.png ends in an extension, not in a top-level domain.
_FILE_EXTENSIONS = frozenset(
    [
        "png",
        "jpg",
        "jpeg",
        "gif",
        "svg",
        "webp",
        "bmp",
        "ico",
        "tif",
        "tiff",
        "js",
        "css",
        "json",
        "yaml",
        "yml",
        "txt",
        "log",
        "pdf",
    ]
)


def emails(text: str, hits: list[Hit]) -> None:
    at = text.find("@")
    while at != -1:
        local = _EMAIL_LOCAL.search(text, max(0, at - 64), at)
        domain = _EMAIL_DOMAIN.match(text, at + 1)
        if local is not None and domain is not None:
            start = local.start()
            while start < at and text[start] in ".'":  # not the first character of an address
                start += 1
            tld = domain.group().rsplit(".", 1)[1].lower()
            if start < at and tld not in _FILE_EXTENSIONS:
                hits.append((start, domain.end(), "email", "email", None, 0.95))
        at = text.find("@", at + 1)
    _emails_at(text, hits)


# Written to dodge address scrapers: jane.doe [at] example [dot] com, jane(at)example.com.
_EMAIL_AT = re.compile(
    r"[A-Za-z0-9._%+'-]{1,64}[ ]?[\[(](?i:at)[\])][ ]?"
    r"(?:[A-Za-z0-9-]{1,63}(?:\.|[ ]?[\[(](?i:dot)[\])][ ]?))+[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)


def _emails_at(text: str, hits: list[Hit]) -> None:
    lower = text.lower()
    if "at]" not in lower and "at)" not in lower:
        return
    for match in _EMAIL_AT.finditer(text):
        start = match.start()
        if start and (text[start - 1].isalnum() or text[start - 1] in "._%+'-"):
            continue
        hits.append((start, match.end(), "email", "email_at", None, 0.85))


# --- telephone numbers --------------------------------------------------------------------------------

_NOT_BEFORE = frozenset("_+.-/")

# International: `+` (or `00`) and a country code, then groups of digits with at most one
# separator between groups, an area code in parentheses, a trunk `(0)`; also `(+44) 20 …`.
_INTERNATIONAL = re.compile(
    r"(?:\+|00(?=[1-9]))(?<![A-Za-z0-9+]\+)(?<![A-Za-z0-9+./-]00)"
    r"[0-9]{1,4}\)?(?:(?:[ ./-]|\u00a0)?(?:\(0\)|\([0-9]{1,5}\)|[0-9]{1,6}))*"
)
# North American: 415-555-2671, 415.555.2671, 415 555 2671, (415) 555-2671, and a leading `1-`;
# 415 5552671 too, less surely.
_NANP = re.compile(
    r"[2-9](?<![0-9][2-9])[0-9]{2}(?:[ ./-][2-9][0-9]{2}[ .-][0-9]{4}|(?P<short> )[2-9][0-9]{6})(?![0-9]|[.-][0-9])"
)
_NANP_PARENS = re.compile(r"\([2-9][0-9]{2}\) ?[2-9][0-9]{2}[ .-][0-9]{4}(?![0-9]|[.-][0-9])")
# National, with a trunk 0: 020 7946 0958, 06 12 34 56 78, 030-12345678, 030/1234567,
# (020) 7946 0958, (03) 1234-5678, 0612345678. One kind of separator throughout.
_NATIONAL = re.compile(
    r"(?:\(|0(?=[1-9]))(?<![0-9]0)(?:(?<=\()0[1-9][0-9]{0,4}\) ?|(?<=0)[1-9][0-9]{0,4}(?P<sep>[ ./-])?)"
    r"[0-9]{2,8}(?:(?(sep)(?P=sep)|[ .-])[0-9]{2,8}){0,4}"
)
_FIRST_GROUP = re.compile(r"\+?([0-9]+)")
_DATE_START = re.compile(r"(?:0[1-9]|[12][0-9]|3[01])[./ -](?:0[1-9]|1[0-2])[./ -](?:19|20)[0-9]{2}")
# A run of 9 to 11 digits right after a word that announces a telephone number.
_BARE = re.compile(r"[0-9](?<![0-9][0-9])[0-9]{8,10}(?![0-9])")
_PHONE_CONTEXT = re.compile(
    r"(?i:\b(?:tel|telephone|phone|ph|mobile|mob|cell|cellphone|fax|whatsapp|sms|call|ring|text|reach|"
    r"t[ée]l[ée]phone|portable|handy|telefon|m[óo]vil|tel[ée]fono)\b)"
    r"(?:[\s:.#=\"'-]+|\b(?:me|us|at|on|no|number|nr|is)\b){0,8}\Z"
)


_NOT_DIGIT = re.compile(r"[^0-9]+")


def _digits(text: str) -> str:
    """The ASCII digits of `text` (matches hold no other digits: the text is normalized)."""
    return _NOT_DIGIT.sub("", text)


def _clean_before(text: str, start: int) -> bool:
    """Whether the character before `start` ends a word, and not a group of digits of which
    this would be the next group (4933 0193 4067 0806)."""
    if start == 0:
        return True
    before = text[start - 1]
    if before.isalnum() or before in _NOT_BEFORE:
        return False
    return not (before == " " and start >= 2 and text[start - 2].isdigit())


def _clean_after(text: str, end: int) -> bool:
    """Whether `end` is not in the middle of a longer number, word or code (`-XL`, `.5`)."""
    if end >= len(text):
        return True
    after = text[end]
    if after.isalnum() or after == "_":
        return False
    if after not in ".-/" or end + 1 >= len(text):
        return True
    return not (text[end + 1].isdigit() or (after == "-" and text[end + 1].isalpha()))


def _international(text: str, hits: list[Hit]) -> None:
    for match in _INTERNATIONAL.finditer(text):
        value = match.group()
        start, end = match.span()
        plus = value[0] == "+"
        # Drop trailing groups while the number is too long or runs into a word or number.
        while True:
            digits = _digits(value.replace("(0)", ""))
            if not plus:
                digits = digits[2:]
            if 8 <= len(digits) <= 15 and _clean_after(text, end):
                break
            cut = max(value.rfind(c) for c in " -./\u00a0")
            if cut <= 2:
                digits = ""
                break
            value = value[:cut]
            end = start + cut
        if not digits:
            continue
        if value.count("(") != value.count(")"):
            if not (start and text[start - 1] == "(" and value.count(")") == value.count("(") + 1):
                continue
            start -= 1  # (+44) 20 7946 0958
        code = country_code(digits)
        if code is None or (code == "1" and not nanp_valid(digits[1:])):
            continue
        first = _FIRST_GROUP.match(value)
        if (
            first is not None
            and first.end() < len(value)
            and first.group(1) != (code if plus else "00" + code)
        ):
            continue  # a separator follows the first group: that group must be the country code itself
        if digits[len(code)] == "0" and code != "39":
            continue  # after the country code comes the number without its trunk 0 (Italy keeps it)
        if not plus and (
            not any(c in value for c in " .-")
            or (start >= 2 and text[start - 1] == " " and text[start - 2].isdigit())
        ):
            continue  # 00 and a bare run of digits, or in a longer spaced number: an account or order number
        hits.append((start, end, "phone", "e164" if plus else "international", "country-code", 0.9))


def _nanp(text: str, hits: list[Hit]) -> None:
    for pattern in (_NANP, _NANP_PARENS):
        for match in pattern.finditer(text):
            start, end = match.span()
            if not nanp_valid(_digits(match.group())) or not _clean_after(text, end):
                continue
            if (
                start >= 2
                and text[start - 2] == "1"
                and text[start - 1] in " .-"
                and _clean_before(text, start - 2)
            ):
                start -= 2  # 1-800-555-0199
            elif not _clean_before(text, start):
                continue
            short = "short" in pattern.groupindex and match.group("short") is not None
            hits.append((start, end, "phone", "nanp", "nanp", 0.7 if short else 0.85))


def _national(text: str, hits: list[Hit]) -> None:
    for match in _NATIONAL.finditer(text):
        start, end = match.span()
        value = match.group()
        count = len(_digits(value))
        if not 9 <= count <= 12 or not _clean_before(text, start) or not _clean_after(text, end):
            continue
        spaced = match.group("sep") is not None or "(" in value
        groups = sum(1 for c in value if c in " ./-") + 1
        if _DATE_START.match(value) or (not spaced and not 10 <= count <= 11) or (count == 12 and groups > 2):
            continue  # a date, a bare run of digits of an unusual length, or 4-4-4 (a tracking number)
        hits.append((start, end, "phone", "national", "trunk-prefix", 0.8 if spaced else 0.7))


def phones(text: str, hits: list[Hit]) -> None:
    if "+" in text or "00" in text:
        _international(text, hits)
    _nanp(text, hits)
    _national(text, hits)
    for match in _BARE.finditer(text):
        start, end = match.span()
        if (
            _clean_before(text, start)
            and _clean_after(text, end)
            and _PHONE_CONTEXT.search(text, max(0, start - 40), start)
        ):
            hits.append((start, end, "phone", "bare", "context", 0.7))


# --- IP addresses --------------------------------------------------------------------------------------

_IPV4 = re.compile(r"[0-9](?<![0-9A-Za-z_.][0-9])[0-9]{0,2}(?:\.[0-9]{1,3}){3}(?![0-9]|\.[0-9])")
_IPV6_SEED = re.compile(r":[0-9A-Fa-f]{0,4}:")
_IPV6_TAIL = re.compile(r"[0-9A-Fa-f:.]*(?:%[0-9A-Za-z]+)?")
_HEX = frozenset("0123456789abcdefABCDEF")


def _ipv4(text: str, hits: list[Hit]) -> None:
    for match in _IPV4.finditer(text):
        start, end = match.span()
        if end < len(text) and (text[end].isalpha() or text[end] == "_"):
            continue
        octets = match.group().split(".")
        if all(len(o) == 1 or (o[0] != "0" and int(o) <= 255) for o in octets):
            hits.append((start, end, "ip", "ipv4", None, 0.9))


def _ipv6(text: str, hits: list[Hit]) -> None:
    seed = _IPV6_SEED.search(text)
    while seed is not None:
        start = seed.start()
        back = 0
        while start > 0 and back < 4 and text[start - 1] in _HEX:
            start -= 1
            back += 1
        tail = _IPV6_TAIL.match(text, start)
        end = tail.end() if tail is not None else seed.end()
        candidate = text[start:end]
        if not candidate.endswith("::"):
            candidate = candidate.rstrip(".:")
        end = start + len(candidate)
        address = candidate.split("%", 1)[0]
        if (
            _clean_before(text, start)
            and (start == 0 or text[start - 1] != ":")
            and (end >= len(text) or not (text[end].isalnum() or text[end] == "_"))
            and ("::" in address or address.count(":") == 7)
            and any(c not in ":." for c in address)
        ):
            try:
                ipaddress.IPv6Address(address)
            except ValueError:
                pass
            else:
                hits.append((start, end, "ip", "ipv6", None, 0.95))
        seed = _IPV6_SEED.search(text, max(end, seed.end()))


def ips(text: str, hits: list[Hit]) -> None:
    if "." in text:
        _ipv4(text, hits)
    if ":" in text:
        _ipv6(text, hits)
