"""Action guardrails that count: `rate_limit` (calls of a tool per window) and `spend_cap` (the sum
of an argument, or a per-call cost, per run and per tenant per day).

`rate_limit` counts with the gateway's rate limiter (`keel.gateway.ratelimit`): in this process,
or in Redis when `gateway.rate_limits.redis_url_env` is set (keys under `keel:guard:`, the same
GCRA buckets: `calls` at once, then one more every `window / calls`). A call is counted when the
guardrail lets it through; a refused call is not counted. Counted `per`:

- `tenant`: the run's tenant (`default` without one);
- `user`: the run's user within its tenant (runs without a user share one count per tenant);
- `run`: the run itself.

`spend_cap` sums `arg` (a dotted path into the arguments; a missing argument counts 0, a negative
one 0) or counts `cost` per call:

- `per_run`: over the run's earlier calls of the tool that ran or are running (calls refused by a
  guardrail or an open circuit, and calls the model was asked to redo, are not counted), read
  from the run's own record, so a durable run that resumes elsewhere counts the same;
- `per_tenant_day`: over the tenant's calls of the tool today (UTC), in the store
  (`keel.guardrails.spend_store`), shared by every process; counted when the call is allowed.

Counters are kept per scope and guardrail name (`agent:<name>/<guardrail>` or
`tenant:<id>/<guardrail>`, see `keel.guardrails.builtin.Env`). As both count when they allow a
call, put them after the guardrails that may still refuse it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from keel.guardrails.policy import Check, Decision, allow
from keel.plugins import get_path

if TYPE_CHECKING:
    from keel.gateway.ratelimit import RateLimiter
    from keel.guardrails.builtin import Checker, Env, RateLimitSpec, SpendCapSpec
    from keel.guardrails.spend_store import MemorySpendStore, SpendStore

REDIS_PREFIX = "keel:guard:"
CLOSE_WITH_RUNNER = "close_with_runner"  # env.shared: what keel.guardrails.setup.aclose closes
NO_USER = "-"  # the user of runs without one, in per-user counts
_NOT_RUN = ("blocked by a guardrail", "circuit open")


def counter_name(env: Env, name: str) -> str:
    """The counter of guardrail `name` configured at `env.scope` (no `:` for Redis key names)."""
    return re.sub(r"[^A-Za-z0-9_./-]", "_", f"{env.scope.replace(':', '.')}/{name}")[:200]


def rate_limit_check(spec: RateLimitSpec, name: str, env: Env) -> Checker:
    from keel.config.gateway import DEFAULT_TENANT, duration_seconds
    from keel.gateway.ratelimit import Limit

    window = duration_seconds(spec.window)
    limit = Limit(counter_name(env, name), "key", "requests", spec.calls, window)
    limiter = _limiter(env, limit)
    what = f"{spec.calls} call{'s' if spec.calls != 1 else ''} of {spec.tool or 'tools'} per {spec.window}"

    async def check(c: Check) -> Decision:
        if spec.tool is not None and c.tool != spec.tool:
            return allow(name)
        tenant = c.tenant_id or DEFAULT_TENANT
        if spec.per == "tenant":
            subject = tenant
        elif spec.per == "user":
            subject = f"{tenant}/{c.user_id or NO_USER}"
        else:
            subject = f"run/{c.run_id}"
        refusal = await limiter.hit({"key": subject})
        if refusal is None:
            return allow(name)
        if refusal.unavailable:
            return Decision("block", name, f"the rate limiter cannot be reached, so {what} cannot be checked")
        return Decision(
            "block", name, f"{what} for this {spec.per} reached: try again in {refusal.retry_after:.0f}s"
        )

    return check


def _limiter(env: Env, limit: Any) -> RateLimiter:
    from keel.gateway.ratelimit import MemoryRateLimiter
    from keel.guardrails.builtin import GuardrailConfigError

    config = env.rate_limits
    if config is None or config.redis_url_env is None:
        return MemoryRateLimiter([limit])
    url = env.environ.get(config.redis_url_env, "").strip()
    if not url:
        raise GuardrailConfigError(
            f"rate_limit: gateway.rate_limits.redis_url_env names {config.redis_url_env}, which is not set",
            "rate_limit",
        )
    from keel.gateway.ratelimit_redis import RedisRateLimiter

    limiter = RedisRateLimiter(url, [limit], on_redis_error=config.on_redis_error, prefix=REDIS_PREFIX)
    env.shared.setdefault(CLOSE_WITH_RUNNER, []).append(limiter)  # its connections (Runner.aclose)
    return limiter


def spend_cap_check(spec: SpendCapSpec, name: str, env: Env) -> Checker:
    from keel.config.gateway import DEFAULT_TENANT

    store = _store(env) if spec.per_tenant_day is not None else None
    counter = counter_name(env, name)
    what = f"{spec.tool}({spec.arg})" if spec.arg else f"{spec.tool} (cost {spec.cost:g} per call)"

    def amount_of(args: Any) -> Decimal | str:
        if spec.cost is not None:
            return Decimal(str(spec.cost))
        value = get_path(args or {}, spec.arg or "")
        if value is None:
            return Decimal(0)
        if isinstance(value, bool):
            return f"{value!r} is not a number"
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return f"{str(value)[:80]!r} is not a number"
        if not number.is_finite():
            return f"{value!r} is not a number"
        return max(number, Decimal(0))

    async def check(c: Check) -> Decision:
        if c.tool != spec.tool:
            return allow(name)
        amount = amount_of(c.args)
        if isinstance(amount, str):
            return Decision("block", name, f"{what}: {amount}")
        if spec.per_run is not None:
            spent = sum(
                (_amount(amount_of(call.args)) for call in c.calls if _counts(call, spec.tool)), Decimal(0)
            )
            cap = Decimal(str(spec.per_run))
            if spent + amount > cap:
                return Decision(
                    "block",
                    name,
                    f"{what}: {_num(amount)} more would take this run's total to {_num(spent + amount)}, "
                    f"over its cap of {_num(cap)} ({_num(spent)} spent so far)",
                )
        if store is not None and spec.per_tenant_day is not None:
            cap = Decimal(str(spec.per_tenant_day))
            tenant = c.tenant_id or DEFAULT_TENANT
            day = datetime.now(UTC).date()
            counted = await store.add(tenant_id=tenant, guardrail=counter, day=day, amount=amount, cap=cap)
            if not counted.ok:
                return Decision(
                    "block",
                    name,
                    f"{what}: {_num(amount)} more would take tenant {tenant}'s total today ({day.isoformat()}, "
                    f"UTC) to {_num(counted.total + amount)}, over its daily cap of {_num(cap)} "
                    f"({_num(counted.total)} spent so far)",
                )
        return allow(name)

    return check


def _num(value: Decimal) -> str:
    """250, 0.4, 1.25: an amount as people write it."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


def _amount(value: Decimal | str) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(0)


def _counts(call: Any, tool: str) -> bool:
    """Whether an earlier call of the run counts toward its spend: it ran, or is running."""
    if call.name != tool or call.status == "retry":
        return False
    error = call.error or ""
    return not (call.status == "error" and error.startswith(_NOT_RUN))


def _store(env: Env) -> SpendStore | MemorySpendStore:
    """One store per runner (shared by its spend caps): the database's, or this process's."""
    from keel.guardrails.spend_store import MemorySpendStore, SpendStore

    key = "spend_store"
    store = env.shared.get(key)
    if store is None:
        store = SpendStore(env.database_url) if env.database_url else MemorySpendStore()
        env.shared[key] = store
        env.shared.setdefault(CLOSE_WITH_RUNNER, []).append(store)
    assert isinstance(store, SpendStore | MemorySpendStore)
    return store
