"""Opaque pagination cursors for newest-first run listings.

A cursor is the sort key of the last run on a page, (started_at, id), so the next page starts
strictly after it: runs inserted meanwhile never shift the pages (no duplicates, no gaps), unlike
OFFSET. The encoding is versioned, URL-safe base64 JSON; callers must treat it as opaque.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from keel.errors import UsageError
from keel.store.types import as_utc

_VERSION = 1


@dataclass(frozen=True)
class RunCursor:
    started_at: datetime
    run_id: str


def encode_cursor(started_at: datetime, run_id: str) -> str:
    payload = json.dumps([_VERSION, as_utc(started_at).isoformat(), run_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> RunCursor:
    """The position a cursor stands for; a cursor not made by `encode_cursor` is a UsageError."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        version, started_at, run_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if version != _VERSION or not isinstance(run_id, str) or not isinstance(started_at, str):
            raise ValueError("unknown cursor layout")
        when = datetime.fromisoformat(started_at)
        if when.tzinfo is None:
            raise ValueError("cursor time without a time zone")
        return RunCursor(started_at=as_utc(when), run_id=run_id)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise UsageError(
            f"invalid cursor {cursor[:40]!r}: pass the next_cursor of a previous page unchanged"
        ) from None
