"""Helpers shared by the fake LLM tests: raw HTTP on a socket, request bodies."""

from __future__ import annotations

import json
import socket

from openai.types.chat import ChatCompletionMessageParam

USER_HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


def http_request(path: str, body: bytes = b"", *, method: str = "POST", extra: str = "") -> bytes:
    """One HTTP/1.1 request as bytes; `extra` holds additional header lines, each ending in CRLF."""
    head = f"{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
    head += f"content-length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def chat_body(content: str = "hi", **fields: object) -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": content}], **fields}).encode()


def read_responses(sock: socket.socket, count: int = 1) -> list[tuple[bytes, bytes]]:
    """Read `count` Content-Length responses from a keep-alive socket: [(head, body), ...].
    Fails if the server sends anything more, or closes early."""
    buffer = b""
    responses: list[tuple[bytes, bytes]] = []
    while len(responses) < count:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            head = buffer[:end]
            length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
            if len(buffer) >= end + 4 + length:
                responses.append((head, buffer[end + 4 : end + 4 + length]))
                buffer = buffer[end + 4 + length :]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {len(responses)} responses: {buffer!r}")
        buffer += chunk
    if buffer:
        raise AssertionError(f"unexpected bytes after the responses: {buffer!r}")
    return responses


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
