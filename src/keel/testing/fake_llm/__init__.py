"""Keel's fake OpenAI-compatible LLM server: real HTTP on loopback, scripted replies, faults, counters.

Quick start::

    from keel.testing.fake_llm import FakeLLMThread, Faults, Reply

    with FakeLLMThread(Reply(text="hello")) as fake:
        client = OpenAI(base_url=fake.base_url, api_key="x")
        ...
        assert fake.stats().requests == 1

See docs/fake-llm.md for the rules file format, faults, latency, counters and the pytest fixture.
"""

from keel.testing.fake_llm.faults import FAULT_KINDS, FaultKind, Faults, Outcome
from keel.testing.fake_llm.latency import Latency
from keel.testing.fake_llm.rules import ScriptLike, as_script, load_rules, load_script, parse_rules
from keel.testing.fake_llm.runners import (
    FakeLLMError,
    FakeLLMProcess,
    FakeLLMThread,
    serve_forever,
    start_fake_llm_process,
)
from keel.testing.fake_llm.script import (
    Decision,
    FunctionScript,
    Reply,
    Rule,
    RuleScript,
    Script,
    StaticScript,
    ToolCallReply,
    When,
)
from keel.testing.fake_llm.server import FakeLLM
from keel.testing.fake_llm.stats import OUTCOMES, ModelStats, RequestRecord, Stats
from keel.testing.fake_llm.tokens import completion_tokens, prompt_tokens, text_tokens
from keel.testing.fake_llm.wire import ChatRequest, Message, ToolCall, ToolDefinition, ToolResult

__all__ = [
    "FAULT_KINDS",
    "OUTCOMES",
    "ChatRequest",
    "Decision",
    "FakeLLM",
    "FakeLLMError",
    "FakeLLMProcess",
    "FakeLLMThread",
    "FaultKind",
    "Faults",
    "FunctionScript",
    "Latency",
    "Message",
    "ModelStats",
    "Outcome",
    "Reply",
    "RequestRecord",
    "Rule",
    "RuleScript",
    "Script",
    "ScriptLike",
    "StaticScript",
    "Stats",
    "ToolCall",
    "ToolCallReply",
    "ToolDefinition",
    "ToolResult",
    "When",
    "as_script",
    "completion_tokens",
    "load_rules",
    "load_script",
    "parse_rules",
    "prompt_tokens",
    "serve_forever",
    "start_fake_llm_process",
    "text_tokens",
]
