"""The circuit breakers as the run loop's wrappers use them: admit a call, settle it, and record
refusals and state changes in the run's trace and events.

- A refused call is a `circuit_open` event on the run's span. A model refused before its first
  attempt of a request also makes a `ModelFallback` event (category `circuit_open`) to the next
  model of the chain, as a failed model does.
- A state change is a `circuit_state` event on the span of the call that caused it (the `chat`
  or `execute_tool` span), or on the run's span when no call span is at hand (open → half-open
  happens when a call asks), and a log line (`keel.circuit`).
"""

from __future__ import annotations

from dataclasses import dataclass

from keel.errors import ErrorCategory
from keel.runtime.circuit import CircuitBreaker, CircuitOpenError, Outcome, Permit, Refusal, Transition
from keel.runtime.events import ModelFallback
from keel.runtime.recorder import RunRecorder
from keel.tracing import SpanHandle


def note_transition(
    transition: Transition | None, recorder: RunRecorder | None, span: SpanHandle | None = None
) -> None:
    """Record a state change on `span`, else on the run's span."""
    if transition is None:
        return
    target = span if span is not None else (recorder.span if recorder is not None else None)
    if target is not None:
        target.event("circuit_state", **transition.attributes())


def note_refusal(refusal: Refusal, recorder: RunRecorder | None) -> None:
    if recorder is not None and recorder.span is not None:
        recorder.span.event("circuit_open", **refusal.attributes())


@dataclass(frozen=True)
class ModelCircuit:
    """The breaker of one model of an agent's chain, and the models before and after it (None
    for the first and the last)."""

    breaker: CircuitBreaker
    label: str
    next_label: str | None = None
    previous_label: str | None = None

    async def admit(self, recorder: RunRecorder | None, attempt: int) -> Permit:
        """A permit for this attempt; raises `CircuitOpenError` when the circuit refuses it."""
        admission = self.breaker.acquire()
        note_transition(admission.transition, recorder)
        if admission.permit is not None:
            return admission.permit
        refusal = admission.refusal
        assert refusal is not None
        note_refusal(refusal, recorder)
        if recorder is not None and attempt == 1 and self.next_label is not None:
            # After a failed attempt, the next model's own fallback note covers it.
            event = ModelFallback(self.label, self.next_label, ErrorCategory.CIRCUIT_OPEN)
            if recorder.span is not None:
                recorder.span.event(
                    "fallback", **{"keel.fallback.from": event.from_model, "keel.fallback.to": event.to_model}
                )
            await recorder.emit(event)
        raise CircuitOpenError(self.label, refusal.describe())

    def settle(
        self, permit: Permit, outcome: Outcome, span: SpanHandle | None, recorder: RunRecorder | None
    ) -> None:
        note_transition(permit.done(outcome), recorder, span)

    def refuses(self) -> bool:
        """Whether a next attempt would be refused now (so no backoff is worth waiting)."""
        return self.breaker.is_open()

    def follows(self, label: str) -> bool:
        """Whether `label` comes right before this model in the chain. A failed call of an earlier
        model means the ones in between were refused, and each refusal made its own fallback event."""
        return self.previous_label is None or label == self.previous_label


@dataclass(frozen=True)
class ToolCircuit:
    """The breaker of one tool."""

    breaker: CircuitBreaker

    def admit(self, recorder: RunRecorder | None) -> Permit | Refusal:
        admission = self.breaker.acquire()
        note_transition(admission.transition, recorder)
        if admission.permit is not None:
            return admission.permit
        assert admission.refusal is not None
        note_refusal(admission.refusal, recorder)
        return admission.refusal

    def settle(
        self, permit: Permit, outcome: Outcome, span: SpanHandle | None, recorder: RunRecorder | None
    ) -> None:
        note_transition(permit.done(outcome), recorder, span)

    def refuses(self) -> bool:
        return self.breaker.is_open()
