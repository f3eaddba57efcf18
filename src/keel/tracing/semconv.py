"""Attribute names Keel's spans use: the OpenTelemetry GenAI semantic conventions, plus `keel.*`.

The GenAI names come from `opentelemetry-semantic-conventions` (its incubating
`gen_ai_attributes` module). That package now marks the whole `gen_ai.*` namespace as "moved to
the GenAI semantic conventions repository", but the names themselves are the current ones:
`gen_ai.provider.name` (which replaced `gen_ai.system`), `gen_ai.input.messages`, and so on.
Importing the constants (rather than spelling strings) keeps a typo from going unnoticed.

Names with no convention are Keel's own and live under `keel.`.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _gen_ai
from opentelemetry.semconv.attributes import error_attributes as _error
from opentelemetry.semconv.attributes import exception_attributes as _exception
from opentelemetry.semconv.attributes import service_attributes as _service

# --- GenAI semantic conventions -----------------------------------------------------------------
OPERATION_NAME: Final = _gen_ai.GEN_AI_OPERATION_NAME
PROVIDER_NAME: Final = _gen_ai.GEN_AI_PROVIDER_NAME
AGENT_NAME: Final = _gen_ai.GEN_AI_AGENT_NAME
CONVERSATION_ID: Final = _gen_ai.GEN_AI_CONVERSATION_ID
REQUEST_MODEL: Final = _gen_ai.GEN_AI_REQUEST_MODEL
REQUEST_STREAM: Final = _gen_ai.GEN_AI_REQUEST_STREAM
RESPONSE_MODEL: Final = _gen_ai.GEN_AI_RESPONSE_MODEL
RESPONSE_FINISH_REASONS: Final = _gen_ai.GEN_AI_RESPONSE_FINISH_REASONS
USAGE_INPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_INPUT_TOKENS
USAGE_OUTPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS
INPUT_MESSAGES: Final = _gen_ai.GEN_AI_INPUT_MESSAGES
OUTPUT_MESSAGES: Final = _gen_ai.GEN_AI_OUTPUT_MESSAGES
TOOL_NAME: Final = _gen_ai.GEN_AI_TOOL_NAME
TOOL_TYPE: Final = _gen_ai.GEN_AI_TOOL_TYPE
TOOL_CALL_ID: Final = _gen_ai.GEN_AI_TOOL_CALL_ID
TOOL_CALL_ARGUMENTS: Final = _gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS
TOOL_CALL_RESULT: Final = _gen_ai.GEN_AI_TOOL_CALL_RESULT

# Values of gen_ai.operation.name (the enum in the conventions package is flagged deprecated as a
# class, so its members are not used here; the values are the same).
OP_INVOKE_AGENT: Final = "invoke_agent"
OP_CHAT: Final = "chat"
OP_EXECUTE_TOOL: Final = "execute_tool"

# --- General conventions --------------------------------------------------------------------------
ERROR_TYPE: Final = _error.ERROR_TYPE
EXCEPTION_TYPE: Final = _exception.EXCEPTION_TYPE
EXCEPTION_MESSAGE: Final = _exception.EXCEPTION_MESSAGE
SERVICE_NAME: Final = _service.SERVICE_NAME

# --- Keel's own -----------------------------------------------------------------------------------
RUN_ID: Final = "keel.run.id"
RUN_STATUS: Final = "keel.run.status"
COST_USD: Final = "keel.cost.usd"
ATTEMPT: Final = "keel.attempt"
RETRY_DELAY_S: Final = "keel.retry.delay_s"
CHAT_MESSAGES: Final = "keel.chat.messages"  # number of messages sent to the model
INPUT_SIZE: Final = "keel.input.size"  # bytes (UTF-8 text, or compact JSON)
OUTPUT_SIZE: Final = "keel.output.size"
TOOL_ARGS_SIZE: Final = "keel.tool.args.size"
TOOL_RESULT_SIZE: Final = "keel.tool.result.size"
TOOL_STATUS: Final = "keel.tool.status"  # ok | error | timeout
TOOL_ATTEMPTS: Final = "keel.tool.attempts"

# Keel's provider names mapped to gen_ai.provider.name's well-known values; others pass through.
PROVIDER_NAMES: Final = {"google": "gcp.gen_ai"}
