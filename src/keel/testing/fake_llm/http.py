"""A minimal, correct HTTP/1.1 server protocol on `asyncio.Protocol`, built for speed.

What it does: keep-alive (HTTP/1.1 default, HTTP/1.0 with `Connection: keep-alive`), pipelining
(responses in request order), `Content-Length` request bodies, `Expect: 100-continue`, chunked
responses for streams, write flow control. What it refuses: chunked request bodies (501), heads over
64 KiB (431), bodies over 32 MiB (413), malformed requests (400); each answer closes the connection.

The application is a plain function `HttpRequest -> Outgoing`, where `Outgoing` describes what to
send: a `Response`, a `StreamedResponse` (SSE events, optionally cut short), a `Reset` (abortive close,
the client sees ECONNRESET) or a `Hang` (no answer, then close). Anything without a delay is written
synchronously from `data_received`; only delayed work costs a task.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections import deque
from typing import cast

from keel.testing.fake_llm.messages import (
    MAX_HEAD_BYTES,
    Handler,
    Hang,
    HttpError,
    HttpRequest,
    Outgoing,
    RequestHead,
    Reset,
    Response,
    StreamedResponse,
    chunk,
    encode_head,
    error_response,
    parse_head,
)

__all__ = ["HttpServerProtocol"]

logger = logging.getLogger("keel.testing.fake_llm")

MAX_PIPELINED = 32
LINGER_SECONDS = 2.0


class HttpServerProtocol(asyncio.Protocol):
    """One client connection. Requests are answered strictly in order."""

    def __init__(self, handler: Handler, connections: set[HttpServerProtocol]) -> None:
        self._handler = handler
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._head: RequestHead | None = None
        self._pending: deque[HttpRequest | Response] = deque()
        self._task: asyncio.Task[None] | None = None
        self._done = False  # no more output: closing, aborted or lost
        self._broken = False  # a protocol error: parse nothing more
        self._eof = False
        self._write_paused = False
        self._read_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None

    # -- asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._done = True
        self._connections.discard(self)
        self._pending.clear()
        if self._task is not None:
            self._task.cancel()
        self._wake_drain()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain()
        if self._task is None:
            self._pump()

    def data_received(self, data: bytes) -> None:
        if self._broken or self._done:
            return
        self._buffer += data
        self._parse()
        self._pump()

    def eof_received(self) -> bool | None:
        self._eof = True
        if self._done:
            return None  # after a lingering close: the client is done too
        if self._pending or self._task is not None or self._head is not None:
            return True  # answer what was asked, then close (see _pump)
        return None

    # -- parsing -----------------------------------------------------------------------------

    def _parse(self) -> None:
        buffer = self._buffer
        while not self._broken:
            if self._head is None:
                while buffer[:2] == b"\r\n":  # RFC 9112 2.2: ignore empty lines before a request
                    del buffer[:2]
                end = buffer.find(b"\r\n\r\n")
                if end < 0 or end > MAX_HEAD_BYTES:
                    if len(buffer) > MAX_HEAD_BYTES:
                        self._fail(HttpError(431, "request head too large"))
                    return
                try:
                    head = parse_head(bytes(buffer[:end]))
                except HttpError as exc:
                    self._fail(exc)
                    return
                del buffer[: end + 4]
                self._head = head
                if (
                    head.headers.get("expect", "").lower() == "100-continue"
                    and len(buffer) < head.length
                    and not self._pending
                    and self._task is None
                    and self._transport is not None
                ):
                    self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            head = self._head
            if len(buffer) < head.length:
                return
            body = bytes(buffer[: head.length])
            del buffer[: head.length]
            self._head = None
            self._pending.append(
                HttpRequest(
                    head.method, head.path, head.query, head.version, head.headers, body, head.keep_alive
                )
            )
            if len(self._pending) >= MAX_PIPELINED and not self._read_paused and self._transport is not None:
                self._read_paused = True
                self._transport.pause_reading()

    def _fail(self, error: HttpError) -> None:
        self._broken = True
        self._buffer.clear()
        self._pending.append(error_response(error.status, error.message))

    # -- answering ---------------------------------------------------------------------------

    def _pump(self) -> None:
        while self._pending and self._task is None and not self._done and not self._write_paused:
            item = self._pending.popleft()
            if isinstance(item, Response):  # a protocol error: answer, then close without a reset
                self._send(item, keep_alive=False, linger=True)
                continue
            try:
                outgoing = self._handler(item)
            except Exception:
                logger.exception("fake LLM handler failed on %s %s", item.method, item.path)
                outgoing = error_response(500, "internal error in the fake LLM server (see its log)")
            if _immediate(outgoing):
                self._send(outgoing, item.keep_alive)
            else:
                loop = asyncio.get_running_loop()
                self._task = loop.create_task(self._send_later(outgoing, item.keep_alive))
        transport = self._transport
        if self._done or transport is None:
            return
        if self._read_paused and len(self._pending) < MAX_PIPELINED // 2:
            self._read_paused = False
            transport.resume_reading()
        if self._eof and not self._pending and self._task is None:
            self._close()

    def _send(self, outgoing: Outgoing, keep_alive: bool, linger: bool = False) -> None:
        transport = self._transport
        if transport is None or self._done:
            return
        if isinstance(outgoing, Response):
            keep = keep_alive and not outgoing.close
            head = encode_head(
                outgoing.status, outgoing.content_type, len(outgoing.body), outgoing.headers, keep
            )
            transport.write(head + outgoing.body)
            if linger:
                self._lingering_close()
            elif not keep:
                self._close()
        elif isinstance(outgoing, StreamedResponse):
            parts = [self._stream_head(outgoing, keep_alive)]
            parts.extend(chunk(event) for event in outgoing.events)
            if not outgoing.truncate:
                parts.append(b"0\r\n\r\n")
            transport.write(b"".join(parts))
            if outgoing.truncate or not keep_alive:
                self._close()
        elif isinstance(outgoing, Reset):
            self._reset()
        else:
            raise AssertionError(f"cannot send {outgoing!r} synchronously")

    @staticmethod
    def _stream_head(outgoing: StreamedResponse, keep_alive: bool) -> bytes:
        return encode_head(outgoing.status, outgoing.content_type, None, outgoing.headers, keep_alive)

    async def _send_later(self, outgoing: Outgoing, keep_alive: bool) -> None:
        try:
            if outgoing.delay > 0:
                await asyncio.sleep(outgoing.delay)
            if self._done:
                return
            if isinstance(outgoing, Hang):
                await asyncio.sleep(outgoing.seconds)
                self._close()
            elif isinstance(outgoing, StreamedResponse) and outgoing.chunk_delay > 0:
                await self._stream_slowly(outgoing, keep_alive)
            else:
                self._send(outgoing, keep_alive)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("fake LLM failed while sending a response")
            self._abort()
        finally:
            self._task = None
        if not self._done:
            self._pump()

    async def _stream_slowly(self, outgoing: StreamedResponse, keep_alive: bool) -> None:
        transport = self._transport
        assert transport is not None
        transport.write(self._stream_head(outgoing, keep_alive))
        for index, event in enumerate(outgoing.events):
            if index:
                await asyncio.sleep(outgoing.chunk_delay)
            if self._done:
                return
            transport.write(chunk(event))
            await self._drain()
        if self._done:
            return
        if not outgoing.truncate:
            transport.write(b"0\r\n\r\n")
        if outgoing.truncate or not keep_alive:
            self._close()

    async def _drain(self) -> None:
        if not self._write_paused or self._done:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._drain_waiter = waiter
        await waiter

    def _wake_drain(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- closing -----------------------------------------------------------------------------

    def _close(self) -> None:
        """Graceful close: flush what was written, then FIN."""
        self._done = True
        if self._transport is not None:
            self._transport.close()

    def _lingering_close(self) -> None:
        """Half-close, then drop whatever the client still sends until it closes (or 2 s pass).

        Closing with unread input would make the kernel send an RST, which can destroy the error
        response before the client reads it (RFC 9112 9.6)."""
        self._done = True
        transport = self._transport
        if transport is None:
            return
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.close)

    def _reset(self) -> None:
        """Abortive close: the peer gets an RST instead of a FIN."""
        self._done = True
        transport = self._transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError as exc:  # the peer already closed: nothing left to reset
                logger.debug("SO_LINGER failed before reset: %s", exc)
        transport.abort()

    def _abort(self) -> None:
        self._done = True
        if self._transport is not None:
            self._transport.abort()

    def shutdown(self) -> asyncio.Task[None] | None:
        """Abort the connection (server stop); returns the in-flight task, if any, to await."""
        task = self._task
        self._abort()
        if task is not None:
            task.cancel()
        return task


def _immediate(outgoing: Outgoing) -> bool:
    if isinstance(outgoing, Hang) or outgoing.delay > 0:
        return False
    return not (isinstance(outgoing, StreamedResponse) and outgoing.chunk_delay > 0)
