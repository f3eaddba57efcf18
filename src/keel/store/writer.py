"""The background writer: runs and spans go to the database off the request path, in batches.

Callers `submit()` records from any thread or event loop; submit only appends to a bounded
in-memory buffer and never blocks or raises, so a slow or dead database can never slow a run.
A daemon thread writes the buffer in batches (one transaction and one executemany per table).

Failure handling, and why:
- A batch is removed from the buffer only after its transaction commits. If the database is
  unreachable (server down, connection killed, SQLite file locked past the busy timeout), the
  batch stays and is retried with capped exponential backoff (0.1 s doubling to 5 s) until it
  commits; the writer never stops on a database error. Inserts ignore duplicates, so retrying a
  batch that did commit before the connection died is harmless.
- While the database is away, new records accumulate; once the buffer holds `capacity` records,
  `submit` refuses more and counts them in `dropped`. Nothing else is ever lost silently.
- A record that no database will take (an over-long id, a value the driver rejects) must not
  block the records behind it. When a batch fails with an error that is not a connectivity
  error, the writer checks that the database answers; if it does, it writes the batch record by
  record and counts the refused ones in `rejected`.
Error messages kept in `stats().last_error` and logged are the driver's first line, with any
password masked; never SQL parameters, which may hold user data.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, InternalError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from keel.errors import UsageError
from keel.store.batch import insert_rows
from keel.store.codec import RowSet
from keel.store.engine import sync_engine
from keel.store.records import RunRecord, SpanRecord
from keel.store.tables import runs, spans
from keel.store.urls import describe_error, mask_url, parse_url

log = logging.getLogger("keel.store")

Record = RunRecord | SpanRecord

BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 5.0


@dataclass(frozen=True)
class WriterStats:
    """Counters of a RecordWriter since it was created.

    `submitted`: records accepted into the buffer. `written_runs` / `written_spans`: records in
    committed batches (a duplicate of a stored record counts, as it is stored). `pending`: in
    the buffer now. `dropped`: records lost: refused by a full buffer (or after close), or still
    pending when `close` gave up. `rejected`: records the database refused as invalid.
    `write_failures`: batch attempts that failed because the database was unavailable.
    """

    submitted: int
    written_runs: int
    written_spans: int
    pending: int
    dropped: int
    rejected: int
    write_failures: int
    last_error: str | None
    database_available: bool


@dataclass
class _Outcome:
    done: int  # leading records of the batch that are finished: written or rejected
    runs: int = 0
    spans: int = 0
    rejected: list[BaseException] = field(default_factory=list)  # why each refused record was refused
    error: BaseException | None = None  # set when the database was unavailable


def _is_connectivity_error(exc: BaseException) -> bool:
    """Errors that mean "try again later", whatever the data: connection, lock, server state."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(
        exc, OperationalError | InterfaceError | InternalError | PoolTimeout | DisconnectionError
    )


class RecordWriter:
    """Writes RunRecords and SpanRecords to the database at `url` from a background thread.

    `capacity` bounds the buffer (records waiting, including the batch being written);
    `flush_interval` is the longest a record waits before a write is attempted; `batch_size`
    caps the records per transaction.
    """

    def __init__(
        self, url: str, *, capacity: int = 10_000, flush_interval: float = 0.2, batch_size: int = 500
    ) -> None:
        parse_url(url)
        if capacity < 1 or batch_size < 1 or not flush_interval > 0:
            raise UsageError(
                f"RecordWriter needs capacity >= 1, batch_size >= 1 and flush_interval > 0; "
                f"got {capacity}, {batch_size}, {flush_interval}"
            )
        self._url = url
        self._capacity = capacity
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._lock = threading.Lock()
        self._progress = threading.Condition(self._lock)  # notified when records are finished
        self._buffer: deque[Record] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._engine: Engine | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._accepted = 0
        self._finished = 0  # accepted records written, rejected or abandoned
        self._written_runs = 0
        self._written_spans = 0
        self._dropped = 0
        self._rejected = 0
        self._write_failures = 0
        self._last_error: str | None = None
        self._available = True
        self._failure_streak = 0  # consecutive failed batch attempts (writer thread only)
        self._abandoned = 0  # accepted records given up on when the writer stopped

    # -- public API -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread. Records submitted before start are kept and written then."""
        with self._lock:
            if self._closed:
                raise UsageError("this RecordWriter is closed; create a new one")
            if self._thread is not None:
                return
            self._engine = sync_engine(self._url)
            self._thread = threading.Thread(target=self._run, name="keel-record-writer", daemon=True)
            self._thread.start()

    def submit(self, record: Record) -> bool:
        """Queue a record for writing. Never blocks, never raises; False if the buffer is full."""
        try:
            with self._lock:
                if self._closed or len(self._buffer) >= self._capacity:
                    self._dropped += 1
                    return False
                self._buffer.append(record)
                self._accepted += 1
                full = len(self._buffer) >= self._batch_size
            if full and not self._wake.is_set():
                self._wake.set()
            return True
        except Exception:  # pragma: no cover - a lock or deque failing; still never raise
            return False

    def flush(self, timeout: float) -> bool:
        """Wait until every record submitted so far is written (or rejected); False on timeout."""
        with self._lock:
            target = self._accepted
            if self._finished >= target:
                return True
        self._wake.set()
        with self._progress:
            return self._progress.wait_for(lambda: self._finished >= target, timeout=max(timeout, 0.0))

    def close(self, timeout: float) -> bool:
        """Flush for up to `timeout` seconds, then stop. Records still pending are counted as dropped.

        Returns True if everything submitted was written. Later submits are refused (and counted).
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        flushed = self.flush(timeout) if self._thread is not None else self.stats().pending == 0
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        self._stop.set()
        self._wake.set()
        if thread is not None:
            # The thread leaves a backoff wait at once; a database call in progress may take longer.
            thread.join(timeout=max(deadline - time.monotonic(), 0.5))
            if thread.is_alive():
                log.warning("keel store: the writer thread is still in a database call; leaving it behind")
                return False
        else:
            self._abandon_pending()
        if self._engine is not None:
            self._engine.dispose()
        with self._lock:
            return flushed and self._abandoned == 0

    def stats(self) -> WriterStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return WriterStats(
                submitted=self._accepted,
                written_runs=self._written_runs,
                written_spans=self._written_spans,
                pending=len(self._buffer),
                dropped=self._dropped,
                rejected=self._rejected,
                write_failures=self._write_failures,
                last_error=self._last_error,
                database_available=self._available,
            )

    # -- the writer thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                if self._stop.is_set():
                    if not self._buffer:
                        break
                else:
                    self._wake.wait(self._flush_interval)
                    self._wake.clear()
                try:
                    if self._drain():
                        continue
                except Exception:  # a bug, not a database error (those are handled in _write)
                    log.exception("keel store: unexpected error in the writer; retrying")
                    self._failure_streak += 1
                # The delay grows with consecutive failed batches; any committed batch resets it.
                # Jitter keeps several processes from retrying a recovering server in lockstep.
                delay = min(BACKOFF_INITIAL * 2 ** (self._failure_streak - 1), BACKOFF_MAX)
                if self._stop.wait(delay * random.uniform(0.8, 1.0)):
                    break
        finally:
            self._abandon_pending()

    def _drain(self) -> bool:
        """Write batches until the buffer is short of a full batch; False if the database failed."""
        while True:
            with self._lock:
                batch = list(itertools.islice(self._buffer, self._batch_size))
            if not batch:
                return True
            outcome = self._write(batch)
            self._finish(outcome)
            if outcome.error is not None:
                return False
            if len(batch) < self._batch_size and not self._stop.is_set():
                return True

    def _write(self, batch: list[Record]) -> _Outcome:
        rows = RowSet()
        refused: list[BaseException] = []
        for record in batch:
            try:
                rows.add(record)
            except Exception as exc:
                refused.append(exc)
        try:
            self._commit(rows)
        except Exception as exc:
            if _is_connectivity_error(exc) or not self._database_answers():
                return _Outcome(done=0, error=exc)
            return self._write_one_by_one(batch)
        return _Outcome(done=len(batch), runs=len(rows.runs), spans=len(rows.spans), rejected=refused)

    def _write_one_by_one(self, batch: list[Record]) -> _Outcome:
        """The slow path after a batch failed on its data: isolate the records the database refuses."""
        outcome = _Outcome(done=0)
        for record in batch:
            rows = RowSet()
            try:
                rows.add(record)
                self._commit(rows)
            except Exception as exc:
                if _is_connectivity_error(exc):
                    outcome.error = exc
                    return outcome
                outcome.rejected.append(exc)
            else:
                outcome.runs += len(rows.runs)
                outcome.spans += len(rows.spans)
            outcome.done += 1
        return outcome

    def _commit(self, rows: RowSet) -> None:
        assert self._engine is not None
        with self._engine.begin() as connection:
            insert_rows(connection, rows)

    def _database_answers(self) -> bool:
        """Whether the database is up and has Keel's tables (so a failed batch is the data's fault)."""
        assert self._engine is not None
        try:
            with self._engine.connect() as connection:
                connection.execute(select(runs.c.id).limit(0))
                connection.execute(select(spans.c.span_id).limit(0))
        except Exception:
            return False
        return True

    def _finish(self, outcome: _Outcome) -> None:
        rejections = [describe_error(exc, self._url) for exc in outcome.rejected]
        with self._lock:
            for _ in range(outcome.done):
                self._buffer.popleft()
            self._finished += outcome.done
            self._written_runs += outcome.runs
            self._written_spans += outcome.spans
            self._rejected += len(rejections)
            if rejections:
                self._last_error = rejections[-1]
            if outcome.error is not None:
                self._write_failures += 1
                self._last_error = describe_error(outcome.error, self._url)
            was_available, self._available = self._available, outcome.error is None
            self._failure_streak = self._failure_streak + 1 if outcome.error is not None else 0
            pending = len(self._buffer)
            self._progress.notify_all()
        for message in rejections:
            log.error("keel store: a record was rejected and will not be stored: %s", message)
        if outcome.error is not None and was_available:
            log.warning(
                "keel store: database %s unavailable (%s); %d records buffered, retrying",
                mask_url(self._url),
                describe_error(outcome.error, self._url),
                pending,
            )
        elif outcome.error is None and not was_available:
            log.info(
                "keel store: database %s available again; %d records buffered", mask_url(self._url), pending
            )

    def _abandon_pending(self) -> None:
        with self._lock:
            abandoned = len(self._buffer)
            self._buffer.clear()
            self._dropped += abandoned
            self._abandoned += abandoned
            self._finished += abandoned
            self._progress.notify_all()
        if abandoned:
            log.warning("keel store: %d records were not written before the writer stopped", abandoned)
