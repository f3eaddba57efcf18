"""Running the fake server: on the current loop, in a thread, in a subprocess, from the CLI, in pytest."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from keel.errors import UsageError
from keel.testing.fake_llm import (
    FakeLLM,
    FakeLLMError,
    FakeLLMThread,
    Faults,
    Latency,
    Reply,
    start_fake_llm_process,
)
from keel.testing.fake_llm.__main__ import main
from tests.testing.support import USER_HI

pytest_plugins = ["pytester"]


async def test_fake_llm_on_the_running_loop() -> None:
    fake = FakeLLM(Reply("hello"), seed=3)
    with pytest.raises(UsageError, match="not started"):
        _ = fake.base_url
    async with fake:
        assert fake.base_url == f"http://127.0.0.1:{fake.port}/v1"
        with pytest.raises(UsageError, match="already started"):
            await fake.start()
        async with AsyncOpenAI(base_url=fake.base_url, api_key="x", max_retries=0) as client:
            completion = await client.chat.completions.create(model="m", messages=USER_HI)
        assert completion.choices[0].message.content == "hello"
    assert not fake.started
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(fake.url + "/_fake/health")


async def test_stop_cancels_hangs_and_closes_connections() -> None:
    fake = await FakeLLM(faults=Faults(sequence=["ok", "hang"], hang_seconds=30)).start()
    async with AsyncOpenAI(base_url=fake.base_url, api_key="x", max_retries=0, timeout=10) as client:
        await client.chat.completions.create(model="m", messages=USER_HI)  # leaves a keep-alive connection
        hanging = asyncio.create_task(client.chat.completions.create(model="m", messages=USER_HI))
        await asyncio.sleep(0.1)
        started = time.perf_counter()
        await fake.stop()
        with pytest.raises(openai.APIConnectionError):
            await hanging
    assert time.perf_counter() - started < 2


def test_thread_runner_in_sync_code() -> None:
    with FakeLLMThread(Reply("from a thread"), latency=Latency.fixed(1)) as fake:
        with OpenAI(base_url=fake.base_url, api_key="x", max_retries=0) as client:
            completion = client.chat.completions.create(model="m", messages=USER_HI)
        assert completion.choices[0].message.content == "from a thread"
        assert fake.stats().ok == 1
        assert fake.server.latency == Latency.fixed(1)
    fake.stop()  # stopping twice is harmless
    with pytest.raises(httpx.ConnectError):
        httpx.get(fake.url + "/_fake/health")


def test_thread_runner_reports_a_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        runner = FakeLLMThread(port=taken.getsockname()[1])
        with pytest.raises(FakeLLMError, match="could not start"):
            runner.start()


RULES_YAML = """\
rules:
  - when: {last_user_contains: ping}
    reply: pong from {model}
"""


def test_subprocess_runner_with_rules_file_and_faults(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES_YAML)
    with start_fake_llm_process(script=rules, faults=Faults(sequence=["503"]), seed=5) as server:
        assert server.base_url.endswith("/v1")
        with OpenAI(base_url=server.base_url, api_key="x", max_retries=1) as client:
            completion = client.chat.completions.create(
                model="sub", messages=[{"role": "user", "content": "ping"}]
            )
        assert completion.choices[0].message.content == "pong from sub"
        stats = server.stats()
        assert [r.outcome for r in stats.log] == ["503", "ok"]
        assert stats.prompt_tokens > 0
        server.set_script({"rules": [{"reply": "swapped"}]})
        server.set_latency(Latency.fixed(0))
        server.reset()  # rewinds the fault sequence: the next request fails again
        with OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client:
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(model="sub", messages=USER_HI)
            server.set_faults(None)
            server.reset()
        with OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client:
            completion = client.chat.completions.create(model="sub", messages=USER_HI)
        assert completion.choices[0].message.content == "swapped"
        assert server.stats().requests == 1
        pid = server.pid
    assert server.process.returncode == 0  # SIGTERM stops it cleanly
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_subprocess_runner_reports_a_bad_rules_file(tmp_path: Path) -> None:
    rules = tmp_path / "broken.yaml"
    rules.write_text("rules:\n  - reply: a\n    when: {tool: x}\n")
    with pytest.raises(FakeLLMError) as error:
        start_fake_llm_process(script=rules)
    assert f"{rules}:3: rules[0].when.tool: unknown key" in str(error.value)


def test_subprocess_runner_refuses_callables() -> None:
    with pytest.raises(UsageError, match="callable"):
        start_fake_llm_process(script=lambda request: Reply("x"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--script", "/nonexistent/rules.yaml"], "/nonexistent/rules.yaml: cannot read the rules file"),
        (["--faults", "429=1,oops=2"], "unknown fault kind 'oops'"),
        (["--fault-rate", "3"], "rate: Input should be less than or equal to 1"),
        (["--fault-sequence", "429,nope"], "sequence.1"),
        (["--latency-ms", "slow"], "bad latency 'slow'"),
        (["--retry-after", "soon"], "--retry-after must be a number"),
    ],
)
def test_cli_rejects_bad_options(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", "0", *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_serves_until_terminated() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "keel.testing.fake_llm",
            "--port",
            "0",
            "--latency-ms",
            "1..2",
            "--faults",
            "429",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("keel fake-llm: serving on http://127.0.0.1:")
        base_url = line.split(" on ", 1)[1].strip()
        assert httpx.get(base_url + "/models").json()["data"][0]["id"] == "keel-fake"
        assert httpx.get(base_url.removesuffix("/v1") + "/_fake/latency").json()["kind"] == "uniform"
    finally:
        process.terminate()
        assert process.wait(10) == 0
        if process.stdout is not None:
            process.stdout.close()


PLUGIN_TESTS = """
import httpx
from openai import AsyncOpenAI

from keel.testing.fake_llm import Faults, Reply


def test_sync(fake_llm):
    fake_llm.set_script(Reply("scripted"))
    fake_llm.set_faults(Faults(sequence=["500"]))
    assert httpx.post(fake_llm.base_url + "/chat/completions", json=BODY).status_code == 500
    answer = httpx.post(fake_llm.base_url + "/chat/completions", json=BODY).json()
    assert answer["choices"][0]["message"]["content"] == "scripted"


async def test_async_sees_a_fresh_server(fake_llm, fake_llm_server):
    assert fake_llm is fake_llm_server
    assert fake_llm.stats().requests == 0
    async with AsyncOpenAI(base_url=fake_llm.base_url, api_key="x", max_retries=0) as client:
        completion = await client.chat.completions.create(**BODY)
    assert completion.choices[0].message.content == "This is a reply from Keel's fake LLM."
    assert fake_llm.stats().requests == 1


BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
"""


def test_pytest_fixture_in_sync_and_async_tests(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_plugin=PLUGIN_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
