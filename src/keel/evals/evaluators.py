"""The built-in evaluators, configured as mappings with a `type` (in a dataset's `evaluators`, a
case's `expect`, or an agent's online evaluation):

| type | passes when | settings |
|---|---|---|
| `succeeded` | the run succeeded (every dataset applies it first) | |
| `exact` | the output equals `value` (default: the case's `expected`) | `ignore_case`, `strip` (text) |
| `contains` | the output's text contains the value(s) | `value` (text or list), `ignore_case` (true), `all` (true) |
| `regex` | the pattern matches the output's text (or one field's) | `pattern`, `field` |
| `json_schema` | the output is valid against the schema (default: the agent's output schema) | `schema` |
| `fields` | each expected field equals the output's (score: the share that do) | `fields` (default: `expected`), `ignore_case`, `tolerance` (numbers), `min_score` (1.0) |
| `tools` | the expected tool calls were made, their arguments included | `calls` ([{name, args}]), `order` (`strict` or `any`), `allow_extra` (true) |
| `latency` | the run took at most `max_ms` | `max_ms` |
| `cost` | the run cost at most `max_usd` | `max_usd` |
| `judge` | an LLM judge (a Keel agent) scores the output against a rubric at least `threshold` | `agent`, `rubric`, `threshold` (0.7) |
| `python` | a function of yours says so | `function` (`module:callable`) |

Every evaluator has an optional `name` (default: its type). A judge is an ordinary agent of the
project (so its calls are traced and costed like any run) whose output has `score` (0 to 1) and
`reason`; it receives the rubric, the case's input, the expected output and the actual one as JSON.
A `python` evaluator is `(case, observation) -> Score | bool | float | (float, str)`, sync or async.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from keel.errors import UsageError
from keel.evals.model import Case, Evaluator, Observation, Score
from keel.plugins import PluginError, get_path, import_callable

if TYPE_CHECKING:
    from keel.runtime.runner import Runner


class EvaluatorConfigError(UsageError):
    """An evaluator's settings are wrong; `field` names the setting."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message, self.field = message, field


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Annotated[str | None, Field(max_length=100)] = None


class SucceededSpec(_Spec):
    type: Literal["succeeded"]


class ExactSpec(_Spec):
    type: Literal["exact"]
    value: Any = None
    ignore_case: bool = False
    strip: bool = True


class ContainsSpec(_Spec):
    type: Literal["contains"]
    value: str | list[str]
    ignore_case: bool = True
    all: bool = True


class RegexSpec(_Spec):
    type: Literal["regex"]
    pattern: str
    field: str | None = None


class JsonSchemaSpec(_Spec):
    type: Literal["json_schema"]
    schema_: Annotated[dict[str, Any] | None, Field(alias="schema")] = None


class FieldsSpec(_Spec):
    type: Literal["fields"]
    fields: dict[str, Any] | None = None
    ignore_case: bool = False
    tolerance: Annotated[float, Field(ge=0)] = 0.0
    min_score: Annotated[float, Field(ge=0, le=1)] = 1.0


class ToolCallSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    args: dict[str, Any] = {}


class ToolsSpec(_Spec):
    type: Literal["tools"]
    calls: list[ToolCallSpec]
    order: Literal["strict", "any"] = "strict"
    allow_extra: bool = True


class LatencySpec(_Spec):
    type: Literal["latency"]
    max_ms: Annotated[float, Field(gt=0)]


class CostSpec(_Spec):
    type: Literal["cost"]
    max_usd: Annotated[float, Field(ge=0)]


class JudgeSpec(_Spec):
    type: Literal["judge"]
    agent: str
    rubric: Annotated[str, Field(min_length=1)]
    threshold: Annotated[float, Field(ge=0, le=1)] = 0.7


class PythonSpec(_Spec):
    type: Literal["python"]
    function: Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")]


EvaluatorSpec = Annotated[
    SucceededSpec
    | ExactSpec
    | ContainsSpec
    | RegexSpec
    | JsonSchemaSpec
    | FieldsSpec
    | ToolsSpec
    | LatencySpec
    | CostSpec
    | JudgeSpec
    | PythonSpec,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(EvaluatorSpec)
TYPES = (
    "succeeded",
    "exact",
    "contains",
    "regex",
    "json_schema",
    "fields",
    "tools",
    "latency",
    "cost",
    "judge",
    "python",
)


@dataclass
class EvalContext:
    """What evaluators may need: the agent's output schema, a runner for judges, the project folder."""

    output_schema: dict[str, Any] | None = None
    runner: Runner | None = None
    root: Path = field(default_factory=Path)
    importer: Callable[[str], Any] | None = None


def parse_spec(raw: Mapping[str, Any]) -> Any:
    """The validated settings of one evaluator; EvaluatorConfigError naming the setting otherwise."""
    if not isinstance(raw, Mapping) or "type" not in raw:
        raise EvaluatorConfigError(
            f"an evaluator is a mapping with a `type`, one of {', '.join(TYPES)}", "type"
        )
    if raw["type"] not in TYPES:
        raise EvaluatorConfigError(
            f"unknown evaluator type {raw['type']!r}; known: {', '.join(TYPES)}", "type"
        )
    try:
        return _ADAPTER.validate_python(dict(raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:])
        message = "unknown setting" if first["type"] == "extra_forbidden" else first["msg"]
        raise EvaluatorConfigError(f"{raw['type']}: {where or 'settings'}: {message}", where) from None


def build(raw: Mapping[str, Any], ctx: EvalContext) -> Evaluator:
    """An evaluator from its settings."""
    spec = parse_spec(raw)
    name = spec.name or spec.type
    match spec:
        case SucceededSpec():
            return _Fn(name, _succeeded)
        case ExactSpec():
            return _Fn(name, _exact(spec))
        case ContainsSpec():
            return _Fn(name, _contains(spec))
        case RegexSpec():
            try:
                pattern = re.compile(spec.pattern)
            except re.error as exc:
                raise EvaluatorConfigError(f"regex: pattern: {exc}", "pattern") from None
            return _Fn(name, _regex(pattern, spec.field))
        case JsonSchemaSpec():
            schema = spec.schema_ if spec.schema_ is not None else ctx.output_schema
            if schema is None:
                raise EvaluatorConfigError(
                    "json_schema: the agent has no output_schema: give `schema`", "schema"
                )
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                raise EvaluatorConfigError(f"json_schema: schema: {exc.message}", "schema") from None
            return _Fn(name, _json_schema(Draft202012Validator(schema)))
        case FieldsSpec():
            return _Fn(name, _fields(spec))
        case ToolsSpec():
            return _Fn(name, _tools(spec))
        case LatencySpec():
            return _Fn(name, _ceiling("latency", lambda o: o.latency_ms, spec.max_ms, "ms"))
        case CostSpec():
            return _Fn(name, _cost(spec.max_usd))
        case JudgeSpec():
            from keel.evals.judge import Judge

            return Judge(name, spec.agent, spec.rubric, spec.threshold, ctx)
        case PythonSpec():
            return _Fn(name, _python(spec.function, ctx))
    raise AssertionError(f"unhandled evaluator {spec!r}")  # pragma: no cover


Check = Callable[[Case, Observation], Awaitable[tuple[float, bool, str]]]


class _Fn:
    def __init__(self, name: str, check: Check) -> None:
        self.name = name
        self._check = check

    async def evaluate(self, case: Case, observation: Observation) -> Score:
        score, passed, reason = await self._check(case, observation)
        return Score(self.name, max(0.0, min(1.0, float(score))), passed, reason)


def _verdict(passed: bool, reason: str) -> tuple[float, bool, str]:
    return (1.0 if passed else 0.0), passed, reason


def text_of(output: Any) -> str:
    if output is None:
        return ""
    return output if isinstance(output, str) else json.dumps(output, ensure_ascii=False, sort_keys=True)


def _structured(output: Any) -> Any:
    if isinstance(output, str):
        try:
            return json.loads(output)
        except json.JSONDecodeError:
            return output
    return output


async def _succeeded(case: Case, obs: Observation) -> tuple[float, bool, str]:
    ok = obs.status == "succeeded"
    return _verdict(ok, "" if ok else f"the run {obs.status}: {obs.error or 'no detail'}")


def _exact(spec: ExactSpec) -> Check:
    async def check(case: Case, obs: Observation) -> tuple[float, bool, str]:
        want = spec.value if spec.value is not None else case.expected
        if want is None:
            return _verdict(False, "exact: no value and no expected output to compare with")
        got = obs.output
        if isinstance(want, str):
            a, b = text_of(got), want
            if spec.strip:
                a, b = a.strip(), b.strip()
            if spec.ignore_case:
                a, b = a.lower(), b.lower()
            ok = a == b
        else:
            ok = _structured(got) == want
        return _verdict(ok, "" if ok else f"expected {text_of(want)[:200]!r}, got {text_of(got)[:200]!r}")

    return check


def _contains(spec: ContainsSpec) -> Check:
    values = [spec.value] if isinstance(spec.value, str) else list(spec.value)

    async def check(case: Case, obs: Observation) -> tuple[float, bool, str]:
        text = text_of(obs.output)
        hay = text.lower() if spec.ignore_case else text
        found = [v for v in values if (v.lower() if spec.ignore_case else v) in hay]
        ok = len(found) == len(values) if spec.all else bool(found)
        missing = [v for v in values if v not in found]
        return len(found) / len(values), ok, "" if ok else f"missing {missing}"

    return check


def _regex(pattern: re.Pattern[str], field_path: str | None) -> Check:
    async def check(case: Case, obs: Observation) -> tuple[float, bool, str]:
        value = get_path(_structured(obs.output), field_path) if field_path else obs.output
        ok = pattern.search(text_of(value)) is not None
        return _verdict(ok, "" if ok else f"/{pattern.pattern}/ does not match {text_of(value)[:200]!r}")

    return check


def _json_schema(validator: Draft202012Validator) -> Check:
    async def check(case: Case, obs: Observation) -> tuple[float, bool, str]:
        errors = list(validator.iter_errors(_structured(obs.output)))
        if not errors:
            return _verdict(True, "")
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(root)"
        return _verdict(False, f"{where}: {first.message}")

    return check


def _fields(spec: FieldsSpec) -> Check:
    async def check(case: Case, obs: Observation) -> tuple[float, bool, str]:
        want = spec.fields if spec.fields is not None else case.expected
        if not isinstance(want, Mapping) or not want:
            return _verdict(False, "fields: no expected fields (give `fields` or a mapping as `expected`)")
        got = _structured(obs.output)
        wrong = []
        for path, expected in want.items():
            actual = get_path(got, path)
            if not _equal(actual, expected, spec.ignore_case, spec.tolerance):
                wrong.append(f"{path}: expected {expected!r}, got {actual!r}")
        score = 1 - len(wrong) / len(want)
        return score, score >= spec.min_score, "; ".join(wrong)

    return check


def _tools(spec: ToolsSpec) -> Check:
    async def check(case: Case, obs: Observation) -> tuple[float, bool, str]:
        calls = list(obs.tool_calls)
        matched = 0
        position = 0
        problems = []
        used: set[int] = set()
        for want in spec.calls:
            candidates = range(position, len(calls)) if spec.order == "strict" else range(len(calls))
            hit = next(
                (
                    i
                    for i in candidates
                    if i not in used and calls[i].name == want.name and _subset(want.args, calls[i].args)
                ),
                None,
            )
            if hit is None:
                problems.append(
                    f"no call {want.name}({json.dumps(want.args, sort_keys=True)})"
                    + (" in order" if spec.order == "strict" else "")
                )
                continue
            matched += 1
            used.add(hit)
            position = hit + 1
        extra = [c.name for i, c in enumerate(calls) if i not in used]
        if extra and not spec.allow_extra:
            problems.append(f"unexpected calls: {extra}")
        score = matched / len(spec.calls) if spec.calls else (0.0 if extra and not spec.allow_extra else 1.0)
        return score, not problems, "; ".join(problems)

    return check


def _ceiling(what: str, value: Callable[[Observation], float], limit: float, unit: str) -> Check:
    async def check(case: Case, obs: Observation) -> tuple[float, bool, str]:
        got = value(obs)
        ok = got <= limit
        return _verdict(ok, "" if ok else f"{what} {got:.1f} {unit} above {limit:g} {unit}")

    return check


def _cost(limit: float) -> Check:
    async def check(case: Case, obs: Observation) -> tuple[float, bool, str]:
        if obs.cost_usd is None:
            return _verdict(False, "cost unknown (a model without a price)")
        ok = obs.cost_usd <= Decimal(str(limit))
        return _verdict(ok, "" if ok else f"cost {obs.cost_usd} USD above {limit:g} USD")

    return check


def _python(ref: str, ctx: EvalContext) -> Check:
    function = _import(ref, ctx)

    async def check(case: Case, obs: Observation) -> tuple[float, bool, str]:
        result = function(case, obs)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, Score):
            return result.score, result.passed, result.reason
        if isinstance(result, bool):
            return _verdict(result, "")
        if isinstance(result, int | float):
            return float(result), float(result) >= 1.0, ""
        if isinstance(result, tuple) and len(result) == 2:
            return float(result[0]), float(result[0]) >= 1.0, str(result[1])
        raise UsageError(
            f"evaluator {ref} returned {type(result).__name__}: expected Score, bool, float or (float, str)"
        )

    return check


def _import(ref: str, ctx: EvalContext) -> Callable[..., Any]:
    if ctx.importer is not None:
        found = ctx.importer(ref)
        if not callable(found):
            raise EvaluatorConfigError(f"python: function: {ref} is not callable", "function")
        return found  # type: ignore[no-any-return]
    try:
        return import_callable(ref, ctx.root)
    except PluginError as exc:
        raise EvaluatorConfigError(f"python: function: {exc}", "function") from None


def _equal(actual: Any, expected: Any, ignore_case: bool, tolerance: float) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected if isinstance(expected, bool) else actual == expected
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return abs(float(actual) - float(expected)) <= tolerance
    if isinstance(expected, str) and isinstance(actual, str) and ignore_case:
        return actual.lower() == expected.lower()
    return bool(actual == expected)


def _subset(want: Mapping[str, Any], got: Mapping[str, Any]) -> bool:
    for key, value in want.items():
        if key not in got:
            return False
        if isinstance(value, Mapping) and isinstance(got[key], Mapping):
            if not _subset(value, got[key]):
                return False
        elif got[key] != value:
            return False
    return True
