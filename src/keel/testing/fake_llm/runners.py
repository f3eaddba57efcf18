"""Ways to run the fake server: a background thread, a subprocess, or in the foreground (the CLI)."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self, cast
from urllib.parse import urlsplit

from pydantic import JsonValue

from keel.errors import KeelError, UsageError
from keel.testing.fake_llm.faults import Faults
from keel.testing.fake_llm.latency import Latency
from keel.testing.fake_llm.rules import ScriptLike, load_rules, load_script, parse_rules
from keel.testing.fake_llm.script import RuleScript
from keel.testing.fake_llm.server import DEFAULT_MODELS, FakeLLM, FaultsLike, LatencyLike
from keel.testing.fake_llm.stats import Stats
from keel.testing.fake_llm.wire import ChatRequest, JsonObject

DEFAULT_PORT = 8399
READY_PREFIX = "keel fake-llm: serving on "


class FakeLLMError(KeelError):
    """The fake LLM server could not be started or controlled."""


class FakeLLMThread:
    """A `FakeLLM` on its own event loop in a daemon thread: for sync code, and tests of any kind.

    Use it as a context manager, or `start()` / `stop()`. The control methods (`set_script`,
    `set_faults`, `stats`, ...) are thread-safe and act immediately.
    """

    def __init__(
        self,
        script: ScriptLike = None,
        *,
        faults: FaultsLike = None,
        latency: LatencyLike = None,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        models: Sequence[str] = DEFAULT_MODELS,
        stream_chunk_chars: int = 16,
        log_size: int = 1000,
    ) -> None:
        self.server = FakeLLM(
            script,
            faults=faults,
            latency=latency,
            seed=seed,
            models=models,
            stream_chunk_chars=stream_chunk_chars,
            log_size=log_size,
        )
        self._host = host
        self._port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, timeout: float = 10.0) -> Self:
        if self._thread is not None:
            raise UsageError("this fake LLM thread is already started")
        ready = threading.Event()
        failures: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, failures), name="keel-fake-llm", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout):
            raise FakeLLMError(f"the fake LLM server did not start within {timeout} s")
        if failures:
            self._thread.join()
            self._thread = None
            raise FakeLLMError(f"the fake LLM server could not start: {failures[0]}") from failures[0]
        return self

    def _run(self, ready: threading.Event, failures: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            try:
                loop.run_until_complete(self.server.start(self._host, self._port))
            except BaseException as exc:  # reported to start() in the caller's thread
                failures.append(exc)
                return
            finally:
                ready.set()
            loop.run_forever()
            loop.run_until_complete(self.server.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and its thread. Safe to call twice."""
        thread, loop = self._thread, self._loop
        self._thread = self._loop = None
        if thread is None or loop is None:
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if thread.is_alive():
            raise FakeLLMError(f"the fake LLM thread did not stop within {timeout} s")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def port(self) -> int:
        return self.server.port

    def set_script(self, script: ScriptLike) -> None:
        self.server.set_script(script)

    def set_faults(self, faults: FaultsLike) -> None:
        self.server.set_faults(faults)

    def set_latency(self, latency: LatencyLike) -> None:
        self.server.set_latency(latency)

    def reset(self) -> None:
        self.server.reset()

    def restore_defaults(self) -> None:
        self.server.restore_defaults()

    def stats(self) -> Stats:
        return self.server.stats()

    def requests(self) -> list[ChatRequest]:
        return self.server.requests()


class FakeLLMProcess:
    """A fake LLM server in a child process (`python -m keel.testing.fake_llm`), controlled over HTTP.

    Its CPU time is not the caller's, which is what benchmarks want. Scripts must be rules
    (documents, files or `RuleScript`s): a Python callable cannot cross the process boundary.
    """

    def __init__(
        self, process: subprocess.Popen[bytes], base_url: str, stderr: IO[bytes], reader: threading.Thread
    ) -> None:
        self.process = process
        self.base_url = base_url
        self._stderr = stderr
        self._reader = reader
        split = urlsplit(base_url)
        self._host = split.hostname or "127.0.0.1"
        self._port = split.port or 80

    @property
    def url(self) -> str:
        return self.base_url.removesuffix("/v1")

    @property
    def pid(self) -> int:
        return self.process.pid

    def call(self, method: str, path: str, body: JsonValue = None) -> JsonValue:
        """One request to the server's admin API; returns the decoded JSON answer."""
        connection = http.client.HTTPConnection(self._host, self._port, timeout=10)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            connection.request(method, path, body=payload, headers={"content-type": "application/json"})
            response = connection.getresponse()
            data = response.read()
        except OSError as exc:
            raise FakeLLMError(
                f"fake LLM process at {self.url} did not answer {method} {path}: {exc}"
            ) from exc
        finally:
            connection.close()
        if response.status != 200:
            raise FakeLLMError(
                f"fake LLM {method} {path} answered {response.status}: {data.decode(errors='replace')}"
            )
        return cast(JsonValue, json.loads(data))

    def stats(self) -> Stats:
        data = self.call("GET", "/_fake/stats")
        if not isinstance(data, dict):
            raise FakeLLMError("unexpected answer from GET /_fake/stats")
        return Stats.from_json(data)

    def reset(self) -> None:
        self.call("POST", "/_fake/reset")

    def set_faults(self, faults: FaultsLike) -> None:
        value = faults if isinstance(faults, Faults) else Faults.model_validate(dict(faults or {}))
        self.call("POST", "/_fake/faults", value.model_dump(mode="json"))

    def set_latency(self, latency: LatencyLike) -> None:
        if latency is None or isinstance(latency, int | float):
            value = Latency.fixed(float(latency or 0))
        else:
            value = latency if isinstance(latency, Latency) else Latency.model_validate(dict(latency))
        self.call("POST", "/_fake/latency", value.model_dump(mode="json"))

    def set_script(
        self, script: RuleScript | Mapping[str, object] | Sequence[Mapping[str, object]] | str | None
    ) -> None:
        self.call("POST", "/_fake/script", _rules_document(script))

    def stop(self, timeout: float = 10.0) -> int:
        """Terminate the process (SIGTERM, then SIGKILL after `timeout`); returns its exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self._reader.join(timeout)  # it closes stdout at EOF
        self._stderr.close()
        return self.process.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _rules_document(
    script: RuleScript | Mapping[str, object] | Sequence[Mapping[str, object]] | str | None,
) -> JsonObject:
    if script is None:
        return {"rules": []}
    if isinstance(script, str):
        script = load_rules(script)
    elif not isinstance(script, RuleScript):
        script = parse_rules(script if isinstance(script, Mapping) else list(script))
    return script.to_json()


def start_fake_llm_process(
    *,
    script: RuleScript
    | Mapping[str, object]
    | Sequence[Mapping[str, object]]
    | str
    | os.PathLike[str]
    | None = None,
    faults: FaultsLike = None,
    latency: LatencyLike = None,
    seed: int = 0,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 20.0,
    python: str = sys.executable,
) -> FakeLLMProcess:
    """Spawn `python -m keel.testing.fake_llm`, wait until it answers, apply the configuration.

    `script` may be a rules file path (read by the child) or rules as data / a `RuleScript` (sent
    over HTTP once it is up). Stop it with `.stop()` or use the handle as a context manager.
    """
    if callable(script) and not isinstance(script, RuleScript):
        raise UsageError("a Python callable script cannot run in a subprocess: use rules")
    args = [python, "-m", "keel.testing.fake_llm", "--host", host, "--port", str(port), "--seed", str(seed)]
    if isinstance(script, str | os.PathLike):
        args += ["--script", os.fspath(script)]
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[3])  # the directory that holds `keel`
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    stderr = tempfile.TemporaryFile()  # noqa: SIM115  # owned by the handle, closed in stop()
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, env=env)
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(
        target=_pump_stdout, args=(process, lines), name="keel-fake-llm-stdout", daemon=True
    )
    reader.start()
    base_url = None
    try:
        while base_url is None:
            line = lines.get(timeout=startup_timeout)
            if line is None:
                break
            if line.startswith(READY_PREFIX):
                base_url = line[len(READY_PREFIX) :].strip()
    except queue.Empty:
        pass
    if base_url is None:
        process.kill()
        process.wait()
        reader.join(5)
        stderr.seek(0)
        output = stderr.read().decode(errors="replace").strip()
        stderr.close()
        raise FakeLLMError(f"the fake LLM process did not start (exit code {process.returncode}):\n{output}")
    handle = FakeLLMProcess(process, base_url, stderr, reader)
    try:
        handle.call("GET", "/_fake/health")
        if script is not None and not isinstance(script, str | os.PathLike):
            handle.set_script(script)
        if faults is not None:
            handle.set_faults(faults)
        if latency is not None:
            handle.set_latency(latency)
    except BaseException:
        handle.stop()
        raise
    return handle


def _pump_stdout(process: subprocess.Popen[bytes], lines: queue.Queue[str | None]) -> None:
    """Hand the child's stdout lines over, then keep draining it so the child never blocks on it."""
    stdout = process.stdout
    assert stdout is not None
    with stdout:
        for raw in iter(stdout.readline, b""):
            lines.put(raw.decode(errors="replace"))
    lines.put(None)


def serve_forever(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    script_path: str | os.PathLike[str] | None = None,
    latency: Latency | None = None,
    faults: Faults | None = None,
    seed: int = 0,
    *,
    on_ready: Callable[[FakeLLM], None] | None = None,
) -> None:
    """Run a fake LLM server in the foreground until SIGINT or SIGTERM (the `keel fake-llm` command).

    Raises `keel.errors.ConfigError` for a bad rules file before listening. Once listening, calls
    `on_ready(server)`; by default prints `keel fake-llm: serving on <base_url>` to stdout.
    """
    script = load_script(script_path) if script_path is not None else None
    asyncio.run(_serve(FakeLLM(script, faults=faults, latency=latency, seed=seed), host, port, on_ready))


async def _serve(server: FakeLLM, host: str, port: int, on_ready: Callable[[FakeLLM], None] | None) -> None:
    await server.start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # Windows, or not the main thread: Ctrl-C still works
            break
    try:
        if on_ready is not None:
            on_ready(server)
        else:
            print(f"{READY_PREFIX}{server.base_url}", flush=True)
        await stop.wait()
    finally:
        await server.stop()
