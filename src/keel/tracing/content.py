"""What of a run's content (prompts, outputs, tool arguments and results) goes into spans.

`ContentCapture` is the policy, one per `Tracing`, from `tracing.capture_content`:

- `off` (the default): no content at all; spans carry sizes (`keel.*.size`) and counts only.
- `on`: content as compact JSON strings, cut at `max_chars` (16 KiB by default) with a
  `…truncated` marker.
- `redacted`: as `on`, with everything `keel.guardrails.pii`'s detector finds masked too:
  personal data, national ids, generated-looking tokens (see `keel.tracing.redact`).

Secrets are masked in every mode, including in error messages and event attributes, which are
kept even when content is off: the known key formats, values under keys such as `api_key` or
`password`, and the exact values of the environment variables given as `secret_env_vars`.

Masking works on the strings of the value (after conversion to JSON-friendly data), never on the
JSON text, so a secret right after a newline is still found and the result stays valid JSON. The
work is bounded: strings past what the cut would keep are not scanned.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import pydantic_core

from keel.tracing import redact
from keel.tracing.messages import message_list, to_genai

CaptureMode = Literal["off", "on", "redacted"]

TRUNCATED = "…truncated"
DEFAULT_MAX_CHARS = 16 * 1024
DEFAULT_MAX_MESSAGE_CHARS = 2048
# Strings are scanned this far past the cut, so a secret straddling the cut is still found whole
# (a secret longer than this is masked by its pattern's tolerance of a cut-short ending).
_MARGIN = 1024
_MAX_DEPTH = 32
_MIN_SECRET = 6  # nothing shorter can hold a secret or personal data the patterns recognise
_CACHE_ENTRIES = 512
_CACHED_CHARS = 4096
_MESSAGE_ENTRIES = 256
_SECRET_MASK = redact.MASK.format("secret")


class ContentCapture:
    """The content policy of one `Tracing`: renders, masks and cuts what goes into span attributes."""

    __slots__ = (
        "__weakref__",  # keel.tracing.logs follows live captures without keeping them alive
        "_cache",
        "_json_values",
        "_keys",
        "_messages",
        "_pii",
        "_values",
        "max_chars",
        "max_message_chars",
        "mode",
    )

    def __init__(
        self,
        mode: CaptureMode = "off",
        *,
        max_chars: int = DEFAULT_MAX_CHARS,
        max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS,
        secret_values: Iterable[str | None] = (),
    ) -> None:
        if mode not in ("off", "on", "redacted"):
            raise ValueError(f"capture mode must be off, on or redacted, not {mode!r}")
        self.mode: CaptureMode = mode
        self.max_chars = max_chars
        self.max_message_chars = max_message_chars
        self._values = redact.secret_values(secret_values)
        # The values as they appear inside JSON strings too, for the check of JSON text.
        self._json_values = tuple({*self._values, *(_dumps(v)[1:-1] for v in self._values)})
        self._pii = mode == "redacted"
        # Masked forms of recent strings: a run's message history is captured again at each model
        # request, and dict keys repeat, so most strings were masked before.
        self._cache: dict[str, str] = {}
        self._keys: dict[str, tuple[str, bool]] = {}  # mapping key -> (masked key, names a secret)
        self._messages: dict[int, tuple[weakref.ref[object], str]] = {}  # id -> (message, masked JSON)

    @property
    def secret_values(self) -> tuple[str, ...]:
        """The exact values masked wherever they appear (secret environment variables' values)."""
        return self._values

    @property
    def enabled(self) -> bool:
        """Whether content goes into spans at all (mode `on` or `redacted`)."""
        return self.mode != "off"

    def scrub(self, text: str) -> str:
        """Mask secrets in `text` (and personal data in `redacted` mode). No cut."""
        if len(text) < _MIN_SECRET:
            return text
        cache = self._cache
        masked = cache.get(text)
        if masked is None:
            if self._pii:
                masked = redact.redact_all(text, self._values)
            else:
                masked = redact.redact_secrets(text, self._values)
            if len(text) <= _CACHED_CHARS:
                if len(cache) >= _CACHE_ENTRIES:
                    cache.clear()
                cache[text] = masked
        return masked

    def text(self, text: str | None) -> str | None:
        """A free-text message (an error, an event attribute) fit for a span in every mode:
        masked like content and cut at `max_message_chars`."""
        if text is None:
            return None
        limit = self.max_message_chars
        cut = text[: limit + _MARGIN]
        masked = self.scrub(cut)
        if len(cut) < len(text) and len(masked) <= limit:
            return masked + TRUNCATED  # masks shortened what was cut
        return _truncate(masked, limit)

    def json(self, value: object) -> str | None:
        """`value` as a masked, cut JSON string, or None when content is off."""
        if self.mode == "off":
            return None
        try:
            return _truncate(self._masked_json(_jsonable(value)), self.max_chars)
        except Exception as exc:  # capturing must never break a run
            return _not_captured(exc)

    def messages(self, value: object, role: str) -> str | None:
        """`value` in the GenAI conventions' message format (`gen_ai.input.messages` /
        `gen_ai.output.messages`), masked and cut, or None when content is off.

        pydantic-ai messages are converted by pydantic-ai itself; a list of dicts with a `role`
        is taken as messages already; any other value becomes one `role` message with one text
        part (structured values as their JSON text).
        """
        if self.mode == "off":
            return None
        try:
            return self._messages_json(value, role)
        except Exception as exc:  # capturing must never break a run
            return _not_captured(exc)

    def _messages_json(self, value: object, role: str) -> str:
        messages = message_list(value)
        if messages is None:
            data = _jsonable(value)
            if type(data) is str:
                text = self._string(data, [self.max_chars + _MARGIN])
            else:
                text = self._masked_json(data)
            return _truncate(
                _dumps([{"role": role, "parts": [{"type": "text", "content": text}]}]), self.max_chars
            )
        pieces: list[str] = []
        total = 0
        for message in messages:
            piece = self._message_json(message)
            if piece:
                pieces.append(piece)
                total += len(piece) + 1
            if total > self.max_chars:
                break  # the rest lies past the cut
        return _truncate("[" + ",".join(pieces) + "]", self.max_chars)

    def _message_json(self, message: object) -> str:
        """One message's masked GenAI JSON, without the enclosing brackets (one pydantic-ai
        message may be several GenAI messages). Cached per pydantic-ai message object, held by a
        weak reference: the cache keeps at most the masked JSON alive, never the message."""
        cacheable = type(message) is not dict
        if cacheable:
            entry = self._messages.get(id(message))
            if entry is not None and entry[0]() is message:
                return entry[1]
        piece = self._masked_json(_jsonable(to_genai(message)))[1:-1]
        if cacheable:
            try:
                reference = weakref.ref(message)
            except TypeError:  # not weakly referenceable: not cached
                return piece
            if len(self._messages) >= _MESSAGE_ENTRIES:
                self._messages.clear()
            self._messages[id(message)] = (reference, piece)
        return piece

    def _masked_json(self, data: Any) -> str:
        """Compact JSON of JSON-friendly `data`, masked, not yet cut.

        In `on` mode the JSON text is checked first, with substring tests only: when it cannot
        hold a secret it is used as it is, and the walk over the data's strings, most of the
        cost of capture, is skipped. Only the part the cut keeps (plus the margin) is checked.
        In `redacted` mode the data is always walked: JSON usually holds digits, so the text
        would rarely pass a check for personal data, and checking first would cost twice."""
        if not self._pii:
            text = _dumps(data)
            if not redact.may_hold_secret(text[: self.max_chars + _MARGIN], self._json_values):
                return text
        return _dumps(self._tree(data, [self.max_chars + _MARGIN], 0))

    def _tree(self, value: Any, budget: list[int], depth: int) -> Any:
        """Mask the strings of JSON-friendly `value` (exact dicts, lists, strings, numbers: the
        output of `_jsonable`), spending `budget` characters; past the budget, strings are
        emptied and containers stop early (all of that lies past the cut anyway). Leaves are
        handled inline: this walk is most of the cost of capturing content."""
        kind = type(value)
        if kind is dict:
            budget[0] -= 2
            out: dict[str, Any] = {}
            keys = self._keys
            for key, item in value.items():
                if budget[0] <= 0:
                    break
                known = keys.get(key)
                if known is None:
                    known = (self.scrub(key), redact.sensitive_key(key))
                    if len(keys) >= _CACHE_ENTRIES:
                        keys.clear()
                    keys[key] = known
                budget[0] -= len(key) + 3
                if known[1]:
                    out[known[0]] = _SECRET_MASK
                    continue
                item_kind = type(item)
                if item_kind is str:
                    out[known[0]] = self._string(item, budget)
                elif item_kind is dict or item_kind is list:
                    out[known[0]] = "…" if depth >= _MAX_DEPTH else self._tree(item, budget, depth + 1)
                else:
                    out[known[0]] = self._scalar(item, budget)
            return out
        if kind is list:
            budget[0] -= 2
            items: list[Any] = []
            for item in value:
                if budget[0] <= 0:
                    break
                item_kind = type(item)
                if item_kind is str:
                    items.append(self._string(item, budget))
                elif item_kind is dict or item_kind is list:
                    items.append("…" if depth >= _MAX_DEPTH else self._tree(item, budget, depth + 1))
                else:
                    items.append(self._scalar(item, budget))
            return items
        if kind is str:
            return self._string(value, budget)
        return self._scalar(value, budget)

    def _string(self, value: str, budget: list[int]) -> str:
        left = budget[0]
        if left <= 0:
            return ""
        if len(value) <= left:
            budget[0] = left - len(value) - 2
            return self.scrub(value)
        budget[0] = 0
        return self.scrub(value[:left]) + TRUNCATED

    def _scalar(self, value: Any, budget: list[int]) -> Any:
        budget[0] -= 8
        if type(value) is int and self._pii and abs(value) >= 10**8:
            text = str(value)
            masked = self.scrub(text)  # a card or phone number held as a number
            return value if masked == text else masked
        if isinstance(value, str):  # not expected after `_jsonable`; never let a string through unmasked
            return self._string(str(value), budget)
        return value


def size_of(value: object) -> int:
    """Size in bytes of `value` as text: UTF-8 for strings, compact JSON for anything else."""
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode("utf-8", "replace"))
    if isinstance(value, bytes | bytearray):
        return len(value)
    try:
        return len(pydantic_core.to_json(value, fallback=_fallback, bytes_mode="base64"))
    except Exception:  # a circular or otherwise unserialisable value has no size worth reporting
        return 0


def _fallback(value: Any) -> str:
    return f"<{type(value).__name__}>"


def _jsonable(value: object) -> Any:
    """JSON-friendly data (dicts, lists, str, numbers, bools, None) from any value."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value  # exact types only: a str subclass goes through pydantic-core and comes out a str
    if isinstance(value, Mapping) and not value:
        return {}
    try:
        return pydantic_core.to_jsonable_python(value, fallback=_fallback, bytes_mode="base64")
    except Exception:  # circular references, or a type that fails to serialise
        return f"<unserialisable {type(value).__name__}>"


def _dumps(value: Any) -> str:
    """Compact JSON of JSON-friendly `value` (pydantic-core's serialiser: several times faster
    than `json.dumps` on small values)."""
    return pydantic_core.to_json(value, fallback=_fallback, inf_nan_mode="strings").decode("utf-8", "replace")


def _not_captured(exc: Exception) -> str:
    return f"<not captured: {type(exc).__name__}>"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + TRUNCATED
