"""Where a prompt-injection rule can match: the same matches as `pattern.finditer`, found faster.

Python's `re` tries a case-insensitive pattern at every position of the text, which was most of
the cost of the heuristic layer. Instead, each rule's pattern is analysed once (`plan_of`) for the
lower-cased strings (up to `K` characters, whitespace as a space) that every match must begin
with. The text, lower-cased the same way (`Folded`), is searched for those: through its words for
a rule whose matches start a word, else with `str.find`; the pattern is then tried only at those
places (`Pattern.match(text, pos)` sees the text before `pos`, so `\\b`, `^` and look-behinds behave
as in `finditer`). The matches are the same as `finditer`'s. A rule without usable prefixes runs
`finditer`, skipped when none of the strings one of which every match contains occurs
(`_necessary`); a text with characters whose case folding differs between `re` and `str.lower`
(dotless i, long s, final sigma, ...) runs `finditer` for every rule.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache
from re import _constants as _C  # type: ignore[attr-defined]
from re import _parser as _P  # type: ignore[attr-defined]
from typing import Any

from keel.guardrails.normalize import words

K = 5
_LIMIT = 400  # prefixes worked out at most per pattern
_MAX_PREFIXES = 40
_MAX_PREFIXES_AT_WORD = 400
_WORD_CHAR = re.compile(r"\w")
_Pre = set[tuple[str, bool]]
_ANY: _Pre = {("", False)}


def _fold(c: str) -> str | None:
    low = c.lower()
    if len(low) != 1:
        return None
    return " " if low.isspace() else low


def _class_chars(items: list[tuple[Any, Any]]) -> set[str] | None:
    out: set[str] = set()
    for op, av in items:
        if op is _C.LITERAL:
            c = _fold(chr(av))
            if c is None:
                return None
            out.add(c)
        elif op is _C.RANGE and av[1] - av[0] <= 10:
            for code in range(av[0], av[1] + 1):
                c = _fold(chr(code))
                if c is None:
                    return None
                out.add(c)
        elif op is _C.CATEGORY and av is _C.CATEGORY_SPACE:
            out.add(" ")
        else:
            return None
    return out if len(out) <= 12 else None


def _concat(a: _Pre, b: _Pre) -> _Pre:
    out: _Pre = set()
    for s, done in a:
        if not done or len(s) >= K:
            out.add((s[:K], False))
            continue
        for t, tdone in b:
            u = s + t
            out.add((u[:K], False) if len(u) >= K else (u, tdone))
    if len(out) > _LIMIT:
        raise OverflowError
    return out


def _seq(items: Any) -> _Pre:
    out: _Pre = {("", True)}
    for op, av in items:
        out = _concat(out, _op(op, av))
    return out


def _op(op: Any, av: Any) -> _Pre:
    if op is _C.LITERAL:
        c = _fold(chr(av))
        return _ANY if c is None else {(c, True)}
    if op is _C.IN:
        chars = _class_chars(av)
        return _ANY if chars is None else {(c, True) for c in chars}
    if op in (_C.AT, _C.ASSERT, _C.ASSERT_NOT):
        return {("", True)}
    if op is _C.SUBPATTERN:
        return _seq(av[3])
    if op is _C.BRANCH:
        out: _Pre = set()
        for alt in av[1]:
            out |= _seq(alt)
        return out
    if op in (_C.MAX_REPEAT, _C.MIN_REPEAT):
        lo, hi, item = av
        one = _seq(item)
        cur: _Pre = {("", True)}
        for _ in range(min(lo, K)):
            cur = _concat(cur, one)
        total = set(cur)
        for _ in range(min(hi - lo, K)):
            cur = _concat(cur, one)
            total |= cur
        return total
    return _ANY


def _at_word_start(items: Any) -> bool:
    """Whether every match of the parsed pattern starts where `\\b` holds."""
    if not items:
        return False
    op, av = items[0]
    if op is _C.AT:
        return bool(av is _C.AT_BOUNDARY)
    if op in (_C.ASSERT, _C.ASSERT_NOT):
        return _at_word_start(items[1:])
    if op is _C.SUBPATTERN:
        return _at_word_start(list(av[3]) + list(items[1:]))
    if op is _C.BRANCH:
        return all(_at_word_start(list(alt) + list(items[1:])) for alt in av[1])
    return False


def _necessary(items: Any) -> set[str] | None:
    """Lower-cased strings one of which occurs in every match of the parsed pattern, or None."""
    options: list[set[str]] = []
    run = ""
    for op, av in [*items, (None, None)]:
        c = _fold(chr(av)) if op is _C.LITERAL else None
        if c is not None:
            run += c
            continue
        if run:
            options.append({run})
            run = ""
        found: set[str] | None = None
        if op is _C.SUBPATTERN:
            found = _necessary(av[3])
        elif op is _C.BRANCH:
            found = set()
            for alt in av[1]:
                sub = _necessary(alt)
                if sub is None:
                    found = None
                    break
                found |= sub
        elif op in (_C.MAX_REPEAT, _C.MIN_REPEAT) and av[0] >= 1:
            found = _necessary(av[2])
        if found:
            options.append(found)
    return max(options, key=lambda o: min(len(x) for x in o), default=None)


def literal_needs(pattern: re.Pattern[str]) -> tuple[str, ...] | None:
    """Lower-case ASCII strings one of which every match of `pattern` contains (each occurs, in
    some case, in the match), or None when none are known: a text whose lower-cased copy holds none
    of them has no match, if it is ASCII (where `str.lower` and `re`'s case folding agree)."""
    try:
        needs = _necessary(_P.parse(pattern.pattern, pattern.flags))
    except Exception:  # an unusual pattern: no shortcut
        return None
    # whitespace is folded to a space in `needs`: the longest piece without one is needed too
    pieces = {max(n.split(" "), key=len) for n in needs or ()}
    if not pieces or not all(p and p.isascii() and p.isprintable() for p in pieces):
        return None
    return tuple(sorted(pieces))


@dataclass
class Plan:
    """Where a rule can match: `prefixes` (lower-cased, whitespace as a space) begin every match;
    `at_word` says a match also starts a word (`\\b` then a word character)."""

    prefixes: tuple[str, ...]
    at_word: bool
    # for a rule without prefixes: strings one of which a match contains (None: unknown)
    needs: tuple[str, ...] | None = None

    @cached_property
    def keyed(self) -> frozenset[str]:
        """The prefixes found through the keys of the text's words (`Folded.keys`): `K` characters
        long, at a word start."""
        return frozenset(p for p in self.prefixes if self.at_word and len(p) == K)

    @cached_property
    def searched(self) -> tuple[str, ...]:
        """The other prefixes, searched for with `str.find`."""
        return tuple(p for p in self.prefixes if p not in self.keyed)

    @cached_property
    def searched_ascii(self) -> tuple[str, ...]:
        """The other prefixes that can occur in ASCII text."""
        return tuple(p for p in self.searched if p.isascii())


def _plan(pattern: re.Pattern[str]) -> Plan:
    """The rule's prefixes; none when none are known (too short, or too many)."""
    parsed = _P.parse(pattern.pattern, pattern.flags)
    needs = _necessary(parsed)
    fallback = Plan((), False, tuple(sorted(needs)) if needs and min(map(len, needs)) >= 3 else None)
    try:
        found = _seq(parsed)
    except OverflowError:
        return fallback
    prefixes = {s for s, _done in found}
    if any(len(s) < 2 for s in prefixes):
        return fallback
    # a prefix that extends another one adds nothing
    kept = tuple(sorted(p for p in prefixes if not any(q != p and p.startswith(q) for q in prefixes)))
    at_word = _at_word_start(list(parsed)) and all(_WORD_CHAR.match(p) for p in kept)
    if len(kept) > (_MAX_PREFIXES_AT_WORD if at_word else _MAX_PREFIXES):
        return fallback
    return Plan(kept, at_word)


_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_OTHER_SPACE = re.compile(r"[^\S \n]")
_SPACE = re.compile(r"\s")
_WORD_RUN = re.compile(r"\w+")
# The ASCII characters `\s` matches other than the space and the newline.
_ODD_ASCII_SPACE = "".join(c for c in map(chr, range(128)) if c.isspace() and c not in " \n")
# Every character of a known prefix, with a case-insensitive pattern for it; which characters of a
# text are unsafe to compare through `str.lower` (see `_char_unsafe`), worked out once each.
_PREFIX_CHARS: dict[str, re.Pattern[str]] = {}
# The words shorter than `K` that a keyed prefix begins with (`"i"` of `"i am "`), with a pattern
# finding each as a whole word and what follows it (`_whole_word`).
_SHORT_WORDS: dict[str, re.Pattern[str]] = {}
_UNSAFE: dict[str, bool] = {}
_ASCII_UNSAFE: list[re.Pattern[str] | None] = []


# Plans by the identity of their pattern (holding the pattern, so that its id is not reused):
# looking a compiled pattern up by value hashes and compares its whole compiled code, which cost
# more than a short text's search.
_PLANS: dict[int, tuple[re.Pattern[str], Plan]] = {}


def plan_of(pattern: re.Pattern[str]) -> Plan:
    """The pattern's `Plan`, worked out once."""
    known = _PLANS.get(id(pattern))
    if known is not None and known[0] is pattern:
        return known[1]
    plan = _planned(pattern)
    if len(_PLANS) >= 1024:
        _PLANS.clear()
    _PLANS[id(pattern)] = (pattern, plan)
    return plan


@lru_cache(maxsize=256)
def _planned(pattern: re.Pattern[str]) -> Plan:
    """`plan_of`, by the pattern's value (the same pattern compiled twice is planned once)."""
    plan = _plan(pattern)
    for prefix in plan.keyed:
        word = _WORD_RUN.match(prefix)
        if word is not None and len(word.group()) < K and word.group() not in _SHORT_WORDS:
            _SHORT_WORDS[word.group()] = _whole_word(word.group())
    for c in "".join((*plan.prefixes, *(plan.needs or ()))):
        if c not in _PREFIX_CHARS:
            _PREFIX_CHARS[c] = re.compile(re.escape(c), re.IGNORECASE)
            _UNSAFE.clear()
            _ASCII_UNSAFE.clear()
    return plan


def _char_unsafe(c: str) -> bool:
    """Whether `re` may match `c` case-insensitively to a prefix character other than its folding."""
    unsafe = _UNSAFE.get(c)
    if unsafe is None:
        folded = _fold(c)
        unsafe = c in "\u03a3\u0130" or folded is None
        # `\\b` must hold at the same places in the folded text
        unsafe = unsafe or (_WORD_CHAR.match(c) is None) != (_WORD_CHAR.match(folded or c) is None)
        unsafe = unsafe or any(p != folded and pat.fullmatch(c) for p, pat in _PREFIX_CHARS.items())
        if len(_UNSAFE) < 4096:
            _UNSAFE[c] = unsafe
    return unsafe


@lru_cache(maxsize=1024)
def _whole_word(word: str) -> re.Pattern[str]:
    """`word` as a whole word, capturing what follows it up to `K` characters in all (without
    consuming it: the next word may begin there). The word comes first, so that `re` looks for it
    as a literal (fast) instead of trying every position."""
    return re.compile(
        rf"{re.escape(word)}(?<!\w.{{{len(word)}}})(?!\w)(?=(.{{0,{K - len(word)}}}))", re.DOTALL
    )


class Folded:
    """A text prepared for `rule_matches`: lower-cased with whitespace as spaces (`text`, None if
    that isn't safe), and the first `K` characters from the start of every word in it (`keys`)."""

    def __init__(self, text: str) -> None:
        self.text = self._fold(text)
        self.ascii = text.isascii()
        self.keys: frozenset[str] | None = None
        self.short_words = len(_SHORT_WORDS)  # the short words known when the keys were made
        if self.text is not None:
            # `re.findall(r"\\b(?=(\\w.{0,4}))", text)` tries every position of the text: the words
            # are found by `str.split` instead, and the keys of the short ones (a word and what
            # follows it) by looking for them, among those a keyed prefix begins with
            found = frozenset(words(self.text))
            keys = {word[:K] for word in found}
            for word in _SHORT_WORDS.keys() & found:
                keys.update(word + rest for rest in _SHORT_WORDS[word].findall(self.text))
            self.keys = frozenset(keys)

    @staticmethod
    def _fold(text: str) -> str | None:
        if not _ASCII_UNSAFE:
            bad = "".join(c for c in map(chr, range(128)) if _char_unsafe(c))
            _ASCII_UNSAFE.append(re.compile("[" + re.escape(bad) + "]") if bad else None)
        ascii_unsafe = _ASCII_UNSAFE[0]
        if ascii_unsafe is not None and ascii_unsafe.search(text):
            return None
        if not text.isascii() and any(_char_unsafe(c) for c in set(_NON_ASCII.findall(text))):
            return None
        low = text.lower()
        if len(low) != len(text):
            return None
        low = low.replace("\n", " ")
        if low.isascii() and not any(c in low for c in _ODD_ASCII_SPACE):
            return low  # no other whitespace than spaces (`_OTHER_SPACE` would not match)
        return _SPACE.sub(" ", low) if _OTHER_SPACE.search(low) else low


def rule_matches(
    pattern: re.Pattern[str], text: str, folded: Folded | None, limit: int
) -> Iterator[re.Match[str]]:
    """The first `limit` matches of `pattern.finditer(text)`, found from the pattern's prefixes."""
    plan = plan_of(pattern)
    low = folded.text if folded is not None else None
    if not plan.prefixes or low is None or folded is None:
        if low is not None and plan.needs is not None and not any(n in low for n in plan.needs):
            return
        yield from itertools.islice(pattern.finditer(text), limit)
        return
    # a word starting with a keyed prefix has its key among `keys`; ASCII text holds only ASCII prefixes
    searched = plan.searched_ascii if folded.ascii else plan.searched
    # (keys made before this pattern's short words were known may lack some: then search them all)
    keys = folded.keys if folded.short_words == len(_SHORT_WORDS) else None
    candidates: Iterable[str] = (
        itertools.chain(plan.keyed & keys, searched) if keys is not None else plan.prefixes
    )
    starts: list[int] = []
    for prefix in candidates:
        at = low.find(prefix)
        while at >= 0:
            starts.append(at)
            at = low.find(prefix, at + 1)
    if not starts:
        return
    starts.sort()
    end = 0
    found = 0
    for at in starts:
        if at < end:
            continue
        match = pattern.match(text, at)
        if match is not None:
            yield match
            found += 1
            if found >= limit:
                return
            end = match.end()
