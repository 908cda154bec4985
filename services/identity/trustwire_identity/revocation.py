"""Revocation of enforcers, and the feed of trust state that every verifier follows.

``Revocations.revoke`` marks the enforcer's enrollment revoked and records every certificate it
may still hold (the newest and the one it was renewed from) under ``revocations/<serial>``, in
one transaction that also rewrites the ``revocationlist`` marker: the list's sequence number is
the marker's ``mod_revision``, the same on every replica and after every restart (it is etcd's).

``TrustFeed`` is the one thing ``WatchTrustBundle`` streams from: a single store watch per
process (not one per client) keeps the latest revocation list, the server tells it when the CA
set changed, and every subscriber gets the complete current state first and again after each
change. A subscriber that falls behind skips intermediate states (it only ever needs the
newest: messages are complete states, never deltas), so a slow client costs no memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from trustwire.errors import FailedPrecondition, NotFound, TrustwireError, Unavailable
from trustwire.store import Compare, Delete, KeyValueStore, Put

from .clock import Clock
from .records import (
    ENFORCERS,
    REVOCATION_LIST_MARKER,
    REVOCATION_WATCH_PREFIX,
    REVOCATIONS,
    EnrollmentKind,
    EnrollmentRecord,
    RevocationRecord,
    decode,
    encode,
)

__all__ = [
    "REVOCATION_RETENTION",
    "RevocationSnapshot",
    "Revocations",
    "TrustFeed",
    "TrustState",
]

_log = logging.getLogger("trustwire.identity.revocation")
_REVOKE_ATTEMPTS = 3
# An entry is kept this long after its certificate expired (clock skew between verifiers, and
# the audit trail), then deleted: an expired certificate is refused without it.
REVOCATION_RETENTION = timedelta(days=1)
_SHA256 = hashes.SHA256()


@dataclass(frozen=True, slots=True)
class RevocationSnapshot:
    """Every revocation in the store at ``revision``; ``sequence`` is the list's version."""

    entries: tuple[RevocationRecord, ...]
    sequence: int
    revision: int

    def unexpired(self, now: datetime) -> tuple[RevocationRecord, ...]:
        """The entries whose certificates could still be presented, ordered by serial."""
        return tuple(
            sorted(
                (entry for entry in self.entries if entry.certificate_not_after > now),
                key=lambda entry: entry.serial,
            )
        )


class Revocations:
    def __init__(self, store: KeyValueStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def revoke(
        self, enforcer_id: str, *, reason: str, revoked_by: str
    ) -> tuple[RevocationRecord, int]:
        """Revoke enforcer ``enforcer_id``; returns its revocation entry and the list sequence
        number that includes it. Idempotent: revoking again returns the existing entry.
        ``NotFound`` (``ENFORCER_NOT_FOUND``) when it was never enrolled."""
        key = ENFORCERS + enforcer_id
        for _ in range(_REVOKE_ATTEMPTS):
            entry = await self._store.get(key)
            if entry is None:
                raise NotFound(
                    f"enforcer {enforcer_id!r} is not enrolled",
                    reason="ENFORCER_NOT_FOUND",
                    metadata={"enforcer_id": enforcer_id},
                )
            record = decode(EnrollmentRecord, entry.value)
            if record.revoked:
                existing = await self._store.get(REVOCATIONS + format(record.serial, "x"))
                snapshot = await self.snapshot()
                if existing is not None:
                    return decode(RevocationRecord, existing.value), snapshot.sequence
            now = self._clock()
            revoked = replace(record, revoked_at=record.revoked_at or now)
            entries = [
                RevocationRecord(
                    serial=serial,
                    spiffe_id=record.spiffe_id,
                    enforcer_id=enforcer_id if record.kind is EnrollmentKind.ENFORCER else "",
                    revoked_at=now,
                    # The older certificate expired no later than the newer one.
                    certificate_not_after=record.not_after,
                    reason=reason,
                    revoked_by=revoked_by,
                )
                for serial in (record.serial, record.previous_serial)
                if serial is not None
            ]
            ops = [Put(key, encode(revoked))]
            ops.extend(Put(REVOCATIONS + format(e.serial, "x"), encode(e)) for e in entries)
            ops.append(Put(REVOCATION_LIST_MARKER, now.isoformat().encode()))
            result = await self._store.txn([Compare(key, entry.mod_revision)], ops)
            if result.succeeded:
                _log.info(
                    "enforcer revoked",
                    extra={"enforcer_id": enforcer_id, "by": revoked_by, "reason": reason},
                )
                return entries[0], result.revision
        raise TrustwireError(f"enforcer {enforcer_id} kept changing", reason="CONCURRENT_UPDATE")

    async def snapshot(self) -> RevocationSnapshot:
        """The revocation list as one consistent read (entries and marker at one revision)."""
        page = await self._store.list(REVOCATION_WATCH_PREFIX)
        entries: list[RevocationRecord] = []
        sequence = 0
        for entry in page.entries:
            if entry.key == REVOCATION_LIST_MARKER:
                sequence = entry.mod_revision
            elif entry.key.startswith(REVOCATIONS):
                entries.append(decode(RevocationRecord, entry.value))
        return RevocationSnapshot(tuple(entries), sequence, page.revision)

    async def collect_garbage(self, *, retention: timedelta = REVOCATION_RETENTION) -> int:
        """Delete entries whose certificate expired more than ``retention`` ago. The list's
        sequence number (the marker) does not change: what verifiers enforce
        (:meth:`RevocationSnapshot.unexpired`) is the same before and after. The enforcer's
        enrollment record keeps ``revoked``, so it still cannot renew. Returns the count."""
        cutoff = self._clock() - retention
        snapshot = await self._store.list(REVOCATIONS)
        deleted = 0
        for entry in snapshot.entries:
            if decode(RevocationRecord, entry.value).certificate_not_after >= cutoff:
                continue
            result = await self._store.txn(
                [Compare(entry.key, entry.mod_revision)], [Delete(entry.key)]
            )
            deleted += int(result.succeeded)
        return deleted

    async def is_revoked(self, serial: int) -> bool:
        return await self._store.get(REVOCATIONS + format(serial, "x")) is not None


@dataclass(frozen=True, slots=True)
class TrustState:
    """What WatchTrustBundle sends: the CA anchors with the bundle's sequence number, and the
    unexpired revocations with the list's sequence number."""

    anchors: tuple[x509.Certificate, ...]
    bundle_sequence: int
    revocations: tuple[RevocationRecord, ...]
    revocation_sequence: int
    updated_at: datetime


Sleep = Callable[[float], Awaitable[None]]


class TrustFeed:
    """The latest ``TrustState`` of this process, kept current by one store watch.

    ``anchors`` returns the current CA anchors and bundle sequence number; call
    :meth:`authority_changed` after a CA rollover. Run :meth:`run` as a task for the life of
    the server; it reconnects to the store with bounded exponential backoff.
    """

    def __init__(
        self,
        revocations: Revocations,
        store: KeyValueStore,
        anchors: Callable[[datetime], tuple[tuple[x509.Certificate, ...], int]],
        clock: Clock,
        *,
        sleep: Sleep = asyncio.sleep,
        max_backoff: float = 10.0,
    ) -> None:
        self._revocations = revocations
        self._store = store
        self._anchors = anchors
        self._clock = clock
        self._sleep = sleep
        self._max_backoff = max_backoff
        self._snapshot: RevocationSnapshot | None = None
        self._state: TrustState | None = None
        self._changed = asyncio.Event()
        self._ready = asyncio.Event()

    async def run(self) -> None:
        backoff = 0.1
        while True:
            try:
                snapshot = await self._revocations.snapshot()
                self._publish(snapshot)
                backoff = 0.1
                events = self._store.watch(
                    REVOCATION_WATCH_PREFIX, start_revision=snapshot.revision + 1
                )
                async with contextlib.aclosing(events):
                    async for _batch in events:
                        # Re-read rather than apply the events: the list is small, and a read
                        # is always a consistent state (entries and marker of one revision).
                        self._publish(await self._revocations.snapshot())
            except FailedPrecondition as error:
                _log.warning("revocation watch resyncs", extra={"reason": error.reason})
            except Unavailable as error:
                _log.warning(
                    "revocation watch lost the store; retrying",
                    extra={"reason": error.reason, "backoff_s": backoff},
                )
                await self._sleep(backoff * (0.5 + random.random() / 2))  # noqa: S311
                backoff = min(backoff * 2, self._max_backoff)

    def authority_changed(self) -> None:
        if self._snapshot is not None:
            self._publish(self._snapshot)

    def _publish(self, snapshot: RevocationSnapshot) -> None:
        now = self._clock()
        anchors, bundle_sequence = self._anchors(now)
        state = TrustState(
            anchors, bundle_sequence, snapshot.unexpired(now), snapshot.sequence, now
        )
        self._snapshot = snapshot
        if self._state is not None and _version(self._state) == _version(state):
            return
        self._state = state
        self._changed.set()
        self._changed = asyncio.Event()
        self._ready.set()

    async def current(self) -> TrustState:
        await self._ready.wait()
        assert self._state is not None
        return self._state

    async def subscribe(self) -> AsyncIterator[TrustState]:
        """The current state, then every newer one (intermediate states may be skipped)."""
        await self._ready.wait()
        sent: TrustState | None = None
        while True:
            changed = self._changed
            state = self._state
            assert state is not None
            if state is not sent:
                sent = state
                yield state
                continue
            await changed.wait()


def _version(state: TrustState) -> tuple[int, int, tuple[bytes, ...]]:
    return (
        state.bundle_sequence,
        state.revocation_sequence,
        tuple(anchor.fingerprint(_SHA256) for anchor in state.anchors),
    )
