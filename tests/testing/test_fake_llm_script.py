"""Scripting: rule conditions, order, reply sequences, templating, files, callables, hot swaps."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from keel.errors import ConfigError, UsageError
from keel.testing.fake_llm import (
    ChatRequest,
    FakeLLMThread,
    Message,
    Reply,
    Rule,
    RuleScript,
    ToolCall,
    ToolCallReply,
    ToolDefinition,
    When,
    as_script,
    load_rules,
    parse_rules,
)
from keel.testing.fake_llm.wire import parse_chat_request
from tests.testing.support import USER_HI, chat_body

TOOL_LOOP = (
    Message("system", "Be brief."),
    Message("user", "What is the weather in Paris?"),
    Message("assistant", "", tool_calls=(ToolCall("call_1", "get_weather", '{"city": "Paris"}'),)),
    Message("tool", "Sunny, 21C", tool_call_id="call_1"),
)


def request(*messages: Message, model: str = "m", tools: tuple[str, ...] = ()) -> ChatRequest:
    return ChatRequest(model=model, messages=messages, tools=tuple(ToolDefinition(name) for name in tools))


def text_of(script: RuleScript, req: ChatRequest) -> str | None:
    return script.decide(req).reply.text


@pytest.mark.parametrize(
    ("when", "matching", "not_matching"),
    [
        (When(last_user_contains="WEATHER"), request(*TOOL_LOOP), request(Message("user", "hello"))),
        (
            When(last_user_regex=r"in (Paris|Rome)\?$"),
            request(Message("user", "Sun in Rome?")),
            request(Message("user", "sun in rome?")),
        ),
        (
            When(conversation_contains="sunny"),
            request(*TOOL_LOOP),
            request(Message("user", "What is the weather in Paris?")),
        ),
        (When(model="gpt-x"), request(Message("user", "a"), model="gpt-x"), request(Message("user", "a"))),
        (When(last_is_tool_result=True), request(*TOOL_LOOP), request(*TOOL_LOOP[:2])),
        (When(last_is_tool_result=False), request(*TOOL_LOOP[:2]), request(*TOOL_LOOP)),
        (When(tool_result_contains="SUNNY"), request(*TOOL_LOOP), request(*TOOL_LOOP[:3])),
        (
            When(tool_result_name="get_weather"),
            request(*TOOL_LOOP),
            request(*TOOL_LOOP[:3], Message("tool", "x", tool_call_id="unknown")),
        ),
        (When(assistant_turns=1), request(*TOOL_LOOP), request(*TOOL_LOOP[:2])),
        (When(assistant_turns=0), request(*TOOL_LOOP[:2]), request(*TOOL_LOOP)),
        (
            When(tool_offered="search"),
            request(*TOOL_LOOP, tools=("search",)),
            request(*TOOL_LOOP, tools=("x",)),
        ),
        (
            When(last_user_contains="weather", tool_offered="search"),  # conditions are ANDed
            request(*TOOL_LOOP, tools=("search",)),
            request(*TOOL_LOOP),
        ),
        (When(last_user_contains="x"), request(Message("user", "x")), request(Message("system", "x"))),
    ],
)
def test_when_conditions(when: When, matching: ChatRequest, not_matching: ChatRequest) -> None:
    assert when.matches(matching)
    assert not when.matches(not_matching)


def test_tool_result_names_cover_the_trailing_results() -> None:
    req = request(
        Message("user", "two tools"),
        Message(
            "assistant",
            tool_calls=(ToolCall("a", "get_weather", "{}"), ToolCall("b", "get_time", "{}")),
        ),
        Message("tool", "sunny", tool_call_id="a"),
        Message("tool", "noon", tool_call_id="b"),
    )
    assert [(r.name, r.content) for r in req.tool_results] == [("get_weather", "sunny"), ("get_time", "noon")]
    assert When(tool_result_name="get_weather").matches(req)
    assert When(tool_result_name="get_time", tool_result_contains="noon").matches(req)


def test_first_matching_rule_wins_else_default() -> None:
    script = RuleScript(
        [
            Rule(when=When(last_user_contains="weather"), reply=Reply("first"), name="weather"),
            Rule(when=When(last_user_contains="paris"), reply=Reply("second")),
        ],
        default=Reply("fallback"),
    )
    assert script.decide(request(Message("user", "weather in Paris"))) == (Reply("first"), "weather")
    assert script.decide(request(Message("user", "Paris"))) == (Reply("second"), "rules[1]")
    assert script.decide(request(Message("user", "nothing"))) == (Reply("fallback"), "default")


def test_reply_sequences_repeat_the_last_or_cycle_and_reset() -> None:
    script = RuleScript(
        [
            Rule(when=When(last_user_contains="a"), reply=[Reply("a1"), Reply("a2")]),
            Rule(when=When(last_user_contains="b"), reply=[Reply("b1"), Reply("b2")], cycle=True),
        ]
    )
    a, b = request(Message("user", "a")), request(Message("user", "b"))
    assert [text_of(script, a) for _ in range(3)] == ["a1", "a2", "a2"]
    assert [text_of(script, b) for _ in range(3)] == ["b1", "b2", "b1"]
    script.reset()
    assert text_of(script, a) == "a1"


def test_templating_of_text_replies() -> None:
    script = RuleScript(
        default=Reply("You said {last_user!r}? {last_user} on {model}; tool: {last_tool_result}; {json: 1}")
    )
    assert text_of(script, request(*TOOL_LOOP, model="gpt")) == (
        "You said {last_user!r}? What is the weather in Paris? on gpt; tool: Sunny, 21C; {json: 1}"
    )


def test_reply_validation() -> None:
    with pytest.raises(UsageError, match="either JSON"):
        Reply(text="x", json={"a": 1})
    with pytest.raises(UsageError, match="needs text"):
        Reply()
    with pytest.raises(UsageError, match="invalid last_user_regex"):
        When(last_user_regex="(")
    with pytest.raises(UsageError, match="at least one reply"):
        Rule(reply=[])


def test_rules_document_round_trips() -> None:
    document = {
        "default": {"text": "fallback"},
        "rules": [
            {
                "name": "tool",
                "when": {"last_user_contains": "weather", "assistant_turns": 0},
                "reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
            },
            {"when": {"tool_offered": "final_result"}, "replies": [{"json": {"a": 1}}, {"json": {"a": 2}}]},
            {"reply": {"text": "cut", "finish_reason": "length"}, "cycle": True},
        ],
    }
    script = parse_rules(document)
    assert script.to_json() == document
    assert script.rules[0].replies[0].tool_calls == (ToolCallReply("get_weather", {"city": "Paris"}),)
    assert parse_rules(script.to_json()).to_json() == document


def test_rules_shorthands() -> None:
    script = parse_rules([{"when": {"model": "x"}, "reply": "just text"}, {"replies": ["one", "two"]}])
    assert script.rules[0].replies == (Reply("just text"),)
    assert script.rules[1].replies == (Reply("one"), Reply("two"))


YAML_RULES = """\
# a scenario for the weather agent
default: I only talk about the weather.
rules:
  - name: ask-tool
    when:
      last_user_contains: weather
      tool_offered: get_weather
      last_is_tool_result: false
    reply:
      tool_calls:
        - name: get_weather
          arguments: {city: Paris}
  - when: {tool_result_name: get_weather}
    reply: "Forecast: {last_tool_result}"
"""


def test_load_rules_from_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "rules.yaml"
    yaml_file.write_text(YAML_RULES)
    script = load_rules(yaml_file)
    assert script.source == str(yaml_file)
    assert [rule.name for rule in script.rules] == ["ask-tool", None]
    assert script.default == Reply("I only talk about the weather.")
    decision = script.decide(request(*TOOL_LOOP[:2], tools=("get_weather",)))
    assert decision.rule == "ask-tool"
    assert text_of(script, request(*TOOL_LOOP)) == "Forecast: Sunny, 21C"

    json_file = tmp_path / "rules.json"
    json_file.write_text(json.dumps(script.to_json(), indent=2))
    assert load_rules(json_file).to_json() == script.to_json()
    assert isinstance(as_script(str(json_file)), RuleScript)


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        (
            "rules:\n  - when:\n      last_user_contain: x\n    reply: hi\n",
            3,
            "rules[0].when.last_user_contain",
            "unknown key",
        ),
        (
            "rules:\n  - reply: a\n  - when: {last_user_regex: '('}\n    reply: b\n",
            3,
            "rules[1].when.last_user_regex",
            "invalid regular expression",
        ),
        ("rules:\n  - when: {}\n", 2, "rules[0]", "exactly one of 'reply' or 'replies'"),
        ("rules:\n  - reply: {text: a, json: {b: 1}}\n", 2, "rules[0].reply", "not both"),
        (
            "rules:\n  - reply:\n      tool_calls: [{arguments: {}}]\n",
            3,
            "rules[0].reply.tool_calls[0].name",
            "Field required",
        ),
        (
            "rules:\n  - when: {assistant_turns: -1}\n    reply: a\n",
            2,
            "rules[0].when.assistant_turns",
            "greater than or equal to 0",
        ),
        ("rules:\n  - reply: a\n  bad: [\n", 3, "", "invalid YAML"),
        ("just a string\n", 1, "", "expected a mapping with 'rules'"),
        ("", None, "", "empty"),
    ],
)
def test_rules_file_errors_name_the_file_line_and_field(
    tmp_path: Path, text: str, line: int | None, field: str, message: str
) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_rules(path)
    [issue] = error.value.issues
    assert issue.file == str(path)
    assert issue.line == line
    assert issue.field == field
    assert message in issue.message
    assert str(path) in str(error.value)


def test_rules_file_errors_in_json_and_missing_files(tmp_path: Path) -> None:
    bad_json = tmp_path / "rules.json"
    bad_json.write_text('{"rules": [\n  {"reply": "a",}\n]}')
    with pytest.raises(ConfigError) as error:
        load_rules(bad_json)
    assert error.value.issues[0].line == 2
    assert "invalid JSON" in error.value.issues[0].message
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read the rules file: No such file"):
        load_rules(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="a Python file is not a rules file"):
        load_rules(tmp_path / "fake_llm.py")


def test_as_script_rejects_what_it_cannot_use() -> None:
    with pytest.raises(UsageError, match="cannot use a int"):
        as_script(42)  # type: ignore[arg-type]


async def test_callable_script_sees_a_typed_request(fake_llm: FakeLLMThread, client: AsyncOpenAI) -> None:
    seen: list[ChatRequest] = []

    def script(req: ChatRequest) -> Reply:
        seen.append(req)
        return Reply(f"{len(req.messages)} messages, tools {sorted(req.tool_names)}, json={req.wants_json}")

    fake_llm.set_script(script)
    completion = await client.chat.completions.create(
        model="gpt-z",
        messages=[
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        ],
        tools=[{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
        response_format={"type": "json_object"},
    )
    assert completion.choices[0].message.content == "2 messages, tools ['lookup'], json=True"
    [req] = seen
    assert req.model == "gpt-z"
    assert req.last_user == "hi"
    assert req.response_format == "json_object"
    assert req.stream is False
    assert req.body["model"] == "gpt-z"
    assert fake_llm.stats().log[0].rule == "callable"


async def test_a_failing_callable_is_a_500_and_logged(fake_llm: FakeLLMThread, client: AsyncOpenAI) -> None:
    def script(req: ChatRequest) -> Reply:
        raise KeyError("no such fixture")

    fake_llm.set_script(script)
    with pytest.raises(openai.InternalServerError, match="KeyError"):
        await client.chat.completions.create(model="m", messages=USER_HI)
    record = fake_llm.stats().log[0]
    assert record.outcome == "script_error"
    assert record.error is not None and "no such fixture" in record.error


async def test_first_bad_then_good_output(fake_llm: FakeLLMThread, client: AsyncOpenAI) -> None:
    fake_llm.set_script({"rules": [{"replies": [{"json": {"wrong": True}}, {"json": {"answer": 42}}]}]})
    contents = []
    for _ in range(3):
        completion = await client.chat.completions.create(model="m", messages=USER_HI)
        contents.append(json.loads(completion.choices[0].message.content or ""))
    assert contents == [{"wrong": True}, {"answer": 42}, {"answer": 42}]


def test_script_hot_swap_over_http(fake_llm: FakeLLMThread) -> None:
    with httpx.Client(base_url=fake_llm.url) as http:
        swapped = http.post(
            "/_fake/script", json={"rules": [{"when": {"last_user_contains": "hi"}, "reply": "swapped"}]}
        )
        assert swapped.json() == {"ok": True, "rules": 1}
        answer = http.post("/v1/chat/completions", content=chat_body("hi"))
        assert answer.json()["choices"][0]["message"]["content"] == "swapped"

        invalid = http.post("/_fake/script", json={"rules": [{"reply": "a", "colour": "red"}]})
        assert invalid.status_code == 400
        message = invalid.json()["error"]["message"]
        assert "POST /_fake/script: rules[0].colour: unknown key" in message
        not_json = http.post("/_fake/script", content=b"rules: yaml")
        assert not_json.status_code == 400
        # a rejected script leaves the current one in place
        answer = http.post("/v1/chat/completions", content=chat_body("hi"))
        assert answer.json()["choices"][0]["message"]["content"] == "swapped"


def test_parse_chat_request_flattens_content_and_resolves_tool_names() -> None:
    req = parse_chat_request(
        {
            "model": "m",
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {}}],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "done"},
            ],
            "stream": True,
            "stream_options": {"include_usage": True},
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        }
    )
    assert req.messages[0].content == "look"
    assert req.messages[0].non_text_parts == 1
    assert req.tool_results[0].name == "f"
    assert req.assistant_turns == 1
    assert req.stream and req.include_usage
    assert req.response_schema == {"name": "x", "schema": {}}


def test_marked_tool_results_read_through_but_count_as_sent() -> None:
    """A tool result Keel marked as untrusted data: scripts see its content, token counts see
    what was sent (the marking is part of the prompt a provider bills)."""
    from keel.guardrails.injection import mark_untrusted
    from keel.testing.fake_llm.tokens import prompt_tokens
    from keel.testing.fake_llm.wire import parse_chat_request

    def body(content: str) -> dict[str, object]:
        return {
            "model": "m",
            "messages": [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": content},
            ],
        }

    marked = parse_chat_request(body(mark_untrusted("sunny, 21 C", "tool w")))
    plain = parse_chat_request(body("sunny, 21 C"))
    assert marked.last_tool_result is not None and marked.last_tool_result.content == "sunny, 21 C"
    assert prompt_tokens(marked) > prompt_tokens(plain) + 40
