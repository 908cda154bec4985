"""Policy resources, PUs and enforcer records on the revisioned key-value store.

Depends on the store contract (``trustwire.store``) only. Contracts:

- **Atomic apply.** All manifests of one request are written in ONE transaction, guarded by a
  compare on every key's ``mod_revision`` as it was read (``ABSENT`` for new keys) and on every
  stored tier the request's policies reference. Whatever was validated is what gets replaced:
  a concurrent writer, or a ``resource_version`` that is no longer current, makes the request
  fail with ``Conflict`` (gRPC ``ABORTED``) and nothing of it is stored. Unchanged resources are
  not rewritten (their revision does not move) but stay guarded.
- **Validation before writing.** Manifests arrive validated by the loader; the cross-references
  checked here (tiers) are checked before the transaction is built.
- **The Kubernetes tier is import-only.** Kubernetes NetworkPolicies live under their own kind
  and are written only from ``networking.k8s.io/v1 NetworkPolicy`` documents; a request for a
  Trustwire kind can never address them (a delete that names one is refused with
  ``FailedPrecondition`` reason ``KUBERNETES_TIER_READ_ONLY``).
- **Reads are consistent.** ``resource_version``/``revision`` come from the entry's
  ``mod_revision``; every page of a listing is read at the revision of its first page (the page
  token carries it); an expired token (compacted revision) is ``InvalidArgument``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import difflib
import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trustwire.api.common.v1 import error_pb2 as error_pb
from trustwire.api.policy.v1 import enforcer_pb2 as enforcer_pb
from trustwire.api.policy.v1 import processing_unit_pb2 as pu_pb
from trustwire.api.policy.v1 import resource_pb2 as resource_pb
from trustwire.errors import (
    Conflict,
    DocumentError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from trustwire.policy import LabelSelector, NetworkAccessPolicy
from trustwire.policy.model import BUILTIN_TIERS
from trustwire.store import ABSENT, Compare, Delete, Entry, KeyValueStore, Put

from . import codec
from .codec import Keyspace, Kind
from .manifests import Manifest

__all__ = [
    "Change",
    "ChangeType",
    "EnforcerView",
    "Page",
    "PolicyRepository",
    "StatusUpdate",
    "WriteResult",
]

REVISION_COMPACTED = "REVISION_COMPACTED"
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
# Status writes of many enforcers share a transaction: a compare and a put each, within
# etcd's 128 operations per transaction.
_STATUS_BATCH = 64


class ChangeType:
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"


@dataclass(frozen=True)
class Change:
    """What a write did (or, dry-run, would do) to one resource."""

    kind: Kind
    namespace: str
    name: str
    change: str  # a ChangeType value
    before: Any | None  # Resource as stored before, with server fields; None when created
    after: Any | None  # Resource as stored after, with server fields; None when deleted
    diff: str
    manifest: Manifest | None = None


@dataclass(frozen=True)
class WriteResult:
    changes: tuple[Change, ...]
    revision: int  # of the write; with dry-run or nothing to write, the revision read
    written: bool


@dataclass(frozen=True)
class Page:
    items: tuple[Any, ...]
    next_token: str
    revision: int


@dataclass(frozen=True)
class EnforcerView:
    """An enforcer record with its stored convergence status (lag is the caller's business:
    it depends on the revision the state mirror is at)."""

    enforcer: Any  # policy.v1.Enforcer, status unset
    status: Any  # policy.v1.EnforcerStatus as stored (acks, connection)


@dataclass(frozen=True)
class StatusUpdate:
    """What to record about one enforcer; any number of acks, nacks and connection changes
    reduce to one update (``merged``) because each field has a "latest" or "maximum" rule:
    ``acked_revision`` only grows; the nack state follows the last ack or nack (an ack clears
    it); ``connected`` is the last value reported, by ``replica``: a disconnect is recorded
    only while the stored status still names that replica (another one may hold the
    enforcer's stream by now)."""

    acked_revision: int | None = None
    nack: tuple[int, str, str] | None = None  # (last good revision, reason, message)
    clear_nack: bool = False
    connected: bool | None = None
    replica: str = ""

    @staticmethod
    def ack(revision: int, error: tuple[str, str] | None = None) -> StatusUpdate:
        if error is None:
            return StatusUpdate(acked_revision=revision, clear_nack=True)
        return StatusUpdate(nack=(revision, error[0], error[1]))

    def merged(self, later: StatusUpdate) -> StatusUpdate:
        """This update followed by ``later``."""
        acked = [r for r in (self.acked_revision, later.acked_revision) if r is not None]
        nack_decided = later.nack is not None or later.clear_nack
        return StatusUpdate(
            acked_revision=max(acked) if acked else None,
            nack=later.nack if nack_decided else self.nack,
            clear_nack=later.clear_nack if nack_decided else self.clear_nack,
            connected=later.connected if later.connected is not None else self.connected,
            replica=later.replica if later.connected is not None else self.replica,
        )

    def apply_to(self, status: Any, now: datetime) -> None:
        status.last_seen.FromDatetime(now)
        if self.acked_revision is not None and self.acked_revision >= status.acked_revision:
            status.acked_revision = self.acked_revision
            status.acked_at.FromDatetime(now)
        if self.clear_nack:
            status.nacked_revision = 0
            status.ClearField("last_error")
        if self.nack is not None:
            status.nacked_revision = self.nack[0]
            status.last_error.CopyFrom(
                error_pb.ErrorDetail(reason=self.nack[1], message=self.nack[2])
            )
        if self.connected:
            status.connected = True
            status.connected_replica = self.replica
        elif self.connected is not None and (
            not self.replica or status.connected_replica in ("", self.replica)
        ):
            status.connected = False
            status.connected_replica = ""


Clock = Callable[[], datetime]


class PolicyRepository:
    def __init__(
        self,
        store: KeyValueStore,
        keys: Keyspace | None = None,
        *,
        clock: Clock = codec.now_utc,
    ) -> None:
        self.store = store
        self.keys = keys or Keyspace()
        self._clock = clock
        # Status key -> (mod_revision, value) as this repository last wrote or read it: the
        # guard of the next status write, so steady-state acks cost no read. A stale entry
        # (another replica wrote) fails its compare and is re-read.
        self._statuses: dict[str, tuple[int, bytes]] = {}

    # ------------------------------------------------------------------ policy resources

    async def apply(
        self, manifests: Sequence[Manifest], *, dry_run: bool = False, traceparent: str = ""
    ) -> WriteResult:
        """Write ``manifests`` in one transaction (module docstring). ``traceparent``, the W3C
        trace context of the calling span, is put at ``Keyspace.trace()`` in the same
        transaction, so the write's revision names its trace (see ``codec``)."""
        keys = [self.keys.resource(m.kind, m.namespace, m.name) for m in manifests]
        entries = await asyncio.gather(*(self.store.get(k) for k in keys))
        now = self._clock()
        compares: list[Compare] = []
        puts: list[Put] = []
        changes: list[Change] = []
        stored_values: dict[str, Any] = {}
        for m, key, entry in zip(manifests, keys, entries, strict=True):
            if m.resource_version and (
                entry is None or m.resource_version != str(entry.mod_revision)
            ):
                current = str(entry.mod_revision) if entry is not None else "none (absent)"
                raise Conflict(
                    f"{m.kind.value} {_name(m.namespace, m.name)}: resource_version "
                    f"{m.resource_version} is not current ({current}); re-read and retry",
                    metadata={"key": key, "resource_version": m.resource_version},
                )
            before = _decode_resource(entry) if entry is not None else None
            compares.append(Compare(key, entry.mod_revision if entry is not None else ABSENT))
            if before is not None and codec.content_bytes(before) == codec.content_bytes(
                m.resource
            ):
                changes.append(
                    Change(m.kind, m.namespace, m.name, ChangeType.UNCHANGED, before, before, "", m)
                )
                continue
            value = codec.stamp(
                m.resource, created_at=codec.created_at(before) if before else None, now=now
            )
            stored_values[key] = value
            puts.append(Put(key, value.SerializeToString(deterministic=True)))
            change = ChangeType.UPDATED if before is not None else ChangeType.CREATED
            changes.append(
                Change(m.kind, m.namespace, m.name, change, before, value, _diff(before, value), m)
            )
        compares.extend(await self._tier_guards(manifests))
        if dry_run or not puts:
            revision = await self.store.revision()
            return WriteResult(tuple(changes), revision, written=False)
        result = await self.store.txn(compares, [*puts, *self._trace_ops(traceparent)])
        if not result.succeeded:
            raise _conflict(result.failed)
        final = tuple(
            Change(
                c.kind,
                c.namespace,
                c.name,
                c.change,
                c.before,
                codec.with_server_fields(
                    stored_values[self.keys.resource(c.kind, c.namespace, c.name)],
                    result.revision,
                ),
                c.diff,
                c.manifest,
            )
            if c.change != ChangeType.UNCHANGED
            else c
            for c in changes
        )
        return WriteResult(final, result.revision, written=True)

    async def _tier_guards(self, manifests: Sequence[Manifest]) -> list[Compare]:
        """Every tier the policies reference must exist (built in, in the request, or stored);
        stored ones are guarded so that a concurrent delete of the tier fails this apply."""
        known = {t.name for t in BUILTIN_TIERS} | {m.name for m in manifests if m.kind is Kind.TIER}
        wanted: dict[str, Manifest] = {}
        for m in manifests:
            if isinstance(m.obj, NetworkAccessPolicy) and m.obj.tier not in known:
                wanted.setdefault(m.obj.tier, m)
        guards: list[Compare] = []
        for tier, m in sorted(wanted.items()):
            key = self.keys.resource(Kind.TIER, "", tier)
            entry = await self.store.get(key)
            if entry is None:
                stored = await self._names(Kind.TIER)
                listing = ", ".join(sorted(known | set(stored)))
                raise DocumentError(
                    f"unknown tier {tier!r} (known: {listing})",
                    source=m.source,
                    index=m.document,
                    field="spec.tier",
                    what=f"NetworkAccessPolicy {_name(m.namespace, m.name)}",
                    reason="UNKNOWN_TIER",
                )
            guards.append(Compare(key, entry.mod_revision))
        return guards

    async def _names(self, kind: Kind) -> list[str]:
        page = await self.store.list(self.keys.kind_prefix(kind))
        return [e.key.rsplit("/", 1)[-1] for e in page.entries]

    async def get(self, kind: Kind, namespace: str, name: str) -> Any:
        entry = await self.store.get(self.keys.resource(kind, namespace, name))
        if entry is None:
            raise NotFound(
                f"{kind.value} {_name(namespace, name)} not found",
                metadata={"kind": kind.value, "namespace": namespace, "name": name},
            )
        return _decode_resource(entry)

    async def delete(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        *,
        resource_version: str = "",
        dry_run: bool = False,
        traceparent: str = "",
    ) -> WriteResult:
        key = self.keys.resource(kind, namespace, name)
        entry = await self.store.get(key)
        if entry is None:
            if kind is Kind.NETWORK_ACCESS_POLICY and namespace:
                imported = self.keys.resource(Kind.KUBERNETES_NETWORK_POLICY, namespace, name)
                if await self.store.get(imported) is not None:
                    raise FailedPrecondition(
                        f"{namespace}/{name} is an imported Kubernetes NetworkPolicy: the "
                        "kubernetes tier is changed only by importing NetworkPolicy documents",
                        reason="KUBERNETES_TIER_READ_ONLY",
                        metadata={"namespace": namespace, "name": name},
                    )
            raise NotFound(
                f"{kind.value} {_name(namespace, name)} not found",
                metadata={"kind": kind.value, "namespace": namespace, "name": name},
            )
        if resource_version and resource_version != str(entry.mod_revision):
            raise Conflict(
                f"{kind.value} {_name(namespace, name)}: resource_version {resource_version} "
                f"is not current ({entry.mod_revision}); re-read and retry",
                metadata={"key": key, "resource_version": resource_version},
            )
        if kind is Kind.TIER:
            await self._check_tier_unused(name)
        before = _decode_resource(entry)
        change = Change(
            kind, namespace, name, ChangeType.DELETED, before, None, _diff(before, None)
        )
        if dry_run:
            return WriteResult((change,), await self.store.revision(), written=False)
        result = await self.store.txn(
            [Compare(key, entry.mod_revision)], [Delete(key), *self._trace_ops(traceparent)]
        )
        if not result.succeeded:
            raise _conflict(result.failed)
        return WriteResult((change,), result.revision, written=True)

    def _trace_ops(self, traceparent: str) -> list[Put]:
        # Only a well-formed W3C traceparent is stored (it is read back by every replica).
        if not traceparent or not _TRACEPARENT.match(traceparent):
            return []
        return [Put(self.keys.trace(), traceparent.encode())]

    async def _check_tier_unused(self, tier: str) -> None:
        prefix = self.keys.kind_prefix(Kind.NETWORK_ACCESS_POLICY)
        users: list[str] = []
        async for entry in self._entries(prefix):
            policy = _decode_resource(entry).network_access_policy
            if policy.spec.tier == tier:
                users.append(_name(policy.metadata.namespace, policy.metadata.name))
        if users:
            shown = ", ".join(users[:5]) + (" ..." if len(users) > 5 else "")
            raise FailedPrecondition(
                f"tier {tier} is used by {len(users)} NetworkAccessPolicies ({shown}); "
                "move or delete them first",
                reason="TIER_IN_USE",
                metadata={"tier": tier},
            )

    async def list_resources(
        self,
        kinds: Sequence[Kind],
        *,
        namespace: str = "",
        tier: str = "",
        selector: LabelSelector | None = None,
        page_size: int,
        page_token: str = "",
        filter_digest: str = "",
    ) -> Page:
        """Resources of ``kinds`` in that order, each by (namespace, name), filtered; cluster-
        scoped kinds are skipped when ``namespace`` is set, kinds other than policies when
        ``tier`` is set (``kubernetes`` selects Kubernetes NetworkPolicies)."""
        prefixes: list[str] = []
        for kind in kinds:
            if namespace and not kind.namespaced:
                continue
            if tier and kind not in (Kind.NETWORK_ACCESS_POLICY, Kind.KUBERNETES_NETWORK_POLICY):
                continue
            if tier == "kubernetes" and kind is Kind.NETWORK_ACCESS_POLICY:
                continue
            if tier and tier != "kubernetes" and kind is Kind.KUBERNETES_NETWORK_POLICY:
                continue
            prefixes.append(self.keys.kind_prefix(kind, namespace))

        def keep(resource: Any) -> bool:
            message = codec.inner(resource)
            if tier and resource.HasField("network_access_policy") and message.spec.tier != tier:
                return False
            return selector is None or selector.matches(dict(message.metadata.labels))

        return await self._scan(
            prefixes, _decode_resource, keep, page_size, page_token, filter_digest
        )

    # ------------------------------------------------------------------------------- PUs

    async def register_pu(self, pu: Any) -> Any:
        """Create or replace ``pus/<enforcer_id>/<id>`` (id assigned when empty); returns the
        stored record with its revision. ``registered_at`` survives re-registration."""
        record = pu_pb.ProcessingUnit()
        record.CopyFrom(pu)
        if not record.id:
            record.id = uuid.uuid4().hex
        key = self.keys.pu(record.enforcer_id, record.id)
        entry = await self.store.get(key)
        record.ClearField("revision")
        if entry is not None:
            previous = pu_pb.ProcessingUnit.FromString(entry.value)
            record.registered_at.CopyFrom(previous.registered_at)
        else:
            record.registered_at.FromDatetime(self._clock())
        result = await self.store.txn(
            [Compare(key, entry.mod_revision if entry is not None else ABSENT)],
            [Put(key, record.SerializeToString(deterministic=True))],
        )
        if not result.succeeded:
            raise _conflict(result.failed)
        record.revision = result.revision
        return record

    async def deregister_pu(self, enforcer_id: str, pu_id: str) -> int:
        """Delete the PU record; idempotent (absent: the current revision)."""
        key = self.keys.pu(enforcer_id, pu_id)
        entry = await self.store.get(key)
        if entry is None:
            return await self.store.revision()
        result = await self.store.txn([Compare(key, entry.mod_revision)], [Delete(key)])
        if not result.succeeded:
            raise _conflict(result.failed)
        return result.revision

    async def find_pu_enforcer(self, pu_id: str) -> str | None:
        """The enforcer a PU id is registered under (a scan: the state mirror answers first)."""
        async for entry in self._entries(self.keys.pus()):
            parsed = self.keys.parse(entry.key)
            if parsed is not None and parsed.name == pu_id:
                return parsed.enforcer_id
        return None

    async def list_pus(
        self,
        *,
        enforcer_id: str = "",
        namespace: str = "",
        selector: LabelSelector | None = None,
        page_size: int,
        page_token: str = "",
        filter_digest: str = "",
    ) -> Page:
        def keep(pu: Any) -> bool:
            if namespace and pu.namespace != namespace:
                return False
            return selector is None or selector.matches(dict(pu.labels))

        return await self._scan(
            [self.keys.pus(enforcer_id)], _decode_pu, keep, page_size, page_token, filter_digest
        )

    # ------------------------------------------------------------------------- enforcers

    async def register_enforcer(self, enforcer: Any) -> Any:
        record = enforcer_pb.Enforcer()
        record.CopyFrom(enforcer)
        record.ClearField("status")
        key = self.keys.enforcer(record.id)
        entry = await self.store.get(key)
        if entry is not None:
            previous = enforcer_pb.Enforcer.FromString(entry.value)
            record.registered_at.CopyFrom(previous.registered_at)
        else:
            record.registered_at.FromDatetime(self._clock())
        result = await self.store.txn(
            [Compare(key, entry.mod_revision if entry is not None else ABSENT)],
            [Put(key, record.SerializeToString(deterministic=True))],
        )
        if not result.succeeded:
            raise _conflict(result.failed)
        return record

    async def list_enforcers(
        self, *, page_size: int, page_token: str = "", filter_digest: str = ""
    ) -> tuple[list[EnforcerView], Page]:
        page = await self._scan(
            [self.keys.enforcers()],
            enforcer_pb.Enforcer.FromString,
            lambda _: True,
            page_size,
            page_token,
            filter_digest,
            decode_entry=False,
        )
        statuses: dict[str, Any] = {}
        async for entry in self._entries(self.keys.statuses(), revision=page.revision):
            statuses[entry.key.rsplit("/", 1)[-1]] = enforcer_pb.EnforcerStatus.FromString(
                entry.value
            )
        views = [
            EnforcerView(e, statuses.get(e.id, enforcer_pb.EnforcerStatus())) for e in page.items
        ]
        return views, page

    async def record_ack(
        self,
        enforcer_id: str,
        revision: int,
        error: tuple[str, str] | None = None,
    ) -> None:
        """Persist an enforcer's ACK (``error`` None) or NACK (``(reason, message)``) of
        ``revision``. Stored outside the policy state (``status/``): acks never advance the
        revision that enforcers converge to. An older ack never lowers ``acked_revision``.
        Distribution also records here the revision at which an enforcer's acked view is
        known to be current (its view did not change since): ``acked_revision`` is "the
        enforcer's applied policy equals the state at this revision"."""
        await self.record_statuses({enforcer_id: StatusUpdate.ack(revision, error)})

    async def record_connection(self, enforcer_id: str, connected: bool, replica: str = "") -> None:
        """Mark whether the enforcer has an open WatchPolicy stream on ``replica``. A
        disconnect from a replica that no longer holds it changes nothing."""
        await self.record_statuses(
            {enforcer_id: StatusUpdate(connected=connected, replica=replica)}
        )

    async def record_statuses(self, updates: Mapping[str, StatusUpdate]) -> None:
        """Apply ``updates`` (enforcer id -> update), up to 64 enforcers per transaction,
        each guarded by its status key's ``mod_revision`` (read-modify-write; a chunk whose
        guard fails is re-read and retried). Raises ``Conflict`` when a chunk keeps failing."""
        items = sorted(updates.items())
        for start in range(0, len(items), _STATUS_BATCH):
            await self._write_statuses(items[start : start + _STATUS_BATCH])

    async def _write_statuses(self, items: Sequence[tuple[str, StatusUpdate]]) -> None:
        keys = [self.keys.status(enforcer_id) for enforcer_id, _ in items]
        for _ in range(5):
            await self._load_statuses([k for k in keys if k not in self._statuses])
            now = self._clock()
            compares: list[Compare] = []
            puts: list[Put] = []
            for key, (_, update) in zip(keys, items, strict=True):
                mod_revision, value = self._statuses.get(key, (ABSENT, b""))
                status = enforcer_pb.EnforcerStatus.FromString(value)
                update.apply_to(status, now)
                status.ClearField("lag_revisions")
                status.ClearField("pu_count")
                compares.append(Compare(key, mod_revision))
                puts.append(Put(key, status.SerializeToString(deterministic=True)))
            result = await self.store.txn(compares, puts)
            if result.succeeded:
                for put in puts:
                    self._statuses[put.key] = (result.revision, put.value)
                return
            for key in result.failed or keys:
                self._statuses.pop(key, None)
        raise Conflict(
            f"status of enforcers {', '.join(e for e, _ in items[:5])} keeps changing",
            metadata={"keys": ",".join(keys[:5])},
        )

    async def _load_statuses(self, keys: Sequence[str]) -> None:
        """Read ``keys`` into the status cache (absent keys as ``ABSENT``)."""
        if not keys:
            return
        found: dict[str, tuple[int, bytes]] = {}
        if len(keys) > 8:  # one listing beats many gets
            wanted = set(keys)
            async for entry in self._entries(self.keys.statuses()):
                if entry.key in wanted:
                    found[entry.key] = (entry.mod_revision, entry.value)
        else:
            entries = await asyncio.gather(*(self.store.get(k) for k in keys))
            found = {e.key: (e.mod_revision, e.value) for e in entries if e is not None}
        for key in keys:
            self._statuses[key] = found.get(key, (ABSENT, b""))

    # --------------------------------------------------------------------------- scanning

    async def _entries(self, prefix: str, *, revision: int = 0) -> AsyncIterator[Entry]:
        after = ""
        while True:
            page = await self.store.list(prefix, start_after=after, limit=500, revision=revision)
            revision = page.revision
            for entry in page.entries:
                yield entry
                after = entry.key
            if not page.more:
                return

    async def _scan(
        self,
        prefixes: Sequence[str],
        decode: Callable[[Any], Any],
        keep: Callable[[Any], bool],
        page_size: int,
        page_token: str,
        filter_digest: str,
        *,
        decode_entry: bool = True,
    ) -> Page:
        cursor = _Cursor.decode(page_token, filter_digest) if page_token else None
        index, after, revision = (
            (cursor.prefix, cursor.after, cursor.revision)
            if cursor
            else (
                0,
                "",
                0,
            )
        )
        items: list[Any] = []
        chunk = max(100, min(1000, page_size * 2))
        while index < len(prefixes):
            try:
                page = await self.store.list(
                    prefixes[index], start_after=after, limit=chunk, revision=revision
                )
            except FailedPrecondition as error:
                if error.reason == REVISION_COMPACTED and cursor is not None:
                    raise InvalidArgument(
                        "page_token expired (its revision was compacted); restart the listing",
                        field="page.page_token",
                        reason="PAGE_TOKEN_EXPIRED",
                    ) from None
                raise
            revision = page.revision
            for position, entry in enumerate(page.entries):
                after = entry.key
                item = decode(entry) if decode_entry else decode(entry.value)
                if not keep(item):
                    continue
                items.append(item)
                if len(items) >= page_size:
                    last = position == len(page.entries) - 1 and not page.more
                    if last and index == len(prefixes) - 1:
                        return Page(tuple(items), "", revision)
                    token = _Cursor(revision, index, after).encode(filter_digest)
                    return Page(tuple(items), token, revision)
            if page.more:
                continue
            index += 1
            after = ""
        if revision == 0:
            revision = await self.store.revision()
        return Page(tuple(items), "", revision)


# ---------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class _Cursor:
    """Where a listing continues: its revision, prefix index and last key. Encoded opaque
    (base64 JSON) with a digest of the request's filter, so a token is only valid with the
    filter it was issued for."""

    revision: int
    prefix: int
    after: str

    def encode(self, digest: str) -> str:
        raw = json.dumps({"r": self.revision, "p": self.prefix, "k": self.after, "f": digest})
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @staticmethod
    def decode(token: str, digest: str) -> _Cursor:
        try:
            padded = token + "=" * (-len(token) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded.encode()))
            cursor = _Cursor(int(data["r"]), int(data["p"]), str(data["k"]))
            matches = data["f"] == digest
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise InvalidArgument(
                "page_token is not a token this server issued",
                field="page.page_token",
                reason="INVALID_PAGE_TOKEN",
            ) from None
        if not matches:
            raise InvalidArgument(
                "page_token was issued for a different filter",
                field="page.page_token",
                reason="INVALID_PAGE_TOKEN",
            )
        return cursor


def filter_digest(message: Any) -> str:
    """Digest of a list request's filter fields (the request with ``page`` cleared)."""
    copy = type(message)()
    copy.CopyFrom(message)
    copy.ClearField("page")
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()[:16]


def _decode_resource(entry: Entry) -> Any:
    return codec.with_server_fields(
        resource_pb.Resource.FromString(entry.value), entry.mod_revision
    )


def _decode_pu(entry: Entry) -> Any:
    pu = pu_pb.ProcessingUnit.FromString(entry.value)
    pu.revision = entry.mod_revision
    return pu


def _diff(before: Any | None, after: Any | None) -> str:
    old = codec.document_yaml(before).splitlines(keepends=True) if before is not None else []
    new = codec.document_yaml(after).splitlines(keepends=True) if after is not None else []
    return "".join(difflib.unified_diff(old, new, "before", "after"))


def _conflict(keys: Sequence[str]) -> Conflict:
    listing = ", ".join(keys) or "a guarded key"
    return Conflict(
        f"a concurrent write changed {listing} since it was read; nothing was written, "
        "re-read and retry",
        metadata={"keys": ",".join(keys)},
    )


def _name(namespace: str, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name
