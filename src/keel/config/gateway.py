"""The `gateway:` section of `keel.yaml`: who may call the server, and within which limits.

Deny by default: with no `gateway:` section, every `/v1` request needs a valid credential (an API
key, or a JWT from a configured issuer) holding the route's scope. `auth: off` is for local
development only: every caller is then the `anonymous` principal, with the tenant and scopes
given there.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from keel.gateway.keys import SCOPES, Scope
from keel.gateway.principal import DEFAULT_TENANT

_NAME = r"^[A-Za-z0-9_.:@-]{1,128}$"
_DURATION = re.compile(r"^(\d{1,9})(s|m|h|d)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def duration_seconds(value: str | int | float) -> float:
    """`30s`, `5m`, `1h`, `1d`, or a number of seconds, as seconds (> 0)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m, 1h or 1d")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(value.strip())
        if match is None:
            raise ValueError(f"expected a duration such as 30s, 5m, 1h or 1d, got {value!r}")
        seconds = float(int(match.group(1)) * _SECONDS[match.group(2)])
    if seconds <= 0:
        raise ValueError("a duration must be more than 0 seconds")
    return seconds


class AnonymousConfig(_Strict):
    """The identity of every caller when `auth: off` (local development only)."""

    tenant: Annotated[str, Field(pattern=_NAME)] = DEFAULT_TENANT
    scopes: list[Scope] = Field(
        default=["runs:write", "runs:read"], description="Scopes every anonymous caller holds."
    )


class ClaimsConfig(_Strict):
    """Where a JWT's claims say who the caller is. Each value is a claim name (dots for nesting)."""

    subject: str = Field(default="sub", description="The principal's id.")
    tenant: str = Field(default="tenant", description="The tenant; a token without it is refused.")
    scopes: str = Field(default="scope", description="Scopes: a space-separated string or a list.")
    roles: str = Field(default="roles", description="Roles (see gateway.roles): a list or a string.")
    kind: str | None = Field(
        default=None,
        description="A claim whose value is 'user' or 'service'; without it, tokens from the client "
        "credentials grant (no user) are services and others users.",
    )


class JwtIssuerConfig(_Strict):
    """An external OAuth2/OIDC issuer whose JWT access tokens Keel accepts (resource server)."""

    issuer: Annotated[str, Field(pattern=r"^https?://\S+$", description="The exact `iss` value.")]
    audience: Annotated[str, Field(min_length=1, description="The `aud` value tokens must carry.")]
    jwks_url: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        description="The issuer's JWKS; without it, found by OIDC discovery at "
        "<issuer>/.well-known/openid-configuration.",
    )
    algorithms: list[
        Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
    ] = Field(default=["RS256", "ES256"], min_length=1, description="Signature algorithms accepted.")
    leeway: Annotated[float, Field(ge=0, le=300)] = Field(
        default=30, description="Seconds of clock skew tolerated on exp and nbf."
    )
    jwks_cache: Annotated[float, Field(ge=10, le=86_400)] = Field(
        default=3600, description="Seconds a fetched JWKS is used before it is fetched again."
    )
    claims: ClaimsConfig = ClaimsConfig()


class RateLimitConfig(_Strict):
    """One limit: per key, user, tenant or agent, on requests or tokens per window, or on concurrent runs."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$", description="Named in 429 answers.")]
    per: Literal["key", "user", "tenant", "agent"]
    requests: Annotated[int | None, Field(ge=1)] = Field(default=None, description="Requests per window.")
    tokens: Annotated[int | None, Field(ge=1)] = Field(
        default=None, description="Model tokens (input + output) per window, counted when runs end."
    )
    concurrent_runs: Annotated[int | None, Field(ge=1)] = Field(
        default=None, description="Runs queued or running at once."
    )
    window: str | int = Field(default="1m", description="For requests and tokens: 30s, 5m, 1h, 1d.")

    @model_validator(mode="after")
    def _one_measure(self) -> RateLimitConfig:
        given = [m for m in ("requests", "tokens", "concurrent_runs") if getattr(self, m) is not None]
        if len(given) != 1:
            raise ValueError("set exactly one of requests, tokens or concurrent_runs")
        duration_seconds(self.window)
        return self

    @property
    def window_seconds(self) -> float:
        return duration_seconds(self.window)


class RateLimitsConfig(_Strict):
    redis_url_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding a redis:// URL: limits are then shared by every "
        "process; without it they are counted in each process.",
    )
    on_redis_error: Literal["allow", "refuse"] = Field(
        default="allow",
        description="When Redis does not answer: let requests through (logged, counted in /readyz) "
        "or refuse them with 503.",
    )
    limits: list[RateLimitConfig] = []

    @field_validator("limits")
    @classmethod
    def _unique_names(cls, limits: list[RateLimitConfig]) -> list[RateLimitConfig]:
        names = [limit.name for limit in limits]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"limit names must be unique: {', '.join(duplicates)}")
        return limits


class BudgetConfig(_Strict):
    """A hard budget, enforced before every model request (see docs/gateway.md#budgets)."""

    scope: Literal["run", "user", "tenant", "agent"]
    id: str | None = Field(
        default=None,
        description="Only this user, tenant or agent; without it, every one has its own budget of this size.",
    )
    unit: Literal["usd", "tokens"]
    period: Literal["day", "month", "run"]
    limit: str | int | float = Field(description='USD as a string or number ("50", 0.25), or a token count.')
    soft_threshold: Annotated[float | None, Field(gt=0, lt=1)] = Field(
        default=None, description="Fraction of the limit at which a budget_threshold event is emitted."
    )

    @model_validator(mode="after")
    def _consistent(self) -> BudgetConfig:
        if (self.period == "run") != (self.scope == "run"):
            raise ValueError("period 'run' goes with scope 'run', and scope 'run' with period 'run'")
        if self.scope == "run" and self.id is not None:
            raise ValueError("a run budget applies to every run: it takes no id")
        if self.unit == "tokens":
            if not isinstance(self.limit, int) or self.limit < 1:
                raise ValueError("a token budget's limit is a whole number of tokens, at least 1")
        else:
            try:
                amount = Decimal(str(self.limit))
            except InvalidOperation:
                raise ValueError(f"limit: not a USD amount: {self.limit!r}") from None
            if not amount.is_finite() or amount <= 0:
                raise ValueError("a USD budget's limit must be more than 0")
        return self


class BudgetsConfig(_Strict):
    limits: list[BudgetConfig] = []
    estimate_output_tokens: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        default=1024,
        description="Output tokens reserved for a model request whose max_tokens is not set; the "
        "reservation is settled with the actual usage afterwards.",
    )


class IssuerConfig(_Strict):
    """Keel's built-in OAuth2 authorization server (see docs/oauth.md)."""

    enabled: bool = False
    issuer: str | None = Field(
        default=None,
        pattern=r"^https?://[^/?#]+(/[^?#]*[^/?#])?$",
        description="The public base URL of this server, as clients reach it (no trailing slash); the "
        "tokens' `iss`. Required when enabled.",
    )
    audience: Annotated[str, Field(min_length=1)] = Field(
        default="keel", description="The `aud` of the access tokens it issues."
    )
    access_token_ttl: str | int = Field(default="15m", description="Lifetime of an access token.")
    refresh_token_ttl: str | int = Field(default="30d", description="Lifetime of a refresh token.")
    key_rotation: str | int = Field(
        default="30d", description="Age at which the signing key is replaced (old keys stay published)."
    )
    key_secret_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding the secret that encrypts the signing keys at rest.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> IssuerConfig:
        for name in ("access_token_ttl", "refresh_token_ttl", "key_rotation"):
            duration_seconds(getattr(self, name))
        if self.enabled and self.issuer is None:
            raise ValueError("issuer: required when the built-in issuer is enabled")
        return self


class PasskeysConfig(_Strict):
    """Passwordless dashboard sign-in with WebAuthn passkeys (see docs/passkeys.md)."""

    enabled: bool = False
    rp_id: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9.-]{1,253}$",
        description="The relying party id: the site's domain (e.g. keel.example.com, or localhost).",
    )
    rp_name: Annotated[str, Field(min_length=1, max_length=64)] = "Keel"
    origins: list[Annotated[str, Field(pattern=r"^https?://[^/?#]+$")]] = Field(
        default=[], description="Origins the browser may sign in from (https, or http://localhost)."
    )
    session_ttl: str | int = Field(default="12h", description="How long a sign-in lasts.")

    @model_validator(mode="after")
    def _consistent(self) -> PasskeysConfig:
        duration_seconds(self.session_ttl)
        if self.enabled and (self.rp_id is None or not self.origins):
            raise ValueError("rp_id and origins: required when passkeys are enabled")
        return self


class GatewayConfig(_Strict):
    """Authentication, authorization, rate limits and budgets of `keel serve`."""

    auth: Literal["required", "off"] = Field(
        default="required",
        description="required: every /v1 request needs an API key or a JWT. off: local development "
        "only; every caller is the anonymous principal.",
    )
    anonymous: AnonymousConfig = AnonymousConfig()
    key_cache: Annotated[float, Field(ge=0, le=300)] = Field(
        default=10.0,
        description="Seconds a verified API key is remembered by a process; a key revoked elsewhere "
        "stops working within this time (0: checked against the database on every request).",
    )
    roles: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")], list[Scope]] = Field(
        default={},
        description="Role name to scopes; a JWT's roles claim grants the scopes of its roles.",
    )
    agent_access: dict[str, list[str]] = Field(
        default={},
        description="Agent name to who may run it: 'tenant:<id>', 'role:<name>', 'user:<id>', "
        "'service:<id>', or '*'. An agent not listed may be run by any caller with runs:write.",
    )
    jwt: list[JwtIssuerConfig] = []
    rate_limits: RateLimitsConfig = RateLimitsConfig()
    budgets: BudgetsConfig = BudgetsConfig()
    issuer: IssuerConfig = IssuerConfig()
    passkeys: PasskeysConfig = PasskeysConfig()

    @field_validator("auth", mode="before")
    @classmethod
    def _yaml_booleans(cls, value: object) -> object:
        # YAML reads a bare `off` as false (and `on`/`yes` as true).
        if value is False:
            return "off"
        if value is True:
            return "required"
        return value

    @field_validator("agent_access")
    @classmethod
    def _grants(cls, access: dict[str, list[str]]) -> dict[str, list[str]]:
        for agent, grants in access.items():
            for grant in grants:
                if grant == "*":
                    continue
                kind, _, value = grant.partition(":")
                if kind not in ("tenant", "role", "user", "service") or not re.match(_NAME, value):
                    raise ValueError(
                        f"agent_access.{agent}: {grant!r} is not a grant; expected '*', 'tenant:<id>', "
                        "'role:<name>', 'user:<id>' or 'service:<id>'"
                    )
        return access

    @field_validator("jwt")
    @classmethod
    def _unique_issuers(cls, issuers: list[JwtIssuerConfig]) -> list[JwtIssuerConfig]:
        seen = [i.issuer for i in issuers]
        if len(seen) != len(set(seen)):
            raise ValueError("each issuer may be configured once")
        return issuers


__all__ = ["DEFAULT_TENANT", "SCOPES", "GatewayConfig", "duration_seconds"]
