"""What guardrails need from a run that the run loop does not keep on its own: the results of its
tool calls (the retrieved context a grounding check compares the answer with) and the run's user
(rate limits per user).

`RunCapture` is a pydantic-ai capability added to an agent that has guardrails (see
`keel.runtime.runner`): before the run it notes the run's user on the run's recorder, and after
each tool call that returned it appends the result, as text, to `recorder.retrieved`, but only when
one of the guardrails reads the context (`keep_results`), so other agents pay nothing for it. A
call that failed or was refused returns no result and adds nothing. On a durable run's replay a
completed call returns its recorded result through the same hook, so the context is the same.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic_ai import RunContext
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import ToolCallPart
from pydantic_ai.tools import ToolDefinition

from keel.guardrails.policy import ContextItem
from keel.guardrails.untrusted import unmark

MAX_RESULT_CHARS = 100_000
"""A tool result longer than this is cut (the judge reads a bounded context anyway)."""


def result_text(value: Any) -> str:
    """A tool's result as text: strings as they are (the content of an untrusted-data marking,
    see keel.guardrails.untrusted), anything else as JSON."""
    if isinstance(value, str):
        value = unmark(value)
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = str(value)
    return text[:MAX_RESULT_CHARS]


class RunCapture(AbstractCapability[Any]):
    """Notes the run's user, and (with `keep_results`) each tool result, on the run's recorder."""

    def __init__(self, *, keep_results: bool) -> None:
        self.keep_results = keep_results

    async def before_run(self, ctx: RunContext[Any]) -> None:
        from keel.runtime.recorder import current_recorder

        recorder = current_recorder()
        if recorder is not None:
            recorder.user_id = getattr(ctx.deps, "user_id", None)

    async def after_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: Any,
        result: Any,
    ) -> Any:
        if self.keep_results:
            from keel.runtime.recorder import current_recorder

            recorder = current_recorder()
            if recorder is not None:
                recorder.retrieved.append(
                    ContextItem(
                        source=f"tool:{call.tool_name}",
                        text=result_text(result),
                        tool=call.tool_name,
                        call_id=call.tool_call_id,
                    )
                )
        return result
