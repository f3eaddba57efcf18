"""Keel's gateway: who may call Keel, and what they may do.

- `keel.gateway.keys`: API keys: their format, how their secret is hashed and checked, the closed
  set of scopes, expiry. Storage is `keel.store.keys.KeyStore`.
- `keel.gateway.budgets`: hard budgets in USD and tokens per run, user, tenant and agent, per day,
  month or run, and `BudgetExceeded`. Enforcement is `keel.store.ledger.BudgetLedger` (called by the run loop, `keel.runtime.budget_guard`).

See docs/gateway.md.
"""

from keel.gateway.budgets import (
    Budget,
    BudgetCheck,
    BudgetExceeded,
    Reservation,
    Settlement,
    ThresholdCrossing,
    Window,
    window_for,
)
from keel.gateway.keys import (
    SCOPES,
    ApiKeyRefused,
    GeneratedKey,
    InvalidExpiry,
    InvalidScope,
    ParsedKey,
    RefusalReason,
    Scope,
    generate_key,
    hash_secret,
    key_pepper,
    parse_expiry,
    parse_key,
    secret_matches,
    validate_scopes,
)

__all__ = [
    "SCOPES",
    "ApiKeyRefused",
    "Budget",
    "BudgetCheck",
    "BudgetExceeded",
    "GeneratedKey",
    "InvalidExpiry",
    "InvalidScope",
    "ParsedKey",
    "RefusalReason",
    "Reservation",
    "Scope",
    "Settlement",
    "ThresholdCrossing",
    "Window",
    "generate_key",
    "hash_secret",
    "key_pepper",
    "parse_expiry",
    "parse_key",
    "secret_matches",
    "validate_scopes",
    "window_for",
]
