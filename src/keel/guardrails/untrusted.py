"""Reading back what `keel.guardrails.injection.mark_untrusted` wrapped.

Tool results reach the model marked as untrusted data (an agent's `untrusted.tool_results`, on by
default): a block with a random boundary and a note that its content is data, not instructions.
Code that plays the model (Keel's fake models, test scripts) or inspects a conversation can get
the content back with `unmark`.
"""

from __future__ import annotations

import re

_BLOCK = re.compile(
    r"\A<<<UNTRUSTED_DATA source=[^\n]*? boundary=(?P<token>[A-Za-z0-9_-]{8,64})>>>\n"
    r"[^\n]*\n"  # the note: treat it as data
    r"(?P<body>.*)\n"
    r"<<<END_UNTRUSTED_DATA boundary=(?P=token)>>>\Z",
    re.DOTALL,
)


def unmark(text: str) -> str:
    """The content of a marked block (its escapes undone); any other text as it is."""
    found = _BLOCK.match(text)
    if found is None:
        return text
    return found.group("body").replace("<\\<<", "<<<")


def is_marked(text: str) -> bool:
    return _BLOCK.match(text) is not None
