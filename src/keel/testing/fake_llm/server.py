"""`FakeLLM`: the fake OpenAI-compatible server on the current event loop.

Routes (paths also accepted without the `/v1` prefix, and with a trailing slash):

    POST /v1/chat/completions      the chat-completions API (JSON or SSE)
    GET  /v1/models[/<id>]         model listing
    GET  /_fake/health             {"ok": true}
    GET  /_fake/stats              counters and the request log (`Stats.to_json`)
    POST /_fake/reset              zero counters, rewind sequences, re-seed draws
    POST /_fake/script             replace the rules (a rules document as JSON)
    GET|POST /_fake/faults         read / replace the fault configuration (`Faults` as JSON)
    GET|POST /_fake/latency        read / replace the latency (`Latency` as JSON)
    GET  /_fake/requests           the request bodies seen (last 1000), oldest first

All state is guarded by one re-entrant lock, so the Python API is safe to call from any thread
(`FakeLLMThread` runs the server on a background thread).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Self

from pydantic import JsonValue, ValidationError

from keel.errors import ConfigError, UsageError
from keel.testing.fake_llm.faults import FaultInjector, Faults, Outcome
from keel.testing.fake_llm.http import HttpServerProtocol
from keel.testing.fake_llm.latency import Latency, LatencySampler
from keel.testing.fake_llm.messages import Hang as HangResponse
from keel.testing.fake_llm.messages import HttpRequest, Outgoing, Reset, Response, StreamedResponse
from keel.testing.fake_llm.render import (
    MALFORMED_BODY,
    MALFORMED_EVENTS,
    completion_body,
    error_body,
    resolve,
    stream_events,
)
from keel.testing.fake_llm.rules import ScriptLike, as_script, parse_rules
from keel.testing.fake_llm.script import Reply, Script
from keel.testing.fake_llm.stats import Stats, StatsRecorder
from keel.testing.fake_llm.wire import BadRequest, ChatRequest, parse_chat_request

logger = logging.getLogger("keel.testing.fake_llm")

CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
DEFAULT_MODELS = ("keel-fake",)
CUT_STREAM_TEXT = "This stream is cut short by Keel's fake LLM before it finishes. " * 4

FaultsLike = Faults | Mapping[str, object] | None
LatencyLike = Latency | Mapping[str, object] | float | None
_AdminHandler = Callable[[HttpRequest], Response]


def format_seconds(value: float) -> str:
    """`1` for 1.0, `0.05` for 0.05: the Retry-After value as sent."""
    if value == int(value):
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _json_response(value: JsonValue, status: int = 200) -> Response:
    return Response(status, json.dumps(value, ensure_ascii=False).encode())


def _invalid(message: str, status: int = 400) -> Response:
    return Response(status, error_body(message, "invalid_request_error"))


def _as_faults(faults: FaultsLike) -> Faults:
    if faults is None:
        return Faults()
    return faults if isinstance(faults, Faults) else Faults.model_validate(dict(faults))


def _as_latency(latency: LatencyLike) -> Latency:
    if latency is None:
        return Latency()
    if isinstance(latency, Latency):
        return latency
    if isinstance(latency, int | float):
        return Latency.fixed(float(latency))
    return Latency.model_validate(dict(latency))


class FakeLLM:
    """A fake OpenAI-compatible chat-completions server over real HTTP on loopback.

    `script`: what to answer (see `ScriptLike`); `faults`: what goes wrong; `latency`: how slow;
    `seed`: makes fault draws and latency samples reproducible; `models`: names listed by
    `/v1/models` (besides those seen in requests); `stream_chunk_chars`: characters per streamed
    content or arguments delta; `log_size`: how many requests the log keeps.
    """

    def __init__(
        self,
        script: ScriptLike = None,
        *,
        faults: FaultsLike = None,
        latency: LatencyLike = None,
        seed: int = 0,
        models: Sequence[str] = DEFAULT_MODELS,
        stream_chunk_chars: int = 16,
        log_size: int = 1000,
    ) -> None:
        if stream_chunk_chars < 1:
            raise UsageError("stream_chunk_chars must be >= 1")
        self.seed = seed
        self.models = tuple(models)
        self.stream_chunk_chars = stream_chunk_chars
        self._lock = threading.RLock()
        self._script = as_script(script)
        self._injector = FaultInjector(_as_faults(faults), seed)
        self._sampler = LatencySampler(_as_latency(latency), seed)
        self._stats = StatsRecorder(log_size)
        self._completions = 0
        self._calls = 0
        self._server: asyncio.Server | None = None
        self._connections: set[HttpServerProtocol] = set()
        self.host = ""
        self.port = 0
        self._admin: dict[tuple[str, str], _AdminHandler] = {
            ("GET", "/_fake/health"): lambda _: _json_response({"ok": True}),
            ("GET", "/_fake/stats"): lambda _: _json_response(self.stats().to_json()),
            ("POST", "/_fake/reset"): self._post_reset,
            ("POST", "/_fake/script"): self._post_script,
            ("GET", "/_fake/faults"): lambda _: _json_response(self.faults.model_dump(mode="json")),
            ("POST", "/_fake/faults"): self._post_faults,
            ("GET", "/_fake/latency"): lambda _: _json_response(self.latency.model_dump(mode="json")),
            ("POST", "/_fake/latency"): self._post_latency,
            ("GET", "/_fake/requests"): lambda _: _json_response([r.body for r in self.requests()]),
            ("GET", "/v1/models"): self._get_models,
            ("GET", "/models"): self._get_models,
        }

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        """Listen on `host:port` (port 0: a free port, see `.port`). Returns self."""
        if self._server is not None:
            raise UsageError("this fake LLM server is already started")
        if host == "localhost":
            host = "127.0.0.1"  # one socket, one port (localhost may also resolve to ::1)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: HttpServerProtocol(self.handle, self._connections), host, port, backlog=2048
        )
        address = self._server.sockets[0].getsockname()
        self.host, self.port = str(address[0]), int(address[1])
        return self

    async def stop(self) -> None:
        """Stop listening and abort open connections (in-flight delays and hangs are cancelled)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = [task for conn in list(self._connections) if (task := conn.shutdown()) is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def started(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        """`http://host:port`, no trailing slash."""
        if not self.port:
            raise UsageError("the fake LLM server is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, `http://host:port/v1`."""
        return self.url + "/v1"

    # -- configuration -----------------------------------------------------------------------------

    @property
    def script(self) -> Script:
        return self._script

    @property
    def faults(self) -> Faults:
        return self._injector.faults

    @property
    def latency(self) -> Latency:
        return self._sampler.latency

    def set_script(self, script: ScriptLike) -> None:
        """Replace the script (rules document, file path, callable, Reply, Script; None = default)."""
        new = as_script(script)
        with self._lock:
            self._script = new

    def set_faults(self, faults: FaultsLike) -> None:
        """Replace the fault configuration; its sequence starts over and draws are re-seeded."""
        injector = FaultInjector(_as_faults(faults), self.seed)
        with self._lock:
            self._injector = injector

    def set_latency(self, latency: LatencyLike) -> None:
        """Replace the latency (a number is fixed milliseconds); samples are re-seeded."""
        sampler = LatencySampler(_as_latency(latency), self.seed)
        with self._lock:
            self._sampler = sampler

    def reset(self) -> None:
        """Zero the counters and the log, rewind reply and fault sequences, re-seed draws, restart ids."""
        with self._lock:
            self._stats.reset()
            self._script.reset()
            self._injector.reset()
            self._sampler.reset()
            self._completions = 0
            self._calls = 0

    def restore_defaults(self) -> None:
        """Default script, no faults, no latency, and `reset()`: a fresh server, without restarting."""
        with self._lock:
            self.set_script(None)
            self.set_faults(None)
            self.set_latency(None)
            self.reset()

    def stats(self) -> Stats:
        with self._lock:
            return self._stats.snapshot()

    def requests(self) -> list[ChatRequest]:
        """The parsed requests seen since the last reset (the last `log_size`), oldest first."""
        with self._lock:
            return self._stats.requests()

    # -- request handling ----------------------------------------------------------------------------

    def handle(self, request: HttpRequest) -> Outgoing:
        path = request.path.rstrip("/") if len(request.path) > 1 else request.path
        if path in CHAT_PATHS:
            if request.method != "POST":
                return _invalid(f"{request.method} is not allowed on {path}; use POST", 405)
            return self._chat(request)
        handler = self._admin.get((request.method, path))
        if handler is not None:
            return handler(request)
        if request.method == "GET" and path.startswith(("/v1/models/", "/models/")):
            model = path.rsplit("/", 1)[1]
            return _json_response({"id": model, "object": "model", "created": 0, "owned_by": "keel"})
        if any(known == path for _, known in self._admin):
            return _invalid(f"{request.method} is not allowed on {path}", 405)
        return Response(404, error_body(f"no route for {request.method} {path}", "invalid_request_error"))

    def _chat(self, http: HttpRequest) -> Outgoing:
        try:
            request = parse_chat_request(json.loads(http.body))
        except (ValueError, BadRequest) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            message = exc.message if isinstance(exc, BadRequest) else f"the body is not valid JSON: {exc}"
            param = exc.param if isinstance(exc, BadRequest) else None
            with self._lock:
                self._stats.record(None, "bad_request", error=message)
            return Response(400, error_body(message, "invalid_request_error", param=param))

        with self._lock:
            outcome: Outcome = self._injector.next()
            delay = self._sampler.sample()
            chunk_delay = self._sampler.chunk_delay
            if outcome == "cut_stream" and not request.stream:
                outcome = "reset"
            if outcome != "ok":
                self._stats.record(request, outcome)
                self._completions += 1
                completion_id = f"chatcmpl-fake{self._completions}"
            else:
                try:
                    decision = self._script.decide(request)
                    completion = resolve(decision.reply, request, self._next_call_id)
                except Exception as exc:
                    logger.exception("the fake LLM script failed")
                    message = f"the fake LLM script raised {type(exc).__name__}: {exc}"
                    self._stats.record(request, "script_error", error=message)
                    return Response(500, error_body(message, "server_error"), delay=delay)
                self._completions += 1
                completion_id = f"chatcmpl-fake{self._completions}"
                self._stats.record(
                    request,
                    "ok",
                    prompt_tokens=completion.prompt_tokens,
                    completion_tokens=completion.completion_tokens,
                    rule=decision.rule,
                )

        if outcome != "ok":
            return self._fault(outcome, request, completion_id, delay)
        created = int(time.time())
        if request.stream:
            events = stream_events(request, completion, completion_id, created, self.stream_chunk_chars)
            return StreamedResponse(events.events, delay=delay, chunk_delay=chunk_delay)
        return Response(200, completion_body(request, completion, completion_id, created), delay=delay)

    def _next_call_id(self) -> str:
        self._calls += 1
        return f"call_{self._calls}"

    def _fault(self, outcome: Outcome, request: ChatRequest, completion_id: str, delay: float) -> Outgoing:
        faults = self._injector.faults
        if outcome == "429":
            headers: list[tuple[str, str]] = []
            if faults.retry_after is not None:
                headers.append(("retry-after", format_seconds(faults.retry_after)))
                if faults.retry_after_ms_header:
                    headers.append(("retry-after-ms", str(round(faults.retry_after * 1000))))
            body = error_body(
                f"Rate limit reached for {request.model} (injected by Keel's fake LLM).",
                "requests",
                code="rate_limit_exceeded",
            )
            return Response(429, body, headers=tuple(headers), delay=delay)
        if outcome == "500":
            message = "The server had an error while processing your request (injected by Keel's fake LLM)."
            return Response(500, error_body(message, "server_error"), delay=delay)
        if outcome == "503":
            message = "The model is overloaded, please try again later (injected by Keel's fake LLM)."
            return Response(503, error_body(message, "server_error", code="service_unavailable"), delay=delay)
        if outcome == "reset":
            return Reset(delay=delay)
        if outcome == "hang":
            return HangResponse(seconds=faults.hang_seconds, delay=delay)
        if outcome == "malformed":
            if request.stream:
                return StreamedResponse(MALFORMED_EVENTS, delay=delay)
            return Response(200, MALFORMED_BODY, delay=delay)
        # cut_stream (always a streaming request here): a real stream, stopped before it finishes
        with self._lock:
            completion = resolve(Reply(text=CUT_STREAM_TEXT), request, self._next_call_id)
        events = stream_events(request, completion, completion_id, int(time.time()), self.stream_chunk_chars)
        sent = min(faults.cut_after_events, events.final_index)
        return StreamedResponse(
            events.events[:sent], delay=delay, chunk_delay=self._sampler.chunk_delay, truncate=True
        )

    # -- admin endpoints -------------------------------------------------------------------------------

    def _post_reset(self, _: HttpRequest) -> Response:
        self.reset()
        return _json_response({"ok": True})

    def _post_script(self, http: HttpRequest) -> Response:
        try:
            script = parse_rules(json.loads(http.body), source="POST /_fake/script")
        except ValueError as exc:
            return _invalid(f"the body is not valid JSON: {exc}")
        except ConfigError as exc:
            return _invalid(str(exc))
        self.set_script(script)
        return _json_response({"ok": True, "rules": len(script.rules)})

    def _post_faults(self, http: HttpRequest) -> Response:
        try:
            self.set_faults(Faults.model_validate_json(http.body or b"{}"))
        except ValidationError as exc:
            return _invalid(f"invalid faults: {exc}")
        return _json_response({"ok": True, "faults": self.faults.model_dump(mode="json")})

    def _post_latency(self, http: HttpRequest) -> Response:
        try:
            self.set_latency(Latency.model_validate_json(http.body or b"{}"))
        except ValidationError as exc:
            return _invalid(f"invalid latency: {exc}")
        return _json_response({"ok": True, "latency": self.latency.model_dump(mode="json")})

    def _get_models(self, _: HttpRequest) -> Response:
        with self._lock:
            seen = self._stats.model_names()
        names = list(dict.fromkeys([*self.models, *seen]))
        data: list[JsonValue] = [
            {"id": n, "object": "model", "created": 0, "owned_by": "keel"} for n in names
        ]
        return _json_response({"object": "list", "data": data})
