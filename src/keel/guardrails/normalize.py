"""Text normalization and bounded decoding for input guardrails.

`normalize` makes text look the way a reader sees it, so that look-alike tricks cannot hide words
from pattern matching: Unicode NFKC (fullwidth and mathematical letters become ASCII), removal of
zero-width and bidirectional control characters, folding of Cyrillic and Greek look-alikes in
Latin-script words, and collapsed whitespace.

`decoded_variants` finds payloads encoded inside text (base64, hex, URL-encoding, HTML character
references, rot13, and letter-spaced or string-concatenated words, leetspeak, text written backwards) and returns their decoded text, so the detectors can
scan it too. Decoding is bounded: only so much input is searched, only so many candidates of at
most so many characters are decoded, nesting goes at most two layers deep, and a decoded payload
is kept only when it is mostly printable text.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
import string
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote_plus

# Zero-width characters, soft hyphen, joiners, and the bidirectional controls (embeddings,
# overrides, isolates, marks) that reorder or hide text without being visible themselves.
INVISIBLE = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180e"
    "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\u206a\u206b\u206c\u206d\u206e\u206f"
    "\u3164\ufe00\ufe01\ufe02\ufe03\ufe04\ufe05\ufe06\ufe07\ufe08\ufe09\ufe0a\ufe0b\ufe0c\ufe0d"
    "\ufe0e\ufe0f\ufeff\uffa0"
)
_INVISIBLE_TABLE = {ord(c): None for c in INVISIBLE}
# Unicode "tag" characters (U+E0000..U+E007F) can carry a hidden ASCII message: map them to it.
_TAG_TABLE = {cp: cp - 0xE0000 for cp in range(0xE0020, 0xE007F)} | {0xE0001: None, 0xE007F: None}

# Cyrillic and Greek letters that look like Latin ones (after NFKC).
HOMOGLYPHS: dict[str, str] = {
    # Cyrillic, lower case
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d",
    "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l", "ɡ": "g", "ո": "n", "ս": "u", "ց": "g", "ӕ": "ae",
    # Cyrillic, upper case
    "А": "A", "В": "B", "Е": "E", "Ё": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P",
    "С": "C", "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "І": "I", "Ї": "I", "Ј": "J", "Ԁ": "D",
    "Ԛ": "Q", "Ԝ": "W", "Һ": "H", "Ӏ": "I",
    # Greek, lower case
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "ϳ": "j",
    # Greek, upper case
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
    "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "Ϲ": "C",
}  # fmt: skip
_HOMOGLYPH_TABLE = str.maketrans(HOMOGLYPHS)
_CONFUSABLE = frozenset(HOMOGLYPHS)

_WORD = re.compile(r"\w+")
_TAG = re.compile("[\U000e0000-\U000e007f]")
_CONFUSABLE_CHAR = re.compile("[" + re.escape("".join(HOMOGLYPHS)) + "]")
_HSPACE = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r"\s*\n\s*")
# The ASCII characters `\s` matches other than the space and the newline.
_ODD_ASCII_SPACE = "".join(c for c in map(chr, range(128)) if c.isspace() and c not in " \n")


def strip_invisible(text: str) -> str:
    """Remove zero-width and bidirectional control characters; reveal Unicode tag characters."""
    text = text.translate(_INVISIBLE_TABLE)
    if not text.isascii() and _TAG.search(text):
        text = text.translate(_TAG_TABLE)
    return text


def fold_homoglyphs(text: str) -> str:
    """Fold Cyrillic and Greek look-alikes to Latin in words that are meant to be Latin.

    A word is folded when it mixes ASCII letters with look-alikes ("іgnоrе"), or when neither it
    nor its neighbouring words have letters of another script that are no look-alikes ("Не
    забудь" stays Russian: "забудь" has "з", "б", "д", "ь"). Genuine Russian or Greek text is left
    alone, so patterns in those languages still match it.
    """
    if text.isascii() or not _CONFUSABLE_CHAR.search(text):
        return text
    words = list(_WORD.finditer(text))

    def foreign(word: str) -> bool:  # has letters of another script that are no look-alikes
        return any(c.isalpha() and not c.isascii() and c not in _CONFUSABLE for c in word)

    out: list[str] = []
    last = 0
    for i, match in enumerate(words):
        word = match.group(0)
        if not any(c in _CONFUSABLE for c in word):
            continue
        has_ascii = any(c.isascii() and c.isalpha() for c in word)
        neighbours = [words[j].group(0) for j in (i - 1, i + 1) if 0 <= j < len(words)]
        latin_context = not foreign(word) and not any(foreign(n) for n in neighbours)
        if has_ascii or latin_context:
            out.append(text[last : match.start()])
            out.append(word.translate(_HOMOGLYPH_TABLE))
            last = match.end()
    out.append(text[last:])
    return "".join(out)


def collapse_whitespace(text: str) -> str:
    """Runs of spaces and tabs become one space; runs of blank lines become one newline."""
    # Each substitution is a pass of `re` over the text; skipped where it would change nothing:
    # ASCII text whose only horizontal whitespace is single spaces, text without a newline.
    if not text.isascii() or "  " in text or any(c in text for c in _ODD_ASCII_SPACE):
        text = _HSPACE.sub(" ", text)
    if "\n" in text:
        text = _NEWLINES.sub("\n", text)
    return text.strip()


def prepare(text: str) -> str:
    """NFKC, invisible characters removed, homoglyphs folded; whitespace kept as it is."""
    return fold_homoglyphs(strip_invisible(unicodedata.normalize("NFKC", text)))


def normalize(text: str) -> str:
    """NFKC, invisible characters removed, homoglyphs folded, whitespace collapsed."""
    return collapse_whitespace(prepare(text))


@dataclass(frozen=True)
class Variant:
    """A decoded view of (part of) the input: `layers` names the decodings, outermost first."""

    layers: tuple[str, ...]
    text: str

    @property
    def name(self) -> str:
        return "+".join(self.layers)


@dataclass(frozen=True)
class DecodeLimits:
    max_scan_chars: int = 100_000  # only this much of the input is searched for payloads
    max_payload_chars: int = 16_384  # longer candidates are not decoded
    max_candidates: int = 24  # per layer
    max_depth: int = 2
    min_decoded_chars: int = 8
    min_printable: float = 0.9  # share of printable characters a decoded payload needs


DEFAULT_LIMITS = DecodeLimits()

_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
# `re` skips ahead fast to where a pattern's first character class occurs, but only when the
# pattern begins with one: these two are written so, with the same matches as
# `(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}){8,}(?![0-9A-Fa-f])` and
# `(?:(?:\\x|0x)?[0-9A-Fa-f]{2}[\s,:]?){8,}` (the first byte's alternatives are tried in the same
# order), which `re` tried at every position of the text.
_HEX_RUN = re.compile(
    r"[0-9A-Fa-f](?<![0-9A-Fa-f][0-9A-Fa-f])[0-9A-Fa-f](?:[0-9A-Fa-f]{2}){7,}(?![0-9A-Fa-f])"
)
_HEX_SEPARATED = re.compile(
    r"[\\0-9A-Fa-f](?:(?<=\\)x[0-9A-Fa-f]{2}|(?<=0)x[0-9A-Fa-f]{2}|(?<=[0-9A-Fa-f])[0-9A-Fa-f])[\s,:]?"
    r"(?:(?:\\x|0x)?[0-9A-Fa-f]{2}[\s,:]?){7,}"
)
_HEX_NOISE = re.compile(r"\\x|0x|[\s,:]")
# Hex-encoded text always has digit-led byte pairs (printable ASCII is 0x20-0x7e): a cheap test.
_HEX_HINT = re.compile(
    r"[0-9][0-9A-Fa-f](?:[\s,:]|\\x|0x)?[0-9][0-9A-Fa-f](?:[\s,:]|\\x|0x)?[0-9][0-9A-Fa-f]"
)
_URL_ENCODED = re.compile(
    r"(?:[A-Za-z0-9._~+!*'(),;/:=&@-]*%[0-9A-Fa-f]{2}){3,}[A-Za-z0-9._~+!*'(),;/:=&@-]*"
)
_SPACED = re.compile(r"(?<!\w)\w(?:[ ._\-|*]{1,3}\w(?!\w)){4,}")
_SPACED_SEP = re.compile(r"[ ._\-|*]")
_WORD_GAP = re.compile(r"\s{2,}|[ ._\-|*]{3}")
_LEET_WORD = re.compile(r"(?<![\w$@])(?=[\w$@]*[A-Za-z])(?=[\w$@]*[0-9$@])[\w$@]{2,}")
_LEET_DIGIT_RUN = re.compile(r"[0-9$@][\w$@]*")
_LEET_CLASSES = str.maketrans(
    {
        c: "a" if c.isalpha() else "1" if c in "0123456789$@" else "_" if c == "_" else " "
        for c in map(chr, range(128))
    }
)
_ASCII_LETTER = re.compile(r"[A-Za-z]")
_LEET = str.maketrans(
    {"4": "a", "3": "e", "1": "i", "0": "o", "5": "s", "7": "t", "$": "s", "@": "a", "8": "b", "9": "g"}
)
_CONCAT = re.compile(r"""(["'])\s*\+\s*\1""")
# A few very common English words: rot13 is worth scanning when it reveals more of them.
_COMMON = frozenset(
    [
        "the",
        "and",
        "you",
        "your",
        "all",
        "are",
        "for",
        "not",
        "with",
        "this",
        "that",
        "from",
        "now",
        "must",
        "any",
        "have",
        "will",
        "what",
        "into",
        "ignore",
        "previous",
        "instructions",
        "system",
        "prompt",
        "tell",
        "reveal",
        "secret",
        "password",
        "say",
        "print",
        "follow",
    ]
)


# The common words, rot13-encoded and written backwards: in ASCII text, the words that rot13 or
# reversal would turn into common ones.
_COMMON_ROT13 = frozenset(codecs.encode(word, "rot13") for word in _COMMON)
_COMMON_REVERSED = frozenset(word[::-1] for word in _COMMON)


def _readable(text: str, limits: DecodeLimits) -> bool:
    if len(text) < limits.min_decoded_chars:
        return False
    if text.isprintable():
        return True
    printable = sum(1 for c in text if c.isprintable() or c in "\n\r\t")
    return printable >= limits.min_printable * len(text)


def _utf8(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _stretches(text: str, classes: dict[int, str], least: int) -> list[tuple[int, int]]:
    """The stretches of ASCII `text` made of at least `least` characters that `classes` maps to
    "x" (it maps the others to "."), found by `str.find` on the mapped text."""
    mapped = text.translate(classes)
    run = "x" * least
    out: list[tuple[int, int]] = []
    at = mapped.find(run)
    while at >= 0:
        start = mapped.rfind(".", 0, at) + 1
        end = mapped.find(".", at)
        end = len(mapped) if end < 0 else end
        out.append((start, end))
        at = mapped.find(run, end)
    return out


def _classes(chars: str) -> dict[int, str]:
    """A `str.translate` table: ASCII `chars` to "x", other ASCII characters to "."."""
    return str.maketrans({c: "x" if c in chars else "." for c in map(chr, range(128))})


# A base64 payload is at least 16 characters of its alphabet (and up to two "=") in a row; a hex
# payload at least 16 hex digits, separators (whitespace, ",", ":") and "\\x" or "0x" prefixes.
# Matches lie within such stretches, so in ASCII text the patterns run over those alone (with the
# whole text around them: look-behinds see what precedes).
_BASE64_CLASSES = _classes(string.ascii_letters + string.digits + "+/_-=")
_HEX_CLASSES = _classes(string.hexdigits + "xX\\,:" + "".join(c for c in map(chr, range(128)) if c.isspace()))


def _where(text: str, classes: dict[int, str]) -> list[tuple[int, int]]:
    """Where payloads of a kind (`classes`) may be: stretches of 16 characters or more in ASCII
    text, anywhere in other text."""
    return _stretches(text, classes, 16) if text.isascii() else [(0, len(text))]


def _base64_payloads(text: str, limits: DecodeLimits) -> list[str]:
    found: list[str] = []
    for match in (m for lo, hi in _where(text, _BASE64_CLASSES) for m in _BASE64.finditer(text, lo, hi)):
        token = match.group(0)
        if len(token) > limits.max_payload_chars or (token.isalpha() and token.islower()):
            continue
        if all(c in "0123456789abcdefABCDEF" for c in token):
            continue  # a hex string: the hex layer decodes it
        padded = token.rstrip("=") + "=" * (-len(token.rstrip("=")) % 4)
        try:
            raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            continue
        decoded = _utf8(raw)
        if decoded is not None:
            found.append(decoded)
        if len(found) >= limits.max_candidates:
            break
    return found


def _hex_payloads(text: str, limits: DecodeLimits) -> list[str]:
    found: list[str] = []
    if not _HEX_HINT.search(text):
        return found
    where = _where(text, _HEX_CLASSES)
    for pattern in (_HEX_RUN, _HEX_SEPARATED):
        for match in (m for lo, hi in where for m in pattern.finditer(text, lo, hi)):
            token = match.group(0)
            if len(token) > limits.max_payload_chars:
                continue
            digits = _HEX_NOISE.sub("", token)
            if len(digits) % 2:
                continue
            try:
                decoded = _utf8(bytes.fromhex(digits))
            except ValueError:
                continue
            if decoded is not None and decoded not in found:
                found.append(decoded)
            if len(found) >= limits.max_candidates:
                return found
    return found


def _url_payloads(text: str, limits: DecodeLimits) -> list[str]:
    found: list[str] = []
    if "%" not in text:
        return found
    for match in _URL_ENCODED.finditer(text):
        token = match.group(0)
        if len(token) <= limits.max_payload_chars:
            found.append(unquote_plus(token))
        if len(found) >= limits.max_candidates:
            break
    return found


_CHAR_REF = re.compile(r"&#(?:[0-9]{1,7}|[xX][0-9A-Fa-f]{1,6});?")
_MIN_CHAR_REFS = 3  # fewer numeric references is ordinary HTML (a quote, an apostrophe)


def _html_payloads(text: str, limits: DecodeLimits) -> list[str]:
    """Text with numeric HTML character references (`&#105;gnore`, `&#x69;`) read as characters,
    when there are at least `_MIN_CHAR_REFS` of them; named references are read along with them."""
    if text.count("&#") < _MIN_CHAR_REFS:
        return []
    text = text[: limits.max_payload_chars]
    if len(_CHAR_REF.findall(text)) < _MIN_CHAR_REFS:
        return []
    return [html.unescape(text)]


def _rot13_payloads(text: str, limits: DecodeLimits) -> list[str]:
    if len(text) > limits.max_payload_chars:
        text = text[: limits.max_payload_chars]
    if _mostly_plain(text):
        return []
    before = _common_words(text)
    if text.isascii():  # the text's words, rot13-decoded, are the decoded text's words
        after = sum(map(_COMMON_ROT13.__contains__, _lower_words(text)))
        if not (after >= 2 and after > before):
            return []
    decoded = codecs.decode(text, "rot13")
    after = _common_words(decoded)
    return [decoded] if after >= 2 and after > before else []


def _windows(
    text: str, spans: list[tuple[int, int]], before: int = 80, after: int = 240
) -> list[tuple[int, int]]:
    """The stretches of `text` around `spans`, widened and merged: what a rewrite layer returns."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        lo, hi = max(0, start - before), min(len(text), end + after)
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


# ASCII: word characters other than "_" to "w", the separators of letter-spaced words to "s".
_SPACED_SHAPE = str.maketrans(
    {c: "w" if _WORD.match(c) else "s" if c in " .-|*" else "." for c in map(chr, range(128)) if c != "_"}
)
# Every match of `_SPACED` has three one-character words in a row, each between separators.
_SPACED_HINTS = tuple(f"sw{'s' * a}w{'s' * b}ws" for a in (1, 2, 3) for b in (1, 2, 3))


def _may_be_spaced(text: str) -> bool:
    """False when `_SPACED` has no match in `text` (ASCII without "_", shown by `str.find`)."""
    if not text.isascii() or "_" in text:
        return True
    shape = text.translate(_SPACED_SHAPE)
    return any(hint in shape for hint in _SPACED_HINTS)


def _joined_payloads(text: str, limits: DecodeLimits) -> list[str]:
    """Letter-spaced words ("i g n o r e") joined up; string concatenation ("ign" + "ore") undone.

    Only the stretches around the rewritten places are returned, so a long text is not scanned
    twice in full.
    """
    text = text[: limits.max_payload_chars]
    spans = [m.span() for m in _CONCAT.finditer(text)]
    if _may_be_spaced(text):
        spans += [m.span() for m in _SPACED.finditer(text)]
    if not spans:
        return []

    def join(match: re.Match[str]) -> str:
        return " ".join(_SPACED_SEP.sub("", word) for word in _WORD_GAP.split(match.group(0)))

    pieces = [_SPACED.sub(join, _CONCAT.sub("", text[lo:hi])) for lo, hi in _windows(text, spans, after=400)]
    return ["\n".join(pieces)]


# ASCII characters that are not word characters (`\w`), each mapped to a space.
_NOT_WORD = str.maketrans(dict.fromkeys((c for c in map(chr, range(128)) if not _WORD.match(c)), " "))


def words(text: str) -> list[str]:
    """`_WORD.findall(text)`: in ASCII text, without a pass of `re` over it."""
    if text.isascii():
        return text.translate(_NOT_WORD).split()
    return _WORD.findall(text)


@lru_cache(maxsize=16)
def _lower_words(text: str) -> list[str]:
    """`words(text.lower())`, for the layers that look at the same text (not to be changed)."""
    return words(text.lower())


@lru_cache(maxsize=16)
def _word_counts(text: str) -> tuple[int, int]:
    """The number of words of `text`, and how many of them are common English words."""
    found = _lower_words(text)
    return len(found), sum(map(_COMMON.__contains__, found))


def _common_words(text: str) -> int:
    return _word_counts(text)[1]


def _mostly_plain(text: str) -> bool:
    """Text that already reads as English (over 12% common words): rot13 or reversal can't beat it."""
    total, common = _word_counts(text)
    return total >= 20 and common > 0.12 * total


def _leet_words(text: str) -> list[tuple[int, int]]:
    """The spans of `_LEET_WORD.finditer(text)`, without trying the pattern everywhere.

    A match is a whole run of `[\\w$@]` holding an ASCII letter and one of `[0-9$@]`. In ASCII
    text without `_`, each character is mapped to its class (`a` a letter, `1` one of `[0-9$@]`,
    a space otherwise): a run holds both exactly when its classes have `a1` or `1a` side by side,
    which `str.find` looks for. Other text goes through `_leet_runs`.
    """
    if not text.isascii() or "_" in text:
        return _leet_runs(text)
    classes = text.translate(_LEET_CLASSES)
    spans: dict[int, int] = {}
    for pair in ("a1", "1a"):
        at = classes.find(pair)
        while at >= 0:
            start = classes.rfind(" ", 0, at) + 1
            end = classes.find(" ", at)
            end = len(classes) if end < 0 else end
            spans[start] = end
            at = classes.find(pair, end)
    return sorted(spans.items())


def _leet_runs(text: str) -> list[tuple[int, int]]:
    """`_leet_words` for any text: each run holding one of `[0-9$@]` is found from its first one
    (a pattern that begins with a character class, which `re` skips ahead to), then extended back
    to where the run starts."""
    spans: list[tuple[int, int]] = []
    for run in _LEET_DIGIT_RUN.finditer(text):
        start, end = run.span()
        while start > 0 and ((c := text[start - 1]).isalnum() or c in "_$@"):  # `[\w$@]`
            start -= 1
        if not text[start:end].isdigit() and _ASCII_LETTER.search(text, start, end):
            spans.append((start, end))
    return spans


def _leet_payloads(text: str, limits: DecodeLimits) -> list[str]:
    """Leetspeak ("1gn0r3 4ll") read as letters, around words that mix letters and digits."""
    text = text[: limits.max_payload_chars]
    if sum(map(text.count, "0123456789$@")) < 3:
        return []  # fewer than three words with a digit in them
    spans = _leet_words(text)
    if len(spans) < 3:
        return []
    keep: list[str] = []
    for lo, hi in _windows(text, spans, before=40, after=40):
        piece = text[lo:hi]
        # `_LEET_WORD.sub(lambda m: m.group(0).translate(_LEET), piece)`, from the piece's own
        # leet words (a word cut by the window's edge is judged by the part inside it, as there)
        found = _leet_words(piece)
        if not found:
            continue  # nothing to read: no more common words than the piece itself
        out: list[str] = []
        last = 0
        for start, end in found:
            out += (piece[last:start], piece[start:end].translate(_LEET))
            last = end
        out.append(piece[last:])
        decoded = "".join(out)
        if _common_words(decoded) > _common_words(piece):
            keep.append(decoded)
    return ["\n".join(keep)] if keep else []


def _reversed_payloads(text: str, limits: DecodeLimits) -> list[str]:
    """Text written backwards, when reading it forwards reveals more common words."""
    text = text[: limits.max_payload_chars]
    if _mostly_plain(text):
        return []
    before = _common_words(text)
    if text.isascii():  # the text's words, each written backwards, are the reversed text's words
        after = sum(map(_COMMON_REVERSED.__contains__, _lower_words(text)))
        if not (after >= 3 and after > before):
            return []
    backwards = text[::-1]
    after = _common_words(backwards)
    return [backwards] if after >= 3 and after > before else []


_LAYERS = (
    ("base64", _base64_payloads),
    ("hex", _hex_payloads),
    ("url", _url_payloads),
    ("html", _html_payloads),
    ("rot13", _rot13_payloads),
    ("joined", _joined_payloads),
    ("leet", _leet_payloads),
    ("reversed", _reversed_payloads),
)
# Layers that rewrite the whole text rather than decode a payload found in it.
_SELF_INVERSE = ("rot13", "joined", "leet", "reversed")


def decoded_variants(text: str, limits: DecodeLimits = DEFAULT_LIMITS) -> list[Variant]:
    """Every decodable payload found in `text`, decoded and normalized, up to `max_depth` layers.

    The input itself is not among the results. Results are distinct and in discovery order.
    """
    seen: set[str] = {text}
    out: list[Variant] = []
    frontier: list[Variant] = [Variant((), text[: limits.max_scan_chars])]
    for _depth in range(limits.max_depth):
        nxt: list[Variant] = []
        for parent in frontier:
            for layer, finder in _LAYERS:
                if parent.layers and parent.layers[-1] in _SELF_INVERSE:
                    continue  # whole-text rewrites are final: only decoded payloads are decoded again
                for payload in finder(parent.text, limits):
                    decoded = normalize(payload)
                    if decoded in seen or not (layer in _SELF_INVERSE or _readable(decoded, limits)):
                        continue
                    seen.add(decoded)
                    variant = Variant((*parent.layers, layer), decoded)
                    out.append(variant)
                    nxt.append(variant)
        frontier = nxt
    return out
