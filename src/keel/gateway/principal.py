"""Who is calling: the `Principal` every authenticated request carries.

A principal is a user, a service (another program, with an API key or a client-credentials
token), an agent acting as itself, or the anonymous caller of a server with `auth: off`. Every
principal belongs to exactly one tenant; everything it reads or writes is that tenant's.
Its scopes are exactly the ones it was given (directly or through its roles): no scope implies
another, and `admin` does not imply the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from keel.gateway.keys import SCOPES, Scope

DEFAULT_TENANT = "default"
"""The tenant of a principal that names none (a key created without `--tenant`)."""

PrincipalKind = Literal["user", "service", "agent", "anonymous"]
Credential = Literal["api_key", "jwt", "anonymous", "internal"]


@dataclass(frozen=True)
class Principal:
    kind: PrincipalKind
    id: str
    tenant_id: str
    scopes: frozenset[Scope]
    roles: tuple[str, ...] = ()
    credential: Credential = "api_key"
    key_prefix: str | None = None  # the API key's public prefix, for logs and audit
    issuer: str | None = None  # the JWT's issuer
    claims: Mapping[str, object] = field(default_factory=dict, compare=False, repr=False)

    def has_scope(self, scope: Scope) -> bool:
        return scope in self.scopes

    @property
    def user_id(self) -> str | None:
        """The id a run records as its user: a user's own id; None for other kinds."""
        return self.id if self.kind == "user" else None

    @property
    def label(self) -> str:
        """`kind:id`, for logs, traces and the audit log (never a secret)."""
        return f"{self.kind}:{self.id}"


def scopes_of(
    direct: Iterable[str], roles: Iterable[str], role_scopes: Mapping[str, Iterable[str]]
) -> frozenset[Scope]:
    """The known scopes among `direct`, plus those of each role in `roles` that `role_scopes`
    defines. Unknown scopes and unknown roles grant nothing (deny by default)."""
    granted: set[str] = set(direct)
    for role in roles:
        granted.update(role_scopes.get(role, ()))
    return frozenset(s for s in SCOPES if s in granted)
