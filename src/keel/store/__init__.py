"""Keel's data plane: run history and spans on SQLite or PostgreSQL.

- `resolve_database_url` turns `storage.url` (or `KEEL_DATABASE_URL`) into the URL to use.
- `upgrade(url)` creates or migrates the tables (what `keel db upgrade` runs).
- `RecordWriter` writes RunRecords and SpanRecords from a background thread, never blocking runs.
- `RunStore` queries them: runs, spans, usage totals, per-agent statistics.

See docs/storage.md.
"""

from keel.store.migrate import current_revision, head_revision, upgrade
from keel.store.records import ModelUsageRecord, RunRecord, SpanEvent, SpanRecord
from keel.store.repository import RunStore
from keel.store.results import AgentStats, RunPage, ToolStats, UsageGroup, UsageTotal
from keel.store.urls import mask_url, resolve_database_url
from keel.store.writer import RecordWriter, WriterStats

__all__ = [
    "AgentStats",
    "ModelUsageRecord",
    "RecordWriter",
    "RunPage",
    "RunRecord",
    "RunStore",
    "SpanEvent",
    "SpanRecord",
    "ToolStats",
    "UsageGroup",
    "UsageTotal",
    "WriterStats",
    "current_revision",
    "head_revision",
    "mask_url",
    "resolve_database_url",
    "upgrade",
]
