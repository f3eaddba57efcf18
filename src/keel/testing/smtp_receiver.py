"""A real SMTP server on loopback, for tests: what mail did Keel send, and how?

    with SmtpReceiver() as smtp:
        ...  # configure approvals.email with host=smtp.host, port=smtp.port, security="none"
        (message,) = smtp.wait_for(1)
        assert message.recipients == ["reviewer@example.com"]
        assert message.message["Subject"].startswith("[Keel]")

    smtp.fail_next(2, code=451)   # the next two deliveries are refused with 451 (a 4xx: retry)

In async tests use `async with SmtpReceiver() as smtp:` and `await smtp.wait_for_async(n)`.

A small hand-written server (no aiosmtpd) in a daemon thread, one thread per connection:
EHLO/HELO, MAIL, RCPT, DATA (with dot-unstuffing), RSET, NOOP, QUIT, STARTTLS and AUTH PLAIN /
LOGIN. `security` is what a client must speak: `none` (plain), `starttls` (plain, then
STARTTLS; mail before it is refused with 530) or `ssl` (TLS from the first byte). TLS needs a
certificate: `self_signed_certificate(directory)` makes one for 127.0.0.1 and localhost with
`cryptography`, and `client_context()` is an `ssl.SSLContext` that trusts it (and checks the host
name as a real client does). With `credentials=(user, password)` the server requires AUTH before
MAIL (530 without, 535 for wrong credentials).

Every accepted message is recorded with its envelope, exact bytes, and whether it came over TLS
and with which login. `fail_next(n, code, stage)` refuses the next `n` transactions at MAIL, RCPT
or the end of DATA (the default) with that reply code; refused transactions are counted in
`attempts` but not recorded as messages (a message refused after DATA is kept in `refused`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime
import email
import email.policy
import ipaddress
import socket
import socketserver
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Literal, Self, cast

from keel.testing.waiting import wait_for_items, wait_for_items_async

__all__ = ["ReceivedMessage", "SmtpReceiver", "client_context", "self_signed_certificate"]

Security = Literal["none", "starttls", "ssl"]
Stage = Literal["mail", "rcpt", "data"]
_MAX_LINE = 8192
_MAX_MESSAGE = 10 * 1024 * 1024
_IDLE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ReceivedMessage:
    """One accepted message: the envelope (`MAIL FROM`, `RCPT TO`) and the exact DATA bytes."""

    sender: str
    recipients: list[str]
    data: bytes
    tls: bool  # the transaction ran over TLS (STARTTLS or implicit)
    login: str | None  # the AUTH user name, when the client logged in
    received_at: float  # time.time()

    @property
    def message(self) -> EmailMessage:
        """The parsed message (`email.policy.default`: `get_content()` decodes the body)."""
        return email.message_from_bytes(self.data, policy=email.policy.default)

    @property
    def text(self) -> str:
        """The plain-text body, decoded, with `\n` line ends (SMTP carries `\r\n`)."""
        body = self.message.get_body(preferencelist=("plain",))
        if body is None:
            raise ValueError("the message has no text/plain part")
        return cast(str, body.get_content()).replace("\r\n", "\n")


@dataclass(frozen=True)
class _Failure:
    code: int
    stage: Stage
    text: str


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """Write a fresh self-signed certificate for 127.0.0.1, ::1 and localhost, and its key, into
    `directory`; return (certificate path, key path). Needs the `cryptography` package."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def client_context(cert_path: Path) -> ssl.SSLContext:
    """A client context that trusts only `cert_path` and checks host names as usual."""
    return ssl.create_default_context(cafile=str(cert_path))


class SmtpReceiver:
    """An SMTP server on 127.0.0.1 that records messages and refuses them as scripted."""

    def __init__(
        self,
        *,
        security: Security = "none",
        certificate: tuple[Path, Path] | None = None,
        credentials: tuple[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if security != "none" and certificate is None:
            raise ValueError(f"security={security!r} needs a certificate (see self_signed_certificate)")
        self.security: Security = security
        self.credentials = credentials
        self._tls: ssl.SSLContext | None = None
        if certificate is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(certificate[0]), str(certificate[1]))
            self._tls = context
        self._host, self._port = host, port
        self._failures: deque[_Failure] = deque()
        self._messages: list[ReceivedMessage] = []
        self._refused: list[ReceivedMessage] = []
        self._attempts = 0
        self._changed = threading.Condition()
        self._server: socketserver.ThreadingTCPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Self:
        if self._server is not None:
            return self
        server = socketserver.ThreadingTCPServer(
            (self._host, self._port), _handler(self), bind_and_activate=False
        )
        server.daemon_threads = True
        server.allow_reuse_address = True
        server.server_bind()
        server.server_activate()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="smtp-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
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
        await asyncio.to_thread(self.stop)

    # -- scripting and results -------------------------------------------------------------------
    @property
    def host(self) -> str:
        if self._server is None:
            raise RuntimeError("the receiver is not started")
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the receiver is not started")
        return int(self._server.server_address[1])

    def fail_next(self, count: int = 1, *, code: int = 451, stage: Stage = "data", text: str = "") -> None:
        """Refuse the next `count` transactions at `stage` with `code` (4xx: try again; 5xx: no)."""
        if not 400 <= code < 600:
            raise ValueError(f"a refusal needs a 4xx or 5xx code, got {code}")
        default = "4.3.0 Try again later" if code < 500 else "5.7.1 Refused"
        with self._changed:
            self._failures.extend(_Failure(code, stage, text or default) for _ in range(count))

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._changed:
            return list(self._messages)

    @property
    def refused(self) -> list[ReceivedMessage]:
        """Messages whose DATA was sent and then refused as scripted by `fail_next`."""
        with self._changed:
            return list(self._refused)

    @property
    def attempts(self) -> int:
        """Transactions started (MAIL commands accepted or refused), refused ones included."""
        with self._changed:
            return self._attempts

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Block until at least `count` messages arrived; return them all. TimeoutError otherwise."""
        return wait_for_items(self._changed, self._messages, count, timeout, "messages")

    async def wait_for_async(self, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:  # noqa: ASYNC109 (mirrors wait_for)
        """`wait_for` for async tests: polls, so the event loop keeps running meanwhile."""
        return await wait_for_items_async(lambda: self.messages, count, timeout, "messages")

    # -- called by the connection handlers -------------------------------------------------------
    def _begin(self) -> _Failure | None:
        """A transaction starts: count it, and take its scripted failure if there is one."""
        with self._changed:
            self._attempts += 1
            return self._failures.popleft() if self._failures else None

    def _record(self, message: ReceivedMessage, *, accepted: bool = True) -> None:
        with self._changed:
            (self._messages if accepted else self._refused).append(message)
            self._changed.notify_all()


class _Session:
    """One client connection: reads command lines, answers them."""

    def __init__(self, receiver: SmtpReceiver, sock: socket.socket) -> None:
        self.receiver = receiver
        self.sock = sock
        self.tls = False
        self.login: str | None = None
        self.reset()
        self._reader = sock.makefile("rb")

    def reset(self) -> None:
        self.sender: str | None = None
        self.recipients: list[str] = []
        self.failure: _Failure | None = None

    def reply(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def read_line(self) -> bytes | None:
        line = self._reader.readline(_MAX_LINE + 2)
        if not line:
            return None
        return line.rstrip(b"\r\n")

    def start_tls(self, context: ssl.SSLContext) -> None:
        self._reader.close()  # anything the client pipelined before TLS is dropped, as it must be
        self.sock = context.wrap_socket(self.sock, server_side=True)
        self._reader = self.sock.makefile("rb")
        self.tls = True
        self.login = None
        self.reset()

    def run(self) -> None:
        receiver = self.receiver
        if receiver.security == "ssl":
            assert receiver._tls is not None
            self.start_tls(receiver._tls)
        self.reply("220 localhost Keel test SMTP ready")
        greeted = False
        while True:
            raw = self.read_line()
            if raw is None:
                return
            line = raw.decode("utf-8", "replace")
            verb, _, argument = line.partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                greeted = True
                self.reset()
                extensions = ["8BITMIME", f"SIZE {_MAX_MESSAGE}"]
                if receiver.security == "starttls" and not self.tls:
                    extensions.append("STARTTLS")
                if receiver.credentials is not None:
                    extensions.append("AUTH PLAIN LOGIN")
                lines = ["localhost", *extensions]
                for item in lines[:-1]:
                    self.reply(f"250-{item}")
                self.reply(f"250 {lines[-1]}")
            elif verb == "HELO":
                greeted = True
                self.reset()
                self.reply("250 localhost")
            elif verb == "STARTTLS":
                if receiver.security != "starttls" or self.tls or receiver._tls is None:
                    self.reply("502 5.5.1 STARTTLS not available")
                    continue
                self.reply("220 2.0.0 Ready to start TLS")
                try:
                    self.start_tls(receiver._tls)
                except (ssl.SSLError, OSError):
                    return
                greeted = False
            elif verb == "AUTH":
                self.auth(argument)
            elif verb == "NOOP":
                self.reply("250 2.0.0 OK")
            elif verb == "RSET":
                self.reset()
                self.reply("250 2.0.0 OK")
            elif verb == "QUIT":
                self.reply("221 2.0.0 Bye")
                return
            elif verb == "MAIL":
                if not greeted:
                    self.reply("503 5.5.1 Say EHLO first")
                elif receiver.security == "starttls" and not self.tls:
                    self.reply("530 5.7.0 Must issue a STARTTLS command first")
                elif receiver.credentials is not None and self.login is None:
                    self.reply("530 5.7.0 Authentication required")
                elif self.sender is not None:
                    self.reply("503 5.5.1 Nested MAIL command")
                elif not argument.upper().startswith("FROM:"):
                    self.reply("501 5.5.4 Syntax: MAIL FROM:<address>")
                else:
                    self.failure = receiver._begin()
                    if self.failure is not None and self.failure.stage == "mail":
                        self.reply(f"{self.failure.code} {self.failure.text}")
                        self.reset()
                    else:
                        self.sender = _address(argument[5:])
                        self.reply("250 2.1.0 OK")
            elif verb == "RCPT":
                if self.sender is None:
                    self.reply("503 5.5.1 Need MAIL first")
                elif not argument.upper().startswith("TO:"):
                    self.reply("501 5.5.4 Syntax: RCPT TO:<address>")
                elif self.failure is not None and self.failure.stage == "rcpt":
                    self.reply(f"{self.failure.code} {self.failure.text}")
                else:
                    self.recipients.append(_address(argument[3:]))
                    self.reply("250 2.1.5 OK")
            elif verb == "DATA":
                if self.sender is None or not self.recipients:
                    self.reply("503 5.5.1 Need MAIL and RCPT first")
                    continue
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                data = self.read_data()
                if data is None:
                    return
                failure = self.failure
                received = ReceivedMessage(
                    self.sender, list(self.recipients), data, self.tls, self.login, time.time()
                )
                receiver._record(received, accepted=failure is None)
                self.reply("250 2.0.0 OK: queued" if failure is None else f"{failure.code} {failure.text}")
                self.reset()
            else:
                self.reply("500 5.5.2 Command not recognized")

    def read_data(self) -> bytes | None:
        lines: list[bytes] = []
        size = 0
        while True:
            raw = self._reader.readline(_MAX_LINE + 2)
            if not raw:
                return None
            line = raw.rstrip(b"\r\n")
            if line == b".":
                return b"\r\n".join(lines) + b"\r\n"
            if line.startswith(b"."):
                line = line[1:]
            size += len(line) + 2
            if size <= _MAX_MESSAGE:
                lines.append(line)

    def auth(self, argument: str) -> None:
        credentials = self.receiver.credentials
        mechanism, _, initial = argument.partition(" ")
        if credentials is None:
            self.reply("502 5.5.1 AUTH not available")
            return
        if self.receiver.security == "starttls" and not self.tls:
            self.reply("538 5.7.11 Encryption required for requested authentication mechanism")
            return
        if self.login is not None:
            self.reply("503 5.5.1 Already authenticated")
            return
        try:
            if mechanism.upper() == "PLAIN":
                if not initial:
                    self.reply("334 ")
                    initial = (self.read_line() or b"").decode()
                _, user, password = base64.b64decode(initial, validate=True).decode().split("\0")
            elif mechanism.upper() == "LOGIN":
                self.reply("334 VXNlcm5hbWU6")  # "Username:"
                user = base64.b64decode(self.read_line() or b"", validate=True).decode()
                self.reply("334 UGFzc3dvcmQ6")  # "Password:"
                password = base64.b64decode(self.read_line() or b"", validate=True).decode()
            else:
                self.reply("504 5.5.4 Unrecognized authentication type")
                return
        except (binascii.Error, UnicodeDecodeError, ValueError):
            self.reply("501 5.5.2 Cannot decode the credentials")
            return
        if (user, password) == credentials:
            self.login = user
            self.reply("235 2.7.0 Authentication successful")
        else:
            self.reply("535 5.7.8 Authentication credentials invalid")


def _address(text: str) -> str:
    """`<a@b> SIZE=12` -> `a@b`."""
    value = text.strip().split(" ")[0]
    return value[1:-1] if value.startswith("<") and value.endswith(">") else value


def _handler(receiver: SmtpReceiver) -> type[socketserver.BaseRequestHandler]:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            sock = cast(socket.socket, self.request)
            sock.settimeout(_IDLE_TIMEOUT_S)
            session = _Session(receiver, sock)
            try:
                session.run()
            except (OSError, ssl.SSLError):  # the client went away, or TLS failed
                pass
            finally:
                with contextlib.suppress(OSError):
                    session.sock.close()

    return Handler
