"""The key-value store contract every backend implements (etcd in production, memory in unit
tests). One conformance suite (``tests/contract/test_store_contract.py``) runs against every
backend, SPIRE-style, so the fake cannot drift from the real thing.

The model is etcd's: one global, monotonically increasing *revision*; every key remembers the
revision that created it and last modified it; writes are transactions guarded by comparisons
on those revisions; watches resume from a revision and fail distinctly once it was compacted.
Domain code depends on this module only, never on a backend.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "ABSENT",
    "Compare",
    "Delete",
    "Entry",
    "Event",
    "EventType",
    "KeyValueStore",
    "Page",
    "Put",
    "TxnResult",
]


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int  # writes since creation (1 for a new key)


class EventType(enum.Enum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    key: str
    value: bytes  # empty for DELETE
    mod_revision: int  # the revision of this change
    # The value before this change, when known. Both backends ask for it, but after
    # ``compact(r)`` the events at revision r itself lose it (etcd looks it up at r - 1).
    prev_value: bytes | None = None


@dataclass(frozen=True, slots=True)
class Page:
    entries: tuple[Entry, ...]
    revision: int  # the store revision the page was read at
    more: bool  # True when entries after the last one exist (continue with start_after)


# Sentinel for Compare: "the key must not exist".
ABSENT = 0


@dataclass(frozen=True, slots=True)
class Compare:
    """Guard of a transaction: ``key``'s mod_revision equals ``mod_revision``; ``ABSENT`` (0)
    means the key must not exist."""

    key: str
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: bytes


@dataclass(frozen=True, slots=True)
class Delete:
    key: str


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int  # the store revision after the transaction (unchanged when it failed)
    # When a guard failed: the keys whose comparison failed (for a clear Conflict message).
    failed: tuple[str, ...] = ()


@runtime_checkable
class KeyValueStore(Protocol):
    """Async, revisioned key-value store. Keys are ``/``-separated strings, values bytes.

    Errors: ``trustwire.errors.Unavailable`` when the backend cannot be reached (callers retry
    with backoff); ``trustwire.errors.FailedPrecondition`` with reason ``REVISION_COMPACTED``
    from ``watch`` and ``list(revision=...)`` when the requested revision was compacted away;
    ``trustwire.errors.Conflict`` is never raised here: ``txn`` reports failed guards in its
    result and callers decide.
    """

    async def get(self, key: str) -> Entry | None: ...

    async def list(
        self, prefix: str, *, start_after: str = "", limit: int = 0, revision: int = 0
    ) -> Page:
        """Entries under ``prefix`` in key order, after ``start_after``, at most ``limit``
        (0: all), read at ``revision`` (0: current)."""
        ...

    async def txn(self, compares: Sequence[Compare], ops: Sequence[Put | Delete]) -> TxnResult:
        """All ``ops`` atomically in one new revision iff every compare holds."""
        ...

    async def revision(self) -> int:
        """The current store revision."""
        ...

    def watch(self, prefix: str, *, start_revision: int) -> AsyncGenerator[Sequence[Event], None]:
        """Batches of events under ``prefix`` with ``mod_revision >= start_revision``, in
        revision order; one batch holds all events of one revision (one transaction). Runs
        until the consumer stops iterating (``aclose``). ``start_revision`` must be >= 1; for
        new events only, pass ``await revision() + 1``."""
        ...

    async def compact(self, revision: int) -> None:
        """Forget history before ``revision`` (watches from earlier revisions then fail).
        Idempotent: compacting at or below an earlier compaction does nothing."""
        ...

    async def close(self) -> None: ...
