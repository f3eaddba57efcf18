"""Output guardrails about the answer itself: `json_schema` (its shape) and `grounding` (whether
the run's retrieved context supports it).

`json_schema`: the answer must be JSON matching a JSON Schema (draft 2020-12), given inline
(`schema:`) or as a JSON or YAML file of the project (`schema_file:`). The reason names each
failing place as a JSON path (`$.items[0].price`) with what is wrong there, the most relevant
first, at most `max_errors` of them.

`grounding`: a judge agent of the project (`judge:`) reads the answer and the run's retrieved
context (`Check.context`: what the run's tool calls returned, optionally only those of `tools:`,
and any documents) and scores from 0 to 1 how far the answer's claims are supported by it. The
judge is run exactly as the evals' LLM judge is (`keel.evals.judge.ask_judge`): a run of its own,
traced and costed, with trigger `eval`, in the judged run's tenant. Its input is one JSON object:

    {"rubric": "...", "output": "<the answer>", "context": [{"source": "tool:lookup", "content": "..."}]}

and its output must have `score` and `reason` (see keel.evals.judge). Below `threshold` the
answer is refused (`verdict: block`) or let through with a warning (`warn`). With no context to
check against, the answer is allowed with that reason (`no_context: warn` records it in the trace,
`block` refuses it). A judge that fails (its run fails, or it gives no score) blocks, unless
`on_error: allow` (then a warning says so).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, relevance

from keel.guardrails.policy import Check, ContextItem, Decision, allow

if TYPE_CHECKING:
    from keel.guardrails.builtin import Checker, Env, GroundingSpec, JsonSchemaSpec

GROUNDING_RUBRIC = (
    "Grounding check. `output` is an assistant's answer; `context` is everything the assistant "
    "retrieved before answering (tool results, documents). Score from 0 to 1 how far the factual "
    "claims of the answer are supported by the context: 1 when every claim is stated in or follows "
    "from the context, 0 when the main claims are absent from it or contradict it. Greetings, "
    "hedges and questions are not claims. In `reason`, name the unsupported claims."
)

_MESSAGE_CHARS = 160


def json_schema_check(spec: JsonSchemaSpec, name: str, env: Env) -> Checker:
    from keel.guardrails.builtin import GuardrailConfigError

    schema = spec.schema_ if spec.schema_ is not None else _schema_file(spec.schema_file or "", env.root)
    if schema is None:  # pragma: no cover - the model validator requires one of them
        raise GuardrailConfigError("json_schema: set schema or schema_file", "schema")
    validator = Draft202012Validator(schema)

    def check(c: Check) -> Decision:
        problems = schema_problems(validator, c.text or "", spec.max_errors)
        if not problems:
            return allow(name)
        return Decision(spec.verdict, name, "the answer does not match the schema: " + problems)

    return check


def schema_problems(validator: Draft202012Validator, text: str, max_errors: int = 3) -> str:
    """What is wrong with `text` for the schema, for people; '' when it is valid JSON matching it."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"it is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
    errors = sorted(validator.iter_errors(data), key=relevance)
    if not errors:
        return ""
    shown = "; ".join(_describe(error) for error in errors[:max_errors])
    more = len(errors) - max_errors
    return shown + (f" (and {more} more)" if more > 0 else "")


def _describe(error: ValidationError) -> str:
    message = error.message
    if len(message) > _MESSAGE_CHARS:
        message = message[: _MESSAGE_CHARS - 1] + "…"
    return f"at {error.json_path}: {message}"


def _schema_file(ref: str, root: Any) -> dict[str, Any]:
    """The schema in the project file `ref`, checked as agents' schema files are."""
    from keel.config.json_schemas import resolve_schema
    from keel.config.yaml_source import Flat, Pos
    from keel.guardrails.builtin import GuardrailConfigError

    if root is None:
        raise GuardrailConfigError("json_schema: schema_file needs the project folder", "schema_file")
    doc = Flat({}, {(): Pos("guardrail", 1)})
    schema, issues = resolve_schema({"file": ref}, doc, (), Path(root))
    if schema is None:
        problems = "; ".join(issue.message for issue in issues) or "unreadable"
        raise GuardrailConfigError(f"json_schema: schema_file: {problems}", "schema_file")
    return schema


def grounding_check(spec: GroundingSpec, name: str, env: Env) -> Checker:
    from keel.guardrails.builtin import GuardrailConfigError
    from keel.guardrails.judge_step import judge_verdict

    runner = env.runner
    if runner is None:
        raise GuardrailConfigError("grounding: needs a runner to run its judge agent", "judge")
    if spec.judge not in runner.project.agents:
        raise GuardrailConfigError(f"grounding: judge: no agent named {spec.judge!r} in the project", "judge")
    tools = set(spec.tools) if spec.tools is not None else None

    async def check(c: Check) -> Decision:
        if c.agent == spec.judge:  # the judge's own answers are not sent back to it
            return allow(name)
        items = [i for i in c.context if tools is None or i.tool is None or i.tool in tools]
        if not items:
            reason = "no retrieved context to check the answer against" + (
                f" (no result of {', '.join(sorted(tools))})" if tools else ""
            )
            return Decision(spec.no_context, name, reason)
        payload = {
            "rubric": GROUNDING_RUBRIC,
            "output": c.text or "",
            "context": _bounded(items, spec.max_context_chars),
        }

        verdict = await judge_verdict(runner, spec.judge, payload, c, name, "grounding")
        score, reason = verdict["score"], str(verdict["reason"])
        if score is None:
            if spec.on_error == "allow":
                return Decision("warn", name, f"{reason}; allowed (on_error: allow)")
            return Decision("block", name, f"{reason}; blocked (a failed check does not let answers through)")
        summary = f"grounding score {score:.2f} (threshold {spec.threshold:g})" + (
            f": {reason}" if reason else ""
        )
        if score < spec.threshold:
            return Decision(
                spec.verdict, name, f"the answer is not supported by the retrieved context: {summary}"
            )
        return Decision("allow", name, summary)

    return check


def _bounded(items: list[ContextItem], budget: int) -> list[dict[str, str]]:
    """The items for the judge, in order, cut to `budget` characters in all (the earliest first;
    an item cut short says so)."""
    out: list[dict[str, str]] = []
    left = budget
    for item in items:
        if left <= 0:
            out.append({"source": item.source, "content": "[left out: the context is over its size limit]"})
            continue
        text = item.text if len(item.text) <= left else item.text[:left] + " [cut]"
        left -= len(item.text)
        out.append({"source": item.source, "content": text})
    return out
