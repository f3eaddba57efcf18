"""HTTP/1.1 messages for the fake server: parsed requests, what to send back, head parsing and encoding.

`Outgoing` describes an answer declaratively; `keel.testing.fake_llm.http.HttpServerProtocol` sends it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 32 * 1024 * 1024
SERVER_HEADER = "keel-fake-llm"

REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


@dataclass(slots=True)
class HttpRequest:
    method: str
    path: str
    query: str
    version: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


@dataclass(frozen=True, slots=True)
class Response:
    """A complete response with a `Content-Length` body, sent after `delay` seconds."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    close: bool = False


@dataclass(frozen=True, slots=True)
class StreamedResponse:
    """SSE events in a chunked body. `truncate`: close the connection without ending the body."""

    events: tuple[bytes, ...]
    status: int = 200
    content_type: str = "text/event-stream; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = (("cache-control", "no-cache"),)
    delay: float = 0.0
    chunk_delay: float = 0.0
    truncate: bool = False


@dataclass(frozen=True, slots=True)
class Reset:
    """Abort the connection with an RST (SO_LINGER 0), no response."""

    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Hang:
    """Send nothing for `seconds`, then close the connection (after `delay`, for symmetry)."""

    seconds: float
    delay: float = 0.0


Outgoing = Response | StreamedResponse | Reset | Hang
Handler = Callable[[HttpRequest], Outgoing]


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class RequestHead:
    method: str
    path: str
    query: str
    version: str
    headers: dict[str, str]
    length: int
    keep_alive: bool


def parse_head(head: bytes) -> RequestHead:
    lines = head.split(b"\r\n")
    parts = lines[0].decode("latin-1").split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(505, f"unsupported HTTP version {version!r}")
    headers: dict[str, str] = {}
    for raw in lines[1:]:
        name, sep, value = raw.partition(b":")
        if not sep or not name or name != name.strip() or raw[:1] in (b" ", b"\t"):
            raise HttpError(400, "malformed header line")
        headers[name.decode("latin-1").lower()] = value.strip().decode("latin-1")
    if "transfer-encoding" in headers:
        raise HttpError(501, "chunked request bodies are not supported; send Content-Length")
    length = 0
    raw_length = headers.get("content-length")
    if raw_length is not None:
        if not raw_length.isdigit():
            raise HttpError(400, "invalid Content-Length")
        length = int(raw_length)
        if length > MAX_BODY_BYTES:
            raise HttpError(413, f"request body over {MAX_BODY_BYTES} bytes")
    tokens = {token.strip() for token in headers.get("connection", "").lower().split(",")}
    keep_alive = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
    if target.startswith(("http://", "https://")):
        split = urlsplit(target)
        path, query = split.path or "/", split.query
    else:
        path, _, query = target.partition("?")
    return RequestHead(method, path, query, version, headers, length, keep_alive)


def encode_head(
    status: int, content_type: str, length: int | None, headers: tuple[tuple[str, str], ...], keep_alive: bool
) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}", f"server: {SERVER_HEADER}"]
    if content_type:
        lines.append(f"content-type: {content_type}")
    lines.append("transfer-encoding: chunked" if length is None else f"content-length: {length}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    if not keep_alive:
        lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def error_response(status: int, message: str) -> Response:
    body = b'{"error":{"message":"%b","type":"invalid_request_error","param":null,"code":null}}' % (
        message.replace('"', "'").encode("latin-1", "replace")
    )
    return Response(status, body, close=True)
