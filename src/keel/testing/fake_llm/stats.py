"""Counters and the bounded request log: what the fake provider saw and answered."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

from pydantic import JsonValue

from keel.testing.fake_llm.faults import FAULT_KINDS
from keel.testing.fake_llm.wire import ChatRequest, JsonObject

OUTCOMES: tuple[str, ...] = ("ok", *FAULT_KINDS, "bad_request", "script_error")
"""Every outcome a chat request can have: `ok`, each fault kind, `bad_request` (HTTP 400: the body
was not a valid request) and `script_error` (HTTP 500: the Python script raised)."""


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One chat request in the log. Tokens are those put in `usage` (0 unless the outcome is ok)."""

    index: int
    timestamp: float
    model: str
    outcome: str
    stream: bool
    has_tools: bool
    last_role: str | None
    prompt_tokens: int
    completion_tokens: int
    rule: str | None = None
    error: str | None = None

    def to_json(self) -> JsonObject:
        return {
            "index": self.index,
            "timestamp": self.timestamp,
            "model": self.model,
            "outcome": self.outcome,
            "stream": self.stream,
            "has_tools": self.has_tools,
            "last_role": self.last_role,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "rule": self.rule,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> RequestRecord:
        return cls(
            index=_int(data, "index"),
            timestamp=float(cast(float, data["timestamp"])),
            model=str(data["model"]),
            outcome=str(data["outcome"]),
            stream=bool(data["stream"]),
            has_tools=bool(data["has_tools"]),
            last_role=_opt_str(data, "last_role"),
            prompt_tokens=_int(data, "prompt_tokens"),
            completion_tokens=_int(data, "completion_tokens"),
            rule=_opt_str(data, "rule"),
            error=_opt_str(data, "error"),
        )


@dataclass(frozen=True, slots=True)
class ModelStats:
    requests: int = 0
    outcomes: Mapping[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_json(self) -> JsonObject:
        return {
            "requests": self.requests,
            "outcomes": dict(self.outcomes),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> ModelStats:
        return cls(
            requests=_int(data, "requests"),
            outcomes=_counts(data["outcomes"]),
            prompt_tokens=_int(data, "prompt_tokens"),
            completion_tokens=_int(data, "completion_tokens"),
        )


@dataclass(frozen=True, slots=True)
class Stats:
    """A snapshot of the counters since the last reset. `outcomes` has every outcome, zeros included."""

    requests: int
    outcomes: Mapping[str, int]
    prompt_tokens: int
    completion_tokens: int
    streaming: int
    non_streaming: int
    models: Mapping[str, ModelStats]
    log: tuple[RequestRecord, ...]

    @property
    def ok(self) -> int:
        return self.outcomes.get("ok", 0)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_json(self) -> JsonObject:
        return {
            "requests": self.requests,
            "outcomes": dict(self.outcomes),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "streaming": self.streaming,
            "non_streaming": self.non_streaming,
            "models": {name: model.to_json() for name, model in self.models.items()},
            "log": [record.to_json() for record in self.log],
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> Stats:
        """Read back `to_json` output (the body of `GET /_fake/stats`)."""
        models = data["models"]
        log = data["log"]
        if not isinstance(models, dict) or not isinstance(log, list):
            raise ValueError("not a fake LLM stats document")
        return cls(
            requests=_int(data, "requests"),
            outcomes=_counts(data["outcomes"]),
            prompt_tokens=_int(data, "prompt_tokens"),
            completion_tokens=_int(data, "completion_tokens"),
            streaming=_int(data, "streaming"),
            non_streaming=_int(data, "non_streaming"),
            models={name: ModelStats.from_json(_obj(value)) for name, value in models.items()},
            log=tuple(RequestRecord.from_json(_obj(item)) for item in log),
        )


class StatsRecorder:
    """Mutable counters. Not thread-safe by itself: the server records and snapshots under its lock."""

    def __init__(self, log_size: int = 1000) -> None:
        self.log_size = log_size
        self.reset()

    def reset(self) -> None:
        self._count = 0
        self._outcomes = dict.fromkeys(OUTCOMES, 0)
        self._prompt_tokens = 0
        self._completion_tokens = 0
        self._streaming = 0
        self._models: dict[str, list[int]] = {}  # requests, prompt, completion
        self._model_outcomes: dict[str, dict[str, int]] = {}
        self._log: deque[RequestRecord] = deque(maxlen=self.log_size)
        self._requests: deque[ChatRequest] = deque(maxlen=self.log_size)

    def record(
        self,
        request: ChatRequest | None,
        outcome: str,
        *,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        rule: str | None = None,
        error: str | None = None,
    ) -> None:
        self._count += 1
        self._outcomes[outcome] += 1
        self._prompt_tokens += prompt_tokens
        self._completion_tokens += completion_tokens
        model = request.model if request is not None else ""
        stream = request.stream if request is not None else False
        self._streaming += stream
        if request is not None:  # a body that did not parse has no model
            counts = self._models.get(model)
            if counts is None:
                counts = self._models[model] = [0, 0, 0]
                self._model_outcomes[model] = {}
            counts[0] += 1
            counts[1] += prompt_tokens
            counts[2] += completion_tokens
            per_model = self._model_outcomes[model]
            per_model[outcome] = per_model.get(outcome, 0) + 1
        last = request.last_message if request is not None else None
        self._log.append(
            RequestRecord(
                index=self._count,
                timestamp=time.time(),
                model=model,
                outcome=outcome,
                stream=stream,
                has_tools=bool(request is not None and request.tools),
                last_role=last.role if last is not None else None,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                rule=rule,
                error=error,
            )
        )
        if request is not None:
            self._requests.append(request)

    def snapshot(self) -> Stats:
        return Stats(
            requests=self._count,
            outcomes=dict(self._outcomes),
            prompt_tokens=self._prompt_tokens,
            completion_tokens=self._completion_tokens,
            streaming=self._streaming,
            non_streaming=self._count - self._streaming,
            models={
                name: ModelStats(
                    requests=counts[0],
                    outcomes=dict(self._model_outcomes[name]),
                    prompt_tokens=counts[1],
                    completion_tokens=counts[2],
                )
                for name, counts in self._models.items()
            },
            log=tuple(self._log),
        )

    def model_names(self) -> list[str]:
        return list(self._models)

    def requests(self) -> list[ChatRequest]:
        """The last `log_size` parsed requests (bodies that failed to parse are not kept)."""
        return list(self._requests)


def _obj(value: JsonValue) -> JsonObject:
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _int(data: JsonObject, key: str) -> int:
    value = data[key]
    if not isinstance(value, int):
        raise ValueError(f"{key!r} must be an integer")
    return value


def _opt_str(data: JsonObject, key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _counts(value: JsonValue) -> dict[str, int]:
    return {key: count for key, count in _obj(value).items() if isinstance(count, int)}
