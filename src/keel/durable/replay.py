"""The pydantic-ai capabilities that make a compiled agent durable, and keep its record exact.

`DBOSDurability` turns every model request into one DBOS step: all `RetryingModel` attempts and
fallbacks of that request happen inside it, and a replayed step returns the stored response
without calling the provider. The attempts are recorded by `RetryingModel` inside the step, so on
replay they would be lost; instead, in durable runs they travel in the response's metadata
(`keel.runtime.retry.attach_calls`), and `KeelReplay.after_model_request`, which runs in workflow
code both live and on replay, moves them onto the run's recorder. A recovered run therefore lists
every completed model request exactly once, with its tokens and cost.

Tool calls are steps of their own (`PolicyFunctionSchema._durable_call`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable
from typing import Any

from pydantic_ai import RunContext
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.durable_exec.dbos import DBOSDurability
from pydantic_ai.messages import (
    AgentStreamEvent,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
)

from keel.runtime.events import TextDelta
from keel.runtime.recorder import current_recorder
from keel.runtime.retry import detach_calls, note_text

# Text deltas are batched: each durable event is a database write.
DELTA_FLUSH_S = 0.05


class KeelReplay(AbstractCapability[Any]):
    """Applies the model calls carried by each step's response to the run's recorder."""

    async def after_model_request(
        self, ctx: RunContext[Any], *, request_context: Any, response: ModelResponse
    ) -> ModelResponse:
        recorder = current_recorder()
        calls = detach_calls(response)
        if recorder is not None:
            for call in calls:
                recorder.record_model_call(call)
            note_text(recorder, response)
        return response


async def durable_stream_handler(ctx: RunContext[Any], events: AsyncIterable[AgentStreamEvent]) -> None:
    """Runs inside the model step of a streaming durable run: text deltas go to the run's event
    sink in batches (every `DELTA_FLUSH_S`), so a token stream is not one write per token."""
    recorder = current_recorder()
    buffer: list[str] = []
    last = time.monotonic()
    async for event in events:
        text = ""
        if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
            text = event.part.content
        elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
            text = event.delta.content_delta or ""
        if not text or recorder is None:
            continue
        buffer.append(text)
        now = time.monotonic()
        if now - last >= DELTA_FLUSH_S:
            await recorder.emit(TextDelta("".join(buffer)))
            buffer.clear()
            last = now
    if buffer and recorder is not None:
        await recorder.emit(TextDelta("".join(buffer)))


def durable_capabilities(agent_name: str, *, stream: bool) -> list[AbstractCapability[Any]]:
    """The capabilities of a durable agent. Step names embed `agent_name`: renaming an agent
    strands its runs in flight (they can no longer be replayed)."""
    if stream:
        durability = DBOSDurability(name=f"{agent_name}__stream", event_stream_handler=durable_stream_handler)
    else:
        durability = DBOSDurability(name=agent_name)
    return [KeelReplay(), durability]
