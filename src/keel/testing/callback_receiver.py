"""A real callback receiver on loopback, for tests: what did Keel deliver, and was it signed?

    with CallbackReceiver(secrets=["s3cret"], replies=[500, Reply(503, retry_after=2), 200]) as receiver:
        ...  # configure an endpoint at receiver.url + "/hooks/", run with that callback_url
        first, second, third = receiver.wait_for(3, timeout=5)
        assert third.signature_valid and third.delivery_id == f"{run_id}:3"

In async tests use `async with CallbackReceiver() as receiver:` and
`await receiver.wait_for_async(n)`.

A stdlib `ThreadingHTTPServer` in a daemon thread (like `keel.testing.otlp_receiver`) accepts
POSTs on any path. Every delivery is recorded before it is answered, with its headers (names
lower-cased), exact body bytes, arrival time, and whether its signature verifies against the
receiver's secrets (`keel.api.signing.verify`, with the same replay window a real receiver would
use). Answers follow the script of `replies`, one per delivery, then `default`: a status, with an
optional Retry-After, an optional delay, or `hang=True` to never answer (until the receiver
stops), for testing timeouts.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from keel.api.signing import DEFAULT_TOLERANCE_S, SignatureError, verify
from keel.testing.waiting import wait_for_items, wait_for_items_async

__all__ = ["CallbackReceiver", "Delivery", "Reply"]


@dataclass(frozen=True)
class Reply:
    """How to answer one delivery. `retry_after`: seconds, or a header value such as an HTTP date."""

    status: int = 200
    retry_after: float | str | None = None
    delay: float = 0.0  # seconds to wait before answering
    hang: bool = False  # never answer; the connection is dropped when the receiver stops
    headers: tuple[tuple[str, str], ...] = ()  # extra response headers, e.g. (("Location", url),)


@dataclass(frozen=True)
class Delivery:
    """One POST as received. `signature_valid` is None when the receiver was given no secrets."""

    path: str  # with the query string
    headers: dict[str, str]  # names lower-cased
    body: bytes
    received_at: float  # time.time()
    signature_valid: bool | None
    signature_error: str | None
    reply: Reply

    @property
    def delivery_id(self) -> str | None:
        """The `Keel-Delivery` header: `<run_id>:<attempt>`, the same for a repeated attempt."""
        return self.headers.get("keel-delivery")

    @property
    def attempt(self) -> int | None:
        raw = self.headers.get("keel-attempt")
        return int(raw) if raw is not None and raw.isdigit() else None

    def json(self) -> Any:
        return json.loads(self.body)


class CallbackReceiver:
    """An HTTP server on 127.0.0.1 that records callback deliveries and answers as scripted."""

    def __init__(
        self,
        secrets: Iterable[str | bytes] = (),
        *,
        replies: Iterable[int | Reply] = (),
        default: int | Reply = 200,
        tolerance_s: int = DEFAULT_TOLERANCE_S,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.secrets = list(secrets)
        self.default = _reply(default)
        self.tolerance_s = tolerance_s
        self._host, self._port = host, port
        self._script: deque[Reply] = deque(_reply(item) for item in replies)
        self._deliveries: list[Delivery] = []
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Self:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = ThreadingHTTPServer((self._host, self._port), _handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="callback-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hanging answers are released (their connections dropped)."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)  # shutdown waits for the serving loop's next poll

    # -- scripting and results -------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:43117; deliveries may go to any path under it."""
        if self._server is None:
            raise RuntimeError("the receiver is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, *replies: int | Reply) -> None:
        """Answer the next deliveries with these replies, in order (after any still scripted)."""
        with self._changed:
            self._script.extend(_reply(item) for item in replies)

    @property
    def deliveries(self) -> list[Delivery]:
        with self._changed:
            return list(self._deliveries)

    def clear(self) -> None:
        with self._changed:
            self._deliveries.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Delivery]:
        """Block until at least `count` deliveries arrived; return them all. TimeoutError otherwise."""
        return wait_for_items(self._changed, self._deliveries, count, timeout, "deliveries")

    async def wait_for_async(self, count: int, timeout: float = 5.0) -> list[Delivery]:  # noqa: ASYNC109 (mirrors wait_for)
        """`wait_for` for async tests: polls, so the event loop keeps running meanwhile."""
        return await wait_for_items_async(lambda: self.deliveries, count, timeout, "deliveries")

    def _receive(self, path: str, headers: dict[str, str], body: bytes) -> Delivery:
        valid: bool | None = None
        problem: str | None = None
        if self.secrets:
            try:
                verify(self.secrets, headers, body, tolerance_s=self.tolerance_s)
                valid = True
            except SignatureError as exc:
                valid, problem = False, str(exc)
        with self._changed:
            reply = self._script.popleft() if self._script else self.default
            delivery = Delivery(path, headers, body, time.time(), valid, problem, reply)
            self._deliveries.append(delivery)
            self._changed.notify_all()
        return delivery


def _reply(item: int | Reply) -> Reply:
    return item if isinstance(item, Reply) else Reply(status=item)


def _handler(receiver: CallbackReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self._answer(Reply(411))
                return
            body = self.rfile.read(int(length))
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = receiver._receive(self.path, headers, body).reply
            if reply.hang:
                receiver._stopping.wait()
                self.close_connection = True
                return
            if reply.delay > 0 and receiver._stopping.wait(reply.delay):
                self.close_connection = True
                return
            self._answer(reply)

        def _answer(self, reply: Reply) -> None:
            self.send_response(reply.status)
            if reply.retry_after is not None:
                value = reply.retry_after
                self.send_header("Retry-After", f"{value:g}" if isinstance(value, float | int) else value)
            for name, value in reply.headers:
                self.send_header(name, value)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the receiver
            pass

    return Handler
