"""The live state mirror every replica keeps: all policy state at one etcd revision.

Contract:

- :meth:`StateMirror.start` loads everything under the key root with ``list`` at ONE revision
  R (paged, every page at R), builds an immutable :class:`StateSnapshot`, then watches from
  R + 1 and applies each revision's batch of events, publishing a new snapshot per batch.
  ``status/`` keys (enforcer acks) are not policy state: they are ignored and never advance
  the snapshot revision (otherwise every ack would make every enforcer lag again).
- Subscribers never queue: :meth:`StateMirror.next_snapshot` returns the *latest* snapshot
  newer than the one the caller has (latest wins), so a slow consumer skips intermediate
  states and a stalled one holds nothing but its own reference.
- On ``REVISION_COMPACTED`` in its own watch the mirror reloads from a fresh ``list``; while
  the store is unreachable it retries with bounded exponential backoff and keeps serving its
  last snapshot. Nothing in the loop can end the process; every problem is logged.
- :meth:`StateMirror.state_at` builds a snapshot of a past revision (for resuming watchers);
  ``REVISION_COMPACTED`` propagates to the caller.
- Readiness: :attr:`StateMirror.ready` is false (health ``NOT_SERVING``) until the first load.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

from trustwire.api.policy.v1 import enforcer_pb2 as enforcer_pb
from trustwire.api.policy.v1 import processing_unit_pb2 as pu_pb
from trustwire.api.policy.v1 import resource_pb2 as resource_pb
from trustwire.errors import FailedPrecondition, TrustwireError, Unavailable
from trustwire.policy import (
    Cluster,
    ExternalNetwork,
    KubernetesNetworkPolicy,
    Namespace,
    NetworkAccessPolicy,
    PolicyEngine,
    Tier,
    Workload,
)
from trustwire.policy.model import BUILTIN_TIERS
from trustwire.store import Event, EventType, KeyValueStore

from . import codec
from .codec import DomainObject, Keyspace
from .records import EnforcerRecord, PuRecord

__all__ = ["StateMirror", "StateSnapshot", "assemble_cluster"]

_log = logging.getLogger("trustwire.policy.state")

REVISION_COMPACTED = "REVISION_COMPACTED"
_LIST_PAGE = 1000
_TRACE_WINDOW = 64  # write traces a snapshot remembers (hub.MAX_LINKS are sent at most)


@dataclass(frozen=True, eq=False)
class StateSnapshot:
    """Everything decisions and distribution depend on, at one ``revision``. Immutable: share
    it freely; a newer state is a new snapshot."""

    revision: int
    cluster: Cluster
    # PU id -> record; enforcer id -> its PU ids (sorted); enforcer id -> record.
    pus: Mapping[str, PuRecord] = field(default_factory=dict)
    pus_by_enforcer: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    enforcers: Mapping[str, EnforcerRecord] = field(default_factory=dict)
    # PU id <-> key (``namespace/name``) of its workload in ``cluster``.
    workload_of_pu: Mapping[str, str] = field(default_factory=dict)
    pu_of_workload: Mapping[str, str] = field(default_factory=dict)
    # W3C traceparent of the write that produced ``revision`` ("" when it recorded none), and
    # (revision, traceparent) of the last writes this mirror saw up to ``revision``, oldest
    # first (a bounded window; reset by a reload): what a delta merging writes links to.
    traceparent: str = ""
    traces: tuple[tuple[int, str], ...] = ()

    @cached_property
    def engine(self) -> PolicyEngine:
        """The compiled engine of this snapshot, built on first use and then shared."""
        return PolicyEngine(self.cluster)


def assemble_cluster(
    objects: Iterable[DomainObject],
    workloads: Sequence[Workload],
    *,
    revision: int,
    trust_domain: str = "",
) -> Cluster:
    """A ``Cluster`` from stored objects. Tolerant by design: state written by a concurrent
    apply and tier delete could leave a policy whose tier is gone; such a policy is left out
    (and logged) rather than failing the whole snapshot."""
    namespaces: dict[str, Namespace] = {}
    tiers: dict[str, Tier] = {t.name: t for t in BUILTIN_TIERS}
    access: list[NetworkAccessPolicy] = []
    kubernetes: list[KubernetesNetworkPolicy] = []
    externals: list[ExternalNetwork] = []
    for obj in objects:
        if isinstance(obj, NetworkAccessPolicy):
            access.append(obj)
        elif isinstance(obj, KubernetesNetworkPolicy):
            kubernetes.append(obj)
        elif isinstance(obj, Namespace):
            namespaces[obj.name] = obj
        elif isinstance(obj, Tier):
            tiers[obj.name] = obj
        else:
            externals.append(obj)
    kept = []
    for policy in access:
        if policy.tier in tiers:
            kept.append(policy)
        else:
            _log.warning(
                "policy references an unknown tier; left out",
                extra={"policy": policy.key, "tier": policy.tier},
            )
    for w in workloads:
        namespaces.setdefault(w.namespace, Namespace.make(w.namespace))
    return Cluster(
        namespaces=dict(sorted(namespaces.items())),
        workloads=tuple(sorted(workloads, key=lambda w: w.key)),
        kubernetes_policies=tuple(sorted(kubernetes, key=lambda p: p.key)),
        access_policies=tuple(sorted(kept, key=lambda p: (p.namespace or "", p.name))),
        external_networks=tuple(sorted(externals, key=lambda n: n.name)),
        tiers=tuple(sorted(tiers.values(), key=lambda t: (t.order, t.name))),
        revision=revision,
        trust_domain=trust_domain,
    )


class _Inventory:
    """The mutable maps behind snapshots, keyed by etcd key (owned by one mirror task)."""

    def __init__(self, keys: Keyspace, trust_domain: str) -> None:
        self.keys = keys
        self.trust_domain = trust_domain
        self.resources: dict[str, DomainObject] = {}
        self.pus: dict[str, PuRecord] = {}
        self.enforcers: dict[str, EnforcerRecord] = {}
        # Write traces seen (``codec.Keyspace.trace``): not policy state, but named by the
        # snapshot of the write's revision.
        self.traces: deque[tuple[int, str]] = deque(maxlen=_TRACE_WINDOW)
        self._trace_key = keys.trace()
        # Workloads by PU key, rebuilt only when the record changes (a revision's snapshot
        # then shares its unchanged workloads with the previous one: views reuse work).
        self._workloads: dict[str, tuple[PuRecord, str, Workload]] = {}

    def put(self, key: str, value: bytes, mod_revision: int) -> bool:
        """Apply one stored value; False when the key is not policy state (ignored)."""
        if key == self._trace_key:
            self.traces.append((mod_revision, value.decode("ascii", errors="replace")))
            return False
        parsed = self.keys.parse(key)
        if parsed is None or parsed.section == "status":
            return False
        try:
            if parsed.section == "resource":
                resource = resource_pb.Resource.FromString(value)
                self.resources[key] = codec.domain_from_resource(resource, source=key)
            elif parsed.section == "pu":
                message = pu_pb.ProcessingUnit.FromString(value)
                record = codec.pu_from_proto(message, revision=mod_revision)
                if not record.trust_domain and self.trust_domain:
                    record = _with_trust_domain(record, self.trust_domain)
                self.pus[key] = record
            else:
                enforcer = enforcer_pb.Enforcer.FromString(value)
                self.enforcers[key] = codec.enforcer_from_proto(enforcer, revision=mod_revision)
        except Exception:  # a corrupt value must not stop the mirror
            _log.exception("cannot decode a stored value; ignored", extra={"key": key})
            self.delete(key)
        return True

    def delete(self, key: str) -> bool:
        parsed = self.keys.parse(key)
        if parsed is None or parsed.section == "status":
            return False
        self.resources.pop(key, None)
        self.pus.pop(key, None)
        self.enforcers.pop(key, None)
        self._workloads.pop(key, None)
        return True

    def snapshot(self, revision: int) -> StateSnapshot:
        workloads: list[Workload] = []
        pus: dict[str, PuRecord] = {}
        by_enforcer: dict[str, list[str]] = {}
        workload_of_pu: dict[str, str] = {}
        pu_of_workload: dict[str, str] = {}
        for key in sorted(self.pus):
            record = self.pus[key]
            if record.id in pus:
                _log.warning("PU id registered by two enforcers; first kept", extra={"key": key})
                continue
            pus[record.id] = record
            by_enforcer.setdefault(record.enforcer_id, []).append(record.id)
            name = record.workload_name
            if f"{record.namespace}/{name}" in pu_of_workload:
                name = f"{name}.{record.id}"  # two PUs claim one namespace/name
            cached = self._workloads.get(key)
            if cached is not None and cached[0] is record and cached[1] == name:
                workload = cached[2]
            else:
                workload = record.workload(name)
                self._workloads[key] = (record, name, workload)
            workloads.append(workload)
            workload_of_pu[record.id] = workload.key
            pu_of_workload[workload.key] = record.id
        cluster = assemble_cluster(
            self.resources.values(),
            workloads,
            revision=revision,
            trust_domain=self.trust_domain,
        )
        return StateSnapshot(
            revision=revision,
            cluster=cluster,
            pus=pus,
            pus_by_enforcer={e: tuple(sorted(ids)) for e, ids in sorted(by_enforcer.items())},
            enforcers={r.id: r for r in sorted(self.enforcers.values(), key=lambda r: r.id)},
            workload_of_pu=workload_of_pu,
            pu_of_workload=pu_of_workload,
            traceparent=next((t for r, t in self.traces if r == revision), ""),
            traces=tuple((r, t) for r, t in self.traces if r <= revision),
        )


def _with_trust_domain(record: PuRecord, trust_domain: str) -> PuRecord:
    return replace(record, trust_domain=trust_domain)


class StateMirror:
    """See the module docstring. One per replica; ``start`` it once, ``stop`` it at the end."""

    def __init__(
        self,
        store: KeyValueStore,
        keys: Keyspace | None = None,
        *,
        trust_domain: str = "",
        initial_backoff: float = 0.1,
        max_backoff: float = 5.0,
    ) -> None:
        self.store = store
        self.keys = keys or Keyspace()
        self.trust_domain = trust_domain
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._current: StateSnapshot | None = None
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        # Observability (and tests): how many full loads and how many store outages so far.
        self.loads = 0
        self.outages = 0

    # ----------------------------------------------------------------------- reading

    @property
    def ready(self) -> bool:
        return self._current is not None

    @property
    def current(self) -> StateSnapshot:
        """The latest snapshot; ``Unavailable`` before the first load."""
        if self._current is None:
            raise Unavailable("policy state is still loading", reason="STATE_NOT_LOADED")
        return self._current

    async def wait_ready(self) -> StateSnapshot:
        await self._ready.wait()
        return self.current

    async def next_snapshot(self, after_revision: int) -> StateSnapshot:
        """The latest snapshot with ``revision > after_revision``, waiting for one."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: self._current is not None and self._current.revision > after_revision
            )
        return self.current

    async def wait_for_revision(self, revision: int) -> StateSnapshot:
        """The latest snapshot once it is at ``revision`` or later (read-your-writes)."""
        return await self.next_snapshot(revision - 1)

    async def state_at(self, revision: int) -> StateSnapshot:
        """A snapshot of the state at a past ``revision`` (``REVISION_COMPACTED`` raises)."""
        if self._current is not None and revision == self._current.revision:
            return self._current
        inventory = _Inventory(self.keys, self.trust_domain)
        read_at = await self._load_into(inventory, revision)
        return inventory.snapshot(read_at)

    # ------------------------------------------------------------------------ running

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="policy-state-mirror")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        backoff = self._initial_backoff
        inventory: _Inventory | None = None
        revision = 0
        while True:
            try:
                if inventory is None:
                    loaded = _Inventory(self.keys, self.trust_domain)
                    revision = await self._load_into(loaded, 0)
                    inventory = loaded
                    self.loads += 1
                    await self._publish(inventory.snapshot(revision))
                    _log.info("policy state loaded", extra={"revision": revision})
                # aclosing: a cancelled or failed loop releases the etcd watch at once.
                watch = self.store.watch(self.keys.root, start_revision=revision + 1)
                async with contextlib.aclosing(watch):
                    async for batch in watch:
                        backoff = self._initial_backoff
                        if _apply(inventory, batch):
                            revision = batch[-1].mod_revision
                            await self._publish(inventory.snapshot(revision))
                # A watch only ends when the store closes: treat it like an outage.
                raise Unavailable("store watch ended", reason="WATCH_ENDED")
            except asyncio.CancelledError:
                raise
            except FailedPrecondition as error:
                if error.reason != REVISION_COMPACTED:
                    _log.exception("policy state watch failed; reloading")
                else:
                    _log.warning(
                        "watch revision compacted; reloading the policy state",
                        extra={"revision": revision},
                    )
                inventory = None
                continue  # reload now: the store answered, it is not down
            except Unavailable as error:
                self.outages += 1
                _log.warning(
                    "store unavailable; retrying",
                    extra={"error": error.message, "backoff_s": backoff},
                )
            except TrustwireError:
                _log.exception("policy state watch failed; reloading")
                inventory = None
            except Exception:  # never let the mirror die: reload from scratch
                _log.exception("unexpected error in the policy state mirror; reloading")
                inventory = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    async def _load_into(self, inventory: _Inventory, revision: int) -> int:
        """List everything at one revision (``0``: now) into ``inventory``; returns it."""
        after = ""
        while True:
            page = await self.store.list(
                self.keys.root, start_after=after, limit=_LIST_PAGE, revision=revision
            )
            revision = page.revision
            for entry in page.entries:
                inventory.put(entry.key, entry.value, entry.mod_revision)
                after = entry.key
            if not page.more:
                return revision

    async def _publish(self, snapshot: StateSnapshot) -> None:
        async with self._changed:
            self._current = snapshot
            self._changed.notify_all()
        self._ready.set()


def _apply(inventory: _Inventory, batch: Sequence[Event]) -> bool:
    """Apply one revision's events; True when any was policy state."""
    changed = False
    for event in batch:
        if event.type is EventType.PUT:
            changed |= inventory.put(event.key, event.value, event.mod_revision)
        else:
            changed |= inventory.delete(event.key)
    return changed
