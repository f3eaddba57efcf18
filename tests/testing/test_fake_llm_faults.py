"""Faults and latency, as a real client sees them."""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from collections.abc import AsyncIterable

import httpx
import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionChunk

from keel.errors import UsageError
from keel.testing.fake_llm import FAULT_KINDS, FakeLLMThread, Faults, Latency
from keel.testing.fake_llm.faults import FaultInjector
from keel.testing.fake_llm.latency import LatencySampler
from tests.testing.support import USER_HI, chat_body, http_request, read_responses


async def _collect(stream: AsyncIterable[ChatCompletionChunk], into: list[ChatCompletionChunk]) -> None:
    async for chunk in stream:
        into.append(chunk)


async def test_429_is_a_rate_limit_error_with_fractional_retry_after(
    fake_llm: FakeLLMThread, client: AsyncOpenAI
) -> None:
    fake_llm.set_faults(Faults(sequence=["429"], retry_after=0.05))
    with pytest.raises(openai.RateLimitError) as error:
        await client.chat.completions.create(model="m", messages=USER_HI)
    headers = error.value.response.headers
    assert headers["retry-after"] == "0.05"
    assert "retry-after-ms" not in headers  # only when configured
    assert error.value.code == "rate_limit_exceeded"


async def test_429_retry_after_ms_header_when_configured(
    fake_llm: FakeLLMThread, client: AsyncOpenAI
) -> None:
    fake_llm.set_faults(Faults(sequence=["429", "429"], retry_after=2, retry_after_ms_header=True))
    with pytest.raises(openai.RateLimitError) as error:
        await client.chat.completions.create(model="m", messages=USER_HI)
    assert error.value.response.headers["retry-after"] == "2"
    assert error.value.response.headers["retry-after-ms"] == "2000"
    fake_llm.set_faults(Faults(sequence=["429"], retry_after=None))
    with pytest.raises(openai.RateLimitError) as error:
        await client.chat.completions.create(model="m", messages=USER_HI)
    assert "retry-after" not in error.value.response.headers


@pytest.mark.parametrize("kind", ["500", "503"])
async def test_server_errors(fake_llm: FakeLLMThread, client: AsyncOpenAI, kind: str) -> None:
    fake_llm.set_faults(Faults(sequence=[kind]))
    with pytest.raises(openai.InternalServerError) as error:
        await client.chat.completions.create(model="m", messages=USER_HI)
    assert error.value.status_code == int(kind)


async def test_reset_is_a_connection_error(fake_llm: FakeLLMThread, client: AsyncOpenAI) -> None:
    fake_llm.set_faults(Faults(sequence=["reset"]))
    with pytest.raises(openai.APIConnectionError) as error:
        await client.chat.completions.create(model="m", messages=USER_HI)
    assert not isinstance(error.value, openai.APITimeoutError)


def test_reset_sends_an_rst(fake_llm: FakeLLMThread) -> None:
    fake_llm.set_faults(Faults(sequence=["reset"]))
    with socket.create_connection(("127.0.0.1", fake_llm.port), timeout=5) as sock:
        sock.sendall(http_request("/v1/chat/completions", chat_body()))
        with pytest.raises(ConnectionResetError):
            sock.recv(1024)


async def test_hang_times_the_client_out(fake_llm: FakeLLMThread) -> None:
    fake_llm.set_faults(Faults(sequence=["hang"], hang_seconds=1))
    async with AsyncOpenAI(base_url=fake_llm.base_url, api_key="x", max_retries=0, timeout=0.2) as client:
        started = time.perf_counter()
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(model="m", messages=USER_HI)
    assert 0.2 <= time.perf_counter() - started < 1


def test_hang_closes_without_an_answer_after_hang_seconds(fake_llm: FakeLLMThread) -> None:
    fake_llm.set_faults(Faults(sequence=["hang"], hang_seconds=0.2))
    with socket.create_connection(("127.0.0.1", fake_llm.port), timeout=5) as sock:
        started = time.perf_counter()
        sock.sendall(http_request("/v1/chat/completions", chat_body()))
        assert sock.recv(1024) == b""
    assert 0.2 <= time.perf_counter() - started < 2


async def test_malformed_is_a_decode_error(fake_llm: FakeLLMThread, client: AsyncOpenAI) -> None:
    fake_llm.set_faults(Faults(sequence=["malformed", "malformed"]))
    with pytest.raises(json.JSONDecodeError):
        await client.chat.completions.create(model="m", messages=USER_HI)
    stream = await client.chat.completions.create(model="m", messages=USER_HI, stream=True)
    with pytest.raises(json.JSONDecodeError):
        await _collect(stream, [])


async def test_cut_stream_breaks_the_stream_before_the_end(
    fake_llm: FakeLLMThread, client: AsyncOpenAI
) -> None:
    fake_llm.set_faults(Faults(sequence=["cut_stream"], cut_after_events=3))
    stream = await client.chat.completions.create(model="m", messages=USER_HI, stream=True)
    received: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APIConnectionError):
        await _collect(stream, received)
    assert len(received) == 3
    assert all(chunk.choices[0].finish_reason is None for chunk in received)
    assert fake_llm.stats().outcomes["cut_stream"] == 1


def test_cut_stream_on_a_plain_request_is_a_reset(fake_llm: FakeLLMThread) -> None:
    fake_llm.set_faults(Faults(sequence=["cut_stream"]))
    with httpx.Client(base_url=fake_llm.base_url) as http, pytest.raises(httpx.ReadError):
        http.post("/chat/completions", content=chat_body())
    assert fake_llm.stats().outcomes["reset"] == 1
    assert fake_llm.stats().outcomes["cut_stream"] == 0


async def test_sequence_then_success_and_sdk_retries_honour_retry_after(fake_llm: FakeLLMThread) -> None:
    fake_llm.set_faults(Faults(sequence=["429", "429", "ok"], retry_after=0.05))
    async with AsyncOpenAI(base_url=fake_llm.base_url, api_key="x", max_retries=2) as client:
        started = time.perf_counter()
        completion = await client.chat.completions.create(model="m", messages=USER_HI)
    assert completion.choices[0].message.content
    assert time.perf_counter() - started >= 0.1
    stats = fake_llm.stats()
    assert stats.requests == 3
    assert [record.outcome for record in stats.log] == ["429", "429", "ok"]


def test_sequence_then_rate_and_reset_rewinds(fake_llm: FakeLLMThread) -> None:
    fake_llm.set_faults(Faults(sequence=["500", "ok", "503"], rate=1.0, kinds={"429": 1}))
    with httpx.Client(base_url=fake_llm.base_url) as http:
        codes = [http.post("/chat/completions", content=chat_body()).status_code for _ in range(5)]
        assert codes == [500, 200, 503, 429, 429]
        fake_llm.reset()
        assert http.post("/chat/completions", content=chat_body()).status_code == 500


def test_rate_is_deterministic_given_the_seed(fake_llm: FakeLLMThread) -> None:
    fake_llm.set_faults(Faults(rate=0.3, kinds={"429": 1, "500": 1}))

    def run() -> list[int]:
        with socket.create_connection(("127.0.0.1", fake_llm.port), timeout=5) as sock:
            request = http_request("/v1/chat/completions", chat_body())
            codes = []
            for _ in range(10):  # 10 batches of 100 pipelined requests
                sock.sendall(request * 100)
                codes += [int(head.split(b" ")[1]) for head, _ in read_responses(sock, 100)]
        return codes

    first = run()
    counts = Counter(first)
    assert len(first) == 1000
    assert 260 <= counts[429] + counts[500] <= 340
    assert counts[429] > 100 and counts[500] > 100
    assert fake_llm.stats().outcomes["ok"] == counts[200]
    fake_llm.reset()  # re-seeds: the same outcomes again
    assert run() == first


def test_fault_draws_follow_weights_and_seed() -> None:
    faults = Faults(rate=0.5, kinds={"reset": 3, "hang": 1})
    injector = FaultInjector(faults, seed=1)
    outcomes = [injector.next() for _ in range(4000)]
    counts = Counter(outcomes)
    assert set(counts) == {"ok", "reset", "hang"}
    assert 1850 <= counts["ok"] <= 2150
    assert 2.5 <= counts["reset"] / counts["hang"] <= 3.5
    other = FaultInjector(faults, seed=2)
    assert [other.next() for _ in range(4000)] != outcomes


def test_faults_validation_and_parsing() -> None:
    assert Faults.model_validate({"kinds": {429: 2}, "sequence": [500, "ok"]}).sequence == ["500", "ok"]
    assert Faults().weights == {"429": 1.0, "500": 1.0, "503": 1.0}
    assert Faults.parse_weights("429=1, reset=0.5,hang") == {"429": 1.0, "reset": 0.5, "hang": 1.0}
    with pytest.raises(UsageError, match="unknown fault kind 'boom'"):
        Faults.parse_weights("boom=1")
    with pytest.raises(ValueError, match="less than or equal to 1"):
        Faults(rate=1.5)
    with pytest.raises(ValueError, match="positive weight"):
        Faults(rate=0.1, kinds={"429": 0})
    assert set(FAULT_KINDS) == {"429", "500", "503", "reset", "hang", "malformed", "cut_stream"}


def test_faults_over_http(fake_llm: FakeLLMThread) -> None:
    with httpx.Client(base_url=fake_llm.url) as http:
        answer = http.post("/_fake/faults", json={"sequence": [503], "retry_after": 0.5})
        assert answer.status_code == 200
        assert http.get("/_fake/faults").json()["sequence"] == ["503"]
        assert http.post("/v1/chat/completions", content=chat_body()).status_code == 503
        invalid = http.post("/_fake/faults", json={"rate": 2})
        assert invalid.status_code == 400
        assert "rate" in invalid.json()["error"]["message"]
    assert fake_llm.server.faults.retry_after == 0.5


async def test_fixed_latency_before_the_response(fake_llm: FakeLLMThread, client: AsyncOpenAI) -> None:
    fake_llm.set_latency(Latency.fixed(150))
    started = time.perf_counter()
    await client.chat.completions.create(model="m", messages=USER_HI)
    assert 0.15 <= time.perf_counter() - started < 1.0
    fake_llm.set_faults(Faults(sequence=["429"]))  # faults wait too
    started = time.perf_counter()
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model="m", messages=USER_HI)
    assert time.perf_counter() - started >= 0.15


async def test_stream_latency_before_first_chunk_and_between_chunks(
    fake_llm: FakeLLMThread, client: AsyncOpenAI
) -> None:
    fake_llm.set_latency(Latency.fixed(100, chunk_ms=30))
    started = time.perf_counter()
    stream = await client.chat.completions.create(model="m", messages=USER_HI, stream=True)
    arrivals = [time.perf_counter() - started async for _ in stream]
    assert arrivals[0] >= 0.1
    assert len(arrivals) == 5  # role, 3 content pieces, finish
    assert arrivals[-1] - arrivals[0] >= 4 * 0.03 * 0.9


def test_latency_over_http(fake_llm: FakeLLMThread) -> None:
    with httpx.Client(base_url=fake_llm.url) as http:
        assert (
            http.post("/_fake/latency", json={"kind": "uniform", "min_ms": 50, "max_ms": 60}).status_code
            == 200
        )
        started = time.perf_counter()
        http.post("/v1/chat/completions", content=chat_body())
        assert time.perf_counter() - started >= 0.05
        assert (
            http.post("/_fake/latency", json={"kind": "uniform", "min_ms": 5, "max_ms": 1}).status_code == 400
        )


def test_latency_distributions_are_seeded_and_clipped() -> None:
    normal = LatencySampler(Latency.normal(10, 20), seed=3)
    samples = [normal.sample() for _ in range(2000)]
    assert min(samples) == 0.0  # clipped at 0
    assert 0.010 < sum(samples) / len(samples) < 0.020
    again = LatencySampler(Latency.normal(10, 20), seed=3)
    assert [again.sample() for _ in range(2000)] == samples
    uniform = LatencySampler(Latency.uniform(20, 40), seed=3)
    assert all(0.020 <= uniform.sample() <= 0.040 for _ in range(500))
    assert LatencySampler(Latency.fixed(7), seed=0).sample() == 0.007


def test_latency_parse() -> None:
    assert Latency.parse("50") == Latency.fixed(50)
    assert Latency.parse("10..50", chunk_ms=5) == Latency.uniform(10, 50, chunk_ms=5)
    assert Latency.parse("40~10") == Latency.normal(40, 10)
    with pytest.raises(UsageError, match="bad latency"):
        Latency.parse("fast")
    with pytest.raises(UsageError, match="max_ms >= min_ms"):
        Latency.parse("50..10")
