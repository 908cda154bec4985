"""The flow record store: SQLite, bounded, with retention. Never etcd (flows are high-volume
telemetry; etcd holds only what enforcers need to decide).

Contract:

- **Idempotent ingestion**: a batch is keyed by ``(reporter, batch_id)``; storing a batch whose
  key is already known changes nothing and reports ``duplicate``. Keys are remembered for
  ``dedupe_horizon`` (an enforcer retries within seconds or minutes, not days).
- **Bounded**: at most ``max_rows`` records; storing more evicts the oldest stored first.
  Records whose window ended more than ``retention`` ago are deleted on every ingest and by
  :meth:`FlowStore.prune`.
- **Queries**: newest ``window_end`` first (ties: newest stored first), keyset-paginated with
  an opaque token bound to the filter and time range it was issued for. The indexed criteria
  (time, PU, verdict, policy) narrow the scan in SQL; :meth:`FlowFilter.matches` then decides,
  so SQL and Python can never disagree. A page may hold fewer records than asked while more
  follow (the scan per call is bounded); only an empty token marks the end. Each page also
  carries, per record, the token that resumes right after it: a replica merging its peers'
  pages (``cluster_flows.py``) continues each store exactly where the records it used end.
- **Retries are stored once per store**: the batch key is per store, so a batch retried to
  another replica (an enforcer failing over after a lost answer) is stored by both. Records
  carry their reporter and a report goes to one replica, so cluster-wide queries need no
  deduplication except in that case (docs/flows.md).

SQLite runs in WAL mode on one connection, used from worker threads (``asyncio.to_thread``)
under a lock, so the event loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from trustwire.api.flow.v1 import flow_record_pb2 as record_pb
from trustwire.errors import InvalidArgument
from trustwire.flows import FlowFilter, FlowRecord, record_from_proto, record_to_proto

__all__ = ["CollectedFlows", "FlowPage", "FlowStore", "IngestResult", "StoredFlow"]

_T = TypeVar("_T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Rows examined per query call, as a multiple of the page size: bounds the work of a query
# whose Python-side criteria (selectors) reject most rows.
_SCAN_FACTOR = 10
_SQLITE_MAX_VARS = 900

_SCHEMA = """
CREATE TABLE IF NOT EXISTS flows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reporter TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    window_end INTEGER NOT NULL,
    src_pu TEXT NOT NULL,
    dst_pu TEXT NOT NULL,
    verdict TEXT NOT NULL,
    policy TEXT,
    observed_policy TEXT,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS flows_by_end ON flows (window_end, id);
CREATE INDEX IF NOT EXISTS flows_by_src ON flows (src_pu, window_end);
CREATE INDEX IF NOT EXISTS flows_by_dst ON flows (dst_pu, window_end);
CREATE INDEX IF NOT EXISTS flows_by_verdict ON flows (verdict, window_end);
CREATE INDEX IF NOT EXISTS flows_by_policy ON flows (policy, window_end);
CREATE INDEX IF NOT EXISTS flows_by_observed_policy ON flows (observed_policy, window_end);
CREATE TABLE IF NOT EXISTS batches (
    reporter TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    stored_at INTEGER NOT NULL,
    PRIMARY KEY (reporter, batch_id)
);
CREATE INDEX IF NOT EXISTS batches_by_time ON batches (stored_at);
"""


def _micros(when: datetime) -> int:
    return (when - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class StoredFlow:
    """A stored record and its store-assigned id (increasing in storage order)."""

    id: int
    record: FlowRecord


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    duplicate: bool
    stored: tuple[StoredFlow, ...] = ()


@dataclass(frozen=True, slots=True)
class FlowPage:
    flows: tuple[StoredFlow, ...]
    next_token: str
    # Parallel to ``flows``: the page token that continues right after each one.
    resume_tokens: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CollectedFlows:
    """Records for Suggest, and the replicas whose records are missing from them (sorted;
    empty for one replica's store)."""

    records: list[FlowRecord]
    unreachable: tuple[str, ...] = ()


class FlowStore:
    """Use ``store = FlowStore(path, ...)``; ``await store.close()`` when done.

    ``path`` None keeps the database in memory. ``clock`` (timezone-aware) is injectable for
    retention tests.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        retention: timedelta = timedelta(hours=24),
        max_rows: int = 1_000_000,
        dedupe_horizon: timedelta = timedelta(hours=1),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if max_rows < 1:
            raise InvalidArgument("flows.max_rows: must be at least 1", field="flows.max_rows")
        if retention <= timedelta(0):
            raise InvalidArgument("flows.retention: must be positive", field="flows.retention")
        self.retention = retention
        self.max_rows = max_rows
        self.dedupe_horizon = dedupe_horizon
        self._clock = clock
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(path) if path is not None else ":memory:",
            check_same_thread=False,
            isolation_level=None,  # explicit BEGIN/COMMIT below
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._rows: int = self._db.execute("SELECT COUNT(*) FROM flows").fetchone()[0]

    async def close(self) -> None:
        await self._run(self._db.close)

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        def locked() -> _T:
            with self._lock:
                return fn(*args)

        return await asyncio.to_thread(locked)

    # ------------------------------------------------------------------------ writing

    async def ingest(
        self, reporter: str, batch_id: str, records: Sequence[FlowRecord]
    ) -> IngestResult:
        """Store one batch of ``reporter`` atomically, once per ``batch_id``."""
        return await self._run(self._ingest, reporter, batch_id, list(records))

    def _ingest(self, reporter: str, batch_id: str, records: list[FlowRecord]) -> IngestResult:
        now = _micros(self._clock())
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            self._prune_locked(now)
            inserted = db.execute(
                "INSERT OR IGNORE INTO batches (reporter, batch_id, stored_at) VALUES (?, ?, ?)",
                (reporter, batch_id, now),
            ).rowcount
            if inserted == 0:
                db.execute("COMMIT")
                return IngestResult(accepted=0, duplicate=True)
            stored: list[StoredFlow] = []
            for record in records:
                d = record.decision
                cursor = db.execute(
                    "INSERT INTO flows (reporter, window_start, window_end, src_pu, dst_pu,"
                    " verdict, policy, observed_policy, record)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.reporter,
                        _micros(record.window_start),
                        _micros(record.window_end),
                        record.source.pu_id,
                        record.destination.pu_id,
                        d.verdict.value,
                        d.policy,
                        d.observed_policy,
                        record_to_proto(record).SerializeToString(deterministic=True),
                    ),
                )
                assert cursor.lastrowid is not None
                stored.append(StoredFlow(cursor.lastrowid, record))
            self._rows += len(records)
            excess = self._rows - self.max_rows
            if excess > 0:
                # Oldest stored first: ids increase with storage order.
                db.execute(
                    "DELETE FROM flows WHERE id IN (SELECT id FROM flows ORDER BY id LIMIT ?)",
                    (excess,),
                )
                self._rows -= excess
                oldest = db.execute("SELECT MIN(id) FROM flows").fetchone()[0]
                stored = [s for s in stored if oldest is not None and s.id >= oldest]
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._rows = db.execute("SELECT COUNT(*) FROM flows").fetchone()[0]
            raise
        return IngestResult(accepted=len(records), duplicate=False, stored=tuple(stored))

    async def prune(self) -> int:
        """Delete records past retention and forget old batch ids; returns records deleted."""

        def work() -> int:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                deleted = self._prune_locked(_micros(self._clock()))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return deleted

        return await self._run(work)

    def _prune_locked(self, now: int) -> int:
        cutoff = now - self.retention // timedelta(microseconds=1)
        deleted = self._db.execute("DELETE FROM flows WHERE window_end < ?", (cutoff,)).rowcount
        self._rows -= deleted
        horizon = now - self.dedupe_horizon // timedelta(microseconds=1)
        self._db.execute("DELETE FROM batches WHERE stored_at < ?", (horizon,))
        return int(deleted)

    async def count(self) -> int:
        return self._rows

    # ------------------------------------------------------------------------ reading

    async def query(
        self,
        flow_filter: FlowFilter,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        page_size: int = 100,
        page_token: str = "",
    ) -> FlowPage:
        """Records with ``window_end > start`` and ``window_start < end`` matching the filter.

        ``end`` defaults to now and ``start`` to one hour before ``end``; a page token carries
        the range of the first page, so later pages do not drift with the clock.
        """
        explicit = (_micros(start) if start else 0, _micros(end) if end else 0)
        binding = f"{flow_filter.digest()}:{explicit[0]}:{explicit[1]}"
        if page_token:
            cursor = _Cursor.decode(page_token, binding)
        else:
            end_at = end or self._clock()
            start_at = start or end_at - timedelta(hours=1)
            cursor = _Cursor(binding, _micros(start_at), _micros(end_at), None, None)
        return await self._run(self._query, flow_filter, cursor, max(1, page_size))

    def _query(self, flow_filter: FlowFilter, cursor: _Cursor, page_size: int) -> FlowPage:
        where, params = _prefilter(flow_filter)
        where += ["window_end > ?", "window_start < ?"]
        params += [cursor.start, cursor.end]
        if cursor.last_end is not None and cursor.last_id is not None:
            where.append("(window_end < ? OR (window_end = ? AND id < ?))")
            params += [cursor.last_end, cursor.last_end, cursor.last_id]
        budget = page_size * _SCAN_FACTOR
        rows = self._db.execute(
            f"SELECT id, window_end, record FROM flows WHERE {' AND '.join(where)}"  # noqa: S608
            " ORDER BY window_end DESC, id DESC LIMIT ?",
            (*params, budget + 1),
        ).fetchall()
        out: list[StoredFlow] = []
        resume: list[str] = []
        examined = 0
        for row_id, row_end, blob in rows[:budget]:
            examined += 1
            record = _decode(blob)
            if flow_filter.matches(record):
                out.append(StoredFlow(row_id, record))
                resume.append(cursor.after(row_end, row_id).encode())
                if len(out) == page_size:
                    break
        token = ""
        if examined < len(rows):  # rows remain beyond the last one examined
            last_id, last_end, _ = rows[examined - 1]
            token = cursor.after(last_end, last_id).encode()
        return FlowPage(tuple(out), token, tuple(resume))

    async def latest(self, flow_filter: FlowFilter, limit: int) -> list[StoredFlow]:
        """Up to ``limit`` most recent matching records of the last hour, newest first."""
        page = await self.query(flow_filter, page_size=limit)
        return list(page.flows)

    async def collect(
        self, flow_filter: FlowFilter, *, start: datetime, end: datetime, limit: int
    ) -> CollectedFlows:
        """Every matching record of the range, newest first, at most ``limit`` (for Suggest)."""
        out: list[FlowRecord] = []
        token = ""
        while len(out) < limit:
            page = await self.query(
                flow_filter, start=start, end=end, page_size=1000, page_token=token
            )
            out.extend(s.record for s in page.flows)
            token = page.next_token
            if not token:
                break
        return CollectedFlows(out[:limit])


def _decode(blob: bytes) -> FlowRecord:
    message = record_pb.FlowRecord()
    message.ParseFromString(blob)
    return record_from_proto(message)


def _prefilter(f: FlowFilter) -> tuple[list[str], list[Any]]:
    """SQL for the indexed criteria of ``f``; :meth:`FlowFilter.matches` still decides."""
    where: list[str] = []
    params: list[Any] = []
    if f.pu_ids and len(f.pu_ids) * 2 < _SQLITE_MAX_VARS:
        marks = ", ".join("?" * len(f.pu_ids))
        where.append(f"(src_pu IN ({marks}) OR dst_pu IN ({marks}))")
        params += [*sorted(f.pu_ids), *sorted(f.pu_ids)]
    if f.verdicts:
        marks = ", ".join("?" * len(f.verdicts))
        where.append(f"verdict IN ({marks})")
        params += sorted(v.value for v in f.verdicts)
    if f.policy and "/" in f.policy:
        where.append("(policy = ? OR observed_policy = ?)")
        params += [f.policy, f.policy]
    elif f.policy:
        # A bare name matches a cluster-wide policy of that name or that name in any namespace.
        # LIKE wildcards in the name are escaped: the prefilter must never exclude a match.
        where.append(
            "(policy = ? OR policy LIKE ? ESCAPE '!'"
            " OR observed_policy = ? OR observed_policy LIKE ? ESCAPE '!')"
        )
        pattern = "%/" + f.policy.replace("!", "!!").replace("%", "!%").replace("_", "!_")
        params += [f.policy, pattern, f.policy, pattern]
    if f.reporter:
        where.append("reporter = ?")
        params.append(f.reporter)
    return where, params


@dataclass(frozen=True, slots=True)
class _Cursor:
    """Page token content: the binding (filter digest and explicit range), the resolved
    range, and the last row examined (keyset pagination)."""

    binding: str
    start: int
    end: int
    last_end: int | None
    last_id: int | None

    def after(self, window_end: int, row_id: int) -> _Cursor:
        """The same listing, continuing after the row ``(window_end, row_id)``."""
        return _Cursor(self.binding, self.start, self.end, window_end, row_id)

    def encode(self) -> str:
        raw = json.dumps(
            [1, self.binding, self.start, self.end, self.last_end, self.last_id],
            separators=(",", ":"),
        )
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @staticmethod
    def decode(token: str, binding: str) -> _Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            version, bound, start, end, last_end, last_id = json.loads(raw)
            if version != 1 or not all(isinstance(v, int) for v in (start, end, last_end, last_id)):
                raise ValueError("bad token")
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
            raise InvalidArgument(
                "page.page_token: not a token of this query", field="page.page_token"
            ) from None
        if bound != binding:
            raise InvalidArgument(
                "page.page_token: issued for another filter or time range; restart from the "
                "first page",
                field="page.page_token",
            )
        return _Cursor(binding, start, end, last_end, last_id)
