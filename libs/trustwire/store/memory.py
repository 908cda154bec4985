"""``MemoryStore``: the contract in one process, with etcd's semantics, for unit tests.

It is a small MVCC store like etcd's: every key keeps its versions (a deletion is a tombstone
version), one global revision counts successful writing transactions, and an event log keeps
each revision's events for watches. ``tests/contract`` runs the same suite against this and a
real etcd, so behaviour the suite covers cannot drift.

Bounded memory: history (old versions and the event log) is kept for the last
``history_limit`` revisions; older revisions are compacted automatically, as an etcd with
auto-compaction would. Watches do not buffer: each one is a cursor into the shared event log,
so a slow consumer costs nothing until compaction overtakes its cursor, and then it gets
``FailedPrecondition(REVISION_COMPACTED)`` and resyncs from a snapshot (as with etcd).

Not thread-safe: use it from one event loop.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, replace

from trustwire.errors import Unavailable

from . import _keyspace
from ._interface import (
    ABSENT,
    Compare,
    Delete,
    Entry,
    Event,
    EventType,
    Page,
    Put,
    TxnResult,
)

__all__ = ["MemoryStore"]

DEFAULT_HISTORY_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class _Version:
    mod_revision: int
    value: bytes | None  # None: tombstone (the key was deleted at mod_revision)
    create_revision: int
    version: int


class MemoryStore:
    """In-memory ``KeyValueStore`` with etcd's revision semantics.

    ``history_limit``: how many revisions stay readable (``list(revision=...)``) and watchable;
    older ones are compacted automatically. ``active_watches`` counts open watch iterators (for
    tests that check a closed watch is released).
    """

    def __init__(self, *, history_limit: int = DEFAULT_HISTORY_LIMIT) -> None:
        if history_limit < 1:
            raise ValueError("history_limit must be >= 1")
        self._history_limit = history_limit
        self._revision = 1  # a fresh etcd is at revision 1
        self._compact_revision = 0  # reads and watches below this fail; 0: nothing compacted
        self._versions: dict[str, list[_Version]] = {}  # per key, ascending mod_revision
        self._keys: list[str] = []  # sorted keys of _versions
        self._log_revisions: list[int] = []  # ascending; parallel to _log_events
        self._log_events: list[tuple[Event, ...]] = []
        self._changed = asyncio.Event()  # set (and replaced) on every write and on close
        self._closed = False
        self.active_watches = 0

    # -- reads ---------------------------------------------------------------------------

    async def get(self, key: str) -> Entry | None:
        _keyspace.encode_key(key)
        self._check_open()
        return self._entry_at(key, self._revision)

    async def list(
        self, prefix: str, *, start_after: str = "", limit: int = 0, revision: int = 0
    ) -> Page:
        _keyspace.encode_prefix(prefix)
        _keyspace.check_list(start_after, limit, revision)
        self._check_open()
        at = self._readable(revision)
        if start_after >= prefix:
            index = bisect.bisect_right(self._keys, start_after)
        else:
            index = bisect.bisect_left(self._keys, prefix)
        entries: list[Entry] = []
        more = False
        for key in self._keys[index:]:
            if not key.startswith(prefix):
                break
            entry = self._entry_at(key, at)
            if entry is None:
                continue
            if limit and len(entries) == limit:
                more = True
                break
            entries.append(entry)
        return Page(entries=tuple(entries), revision=at, more=more)

    async def revision(self) -> int:
        self._check_open()
        return self._revision

    # -- writes --------------------------------------------------------------------------

    async def txn(self, compares: Sequence[Compare], ops: Sequence[Put | Delete]) -> TxnResult:
        _keyspace.check_txn(compares, ops)
        self._check_open()
        failed: list[str] = []
        for compare in compares:
            current = self._entry_at(compare.key, self._revision)
            holds = (
                current is None
                if compare.mod_revision == ABSENT
                else current is not None and current.mod_revision == compare.mod_revision
            )
            if not holds and compare.key not in failed:
                failed.append(compare.key)
        if failed:
            return TxnResult(succeeded=False, revision=self._revision, failed=tuple(failed))

        new_revision = self._revision + 1
        events: list[Event] = []
        for op in ops:
            current = self._entry_at(op.key, self._revision)
            if isinstance(op, Put):
                self._append(
                    op.key,
                    _Version(
                        mod_revision=new_revision,
                        value=op.value,
                        create_revision=current.create_revision if current else new_revision,
                        version=current.version + 1 if current else 1,
                    ),
                )
                prev = current.value if current else None
                events.append(Event(EventType.PUT, op.key, op.value, new_revision, prev))
            elif current is not None:  # deleting a missing key changes nothing (as in etcd)
                self._append(op.key, _Version(new_revision, None, 0, 0))
                events.append(Event(EventType.DELETE, op.key, b"", new_revision, current.value))
        if events:  # etcd creates a revision only when something changed
            self._revision = new_revision
            self._log_revisions.append(new_revision)
            self._log_events.append(tuple(events))
            self._auto_compact()
            self._notify()
        return TxnResult(succeeded=True, revision=self._revision)

    async def compact(self, revision: int) -> None:
        """Forget history before ``revision``: reads and watches at ``revision`` still work,
        earlier ones fail. Compacting at or below an earlier compaction is a no-op (etcd
        refuses it; both backends agree on the no-op); a future revision is InvalidArgument."""
        _keyspace.check_compact(revision)
        self._check_open()
        if revision > self._revision:
            raise _keyspace.future_revision(revision, self._revision)
        if revision <= self._compact_revision:
            return
        self._compact(revision)

    # -- watch ---------------------------------------------------------------------------

    def watch(self, prefix: str, *, start_revision: int) -> AsyncGenerator[Sequence[Event], None]:
        return self._watch(prefix, start_revision)

    async def _watch(
        self, prefix: str, start_revision: int
    ) -> AsyncGenerator[Sequence[Event], None]:
        _keyspace.encode_prefix(prefix)
        _keyspace.check_watch(start_revision)
        self._check_open()
        self.active_watches += 1
        try:
            cursor = start_revision  # the next revision this watch may deliver
            while not self._closed:
                if cursor < self._compact_revision:
                    raise _keyspace.compacted(cursor, self._compact_revision)
                changed = self._changed  # taken before the scan: no wake-up is missed
                batch: tuple[Event, ...] = ()
                index = bisect.bisect_left(self._log_revisions, cursor)
                while not batch and index < len(self._log_revisions):
                    cursor = self._log_revisions[index] + 1
                    batch = tuple(e for e in self._log_events[index] if e.key.startswith(prefix))
                    index += 1
                if batch:
                    # The log may change while the consumer holds the batch; the loop looks
                    # the cursor up again rather than keeping an index.
                    yield batch
                else:
                    await changed.wait()
        finally:
            self.active_watches -= 1

    async def close(self) -> None:
        """Ends every watch (their iterators stop); later calls raise Unavailable."""
        self._closed = True
        self._notify()

    # -- internals -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("the store is closed", reason=_keyspace.STORE_UNAVAILABLE)

    def _readable(self, revision: int) -> int:
        if revision == 0:
            return self._revision
        if revision > self._revision:
            raise _keyspace.future_revision(revision, self._revision)
        if revision < self._compact_revision:
            raise _keyspace.compacted(revision, self._compact_revision)
        return revision

    def _entry_at(self, key: str, revision: int) -> Entry | None:
        versions = self._versions.get(key)
        if not versions:
            return None
        index = bisect.bisect_right(versions, revision, key=lambda v: v.mod_revision) - 1
        if index < 0 or versions[index].value is None:
            return None
        v = versions[index]
        assert v.value is not None
        return Entry(key, v.value, v.create_revision, v.mod_revision, v.version)

    def _append(self, key: str, version: _Version) -> None:
        versions = self._versions.get(key)
        if versions is None:
            versions = self._versions[key] = []
            bisect.insort(self._keys, key)
        versions.append(version)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _auto_compact(self) -> None:
        # Amortized: compact in steps of a tenth of the limit, not on every write.
        keep_from = self._revision - self._history_limit + 1
        if keep_from - self._compact_revision > max(1, self._history_limit // 10):
            self._compact(keep_from)

    def _compact(self, revision: int) -> None:
        for key in list(self._versions):
            versions = self._versions[key]
            # The version current at `revision` stays (reads at `revision` need it), unless
            # it is a tombstone; everything before it goes.
            index = bisect.bisect_right(versions, revision, key=lambda v: v.mod_revision) - 1
            if index >= 0 and versions[index].value is None:
                index += 1
            if index > 0:
                del versions[:index]
            if not versions:
                del self._versions[key]
                del self._keys[bisect.bisect_left(self._keys, key)]
        cut = bisect.bisect_left(self._log_revisions, revision)
        del self._log_revisions[:cut]
        del self._log_events[:cut]
        if self._log_revisions and self._log_revisions[0] == revision:
            # etcd finds an event's previous value by reading at mod_revision - 1, which is
            # compacted for the events of the compaction revision itself.
            self._log_events[0] = tuple(replace(e, prev_value=None) for e in self._log_events[0])
        self._compact_revision = revision
        self._notify()  # watches behind the new compact revision fail now, not at next write
