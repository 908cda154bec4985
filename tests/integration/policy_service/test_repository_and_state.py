"""Repository compare-and-swap and the state mirror on real etcd (restarts included)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tests.support.etcd import EtcdServer
from trustwire.api.policy.v1 import enforcer_pb2
from trustwire.errors import Conflict, FailedPrecondition
from trustwire.store import Compare, Delete, KeyValueStore, Put, TxnResult
from trustwire.store.etcd import EtcdStore
from trustwire_policy.codec import Keyspace, Kind
from trustwire_policy.manifests import parse_yaml
from trustwire_policy.repository import PolicyRepository
from trustwire_policy.settings import LimitSettings
from trustwire_policy.state import StateMirror

from .fixtures import DENY_DB, SHOP

pytestmark = pytest.mark.etcd

LIMITS = LimitSettings()


class TxnBarrier:
    """The real store, except that ``txn`` waits until ``parties`` callers reached it: both
    applies have read (and validated against) the same state before either writes."""

    def __init__(self, store: KeyValueStore, parties: int) -> None:
        self._store = store
        self._barrier = asyncio.Barrier(parties)

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def txn(self, compares: Sequence[Compare], ops: Sequence[Put | Delete]) -> TxnResult:
        await self._barrier.wait()
        return await self._store.txn(compares, ops)


async def test_concurrent_applies_one_loses_and_stores_nothing(
    store: EtcdStore, keys: Keyspace
) -> None:
    gated = PolicyRepository(TxnBarrier(store, 2), keys)  # type: ignore[arg-type]
    mine = parse_yaml(SHOP + "---\n" + DENY_DB, "a.yaml", LIMITS)
    theirs = parse_yaml(SHOP.replace("encrypt", "allow"), "b.yaml", LIMITS)
    results = await asyncio.gather(gated.apply(mine), gated.apply(theirs), return_exceptions=True)
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(losers) == 1
    assert isinstance(losers[0], Conflict)
    repository = PolicyRepository(store, keys)
    stored = await repository.get(Kind.NETWORK_ACCESS_POLICY, "shop", "web-to-db")
    if results[0] is losers[0]:  # a.yaml lost: its extra policy must not exist
        assert stored.network_access_policy.spec.action == 1  # allow
        with pytest.raises(Exception, match="not found"):
            await repository.get(Kind.NETWORK_ACCESS_POLICY, "shop", "deny-db")
    else:
        assert stored.network_access_policy.spec.action == 3  # encrypt
        await repository.get(Kind.NETWORK_ACCESS_POLICY, "shop", "deny-db")


async def test_mirror_converges_after_writes(store: EtcdStore, keys: Keyspace) -> None:
    repository = PolicyRepository(store, keys)
    mirror = StateMirror(store, keys)
    await mirror.start()
    try:
        first = await mirror.wait_ready()
        assert first.cluster.access_policies == ()
        written = await repository.apply(parse_yaml(SHOP, "a.yaml", LIMITS))
        snapshot = await mirror.wait_for_revision(written.revision)
        assert [p.key for p in snapshot.cluster.access_policies] == ["shop/web-to-db"]
        deleted = await repository.delete(Kind.NETWORK_ACCESS_POLICY, "shop", "web-to-db")
        snapshot = await mirror.wait_for_revision(deleted.revision)
        assert snapshot.cluster.access_policies == ()
        # A past revision is rebuilt on demand (resuming watchers).
        past = await mirror.state_at(written.revision)
        assert [p.key for p in past.cluster.access_policies] == ["shop/web-to-db"]
        # Acks are not policy state: they do not produce snapshots.
        await repository.record_ack("node-1", snapshot.revision)
        assert mirror.current.revision == snapshot.revision
    finally:
        await mirror.stop()


async def test_mirror_survives_an_etcd_restart(fresh_etcd: EtcdServer) -> None:
    store = EtcdStore([fresh_etcd.endpoint], timeout=2.0, connect_timeout=0.5)
    keys = Keyspace()
    repository = PolicyRepository(store, keys)
    mirror = StateMirror(store, keys, initial_backoff=0.05, max_backoff=0.2)
    await mirror.start()
    try:
        await repository.apply(parse_yaml(SHOP, "a.yaml", LIMITS))
        await mirror.wait_ready()
        await asyncio.to_thread(fresh_etcd.stop)
        await asyncio.to_thread(fresh_etcd.start)
        written = await repository.apply(parse_yaml(DENY_DB, "b.yaml", LIMITS))
        snapshot = await asyncio.wait_for(mirror.wait_for_revision(written.revision), 20)
        assert {p.name for p in snapshot.cluster.access_policies} == {"web-to-db", "deny-db"}
        assert mirror.outages >= 1
    finally:
        await mirror.stop()
        await store.close()


async def test_compacted_revision_reloads_and_propagates(fresh_etcd: EtcdServer) -> None:
    store = EtcdStore([fresh_etcd.endpoint], timeout=2.0)
    keys = Keyspace()
    repository = PolicyRepository(store, keys)
    mirror = StateMirror(store, keys, initial_backoff=0.05, max_backoff=0.2)
    try:
        first = await repository.apply(parse_yaml(SHOP, "a.yaml", LIMITS))
        second = await repository.apply(parse_yaml(DENY_DB, "b.yaml", LIMITS))
        await store.compact(second.revision)
        with pytest.raises(FailedPrecondition) as raised:
            await mirror.state_at(first.revision)
        assert raised.value.reason == "REVISION_COMPACTED"
        await mirror.start()
        snapshot = await mirror.wait_ready()
        assert len(snapshot.cluster.access_policies) == 2
    finally:
        await mirror.stop()
        await store.close()


async def test_a_late_disconnect_from_the_old_replica_keeps_the_enforcer_connected(
    store: EtcdStore, keys: Keyspace
) -> None:
    """Failover: the enforcer's stream moved from r1 to r2, and r1 notices the end of the old
    stream only afterwards. r1's disconnect must not mark the enforcer disconnected."""

    async def stored() -> enforcer_pb2.EnforcerStatus:
        # A fresh repository: nothing cached, what etcd holds.
        entry = await store.get(keys.status("node-1"))
        assert entry is not None
        return enforcer_pb2.EnforcerStatus.FromString(entry.value)

    r1, r2 = PolicyRepository(store, keys), PolicyRepository(store, keys)
    await r1.record_connection("node-1", True, "r1")
    await r2.record_connection("node-1", True, "r2")
    await r1.record_connection("node-1", False, "r1")
    status = await stored()
    assert status.connected
    assert status.connected_replica == "r2"

    await r2.record_connection("node-1", False, "r2")
    status = await stored()
    assert not status.connected
    assert status.connected_replica == ""
