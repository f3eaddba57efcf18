"""Content capture through the span helpers: off leaks nothing, on cuts, redacted masks, and
secrets never reach a span in any mode."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic_ai.messages import (
    BinaryContent,
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from keel.config.schema import OtlpConfig
from keel.testing.otlp_receiver import OtlpReceiver
from keel.tracing import TRUNCATED, ContentCapture, Tracing, agent_span, chat_span, size_of, tool_span
from tests.tracing.helpers import Collector, make_tracing

ENV_SECRET = "hunter2-" + "correct-horse-battery"
OPENAI_KEY = "sk-proj-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2"
EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
PHONE = "+44 20 7946 0958"
MARKER = "Marmalade-Quokka"  # plain content, not personal: shows whether content was captured


def full_run(tracing: Tracing) -> None:
    """A run whose input, messages, tool arguments and results, outputs, error messages and
    events all carry content, personal data and secrets."""
    payload = f"{MARKER} mail {EMAIL} card {CARD} key {OPENAI_KEY} env {ENV_SECRET}"
    messages = [
        ModelRequest(parts=[SystemPromptPart(f"system {MARKER}"), UserPromptPart(payload)]),
        ModelResponse(
            parts=[ToolCallPart("lookup", {"q": payload, "password": "pw-12345"}, tool_call_id="c1")]
        ),
        ModelRequest(parts=[ToolReturnPart("lookup", {"found": payload}, tool_call_id="c1")]),
    ]
    with agent_span(
        tracing, agent="inbox", run_id="r", model="m", conversation_id="c", input={"text": payload}
    ) as run:
        with chat_span(tracing, provider="openai", model="x", attempt=1, messages=messages[:1]) as chat:
            chat.failed("model_unavailable", f"upstream said: {payload}", retry_in=0.1)
        with chat_span(tracing, provider="openai", model="x", attempt=2, messages=messages[:1]) as chat:
            chat.ok(5, 5, "x", ["tool_call"], messages[1])
        with tool_span(tracing, name="lookup", call_id="c1", args={"q": payload}) as tool:
            tool.ok({"found": payload, "phone": PHONE})
        with tool_span(tracing, name="lookup", call_id="c2", args={"q": payload}) as tool:
            tool.failed("error", f"ValueError: bad {payload}")
        with chat_span(tracing, provider="openai", model="x", attempt=1, messages=messages) as chat:
            chat.ok(9, 3, "x", ["stop"], ModelResponse(parts=[TextPart(f"answer {payload}")]))
        run.event("fallback", detail=payload, count=2)
        run.finish("failed", "internal", f"crashed on {payload}", f"partial {payload}", 14, 8, None)


def tracing_for(mode: str, **kwargs: Any) -> tuple[Tracing, Collector]:
    return make_tracing(
        mode, environ={"MY_SERVICE_KEY": ENV_SECRET}, secret_env_vars=["MY_SERVICE_KEY"], **kwargs
    )


@pytest.mark.parametrize("mode", ["off", "on", "redacted"])
def test_secrets_never_reach_a_span(mode: str) -> None:
    tracing, sink = tracing_for(mode)
    full_run(tracing)
    text = sink.text()
    assert len(sink.records) == 6
    assert OPENAI_KEY not in text and OPENAI_KEY[8:16] not in text
    assert ENV_SECRET not in text
    assert "pw-12345" not in text
    # Error messages and events are kept in every mode, masked.
    assert "[REDACTED:api_key]" in text
    assert "[REDACTED:secret]" in text


def test_well_known_key_variables_and_otlp_header_values_are_masked_without_being_named() -> None:
    value, header = "value-of-the-openai-key-1234", "otlp-header-token-5678"
    environ = {"OPENAI_API_KEY": value, "COLLECTOR_TOKEN": header}
    with OtlpReceiver() as receiver:
        otlp = OtlpConfig(endpoint=receiver.endpoint, headers_env={"x-token": "COLLECTOR_TOKEN"})
        tracing, sink = make_tracing("on", environ=environ, otlp=otlp)
        with tool_span(tracing, name="t", call_id="c", args={"a": f"{value} and {header}"}) as tool:
            tool.failed("error", f"echo {value} / {header}")
        assert tracing.shutdown()
        exported = receiver.wait_for(1)
    text = sink.text()
    assert value not in text and header not in text
    assert text.count("[REDACTED:secret]") == 6  # args (2), status message (2), exception event (2)
    assert value not in repr(exported) and header not in repr(exported)


def test_off_captures_no_content_only_sizes() -> None:
    tracing, sink = tracing_for("off")
    full_run(tracing)
    content_records = [r for r in sink.records if r.status != "error"]
    for record in content_records:
        assert MARKER not in json.dumps(record.attributes), record.name
    for name in ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.tool.call.arguments"):
        assert all(name not in r.attributes for r in sink.records)
    agent = sink.one("invoke_agent inbox")
    assert agent.attributes["keel.input.size"] > 50
    assert agent.attributes["keel.output.size"] > 50
    tool = sink.named("execute_tool lookup")[0]
    assert tool.attributes["keel.tool.args.size"] > 50
    assert tool.attributes["keel.tool.result.size"] > 50
    assert sink.named("chat x")[2].attributes["keel.chat.messages"] == 3
    # Error messages are not content: kept, with personal data (off masks secrets only).
    assert EMAIL in (agent.status_message or "")


def test_on_captures_content_as_genai_json_with_secrets_masked() -> None:
    tracing, sink = tracing_for("on")
    full_run(tracing)
    agent = sink.one("invoke_agent inbox")
    input_messages = json.loads(agent.attributes["gen_ai.input.messages"])
    assert input_messages[0]["role"] == "user"
    content = json.loads(input_messages[0]["parts"][0]["content"])
    assert content["text"].startswith(f"{MARKER} mail {EMAIL} card {CARD} key [REDACTED:api_key]")
    output = json.loads(agent.attributes["gen_ai.output.messages"])
    assert output[0]["role"] == "assistant"
    assert output[0]["parts"][0]["content"].startswith(f"partial {MARKER}")

    last_chat = sink.named("chat x")[-1]
    sent = json.loads(last_chat.attributes["gen_ai.input.messages"])
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]
    assert sent[2]["parts"][0]["type"] == "tool_call"
    assert sent[2]["parts"][0]["arguments"]["password"] == "[REDACTED:secret]"
    assert sent[3]["parts"][0]["type"] == "tool_call_response"
    answer = json.loads(last_chat.attributes["gen_ai.output.messages"])
    assert answer[0]["parts"][0] == {"type": "text", "content": answer[0]["parts"][0]["content"]}
    assert answer[0]["parts"][0]["content"].startswith(f"answer {MARKER}")

    tool = sink.named("execute_tool lookup")[0]
    assert json.loads(tool.attributes["gen_ai.tool.call.arguments"])["q"].startswith(MARKER)
    assert json.loads(tool.attributes["gen_ai.tool.call.result"])["phone"] == PHONE


def test_redacted_masks_personal_data_everywhere() -> None:
    tracing, sink = tracing_for("redacted")
    full_run(tracing)
    text = sink.text()
    assert MARKER in text
    for value in (EMAIL, CARD, PHONE, OPENAI_KEY, ENV_SECRET):
        assert value not in text
    for kind in ("email", "card", "phone", "api_key", "secret"):
        assert f"[REDACTED:{kind}]" in text
    agent = sink.one("invoke_agent inbox")
    assert "[REDACTED:email]" in (agent.status_message or "")


def test_on_cuts_long_content_with_a_marker() -> None:
    tracing, sink = make_tracing("on", max_content_chars=200)
    long_text = "word " * 10_000
    with tool_span(tracing, name="t", call_id="c", args={"text": long_text}) as tool:
        tool.ok(long_text)
    record = sink.one("execute_tool t")
    for name in ("gen_ai.tool.call.arguments", "gen_ai.tool.call.result"):
        value = record.attributes[name]
        assert value.endswith(TRUNCATED)
        assert len(value) == 200 + len(TRUNCATED)
    assert record.attributes["keel.tool.args.size"] > 50_000


def test_a_secret_straddling_the_cut_is_masked_before_cutting() -> None:
    capture = ContentCapture("on", max_chars=100)
    text = "a" * 90 + " " + OPENAI_KEY + " tail"
    out = capture.json(text)
    assert out is not None and out.endswith(TRUNCATED)
    assert "sk-proj" not in out and OPENAI_KEY[:5] not in out[85:]


def test_a_secret_after_a_newline_is_masked_and_the_json_stays_valid() -> None:
    capture = ContentCapture("redacted")
    out = capture.json({"note": f"first line\n{OPENAI_KEY}\n\tmail:{EMAIL}", "n": 4111111111111111})
    assert out is not None
    assert json.loads(out) == {
        "note": "first line\n[REDACTED:api_key]\n\tmail:[REDACTED:email]",
        "n": "[REDACTED:card]",
    }


def test_sensitive_keys_are_masked_whatever_they_hold() -> None:
    capture = ContentCapture("on")
    out = capture.json({"user": "ada", "password": {"nested": 1}, "Authorization": "x", "api_key": None})
    assert out is not None
    assert json.loads(out) == {
        "user": "ada",
        "password": "[REDACTED:secret]",
        "Authorization": "[REDACTED:secret]",
        "api_key": "[REDACTED:secret]",
    }


def test_messages_that_are_not_messages_become_one_text_message() -> None:
    capture = ContentCapture("on")
    assert json.loads(capture.messages("hello", "user") or "") == [
        {"role": "user", "parts": [{"type": "text", "content": "hello"}]}
    ]
    structured = json.loads(capture.messages({"a": [1, 2]}, "assistant") or "")
    assert structured[0]["parts"][0]["content"] == '{"a":[1,2]}'
    already = [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
    assert json.loads(capture.messages(already, "user") or "") == already


def test_binary_content_is_left_out() -> None:
    capture = ContentCapture("on")
    image = BinaryContent(data=b"\x89PNG" + b"\x00" * 5000, media_type="image/png")
    out = capture.messages([ModelRequest(parts=[UserPromptPart(["look", image])])], "user")
    assert out is not None and len(out) < 500
    assert "image/png" in out


def test_unserialisable_and_odd_values_do_not_break_capture() -> None:
    capture = ContentCapture("on")
    loop: list[Any] = []
    loop.append(loop)
    assert capture.json(loop) == '"<unserialisable list>"'
    assert capture.json(object()) is not None
    assert capture.json(float("nan")) == '"NaN"'
    assert capture.json(b"\x00\x01") == '"AAE="'
    assert ContentCapture("off").json({"a": 1}) is None
    assert ContentCapture("off").messages("x", "user") is None


def test_error_messages_are_cut() -> None:
    capture = ContentCapture("off", max_message_chars=50)
    out = capture.text("x" * 500)
    assert out == "x" * 50 + TRUNCATED
    assert capture.text(None) is None


def test_sizes() -> None:
    assert size_of(None) == 0
    assert size_of("abc") == 3
    assert size_of("é") == 2
    assert size_of(b"1234") == 4
    assert size_of({"a": 1}) == len('{"a":1}')
    loop: list[Any] = []
    loop.append(loop)
    assert size_of(loop) == 0


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="capture mode"):
        ContentCapture("everything")  # type: ignore[arg-type]


def test_a_long_history_is_cut_and_costs_only_its_new_messages() -> None:
    capture = ContentCapture("on", max_chars=2000)
    history: list[Any] = [
        ModelRequest(parts=[UserPromptPart(f"message {i} " + "x" * 300)]) for i in range(50)
    ]
    first = capture.messages(history, "user")
    assert first is not None and first.endswith(TRUNCATED) and len(first) == 2000 + len(TRUNCATED)
    assert '"message 0 ' in first
    # Message objects already seen are served from the cache: same output, same objects.
    assert capture.messages(history, "user") == first


def test_a_capture_failure_is_reported_in_the_attribute_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    import keel.tracing.content as content

    def broken(message: object) -> list[Any]:
        raise RuntimeError("conversion bug")

    monkeypatch.setattr(content, "to_genai", broken)
    tracing, sink = make_tracing("on")
    request = ModelRequest(parts=[UserPromptPart("hello there")])
    with chat_span(tracing, provider="openai", model="x", messages=[request]) as chat:
        chat.ok(1, 1)
    assert sink.one("chat x").attributes["gen_ai.input.messages"] == "<not captured: RuntimeError>"


def test_the_message_cache_does_not_keep_messages_alive() -> None:
    import gc
    import weakref

    capture = ContentCapture("on")
    message = ModelRequest(parts=[UserPromptPart("x" * 100_000)])
    alive = weakref.ref(message)
    assert capture.messages([message], "user") is not None
    del message
    gc.collect()
    assert alive() is None
