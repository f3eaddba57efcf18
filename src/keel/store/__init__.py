"""Keel's data plane: run history and spans on SQLite or PostgreSQL.

- `resolve_database_url` turns `storage.url` (or `KEEL_DATABASE_URL`) into the URL to use.
- `upgrade(url)` creates or migrates the tables (what `keel db upgrade` runs).
- `RecordWriter` writes RunRecords and SpanRecords from a background thread, never blocking runs.
- `RunStore` queries them: runs, spans, usage totals, per-agent statistics.
- `CallbackLog` stores every attempt to deliver a run's callback (`CallbackAttempt`).
- `Coordination`: worker heartbeats and dead-worker claims, and one active run per session.
- `KeyStore`: the gateway's API keys (create, list, revoke, verify); see docs/gateway.md.
- `BudgetLedger`: hard budgets (reserve, settle, release) and the per-tenant spend ledger; see
  docs/gateway.md#budgets.
- `AuditLog`: append-only records of security-relevant actions (`AuditEntry`); see
  docs/audit-log.md.

See docs/storage.md.
"""

from keel.store.audit import (
    AUDIT_ACTIONS,
    AUDIT_OUTCOMES,
    AuditAction,
    AuditEntry,
    AuditLog,
    AuditOutcome,
    AuditPage,
    InvalidAuditEntry,
)
from keel.store.callbacks import CallbackAttempt, CallbackLog, CallbackOutcome
from keel.store.coordination import Coordination, SessionRunState, WorkerRow
from keel.store.keys import ApiKeyRecord, CreatedKey, KeyStore, UnknownKey
from keel.store.ledger import BudgetLedger, LedgerEntry, Spend
from keel.store.migrate import current_revision, head_revision, upgrade
from keel.store.records import ModelUsageRecord, RunRecord, SpanEvent, SpanRecord
from keel.store.repository import RunStore
from keel.store.results import AgentStats, RunPage, ToolStats, UsageGroup, UsageTotal
from keel.store.urls import mask_url, resolve_database_url
from keel.store.writer import RecordWriter, WriterStats

__all__ = [
    "AUDIT_ACTIONS",
    "AUDIT_OUTCOMES",
    "AgentStats",
    "ApiKeyRecord",
    "AuditAction",
    "AuditEntry",
    "AuditLog",
    "AuditOutcome",
    "AuditPage",
    "BudgetLedger",
    "CallbackAttempt",
    "CallbackLog",
    "CallbackOutcome",
    "Coordination",
    "CreatedKey",
    "InvalidAuditEntry",
    "KeyStore",
    "LedgerEntry",
    "ModelUsageRecord",
    "RecordWriter",
    "RunPage",
    "RunRecord",
    "RunStore",
    "SessionRunState",
    "SpanEvent",
    "SpanRecord",
    "Spend",
    "ToolStats",
    "UnknownKey",
    "UsageGroup",
    "UsageTotal",
    "WorkerRow",
    "WriterStats",
    "current_revision",
    "head_revision",
    "mask_url",
    "resolve_database_url",
    "upgrade",
]
