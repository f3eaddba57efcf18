"""The chat-completions wire format over real HTTP: JSON, SSE, tool calls, JSON modes, HTTP details."""

from __future__ import annotations

import json
import socket

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from keel.testing.fake_llm import FakeLLMThread, Reply, ToolCallReply, prompt_tokens
from keel.testing.fake_llm.script import DEFAULT_REPLY_TEXT
from keel.testing.fake_llm.tokens import completion_tokens
from tests.testing.support import USER_HI, chat_body, http_request, read_responses, read_until_closed

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
OUTPUT_TOOL = {
    "type": "function",
    "function": {
        "name": "final_result",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}},
    },
}


async def test_non_streaming_default_reply_with_exact_usage(
    fake_llm: FakeLLMThread, client: AsyncOpenAI
) -> None:
    completion = await client.chat.completions.create(model="gpt-test", messages=USER_HI)

    choice = completion.choices[0]
    assert choice.message.content == DEFAULT_REPLY_TEXT
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-test"
    assert completion.id.startswith("chatcmpl-")
    seen = fake_llm.requests()[0]
    assert completion.usage is not None
    # 3 priming + 4 per message + ceil(len("hi") / 4); completion: ceil(37 / 4)
    assert completion.usage.prompt_tokens == prompt_tokens(seen) == 3 + 4 + 1
    assert completion.usage.completion_tokens == (len(DEFAULT_REPLY_TEXT) + 3) // 4
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


async def test_prompt_tokens_count_tools_and_history(fake_llm: FakeLLMThread, client: AsyncOpenAI) -> None:
    plain = await client.chat.completions.create(model="m", messages=USER_HI)
    with_tool = await client.chat.completions.create(
        model="m",
        messages=USER_HI,
        tools=[WEATHER_TOOL],
    )
    assert plain.usage is not None and with_tool.usage is not None
    schema = json.dumps(WEATHER_TOOL["function"]["parameters"], separators=(",", ":"))
    tool_cost = (
        8 + (len("get_weather") + 3) // 4 + (len("Weather of a city") + 3) // 4 + (len(schema) + 3) // 4
    )
    assert with_tool.usage.prompt_tokens - plain.usage.prompt_tokens == tool_cost


async def test_streaming_text_in_chunks_with_final_usage_chunk(
    fake_llm: FakeLLMThread, client: AsyncOpenAI
) -> None:
    fake_llm.set_script(Reply(text="x" * 40))
    stream = await client.chat.completions.create(
        model="m",
        messages=USER_HI,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "x" * 40
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) == 3  # 16-character pieces
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == 10
    assert all(chunk.usage is None for chunk in chunks[:-1])


async def test_streaming_without_include_usage_has_no_usage_chunk(fake_llm: FakeLLMThread) -> None:
    async with httpx.AsyncClient(base_url=fake_llm.base_url) as http:
        response = await http.post("/chat/completions", content=chat_body(stream=True))
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["transfer-encoding"] == "chunked"
    events = [line for line in response.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    payloads = [json.loads(event.removeprefix("data: ")) for event in events[:-1]]
    assert all(payload["choices"] for payload in payloads)
    assert all("usage" not in payload for payload in payloads)


async def test_streamed_tool_calls_reassemble(fake_llm: FakeLLMThread, client: AsyncOpenAI) -> None:
    fake_llm.set_script(
        Reply(
            tool_calls=[
                ToolCallReply("get_weather", {"city": "Paris", "unit": "celsius", "days": 3}),
                ToolCallReply("get_weather", {"city": "Rome"}),
            ]
        )
    )
    stream = await client.chat.completions.create(
        model="m",
        messages=USER_HI,
        tools=[WEATHER_TOOL],
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += delta.id or ""
            if delta.function is not None:
                call["name"] += delta.function.name or ""
                call["arguments"] += delta.function.arguments or ""

    assert finish == "tool_calls"
    assert [calls[0]["id"], calls[1]["id"]] == ["call_1", "call_2"]
    assert calls[0]["name"] == calls[1]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris", "unit": "celsius", "days": 3}
    assert json.loads(calls[1]["arguments"]) == {"city": "Rome"}


async def test_non_streaming_tool_calls_and_ids_restart_after_reset(
    fake_llm: FakeLLMThread, client: AsyncOpenAI
) -> None:
    fake_llm.set_script(
        Reply(text="Let me look.", tool_calls=[ToolCallReply("get_weather", '{"city": "Par')])
    )
    first = await client.chat.completions.create(model="m", messages=USER_HI)
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    assert message.content == "Let me look."
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    assert call.id == "call_1"
    assert call.type == "function"
    assert call.function.arguments == '{"city": "Par'  # a string is sent verbatim, even invalid JSON
    assert first.usage is not None
    assert first.usage.completion_tokens == completion_tokens(
        "Let me look.", [("get_weather", '{"city": "Par')]
    )

    fake_llm.reset()
    again = await client.chat.completions.create(model="m", messages=USER_HI)
    assert again.choices[0].message.tool_calls is not None
    assert again.choices[0].message.tool_calls[0].id == "call_1"


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True}},
    ],
)
async def test_json_reply_with_response_format_is_content(
    fake_llm: FakeLLMThread, client: AsyncOpenAI, response_format: dict[str, object]
) -> None:
    fake_llm.set_script(Reply(json={"a": 1, "b": ["x"]}))
    completion = await client.chat.completions.create(
        model="m",
        messages=USER_HI,
        response_format=response_format,
        tools=[OUTPUT_TOOL],  # the response format wins over the output tool
    )
    message = completion.choices[0].message
    assert message.tool_calls is None
    assert json.loads(message.content or "") == {"a": 1, "b": ["x"]}
    assert completion.choices[0].finish_reason == "stop"


async def test_json_reply_with_output_tool_is_a_tool_call(
    fake_llm: FakeLLMThread, client: AsyncOpenAI
) -> None:
    fake_llm.set_script(Reply(json={"a": 1}))
    completion = await client.chat.completions.create(
        model="m",
        messages=USER_HI,
        tools=[WEATHER_TOOL, OUTPUT_TOOL],
    )
    message = completion.choices[0].message
    assert message.content is None
    assert message.tool_calls is not None
    assert [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls] == [
        ("final_result", {"a": 1})
    ]
    assert completion.choices[0].finish_reason == "tool_calls"


async def test_json_reply_without_json_mode_is_json_text(
    fake_llm: FakeLLMThread, client: AsyncOpenAI
) -> None:
    fake_llm.set_script(Reply(json=[1, 2, 3]))
    completion = await client.chat.completions.create(
        model="m",
        messages=USER_HI,
        tools=[WEATHER_TOOL],
    )
    assert json.loads(completion.choices[0].message.content or "") == [1, 2, 3]


async def test_finish_reason_override(fake_llm: FakeLLMThread, client: AsyncOpenAI) -> None:
    fake_llm.set_script(Reply(text="cut", finish_reason="length"))
    completion = await client.chat.completions.create(model="m", messages=USER_HI)
    assert completion.choices[0].finish_reason == "length"


async def test_models_endpoint_lists_configured_and_seen_models(
    fake_llm: FakeLLMThread, client: AsyncOpenAI
) -> None:
    await client.chat.completions.create(model="seen-model", messages=USER_HI)
    models = [model.id async for model in client.models.list()]
    assert models == ["keel-fake", "seen-model"]
    one = await client.models.retrieve("anything")
    assert one.id == "anything"


def test_chat_path_without_v1_prefix(fake_llm: FakeLLMThread) -> None:
    response = httpx.post(fake_llm.url + "/chat/completions", content=chat_body())
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == DEFAULT_REPLY_TEXT


def test_keep_alive_and_pipelining_on_one_connection(fake_llm: FakeLLMThread) -> None:
    with socket.create_connection(("127.0.0.1", fake_llm.port), timeout=5) as sock:
        sock.sendall(http_request("/v1/chat/completions", chat_body("one")))
        [(head, _)] = read_responses(sock)
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert b"connection: close" not in head.lower()
        # two pipelined requests in one write: both answered, in order, on the same connection
        fake_llm.set_script(Reply(text="echo {last_user}"))
        sock.sendall(
            http_request("/v1/chat/completions", chat_body("two"))
            + http_request("/v1/chat/completions", chat_body("three"))
        )
        responses = read_responses(sock, 2)
    contents = [json.loads(body)["choices"][0]["message"]["content"] for _, body in responses]
    assert contents == ["echo two", "echo three"]
    assert fake_llm.stats().requests == 3


def test_httpx_client_reuses_its_connection(fake_llm: FakeLLMThread) -> None:
    ports = set()
    with httpx.Client(base_url=fake_llm.base_url) as http:
        for _ in range(5):
            with http.stream("POST", "/chat/completions", content=chat_body(stream=True)) as response:
                response.read()
                stream = response.extensions["network_stream"]
                ports.add(stream.get_extra_info("socket").getsockname()[1])
    assert len(ports) == 1


def test_connection_close_and_http_1_0(fake_llm: FakeLLMThread) -> None:
    request = http_request("/v1/chat/completions", chat_body(), extra="connection: close\r\n")
    with socket.create_connection(("127.0.0.1", fake_llm.port), timeout=5) as sock:
        sock.sendall(request)
        data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in data
    request_10 = request.replace(b"HTTP/1.1", b"HTTP/1.0").replace(b"connection: close\r\n", b"")
    with socket.create_connection(("127.0.0.1", fake_llm.port), timeout=5) as sock:
        sock.sendall(request_10)
        assert read_until_closed(sock).startswith(b"HTTP/1.1 200 OK")


def test_expect_100_continue(fake_llm: FakeLLMThread) -> None:
    body = chat_body()
    with socket.create_connection(("127.0.0.1", fake_llm.port), timeout=5) as sock:
        sock.sendall(
            http_request("/v1/chat/completions", extra="expect: 100-continue\r\n").replace(
                b"content-length: 0", f"content-length: {len(body)}".encode()
            )
        )
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        [(head, _)] = read_responses(sock)
    assert head.startswith(b"HTTP/1.1 200")


async def test_bad_requests_are_400_and_counted(fake_llm: FakeLLMThread, client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        await client.chat.completions.create(model="m", messages=[])
    assert "messages" in str(error.value)
    async with httpx.AsyncClient(base_url=fake_llm.base_url) as http:
        not_json = await http.post("/chat/completions", content=b"{not json")
        bad_role = await http.post("/chat/completions", json={"model": "m", "messages": [{"content": "x"}]})
    assert not_json.status_code == 400
    assert "not valid JSON" in not_json.json()["error"]["message"]
    assert bad_role.status_code == 400
    assert bad_role.json()["error"]["param"] == "messages[0].role"
    stats = fake_llm.stats()
    assert stats.outcomes["bad_request"] == 3
    assert stats.requests == 3
    assert stats.prompt_tokens == 0
    assert stats.models == {}  # a body that does not parse has no model
    assert [record.model for record in stats.log] == ["", "", ""]
    assert stats.log[2].error == "messages[0].role is required"


def test_routing_errors(fake_llm: FakeLLMThread) -> None:
    with httpx.Client(base_url=fake_llm.url) as http:
        assert http.get("/v1/chat/completions").status_code == 405
        assert http.get("/_fake/reset").status_code == 405
        assert http.get("/nowhere").status_code == 404
    assert fake_llm.stats().requests == 0  # only chat-completions requests are counted


def test_protocol_errors_answer_and_close(fake_llm: FakeLLMThread) -> None:
    cases = {
        b"POST /v1/chat/completions HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n": b"HTTP/1.1 501",
        b"garbage\r\n\r\n": b"HTTP/1.1 400",
        b"GET / HTTP/2.0\r\n\r\n": b"HTTP/1.1 505",
        b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: x\r\n\r\n": b"HTTP/1.1 400",
        b"GET / HTTP/1.1\r\n" + b"x-big: " + b"a" * 70_000 + b"\r\n\r\n": b"HTTP/1.1 431",
    }
    for request, expected in cases.items():
        with socket.create_connection(("127.0.0.1", fake_llm.port), timeout=5) as sock:
            sock.sendall(request)
            answer = read_until_closed(sock)
        assert answer.startswith(expected), (request[:40], answer[:80])
        assert b"connection: close" in answer
