"""The built-in guardrails, configured as mappings with a `type` (an agent's `guardrails:` list):

| type | points | decides |
|---|---|---|
| `max_input` | input | block an input longer than `max_chars` |
| `injection` | input | `verdict` (block or warn) when prompt-injection detection flags the text (`threshold`, `classifier`) |
| `pii` | input, output, action | `verdict` (redact, block or warn) on the PII `types` found (default: the structured ones); `style` of redaction |
| `deny` | input, output | `verdict` (block or redact) when a `words` entry or a `patterns` regex matches |
| `prompt_leak` | output | block an answer that repeats `min_words` consecutive words of the run's instructions |
| `tools` | action | block a tool not in `allow` (or in `deny`); `principals`: per who asked for the run |
| `argument` | action | block a call of `tool` whose argument `arg` (a dotted path) breaks `max`, `min`, `pattern`, `one_of` or `domains` (an email or URL's domain must be one of them) |
| `max_calls` | action | block beyond `per_run` tool calls in a run, or `per_tool` calls of one tool |
| `python` | `points` | your function `(check) -> Decision | bool | None` (`module:callable`, sync or async) |
| `json_schema` | output | `verdict` (block or warn) when the answer is not JSON matching `schema` (inline) or `schema_file` |
| `grounding` | output | `verdict` (block or warn) when the `judge` agent scores the answer's support by the run's retrieved context below `threshold` |
| `injection_judge` | input | `verdict` (block or warn) when the `judge` agent scores the input as a prompt-injection attempt at or over `threshold` |
| `rate_limit` | action | block beyond `calls` calls of `tool` (or of every tool) per `window`, counted `per` tenant, user or run |
| `spend_cap` | action | block a call of `tool` that would take the sum of `arg` (or `cost` per call) past `per_run` or `per_tenant_day` |

Every guardrail has an optional `name` (default: its type); `points` may narrow where it applies.
The last five live in `keel.guardrails.answer`, `keel.guardrails.injection_judge` and
`keel.guardrails.limits`; they need what `Env` gives them (the project root, the runner for the
judges, the database, the gateway's Redis).
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from keel.errors import UsageError
from keel.guardrails.policy import POINTS, Check, Decision, Guardrail, Point, allow
from keel.plugins import PluginError, get_path, import_callable


class GuardrailConfigError(UsageError):
    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message, self.field = message, field


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Annotated[str | None, Field(max_length=100)] = None
    points: list[Point] | None = None


class MaxInputSpec(_Spec):
    type: Literal["max_input"]
    max_chars: Annotated[int, Field(ge=1)]


class InjectionSpec(_Spec):
    type: Literal["injection"]
    verdict: Literal["block", "warn"] = "block"
    threshold: Annotated[float | None, Field(ge=0, le=1)] = None
    classifier: bool = False


class PiiSpec(_Spec):
    type: Literal["pii"]
    verdict: Literal["redact", "block", "warn"] = "redact"
    types: list[str] | None = None
    style: Literal["tag", "mask", "hash"] = "tag"
    entities: bool = False


class DenySpec(_Spec):
    type: Literal["deny"]
    verdict: Literal["block", "redact"] = "block"
    words: list[Annotated[str, Field(min_length=1)]] = []
    patterns: list[str] = []


class PromptLeakSpec(_Spec):
    type: Literal["prompt_leak"]
    min_words: Annotated[int, Field(ge=3, le=200)] = 12


class PrincipalTools(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    allow: list[str] | None = None
    deny: list[str] = []


class ToolsSpec(_Spec):
    type: Literal["tools"]
    allow: list[str] | None = None
    deny: list[str] = []
    # Per principal who asked for the run: keys `user:<id>`, `service:<key prefix>`, `role:<name>`
    # or `*` (anyone else). A run whose principal matches no key gets no tool.
    principals: (
        dict[Annotated[str, Field(pattern=r"^(\*|(user|service|agent|anonymous|role):.+)$")], PrincipalTools]
        | None
    ) = None


class ArgumentSpec(_Spec):
    type: Literal["argument"]
    tool: str
    arg: str
    max: float | None = None
    min: float | None = None
    pattern: str | None = None
    one_of: list[Any] | None = None
    domains: list[str] | None = None


class MaxCallsSpec(_Spec):
    type: Literal["max_calls"]
    per_run: Annotated[int | None, Field(ge=0)] = None
    per_tool: Annotated[int | None, Field(ge=0)] = None


class PythonSpec(_Spec):
    type: Literal["python"]
    function: Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")]


class JsonSchemaSpec(_Spec):
    type: Literal["json_schema"]
    schema_: Annotated[dict[str, Any] | None, Field(alias="schema")] = None
    schema_file: Annotated[str | None, Field(min_length=1)] = None
    verdict: Literal["block", "warn"] = "block"
    max_errors: Annotated[int, Field(ge=1, le=50)] = 3

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from jsonschema import Draft202012Validator
            from jsonschema.exceptions import SchemaError

            try:
                Draft202012Validator.check_schema(value)
            except SchemaError as exc:
                raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
        return value

    @model_validator(mode="after")
    def _one_schema(self) -> JsonSchemaSpec:
        if (self.schema_ is None) == (self.schema_file is None):
            raise ValueError("set exactly one of schema (inline) or schema_file")
        return self


class GroundingSpec(_Spec):
    type: Literal["grounding"]
    judge: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
    threshold: Annotated[float, Field(ge=0, le=1)] = 0.7
    verdict: Literal["block", "warn"] = "block"
    tools: list[str] | None = None
    no_context: Literal["allow", "warn", "block"] = "allow"
    on_error: Literal["block", "allow"] = "block"
    max_context_chars: Annotated[int, Field(ge=100, le=1_000_000)] = 50_000


class InjectionJudgeSpec(_Spec):
    type: Literal["injection_judge"]
    judge: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
    threshold: Annotated[float, Field(ge=0, le=1)] = 0.5
    verdict: Literal["block", "warn"] = "block"
    on_error: Literal["block", "allow"] = "block"
    max_chars: Annotated[int, Field(ge=100, le=1_000_000)] = 50_000


class RateLimitSpec(_Spec):
    type: Literal["rate_limit"]
    tool: str | None = None
    calls: Annotated[int, Field(ge=1)]
    window: str | int = "1m"
    per: Literal["tenant", "user", "run"] = "tenant"

    @field_validator("window")
    @classmethod
    def _window(cls, value: str | int) -> str | int:
        from keel.config.gateway import duration_seconds

        duration_seconds(value)
        return value


class SpendCapSpec(_Spec):
    type: Literal["spend_cap"]
    tool: str
    arg: Annotated[str | None, Field(min_length=1)] = None
    cost: Annotated[float | None, Field(gt=0)] = None
    per_run: Annotated[float | None, Field(gt=0)] = None
    per_tenant_day: Annotated[float | None, Field(gt=0)] = None

    @model_validator(mode="after")
    def _settings(self) -> SpendCapSpec:
        if (self.arg is None) == (self.cost is None):
            raise ValueError("set exactly one of arg (the argument summed) or cost (a fixed cost per call)")
        if self.per_run is None and self.per_tenant_day is None:
            raise ValueError("set per_run, per_tenant_day or both")
        return self


GuardrailSpec = Annotated[
    MaxInputSpec
    | InjectionSpec
    | PiiSpec
    | DenySpec
    | PromptLeakSpec
    | ToolsSpec
    | ArgumentSpec
    | MaxCallsSpec
    | PythonSpec
    | JsonSchemaSpec
    | GroundingSpec
    | InjectionJudgeSpec
    | RateLimitSpec
    | SpendCapSpec,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(GuardrailSpec)
TYPES = (
    "max_input",
    "injection",
    "pii",
    "deny",
    "prompt_leak",
    "tools",
    "argument",
    "max_calls",
    "python",
    "json_schema",
    "grounding",
    "injection_judge",
    "rate_limit",
    "spend_cap",
)
_DEFAULT_POINTS: dict[str, frozenset[Point]] = {
    "max_input": frozenset({"input"}),
    "injection": frozenset({"input"}),
    "pii": frozenset({"input", "output", "action"}),
    "deny": frozenset({"input", "output"}),
    "prompt_leak": frozenset({"output"}),
    "tools": frozenset({"action"}),
    "argument": frozenset({"action"}),
    "max_calls": frozenset({"action"}),
    "python": frozenset(POINTS),
    "json_schema": frozenset({"output"}),
    "grounding": frozenset({"output"}),
    "injection_judge": frozenset({"input"}),
    "rate_limit": frozenset({"action"}),
    "spend_cap": frozenset({"action"}),
}


@dataclass(frozen=True)
class Env:
    """What guardrails may need besides their settings, given by whoever builds them (the runner).

    `scope` names where the guardrail is configured (`agent:<name>` or `tenant:<id>`): counters of
    rate limits and spend caps are kept per scope and guardrail name, so two agents' limits of the
    same name do not share a count, while a tenant's guardrail counts across all its agents."""

    root: Any = None  # the project folder (schema files, python guardrails)
    scope: str = "agent"
    runner: Any = None  # keel.runtime.runner.Runner: runs the judge agents
    database_url: str | None = None  # spend caps per tenant per day (None: counted in this process)
    rate_limits: Any = None  # keel.config.gateway.RateLimitsConfig: its Redis, when it has one
    environ: Mapping[str, str] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)  # per-runner objects (limiters, stores)


def parse_spec(raw: Mapping[str, Any]) -> Any:
    """The validated settings of one guardrail; GuardrailConfigError naming the setting otherwise."""
    if not isinstance(raw, Mapping) or raw.get("type") not in TYPES:
        got = raw.get("type") if isinstance(raw, Mapping) else raw
        raise GuardrailConfigError(f"unknown guardrail type {got!r}; known: {', '.join(TYPES)}", "type")
    try:
        spec = _ADAPTER.validate_python(dict(raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:])
        message = "unknown setting" if first["type"] == "extra_forbidden" else first["msg"]
        message = message.removeprefix("Value error, ")
        raise GuardrailConfigError(f"{raw['type']}: {where or 'settings'}: {message}", where) from None
    if isinstance(spec, PiiSpec) and spec.types is not None:
        from keel.guardrails.pii import ALL_TYPES

        unknown = sorted(set(spec.types) - set(ALL_TYPES))
        if unknown:
            raise GuardrailConfigError(f"pii: types: unknown {unknown}; known: {sorted(ALL_TYPES)}", "types")
    for attribute in ("pattern",):
        value = getattr(spec, attribute, None)
        if isinstance(value, str):
            _compile(value, attribute)
    for index, pattern in enumerate(getattr(spec, "patterns", []) or []):
        _compile(pattern, f"patterns[{index}]")
    return spec


def build(raw: Mapping[str, Any], *, root: Any = None, env: Env | None = None) -> Guardrail:
    spec = parse_spec(raw)
    name = spec.name or spec.type
    default = _DEFAULT_POINTS[spec.type]
    points = frozenset(spec.points) if spec.points else default
    outside = points - default
    if outside:
        raise GuardrailConfigError(f"{spec.type}: points: it does not apply at {sorted(outside)}", "points")
    env = env if env is not None else Env(root=root)
    if type(spec) in _needs_env:
        built = _needs_env[type(spec)](spec, name, env)
        check: Checker = built
        wants_context = isinstance(spec, GroundingSpec)
    else:
        check = _checks[type(spec)](spec, name, env.root)
        wants_context = False
    return _Fn(name, points, check, wants_context=wants_context)


Checker = Callable[[Check], Any]


class _Fn:
    def __init__(
        self, name: str, points: frozenset[Point], check: Checker, *, wants_context: bool = False
    ) -> None:
        self.name, self.points, self._check = name, points, check
        self.wants_context = wants_context  # reads Check.context: the run's tool results are kept

    async def check(self, check: Check) -> Decision:
        result = self._check(check)
        if inspect.isawaitable(result):
            result = await result
        if result is None or result is True:
            return allow(self.name)
        if result is False:
            return Decision("block", self.name, "refused")
        if isinstance(result, Decision):
            return (
                result
                if result.guardrail
                else Decision(result.verdict, self.name, result.reason, result.text, result.args)
            )
        raise UsageError(
            f"guardrail {self.name} returned {type(result).__name__}: expected Decision, bool or None"
        )


def _max_input(spec: MaxInputSpec, name: str, root: Any) -> Checker:
    def check(c: Check) -> Decision:
        size = len(c.text or "")
        if size > spec.max_chars:
            return Decision("block", name, f"input of {size:,} characters is over {spec.max_chars:,}")
        return allow(name)

    return check


def _injection(spec: InjectionSpec, name: str, root: Any) -> Checker:
    from keel.guardrails.injection import InjectionDetector

    # The threshold applies to the combined score (rules, and the classifier rescaled onto it).
    detector = InjectionDetector(
        use_classifier=spec.classifier, threshold=0.5 if spec.threshold is None else spec.threshold
    )

    def check(c: Check) -> Decision:
        verdict = detector.detect(c.text or "")
        if not verdict.flagged:
            return allow(name)
        reasons = ", ".join(verdict.reasons[:3])
        return Decision(
            spec.verdict, name, f"prompt injection suspected (score {verdict.score:.2f}: {reasons})"
        )

    return check


def _pii(spec: PiiSpec, name: str, root: Any) -> Checker:
    from keel.guardrails.pii import STRUCTURED_TYPES, detect, redact

    types: Any = set(spec.types) if spec.types is not None else set(STRUCTURED_TYPES)

    def check(c: Check) -> Decision:
        if c.point == "action":
            return _pii_args(c, spec, name, types)
        text = c.text or ""
        if spec.verdict == "redact":
            cleaned, found = redact(text, types=types, style=spec.style, entities=spec.entities)
            if not found:
                return allow(name)
            return Decision("redact", name, f"redacted {_kinds(found)}", text=cleaned)
        found = detect(text, types=types, entities=spec.entities)
        return Decision(spec.verdict, name, f"found {_kinds(found)}") if found else allow(name)

    return check


def _pii_args(c: Check, spec: PiiSpec, name: str, types: Any) -> Decision:
    from keel.guardrails.pii import detect, redact

    kinds: list[Any] = []

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            if spec.verdict == "redact":
                cleaned, found = redact(value, types=types, style=spec.style, entities=spec.entities)
            else:
                cleaned, found = value, detect(value, types=types, entities=spec.entities)
            kinds.extend(found)
            return cleaned
        if isinstance(value, Mapping):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    args = walk(dict(c.args or {}))
    if not kinds:
        return allow(name)
    if spec.verdict == "redact":
        return Decision("redact", name, f"redacted {_kinds(kinds)} in the arguments", args=args)
    return Decision(spec.verdict, name, f"found {_kinds(kinds)} in the arguments of {c.tool}")


def _kinds(found: list[Any]) -> str:
    counts: dict[str, int] = {}
    for finding in found:
        counts[finding.type] = counts.get(finding.type, 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))


def _deny(spec: DenySpec, name: str, root: Any) -> Checker:
    from keel.guardrails.injection_match import literal_needs

    words = [re.compile(rf"(?<!\w){re.escape(w)}(?!\w)", re.IGNORECASE) for w in spec.words]
    patterns = [re.compile(p) for p in spec.patterns]
    # Each pattern with the lower-case ASCII strings one of which its every match contains: in
    # ASCII text, a pattern none of whose strings occurs is not searched (a pass of `re` over the
    # whole text for each).
    needs = [(w.lower(),) if w.isascii() else None for w in spec.words] + [literal_needs(p) for p in patterns]
    checked = list(zip((*words, *patterns), needs, strict=True))

    def check(c: Check) -> Decision:
        text = c.text or ""
        low = text.lower() if text.isascii() else None
        hits = [
            p
            for p, need in checked
            if (low is None or need is None or any(n in low for n in need)) and p.search(text)
        ]
        if not hits:
            return allow(name)
        if spec.verdict == "block":
            return Decision("block", name, f"matched {len(hits)} denied term(s)")
        for pattern in hits:
            text = pattern.sub("[REMOVED]", text)
        return Decision("redact", name, f"removed {len(hits)} denied term(s)", text=text)

    return check


def _prompt_leak(spec: PromptLeakSpec, name: str, root: Any) -> Checker:
    from keel.guardrails.normalize import words

    size = spec.min_words
    run = b"\x01" * size

    def shingles(found: list[str]) -> set[tuple[str, ...]]:
        return {tuple(found[i : i + size]) for i in range(len(found) - size + 1)}

    @functools.lru_cache(maxsize=64)
    def instructions_of(text: str) -> tuple[frozenset[str], set[tuple[str, ...]]]:
        """The words of an agent's instructions (the same for each of its runs), and their shingles."""
        found = words(text.lower())  # `re.findall(r"\w+", ...)`
        return frozenset(found), shingles(found)

    def check(c: Check) -> Decision:
        if not c.instructions or not c.text:
            return allow(name)
        vocabulary, theirs = instructions_of(c.instructions)
        answer = words(c.text.lower())
        # a shared shingle needs `size` consecutive words of the answer that the instructions have
        if bytes(map(vocabulary.__contains__, answer)).find(run) >= 0 and theirs & shingles(answer):
            return Decision("block", name, f"the answer repeats {spec.min_words}+ words of the instructions")
        return allow(name)

    return check


def _tools(spec: ToolsSpec, name: str, root: Any) -> Checker:
    def check(c: Check) -> Decision:
        tool = c.tool or ""
        if tool in spec.deny or (spec.allow is not None and tool not in spec.allow):
            return Decision("block", name, f"tool {tool} is not allowed for this agent")
        if spec.principals is not None:
            return _principal_tools(spec.principals, c, tool, name)
        return allow(name)

    return check


def _principal_tools(rules: Mapping[str, PrincipalTools], c: Check, tool: str, name: str) -> Decision:
    """Deny unless allowed: the rules of the run's principal and of each of its roles (or `*` when
    none matches) must allow the tool, and none may deny it."""
    keys = [k for k in (c.principal, *(f"role:{r}" for r in c.roles)) if k and k in rules]
    matched = [rules[k] for k in keys] or ([rules["*"]] if "*" in rules else [])
    who = c.principal or "an unknown principal"
    if not matched:
        return Decision("block", name, f"no tool is allowed for {who}")
    if any(tool in r.deny for r in matched) or not any(r.allow is None or tool in r.allow for r in matched):
        return Decision("block", name, f"tool {tool} is not allowed for {who}")
    return allow(name)


def _argument(spec: ArgumentSpec, name: str, root: Any) -> Checker:
    pattern = re.compile(spec.pattern) if spec.pattern else None
    domains = {d.lower().lstrip("@") for d in spec.domains or ()}

    def check(c: Check) -> Decision:
        if c.tool != spec.tool:
            return allow(name)
        value = get_path(c.args or {}, spec.arg)
        problem = _argument_problem(value, spec, pattern, domains)
        return Decision("block", name, f"{spec.tool}({spec.arg}): {problem}") if problem else allow(name)

    return check


def _argument_problem(
    value: Any, spec: ArgumentSpec, pattern: re.Pattern[str] | None, domains: set[str]
) -> str | None:
    if value is None:
        return None
    if spec.max is not None or spec.min is not None:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return f"{value!r} is not a number"
        if spec.max is not None and number > spec.max:
            return f"{number:g} is above {spec.max:g}"
        if spec.min is not None and number < spec.min:
            return f"{number:g} is below {spec.min:g}"
    if pattern is not None and not pattern.fullmatch(str(value)):
        return f"{str(value)[:80]!r} does not match {pattern.pattern}"
    if spec.one_of is not None and value not in spec.one_of:
        return f"{value!r} is not one of {spec.one_of}"
    if domains:
        values = value if isinstance(value, list) else [value]
        for item in values:
            host = _domain(str(item))
            if host is None or not any(host == d or host.endswith("." + d) for d in domains):
                return f"{str(item)[:80]!r} is outside the allowed domains"
    return None


def _domain(value: str) -> str | None:
    if "@" in value:
        return value.rsplit("@", 1)[1].strip().lower().rstrip(">")
    match = re.match(r"^[a-z][a-z0-9+.-]*://([^/:?#@]+@)?([^/:?#]+)", value, re.IGNORECASE)
    return match.group(2).lower() if match else None


def _max_calls(spec: MaxCallsSpec, name: str, root: Any) -> Checker:
    def check(c: Check) -> Decision:
        total = sum(c.tool_calls.values())
        mine = c.tool_calls.get(c.tool or "", 0)
        if spec.per_run is not None and total >= spec.per_run:
            return Decision("block", name, f"{total} tool calls in this run: the limit is {spec.per_run}")
        if spec.per_tool is not None and mine >= spec.per_tool:
            return Decision(
                "block", name, f"{mine} calls of {c.tool} in this run: the limit is {spec.per_tool}"
            )
        return allow(name)

    return check


def _python(spec: PythonSpec, name: str, root: Any) -> Checker:
    try:
        return import_callable(spec.function, root)
    except PluginError as exc:
        raise GuardrailConfigError(f"python: function: {exc}", "function") from None


_checks: dict[type, Callable[[Any, str, Any], Checker]] = {
    MaxInputSpec: _max_input,
    InjectionSpec: _injection,
    PiiSpec: _pii,
    DenySpec: _deny,
    PromptLeakSpec: _prompt_leak,
    ToolsSpec: _tools,
    ArgumentSpec: _argument,
    MaxCallsSpec: _max_calls,
    PythonSpec: _python,
}


def _json_schema(spec: Any, name: str, env: Env) -> Checker:
    from keel.guardrails.answer import json_schema_check

    return json_schema_check(spec, name, env)


def _grounding(spec: Any, name: str, env: Env) -> Checker:
    from keel.guardrails.answer import grounding_check

    return grounding_check(spec, name, env)


def _injection_judge(spec: Any, name: str, env: Env) -> Checker:
    from keel.guardrails.injection_judge import injection_judge_check

    return injection_judge_check(spec, name, env)


def _rate_limit(spec: Any, name: str, env: Env) -> Checker:
    from keel.guardrails.limits import rate_limit_check

    return rate_limit_check(spec, name, env)


def _spend_cap(spec: Any, name: str, env: Env) -> Checker:
    from keel.guardrails.limits import spend_cap_check

    return spend_cap_check(spec, name, env)


_needs_env: dict[type, Callable[[Any, str, Env], Checker]] = {
    JsonSchemaSpec: _json_schema,
    GroundingSpec: _grounding,
    InjectionJudgeSpec: _injection_judge,
    RateLimitSpec: _rate_limit,
    SpendCapSpec: _spend_cap,
}


def _compile(pattern: str, field: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise GuardrailConfigError(f"{field}: not a regular expression: {exc}", field) from None


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
