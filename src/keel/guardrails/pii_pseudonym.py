"""Reversible pseudonymization: the model sees `<<EMAIL_1>>`, the tool gets the real address.

    pseudo = Pseudonymizer()                       # one per run
    prompt = pseudo.pseudonymize("Refund jane@example.com, card 4111 1111 1111 1111")
    # "Refund <<EMAIL_1>>, card <<CARD_1>>"
    args = pseudo.restore({"to": "<<EMAIL_1>>", "notes": ["card <<CARD_1>>"]})
    # {"to": "jane@example.com", "notes": ["card 4111 1111 1111 1111"]}

Tokens are stable within a run: the same value (compared in canonical form, so `+44 20 7946 0958`
and `+442079460958` are one value) gets the same token every time, in prompts, tool results and
later turns. `restore` puts back the value as first written. Tokens it does not know (made up by
the model, or from another run) are left as they are.

A `Pseudonymizer` holds real values in memory: keep it for the run only, never store or log it.
Text that already contains a token of this run is restored with the run's value, so content
from outside (a document, a web page) that quotes `<<EMAIL_1>>` would be restored too: when
that matters, pseudonymize such content as well, or pass it through `escape_tokens` first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import TypeVar

from keel.guardrails.pii_detect import detect
from keel.guardrails.pii_finding import PiiType
from keel.guardrails.pii_redact import canonical

T = TypeVar("T")

TOKEN = re.compile(r"<<([A-Z_]+)_([0-9]+)>>")


def escape_tokens(text: str) -> str:
    """`text` with anything shaped like a token defused (`<<EMAIL_1>>` becomes `< <EMAIL_1> >`)."""
    return TOKEN.sub(lambda m: f"< <{m.group(1)}_{m.group(2)}> >", text)


class Pseudonymizer:
    """Per-run, reversible replacement of PII by tokens such as `<<EMAIL_1>>`. Not thread-safe:
    one run, one instance."""

    def __init__(
        self,
        *,
        types: Collection[PiiType] | None = None,
        entities: bool = False,
        min_confidence: float = 0.0,
    ) -> None:
        self._types = types
        self._entities = entities
        self._min_confidence = min_confidence
        self._tokens: dict[tuple[str, str], str] = {}  # (type, canonical value) -> token
        self._values: dict[str, str] = {}  # token -> value as first seen
        self._counts: dict[str, int] = {}

    @property
    def mapping(self) -> dict[str, str]:
        """Token -> real value, for this run (a copy)."""
        return dict(self._values)

    def _token(self, kind: str, key: str, value: str) -> str:
        token = self._tokens.get((kind, key))
        if token is None:
            tag = kind.upper()
            count = self._counts.get(tag, 0) + 1
            self._counts[tag] = count
            token = f"<<{tag}_{count}>>"
            self._tokens[(kind, key)] = token
            self._values[token] = value
        return token

    def pseudonymize(self, text: str) -> str:
        """`text` with each PII value replaced by its token."""
        findings = detect(
            text, types=self._types, entities=self._entities, min_confidence=self._min_confidence
        )
        if not findings:
            return text
        out: list[str] = []
        position = 0
        for finding in findings:
            out.append(text[position : finding.start])
            out.append(self._token(finding.type, canonical(finding), finding.text))
            position = finding.end
        out.append(text[position:])
        return "".join(out)

    def pseudonymize_value(self, value: T) -> T:
        """`value` with every string in it pseudonymized: strings, and the strings (keys too) of
        nested dicts, lists and tuples, as in tool results. Other values are returned as they are."""
        return self._walk(value, self.pseudonymize)  # type: ignore[return-value]

    def restore(self, value: T) -> T:
        """`value` with this run's tokens replaced by the real values: in a string, or in the
        strings (keys too) of nested dicts, lists and tuples, as in tool arguments."""
        return self._walk(value, self._restore_text)  # type: ignore[return-value]

    def _restore_text(self, text: str) -> str:
        if "<<" not in text:
            return text
        return TOKEN.sub(lambda m: self._values.get(m.group(), m.group()), text)

    def _walk(self, value: object, change: Callable[[str], str]) -> object:
        if isinstance(value, str):
            return change(value)
        if isinstance(value, dict):
            return {
                (self._walk(k, change) if isinstance(k, str) else k): self._walk(v, change)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self._walk(item, change) for item in value]
        if isinstance(value, tuple):
            return tuple(self._walk(item, change) for item in value)
        return value
