"""Tenant scoping: the one place that knows which rows belong to a tenant.

Every query over a tenant-owned table goes through `scope_to_tenant`, so when the gateway makes
the tenant mandatory, only this module and the query signatures change. Ownership:
- `runs`: its `tenant_id` column.
- `run_usage`, `run_tags`, `run_tools`: the run they belong to.
- `spans`: a span carries no tenant; it belongs to a tenant's run with its `run_id`, or with its
  trace (spans other than the run's root often carry only the trace id).
- `callback_attempts`: its own `tenant_id` column (the run's tenant, copied when the attempt is
  recorded: the run itself may not be stored yet).
- `api_keys`: its own `tenant_id` column (the tenant the key acts for).
- `budget_counters`, `budget_entries`: their own `tenant_id` column (the tenant the budget, or the
  reservation, belongs to).
- `budget_holds`: the counter it holds against (`counter_key`).
- `audit_log`: its own `tenant_id` column (the tenant the action was for; NULL for an operator's
  action without a tenant, which only an unscoped listing shows).
- `passkeys`, `passkey_enrollments`: their own `tenant_id` column (the tenant of the user they
  sign in or enrol).
- `webauthn_challenges`: its own `tenant_id` column (the user's tenant for a registration; NULL for
  a sign-in challenge, made before anyone is known, which only an unscoped query sees).
- `users`, `user_sessions`, `oauth_clients`, `oauth_codes`, `oauth_refresh_tokens`,
  `oauth_revoked_tokens`: their own `tenant_id` column (the user's, or the client's, tenant).
  `oauth_signing_keys` is server-wide (one issuer signs for every tenant): it has no rule here.
- `prompt_versions`, `prompt_labels`, `prompt_label_moves`: their own `tenant_id` column; a
  tenant also sees the project's rows (`PROJECT_TENANT`, what `keel deploy` pushed), which it may
  read but not change. `prompt_links`: the version they link.
  `releases`, `release_files`, `release_activations` are project-wide (operators deploy them): no
  rule here, and only admins reach them.
- `eval_datasets`, `eval_runs`: their own `tenant_id` column (`PROJECT_TENANT` for what the
  operator's CLI ran; a tenant also sees those). `eval_results`: the evaluation run it belongs to.
- `online_scores`, `run_feedback`: their own `tenant_id` column (the run's tenant).
- `guardrail_spend`: its own `tenant_id` column (the tenant whose calls the spend cap counted).
- `run_pauses`, `approvals`, `escalations`: their own `tenant_id` column (the run's tenant).
A table not listed here is refused, so a new table cannot be queried unscoped by accident.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, Table, exists, or_, select

from keel.store.tables import (
    RUN_CHILD_TABLES,
    api_keys,
    approvals,
    audit_log,
    budget_counters,
    budget_entries,
    budget_holds,
    callback_attempts,
    escalations,
    eval_datasets,
    eval_results,
    eval_runs,
    guardrail_spend,
    oauth_clients,
    oauth_codes,
    oauth_refresh_tokens,
    oauth_revoked_tokens,
    online_scores,
    passkey_enrollments,
    passkeys,
    prompt_label_moves,
    prompt_labels,
    prompt_links,
    prompt_versions,
    run_feedback,
    run_pauses,
    runs,
    spans,
    user_sessions,
    users,
    webauthn_challenges,
)

_OWN_TENANT_COLUMN = (
    runs,
    callback_attempts,
    api_keys,
    budget_counters,
    budget_entries,
    audit_log,
    guardrail_spend,
)
# Users, sessions and the OAuth2 server (keel.store.identity): their own tenant_id column.
_IDENTITY_TABLES = (
    users,
    user_sessions,
    oauth_clients,
    oauth_codes,
    oauth_refresh_tokens,
    oauth_revoked_tokens,
)
# Passkeys (keel.store.passkeys): their own tenant_id column too.
_PASSKEY_TABLES = (passkeys, passkey_enrollments, webauthn_challenges)

# The prompt registry (keel.prompts.registry): a tenant's own rows and the project's.
_PROMPT_TABLES = (prompt_versions, prompt_labels, prompt_label_moves)
PROJECT_TENANT = "*"
"""The tenant of what is deployed from the project's files: shared by every tenant, read-only to them."""

SelectT = TypeVar("SelectT", bound=Select[Any])


def tenant_condition(table: Table, tenant_id: str) -> ColumnElement[bool]:
    """The WHERE condition that keeps only `tenant_id`'s rows of `table`."""
    if any(table is owner for owner in _OWN_TENANT_COLUMN + _IDENTITY_TABLES):
        return table.c.tenant_id == tenant_id
    if table is budget_holds:
        return table.c.counter_key.in_(
            select(budget_counters.c.key).where(budget_counters.c.tenant_id == tenant_id)
        )
    if any(table is child for child in RUN_CHILD_TABLES):
        return table.c.run_id.in_(select(runs.c.id).where(runs.c.tenant_id == tenant_id))
    if table is spans:
        owner = runs.alias("span_owner")
        return exists().where(
            owner.c.tenant_id == tenant_id,
            or_(owner.c.id == spans.c.run_id, owner.c.trace_id == spans.c.trace_id),
        )
    if any(table is owner for owner in _PASSKEY_TABLES):
        return table.c.tenant_id == tenant_id
    if any(table is owner for owner in _PROMPT_TABLES):
        return table.c.tenant_id.in_((tenant_id, PROJECT_TENANT))
    if table is eval_datasets or table is eval_runs:
        return table.c.tenant_id.in_((tenant_id, PROJECT_TENANT))
    if table is eval_results:
        return table.c.eval_run_id.in_(
            select(eval_runs.c.id).where(eval_runs.c.tenant_id.in_((tenant_id, PROJECT_TENANT)))
        )
    if table is run_pauses or table is approvals or table is escalations:
        return table.c.tenant_id == tenant_id
    if table is online_scores or table is run_feedback:
        return table.c.tenant_id == tenant_id
    if table is prompt_links:
        return table.c.version_id.in_(
            select(prompt_versions.c.id).where(prompt_versions.c.tenant_id.in_((tenant_id, PROJECT_TENANT)))
        )
    raise ValueError(f"table {table.name!r} has no tenant rule in keel.store.tenancy")


def scope_to_tenant(statement: SelectT, table: Table, tenant_id: str | None) -> SelectT:
    """`statement` restricted to `tenant_id`'s rows of `table`; unchanged when tenant_id is None."""
    if tenant_id is None:
        return statement
    return statement.where(tenant_condition(table, tenant_id))
