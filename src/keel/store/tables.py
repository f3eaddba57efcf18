"""The store's tables (SQLAlchemy Core). Alembic migrations create them; this module mirrors them.

`tests/store/test_migrations.py` compares this metadata with a migrated database on both backends,
so a change here without a migration (or the reverse) fails the suite.

Layout, and why:
- `runs`: one row per RunRecord. JSON for input, output and metadata; `tools_called` and
  `tool_failures` keep the record's exact call order as JSON lists.
- `run_usage`: one row per (run, position) of `RunRecord.usage`, for totals by model.
- `run_tags`: one row per (run, position) of `RunRecord.tags`, indexed by tag for tag filters.
- `run_tools`: per run and tool, calls and failures: the aggregate behind tool failure rates.
- `spans`: finished spans, keyed by (trace_id, span_id); no foreign key to `runs`, since spans
  usually arrive before their run has ended.
Child tables of `runs` cascade on delete so retention can delete runs alone.

Server tables (revision 0002), used by durable runs:
- `callback_attempts`: one row per delivery attempt of a run's callback, unique on (run_id,
  attempt) so a step re-executed after a crash records its attempt once. That constraint is also
  the index for "attempts of a run, in order". No foreign key to `runs`: a callback is delivered
  before the background writer has necessarily stored its run.
- `keel_workers`: one row per worker id with its last heartbeat, so a live worker can find dead
  ones and claim (exactly once) the recovery of their unfinished runs.
- `session_runs`: the runs of a session, one at a time. The partial unique index on `session_key`
  WHERE `state = 'active'` makes "two active runs in one session" impossible whatever the callers
  do, on both backends.

Gateway table (revision 0003):
- `api_keys`: one row per API key. Only the HMAC of the secret is stored (`secret_hash`), never
  the secret; `prefix` is the key's public lookup id, unique. `scopes` is a JSON list. A key is
  revoked by setting `revoked_at` (rows are kept for audit); `last_used_at` is written at most once
  a minute per key. See `keel.gateway.keys` and `keel.store.keys`.

Budget tables (revision 0004), see `keel.gateway.budgets` and `keel.store.ledger`:
- `budget_counters`: settled spend (USD and tokens) of one scope in one period window, keyed by
  a hash of (tenant, scope kind, scope id, period, window start). Every reservation and
  settlement on a counter locks its row first (PostgreSQL) or holds the database write lock
  (SQLite), which is what makes concurrent reservations unable to overshoot.
- `budget_holds`: one row per (hold, counter): the room held, whether the hold is still `open`
  (then `settled` or `released`) and when it expires. Since revision 0008 a hold is a process's
  lease (`owner`: which ledger), whose room it hands out to its requests. The partial index on
  open holds serves "what do open holds hold on this counter".
- `budget_entries`: the append-only spend ledger: one row per reserve, settle or release, with
  the tenant, run, amounts and the budgets involved, for audit; at most one reserve and one
  settle or release per reservation (partial unique indexes, 0008).

Audit table (revision 0005), see `keel.store.audit` and docs/audit-log.md:
- `audit_log`: one row per security-relevant action (sign-ins, denials, key and budget changes,
  deployments, approvals, refused requests): who (`principal`), for which tenant (NULL for an
  operator's action without one), what (`action`, `outcome`, `target`), and a small JSON `detail`
  never holding secrets. Append-only: triggers created by migration 0005 (not part of this
  metadata) make the database itself refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL).
  Indexed for listings by tenant, action and principal, and newest first overall.

Identity tables (revision 0006), see `keel.store.identity`, `keel.gateway.sessions`,
`keel.gateway.oauth` and docs/oauth.md:
- `users`: people who sign in, with their tenant and roles (a JSON list of role names); an email,
  when given, is unique within the tenant. Disabled by setting `disabled_at` (rows are kept).
- `user_sessions`: browser sessions; the id is the SHA-256 (hex) of the cookie value, which is
  never stored. Deleting a user deletes its sessions.
- `oauth_clients`: OAuth2 clients (the id is the `client_id`); only the HMAC of a confidential
  client's secret is stored (`secret_hash`), NULL for a public client.
- `oauth_codes`: authorization codes by SHA-256 of the code, single use (`used_at`).
- `oauth_refresh_tokens`: refresh tokens by SHA-256, single use, in families (`family_id`), with
  the `jti` of the access token issued alongside (revoked with the family).
- `oauth_revoked_tokens`: the access-token deny list, by `jti`, until the token's expiry.
- `oauth_signing_keys`: the issuer's signing keys, private part encrypted; `generation` is unique,
  so concurrent rotations add one key. Server-wide: no tenant.

Passkey tables (revision 0007), see `keel.store.passkeys`, `keel.gateway.webauthn`, docs/passkeys.md:
- `passkeys`: one row per WebAuthn credential (a passkey) of a user: its credential id (base64url,
  unique: the authenticator's handle for it), the user and tenant it signs in, its COSE public key,
  the last signature counter seen, transports, AAGUID (authenticator model) and a name.
  `clone_suspected_at` is set when a counter went backwards: the credential is refused from then on.
- `webauthn_challenges`: one row per challenge handed to a browser, by the SHA-256 of the challenge
  (never the challenge itself), for `register` or `authenticate`, with the user it was made for (a
  sign-in challenge has none: the passkey says who), expiring after 5 minutes; `used_at` makes it
  single use (consumed by a conditional UPDATE).
- `passkey_enrollments`: one-time enrolment links (24 h): the SHA-256 of the link's token, the user
  and tenant it enrols, and `used_at` once a passkey was registered with it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from keel.store.types import JsonDocument, Money, UtcDateTime

# Lengths also bound what an index entry can hold on PostgreSQL; the codec checks them first so
# both backends reject the same oversized values.
ID_LENGTH = 128
NAME_LENGTH = 256
SHORT_LENGTH = 32
SESSION_KEY_LENGTH = 512

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

runs = Table(
    "runs",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("agent", String(NAME_LENGTH), nullable=False),
    Column("config_hash", String(NAME_LENGTH), nullable=False),
    Column("status", String(SHORT_LENGTH), nullable=False),
    Column("trigger", String(SHORT_LENGTH), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("ended_at", UtcDateTime(), nullable=False),
    Column("duration_ms", Float(), nullable=False),
    Column("input", JsonDocument, nullable=True),
    Column("output", JsonDocument, nullable=True),
    Column("error_category", String(SHORT_LENGTH * 2), nullable=True),
    Column("error_message", Text(), nullable=True),
    Column("model_requests", Integer(), nullable=False),
    Column("tool_calls", Integer(), nullable=False),
    Column("retries", Integer(), nullable=False),
    Column("input_tokens", BigInteger(), nullable=False),
    Column("output_tokens", BigInteger(), nullable=False),
    Column("cost_usd", Money(), nullable=True),
    Column("tools_called", JsonDocument, nullable=False),
    Column("tool_failures", JsonDocument, nullable=False),
    Column("prompt_version", String(NAME_LENGTH), nullable=True),
    Column("release", Integer(), nullable=True),
    Column("session_id", String(NAME_LENGTH), nullable=True),
    Column("user_id", String(NAME_LENGTH), nullable=True),
    Column("tenant_id", String(NAME_LENGTH), nullable=True),
    Column("parent_run_id", String(ID_LENGTH), nullable=True),
    Column("trace_id", String(SHORT_LENGTH * 2), nullable=True),
    Column("metadata", JsonDocument, nullable=False),
    # Newest-first listing and its cursor: (started_at, id) is the sort key.
    Index("ix_runs_started_at_id", "started_at", "id"),
    Index("ix_runs_agent_started_at", "agent", "started_at"),
    Index("ix_runs_tenant_id_started_at", "tenant_id", "started_at"),
    Index("ix_runs_user_id_started_at", "user_id", "started_at"),
    Index("ix_runs_session_id_started_at", "session_id", "started_at"),
    Index("ix_runs_error_category_started_at", "error_category", "started_at"),
    Index("ix_runs_trace_id", "trace_id"),
)

run_usage = Table(
    "run_usage",
    metadata,
    Column("run_id", String(ID_LENGTH), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer(), nullable=False),
    Column("model", String(NAME_LENGTH), nullable=False),
    Column("requests", Integer(), nullable=False),
    Column("input_tokens", BigInteger(), nullable=False),
    Column("output_tokens", BigInteger(), nullable=False),
    Column("cost_usd", Money(), nullable=True),
    PrimaryKeyConstraint("run_id", "position"),
    Index("ix_run_usage_model", "model"),
)

run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", String(ID_LENGTH), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer(), nullable=False),
    Column("tag", String(NAME_LENGTH), nullable=False),
    PrimaryKeyConstraint("run_id", "position"),
    Index("ix_run_tags_tag_run_id", "tag", "run_id"),
)

run_tools = Table(
    "run_tools",
    metadata,
    Column("run_id", String(ID_LENGTH), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("tool", String(NAME_LENGTH), nullable=False),
    Column("calls", Integer(), nullable=False),
    Column("failures", Integer(), nullable=False),
    PrimaryKeyConstraint("run_id", "tool"),
)

spans = Table(
    "spans",
    metadata,
    Column("trace_id", String(SHORT_LENGTH * 2), nullable=False),
    Column("span_id", String(SHORT_LENGTH), nullable=False),
    Column("parent_span_id", String(SHORT_LENGTH), nullable=True),
    Column("run_id", String(ID_LENGTH), nullable=True),
    Column("name", Text(), nullable=False),
    Column("kind", String(SHORT_LENGTH), nullable=False),
    Column("start_time", UtcDateTime(), nullable=False),
    Column("end_time", UtcDateTime(), nullable=False),
    Column("status", String(SHORT_LENGTH), nullable=False),
    Column("status_message", Text(), nullable=True),
    Column("attributes", JsonDocument, nullable=False),
    Column("events", JsonDocument, nullable=False),
    PrimaryKeyConstraint("trace_id", "span_id"),
    Index("ix_spans_run_id_start_time", "run_id", "start_time"),
    Index("ix_spans_trace_id_start_time", "trace_id", "start_time"),
)

RUN_CHILD_TABLES = (run_usage, run_tags, run_tools)

callback_attempts = Table(
    "callback_attempts",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("run_id", String(ID_LENGTH), nullable=False),
    # As long as runs.tenant_id, so every tenant a run may have can own its callback attempts.
    Column("tenant_id", String(NAME_LENGTH), nullable=True),
    Column("url", Text(), nullable=False),
    Column("attempt", Integer(), nullable=False),
    Column("attempted_at", UtcDateTime(), nullable=False),
    Column("duration_ms", Float(), nullable=False),
    Column("status_code", Integer(), nullable=True),
    Column("outcome", String(SHORT_LENGTH), nullable=False),
    Column("error", Text(), nullable=True),
    Column("next_attempt_at", UtcDateTime(), nullable=True),
    UniqueConstraint("run_id", "attempt"),
)

keel_workers = Table(
    "keel_workers",
    metadata,
    Column("worker_id", String(ID_LENGTH), primary_key=True),
    Column("role", String(SHORT_LENGTH), nullable=False),
    Column("hostname", String(NAME_LENGTH), nullable=False),
    Column("pid", Integer(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("heartbeat_at", UtcDateTime(), nullable=False),
    Column("stopped_at", UtcDateTime(), nullable=True),
    Column("recovered_by", String(ID_LENGTH), nullable=True),
    Column("recovered_at", UtcDateTime(), nullable=True),
)

ACTIVE_SESSION_RUN = text("state = 'active'")

session_runs = Table(
    "session_runs",
    metadata,
    Column("run_id", String(ID_LENGTH), primary_key=True),
    Column("session_key", String(SESSION_KEY_LENGTH), nullable=False),
    Column("state", String(SHORT_LENGTH), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_session_runs_session_key_created_at", "session_key", "created_at"),
    Index(
        "uq_session_runs_session_key_active",
        "session_key",
        unique=True,
        sqlite_where=ACTIVE_SESSION_RUN,
        postgresql_where=ACTIVE_SESSION_RUN,
    ),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("tenant_id", String(NAME_LENGTH), nullable=True),
    Column("prefix", String(SHORT_LENGTH), nullable=False),
    Column("secret_hash", String(SHORT_LENGTH * 4), nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("scopes", JsonDocument, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
    Column("last_used_at", UtcDateTime(), nullable=True),
    Column("created_by", String(NAME_LENGTH), nullable=True),
    UniqueConstraint("prefix"),
    Index("ix_api_keys_tenant_id_created_at", "tenant_id", "created_at"),
)

budget_counters = Table(
    "budget_counters",
    metadata,
    Column("key", String(SHORT_LENGTH * 2), primary_key=True),
    Column("tenant_id", String(NAME_LENGTH), nullable=True),
    Column("scope", String(SHORT_LENGTH), nullable=False),
    Column("scope_id", String(NAME_LENGTH), nullable=False),
    Column("period", String(SHORT_LENGTH), nullable=False),
    Column("window_start", UtcDateTime(), nullable=False),
    Column("window_end", UtcDateTime(), nullable=True),
    Column("settled_usd", Money(), nullable=False),
    Column("settled_tokens", BigInteger(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_budget_counters_tenant_id_window_start", "tenant_id", "window_start"),
)

OPEN_BUDGET_HOLD = text("state = 'open'")
RESERVE_ENTRY = text("kind = 'reserve'")
CLOSING_ENTRY = text("kind IN ('settle', 'release')")

budget_holds = Table(
    "budget_holds",
    metadata,
    Column("reservation_id", String(ID_LENGTH), nullable=False),
    Column("counter_key", String(SHORT_LENGTH * 2), nullable=False),
    Column("amount_usd", Money(), nullable=False),
    Column("tokens", BigInteger(), nullable=False),
    Column("state", String(SHORT_LENGTH), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("owner", String(NAME_LENGTH), nullable=True),  # the ledger holding a lease (0008)
    PrimaryKeyConstraint("reservation_id", "counter_key"),
    Index(
        "ix_budget_holds_open_counter_key_expires_at",
        "counter_key",
        "expires_at",
        sqlite_where=OPEN_BUDGET_HOLD,
        postgresql_where=OPEN_BUDGET_HOLD,
    ),
)

budget_entries = Table(
    "budget_entries",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("reservation_id", String(ID_LENGTH), nullable=False),
    Column("tenant_id", String(NAME_LENGTH), nullable=True),
    Column("run_id", String(ID_LENGTH), nullable=True),
    Column("kind", String(SHORT_LENGTH), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Column("amount_usd", Money(), nullable=False),
    Column("tokens", BigInteger(), nullable=False),
    Column("budgets", JsonDocument, nullable=False),
    Index("ix_budget_entries_tenant_id_recorded_at", "tenant_id", "recorded_at"),
    Index("ix_budget_entries_reservation_id", "reservation_id"),
    # One reserve entry, and at most one settle or release entry, per reservation (0008).
    Index(
        "ux_budget_entries_reserve",
        "reservation_id",
        unique=True,
        sqlite_where=RESERVE_ENTRY,
        postgresql_where=RESERVE_ENTRY,
    ),
    Index(
        "ux_budget_entries_close",
        "reservation_id",
        unique=True,
        sqlite_where=CLOSING_ENTRY,
        postgresql_where=CLOSING_ENTRY,
    ),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Column("tenant_id", String(NAME_LENGTH), nullable=True),
    Column("principal", String(NAME_LENGTH), nullable=False),
    Column("action", String(SHORT_LENGTH), nullable=False),
    Column("outcome", String(SHORT_LENGTH), nullable=False),
    Column("target", Text(), nullable=True),
    Column("trace_id", String(SHORT_LENGTH * 2), nullable=True),
    Column("ip", String(SHORT_LENGTH * 2), nullable=True),
    Column("detail", JsonDocument, nullable=False),
    Index("ix_audit_log_tenant_id_recorded_at", "tenant_id", "recorded_at"),
    Index("ix_audit_log_action_recorded_at", "action", "recorded_at"),
    Index("ix_audit_log_principal_recorded_at", "principal", "recorded_at"),
    # Newest-first listing of every tenant and its cursor: (recorded_at, id) is the sort key.
    Index("ix_audit_log_recorded_at_id", "recorded_at", "id"),
)

users = Table(
    "users",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("tenant_id", String(NAME_LENGTH), nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("email", String(NAME_LENGTH), nullable=True),
    Column("roles", JsonDocument, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("disabled_at", UtcDateTime(), nullable=True),
    UniqueConstraint("tenant_id", "email"),
    Index("ix_users_tenant_id_created_at", "tenant_id", "created_at"),
)

user_sessions = Table(
    "user_sessions",
    metadata,
    Column("id", String(SHORT_LENGTH * 2), primary_key=True),
    Column("user_id", String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", String(NAME_LENGTH), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
    Column("last_seen_at", UtcDateTime(), nullable=True),
    Index("ix_user_sessions_user_id", "user_id"),
    Index("ix_user_sessions_expires_at", "expires_at"),
)

oauth_clients = Table(
    "oauth_clients",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("tenant_id", String(NAME_LENGTH), nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("grant_type", String(SHORT_LENGTH), nullable=False),
    Column("redirect_uris", JsonDocument, nullable=False),
    Column("scopes", JsonDocument, nullable=False),
    Column("secret_hash", String(SHORT_LENGTH * 4), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
    Column("created_by", String(NAME_LENGTH), nullable=True),
    Index("ix_oauth_clients_tenant_id_created_at", "tenant_id", "created_at"),
)

oauth_codes = Table(
    "oauth_codes",
    metadata,
    Column("id", String(SHORT_LENGTH * 2), primary_key=True),
    Column("client_id", String(ID_LENGTH), nullable=False),
    Column("user_id", String(ID_LENGTH), nullable=False),
    Column("tenant_id", String(NAME_LENGTH), nullable=False),
    Column("redirect_uri", Text(), nullable=False),
    Column("scopes", JsonDocument, nullable=False),
    Column("code_challenge", String(SHORT_LENGTH * 4), nullable=False),
    Column("code_challenge_method", String(SHORT_LENGTH), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("used_at", UtcDateTime(), nullable=True),
    Column("family_id", String(ID_LENGTH), nullable=True),
    Index("ix_oauth_codes_expires_at", "expires_at"),
)

oauth_refresh_tokens = Table(
    "oauth_refresh_tokens",
    metadata,
    Column("id", String(SHORT_LENGTH * 2), primary_key=True),
    Column("family_id", String(ID_LENGTH), nullable=False),
    Column("client_id", String(ID_LENGTH), nullable=False),
    Column("user_id", String(ID_LENGTH), nullable=False),
    Column("tenant_id", String(NAME_LENGTH), nullable=False),
    Column("scopes", JsonDocument, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("used_at", UtcDateTime(), nullable=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
    Column("access_jti", String(SHORT_LENGTH * 2), nullable=True),
    Column("access_expires_at", UtcDateTime(), nullable=True),
    Index("ix_oauth_refresh_tokens_family_id", "family_id"),
    Index("ix_oauth_refresh_tokens_tenant_id_created_at", "tenant_id", "created_at"),
)

oauth_revoked_tokens = Table(
    "oauth_revoked_tokens",
    metadata,
    Column("jti", String(SHORT_LENGTH * 2), primary_key=True),
    Column("tenant_id", String(NAME_LENGTH), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Index("ix_oauth_revoked_tokens_expires_at", "expires_at"),
)

oauth_signing_keys = Table(
    "oauth_signing_keys",
    metadata,
    Column("kid", String(SHORT_LENGTH * 2), primary_key=True),
    Column("generation", Integer(), nullable=False),
    Column("alg", String(SHORT_LENGTH), nullable=False),
    Column("public_jwk", JsonDocument, nullable=False),
    Column("private_jwe", Text(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("generation"),
)

# A credential id is at most 1023 bytes (WebAuthn level 3): 1364 characters of unpadded base64url.
CREDENTIAL_ID_LENGTH = 1364
SHA256_HEX_LENGTH = 64

passkeys = Table(
    "passkeys",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("credential_id", String(CREDENTIAL_ID_LENGTH), nullable=False),
    Column("user_id", String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", String(NAME_LENGTH), nullable=False),
    Column("public_key", LargeBinary(), nullable=False),
    Column("sign_count", BigInteger(), nullable=False),
    Column("transports", JsonDocument, nullable=False),
    Column("aaguid", String(SHORT_LENGTH + 4), nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_used_at", UtcDateTime(), nullable=True),
    Column("clone_suspected_at", UtcDateTime(), nullable=True),
    UniqueConstraint("credential_id"),
    Index("ix_passkeys_tenant_id_user_id", "tenant_id", "user_id"),
)

webauthn_challenges = Table(
    "webauthn_challenges",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("challenge_hash", String(SHA256_HEX_LENGTH), nullable=False),
    Column("purpose", String(SHORT_LENGTH), nullable=False),
    Column("user_id", String(ID_LENGTH), nullable=True),
    Column("tenant_id", String(NAME_LENGTH), nullable=True),
    Column("enrollment_id", String(ID_LENGTH), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("used_at", UtcDateTime(), nullable=True),
    UniqueConstraint("challenge_hash"),
    Index("ix_webauthn_challenges_expires_at", "expires_at"),
)

passkey_enrollments = Table(
    "passkey_enrollments",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("token_hash", String(SHA256_HEX_LENGTH), nullable=False),
    Column("user_id", String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", String(NAME_LENGTH), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("used_at", UtcDateTime(), nullable=True),
    Column("created_by", String(NAME_LENGTH), nullable=True),
    UniqueConstraint("token_hash"),
    Index("ix_passkey_enrollments_tenant_id_user_id", "tenant_id", "user_id"),
)

# Prompt registry and releases (revision 0009), see `keel.prompts.registry`, `keel.releases.store`
# and docs/prompts.md. `tenant_id` is PROJECT_TENANT ("*") for what `keel deploy` pushed from the
# project's files (every tenant sees it), or the tenant that made the row through the API. Every
# table but `prompt_labels` is immutable: triggers from migration 0009 (not part of this metadata)
# make the database refuse UPDATE and DELETE.
# - `prompt_versions`: one immutable version of a prompt: semantic version (also split into
#   numbers, for ordering), content hash, template, declared variables, model settings, owner,
#   author, message and where it came from (`file:prompts/x.md`, `api`, `cli`).
# - `prompt_labels`: the movable pointers (`production`, `staging`, ...): a rollout (one version,
#   or several with weights for a canary) and what keeps a caller on one version (`sticky`).
# - `prompt_label_moves`: every move of a label, with the rollout before it, who and why.
# - `prompt_links`: links from a version to what evaluated it (evaluation runs).
# - `release_files`: file contents by SHA-256, shared by every release that holds them.
# - `releases`: numbered, content-addressed releases of the project's configuration: the manifest
#   (path -> SHA-256) and the prompt versions it deployed.
# - `release_activations`: which release became live, when, by whom and why (deploy, rollback);
#   the live release is the latest activation.
VERSION_LENGTH = 64
HASH_LENGTH = 64

prompt_versions = Table(
    "prompt_versions",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("tenant_id", String(NAME_LENGTH), nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("version", String(VERSION_LENGTH), nullable=False),
    Column("major", Integer(), nullable=False),
    Column("minor", Integer(), nullable=False),
    Column("patch", Integer(), nullable=False),
    Column("content_hash", String(HASH_LENGTH), nullable=False),
    Column("template", Text(), nullable=False),
    Column("variables", JsonDocument, nullable=False),
    Column("model_settings", JsonDocument, nullable=False),
    Column("owner", String(NAME_LENGTH), nullable=True),
    Column("author", String(NAME_LENGTH), nullable=False),
    Column("message", Text(), nullable=True),
    Column("source", String(NAME_LENGTH), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "name", "version"),
    Index("ix_prompt_versions_tenant_id_name_created_at", "tenant_id", "name", "created_at"),
)

prompt_labels = Table(
    "prompt_labels",
    metadata,
    Column("tenant_id", String(NAME_LENGTH), nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("label", String(VERSION_LENGTH), nullable=False),
    Column("rollout", JsonDocument, nullable=False),
    Column("sticky", String(SHORT_LENGTH), nullable=False),
    Column("moved_at", UtcDateTime(), nullable=False),
    Column("moved_by", String(NAME_LENGTH), nullable=False),
    PrimaryKeyConstraint("tenant_id", "name", "label"),
)

prompt_label_moves = Table(
    "prompt_label_moves",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("tenant_id", String(NAME_LENGTH), nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("label", String(VERSION_LENGTH), nullable=False),
    Column("rollout", JsonDocument, nullable=False),
    Column("previous", JsonDocument, nullable=True),
    Column("sticky", String(SHORT_LENGTH), nullable=False),
    Column("moved_at", UtcDateTime(), nullable=False),
    Column("moved_by", String(NAME_LENGTH), nullable=False),
    Column("reason", Text(), nullable=True),
    Index("ix_prompt_label_moves_tenant_id_name_moved_at", "tenant_id", "name", "moved_at"),
)

prompt_links = Table(
    "prompt_links",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("version_id", String(ID_LENGTH), ForeignKey("prompt_versions.id"), nullable=False),
    Column("kind", String(SHORT_LENGTH), nullable=False),
    Column("ref", String(NAME_LENGTH), nullable=False),
    Column("detail", JsonDocument, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(NAME_LENGTH), nullable=False),
    Index("ix_prompt_links_version_id", "version_id"),
)

release_files = Table(
    "release_files",
    metadata,
    Column("hash", String(HASH_LENGTH), primary_key=True),
    Column("content", LargeBinary(), nullable=False),
)

releases = Table(
    "releases",
    metadata,
    Column("number", Integer(), primary_key=True, autoincrement=False),
    Column("content_hash", String(HASH_LENGTH), nullable=False),
    Column("manifest", JsonDocument, nullable=False),
    Column("prompts", JsonDocument, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("author", String(NAME_LENGTH), nullable=False),
    Column("message", Text(), nullable=True),
    Index("ix_releases_content_hash", "content_hash"),
)

release_activations = Table(
    "release_activations",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("number", Integer(), ForeignKey("releases.number"), nullable=False),
    Column("activated_at", UtcDateTime(), nullable=False),
    Column("activated_by", String(NAME_LENGTH), nullable=False),
    Column("reason", String(SHORT_LENGTH), nullable=False),
)

# Evaluations (revision 0010), see `keel.evals` and docs/evals.md:
# - `eval_datasets`: versioned datasets kept in the database (the files are the other source):
#   the whole document (cases, evaluators) per version, by tenant (`PROJECT_TENANT` for files).
# - `eval_runs`: one offline evaluation: dataset and its hash, agent, prompt version, release,
#   status, the summary (per case, per evaluator, totals, cost) and the gate verdict.
# - `eval_results`: one row per case attempt: the run it made, pass/fail, every evaluator's score.
# - `online_scores`: scores of sampled live runs, per evaluator, for time series per version.
# - `run_feedback`: explicit (thumbs, corrections) and implicit (accepted, edited, rejected) signals.
eval_datasets = Table(
    "eval_datasets",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("tenant_id", String(NAME_LENGTH), nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("version", Integer(), nullable=False),
    Column("content_hash", String(HASH_LENGTH), nullable=False),
    Column("document", JsonDocument, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(NAME_LENGTH), nullable=False),
    UniqueConstraint("tenant_id", "name", "version"),
)

eval_runs = Table(
    "eval_runs",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("tenant_id", String(NAME_LENGTH), nullable=False),
    Column("dataset", String(NAME_LENGTH), nullable=False),
    Column("dataset_hash", String(HASH_LENGTH), nullable=False),
    Column("agent", String(NAME_LENGTH), nullable=False),
    Column("prompt_version", String(NAME_LENGTH), nullable=True),
    Column("release", Integer(), nullable=True),
    Column("status", String(SHORT_LENGTH), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("ended_at", UtcDateTime(), nullable=True),
    Column("summary", JsonDocument, nullable=False),
    Column("baseline_id", String(ID_LENGTH), nullable=True),
    Column("gate", JsonDocument, nullable=True),
    Column("created_by", String(NAME_LENGTH), nullable=False),
    Index("ix_eval_runs_tenant_id_started_at", "tenant_id", "started_at"),
    Index("ix_eval_runs_dataset_agent_started_at", "dataset", "agent", "started_at"),
)

eval_results = Table(
    "eval_results",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("eval_run_id", String(ID_LENGTH), ForeignKey("eval_runs.id", ondelete="CASCADE"), nullable=False),
    Column("case_id", String(NAME_LENGTH), nullable=False),
    Column("attempt", Integer(), nullable=False),
    Column("run_id", String(ID_LENGTH), nullable=True),
    Column("passed", Boolean(), nullable=False),
    Column("scores", JsonDocument, nullable=False),
    Column("output", JsonDocument, nullable=True),
    Column("latency_ms", Float(), nullable=True),
    Column("cost_usd", Money(), nullable=True),
    Index("ix_eval_results_eval_run_id_case_id", "eval_run_id", "case_id"),
)

online_scores = Table(
    "online_scores",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("run_id", String(ID_LENGTH), nullable=False),
    Column("tenant_id", String(NAME_LENGTH), nullable=True),
    Column("agent", String(NAME_LENGTH), nullable=False),
    Column("prompt_version", String(NAME_LENGTH), nullable=True),
    Column("evaluator", String(NAME_LENGTH), nullable=False),
    Column("score", Float(), nullable=False),
    Column("passed", Boolean(), nullable=False),
    Column("reason", Text(), nullable=True),
    Column("scored_at", UtcDateTime(), nullable=False),
    Index("ix_online_scores_agent_scored_at", "agent", "scored_at"),
    # One score per run and evaluator (revision 0011): a replayed run is never scored twice.
    Index("uq_online_scores_run_id_evaluator", "run_id", "evaluator", unique=True),
)

run_feedback = Table(
    "run_feedback",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("run_id", String(ID_LENGTH), nullable=False),
    Column("tenant_id", String(NAME_LENGTH), nullable=True),
    Column("kind", String(SHORT_LENGTH), nullable=False),
    Column("value", Float(), nullable=True),
    Column("comment", Text(), nullable=True),
    Column("correction", JsonDocument, nullable=True),
    Column("source", String(SHORT_LENGTH), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(NAME_LENGTH), nullable=False),
    Index("ix_run_feedback_run_id", "run_id"),
    Index("ix_run_feedback_tenant_id_created_at", "tenant_id", "created_at"),
)

# Guardrail table (revision 0012), see `keel.guardrails.spend_store`:
# - `guardrail_spend`: a spend cap's running total of one tenant on one day (UTC), per guardrail
#   (`agent:<name>/<guardrail>` or `tenant:<id>/<guardrail>`). A call is counted by one UPDATE
#   whose WHERE says the new total stays within the cap, so concurrent processes cannot overshoot.
guardrail_spend = Table(
    "guardrail_spend",
    metadata,
    Column("tenant_id", String(NAME_LENGTH), nullable=False),
    Column("guardrail", String(NAME_LENGTH), nullable=False),
    Column("day", Date(), nullable=False),
    Column("total", Money(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    PrimaryKeyConstraint("tenant_id", "guardrail", "day"),
)

# Human in the loop (revision 0013), see `keel.store.approvals`:
# - `run_pauses`: a durable run stopped for approval, once per stop (`pause` 1, 2, ...): what it
#   needs to go on (`state`: its messages and record so far), its request, and the view the API
#   shows while it waits. `waiting` until every call is decided, then `resumed` (its continuation
#   workflow `<run_id>.p<pause>` is queued) or `cancelled`.
# - `approvals`: one call waiting for a person: `pending`, then `approved`, `rejected` (by a
#   person, or by the timeout policy: `decided_by` says who) or `cancelled` with the run.
# - `escalations`: a run handed to a person, with the summary: `open`, then `resolved`.
run_pauses = Table(
    "run_pauses",
    metadata,
    Column("run_id", String(ID_LENGTH), nullable=False),
    Column("pause", Integer(), nullable=False),
    Column("tenant_id", String(NAME_LENGTH), nullable=True),
    Column("agent", String(NAME_LENGTH), nullable=False),
    Column("status", String(SHORT_LENGTH), nullable=False),
    Column("request", JsonDocument, nullable=False),
    Column("state", JsonDocument, nullable=False),
    Column("view", JsonDocument, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("resumed_at", UtcDateTime(), nullable=True),
    PrimaryKeyConstraint("run_id", "pause"),
    Index("ix_run_pauses_status", "status"),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("run_id", String(ID_LENGTH), nullable=False),
    Column("pause", Integer(), nullable=False),
    Column("call_id", String(NAME_LENGTH), nullable=False),
    Column("tenant_id", String(NAME_LENGTH), nullable=True),
    Column("agent", String(NAME_LENGTH), nullable=False),
    Column("tool", String(NAME_LENGTH), nullable=False),
    Column("args", JsonDocument, nullable=False),
    Column("reason", Text(), nullable=False),
    Column("status", String(SHORT_LENGTH), nullable=False),
    Column("on_timeout", String(SHORT_LENGTH), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("decided_at", UtcDateTime(), nullable=True),
    Column("decided_by", String(NAME_LENGTH), nullable=True),
    Column("decision_reason", Text(), nullable=True),
    Column("edited_args", JsonDocument, nullable=True),
    UniqueConstraint("run_id", "pause", "call_id", name="uq_approvals_run_pause_call"),
    Index("ix_approvals_tenant_status", "tenant_id", "status", "created_at"),
    Index("ix_approvals_status_expires", "status", "expires_at"),
)

escalations = Table(
    "escalations",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("run_id", String(ID_LENGTH), nullable=False),
    Column("tenant_id", String(NAME_LENGTH), nullable=True),
    Column("agent", String(NAME_LENGTH), nullable=False),
    Column("trigger", String(SHORT_LENGTH), nullable=False),
    Column("reason", Text(), nullable=False),
    Column("summary", Text(), nullable=False),
    Column("status", String(SHORT_LENGTH), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("resolved_at", UtcDateTime(), nullable=True),
    Column("resolved_by", String(NAME_LENGTH), nullable=True),
    Column("resolution", Text(), nullable=True),
    UniqueConstraint("run_id", name="uq_escalations_run_id"),
    Index("ix_escalations_tenant_status", "tenant_id", "status", "created_at"),
)

# Durable runs' step events (revision 0014), see `keel.durable.event_log`:
# - `run_events`: one row per event a step of a run's workflow emitted (`workflow_id`: the run, or
#   its continuation `<run_id>.p<n>`), in the order written; a workflow's events are read by `id`.
run_events = Table(
    "run_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("workflow_id", String(ID_LENGTH), nullable=False),
    Column("event", JsonDocument, nullable=False),
    Index("ix_run_events_workflow_id_id", "workflow_id", "id"),
)
