"""Reliability of policy distribution against real etcd, real replicas and real gRPC.

Every scenario ends the same way: each enforcer's view equals the view computed from the
store's final state, and sequence accounting over everything each enforcer applied shows no
delta skipped, none applied twice, and resumption instead of resynchronisation across
reconnects. Waits are on conditions (``PolicyClient.wait_for``), never on sleeps.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator

import pytest

from tests.support.etcd import EtcdCluster, EtcdServer
from trustwire.api.policy.v1 import distribution_pb2
from trustwire.store.etcd import EtcdStore

from .harness import (
    ENFORCERS,
    Changes,
    Replicas,
    check_sequence,
    converge,
    expected_views,
    restart,
    start_enforcers,
    views_at,
)

pytestmark = pytest.mark.etcd

# Issue 4 asks for thousands of changes; 2,000 take ~90 s on the 2-core CI machine.
STEPS = int(os.environ.get("TRUSTWIRE_DISTRIBUTION_STEPS", "2000"))
SEED = int(os.environ.get("TRUSTWIRE_DISTRIBUTION_SEED", "20261127"))
CONVERGE_S = 30.0


@pytest.fixture
async def writer_store(etcd: EtcdServer) -> AsyncIterator[EtcdStore]:
    store = await EtcdStore.connect([etcd.endpoint], timeout=5.0)
    yield store
    await store.close()


async def test_random_changes_while_watchers_connect_disconnect_and_resume(
    etcd: EtcdServer, etcd_prefix: bytes, writer_store: EtcdStore
) -> None:
    root = etcd_prefix.decode() + "trustwire/v1/"
    changes = Changes(writer_store, root, SEED)
    await changes.register_enforcers()
    replicas = Replicas([etcd.endpoint], root)
    await replicas.start(2)
    enforcers = start_enforcers(replicas.addresses)
    rng = random.Random(SEED)
    try:
        for step in range(STEPS):
            await changes.step()
            if step % 40 == 39:
                # A watcher disconnects and comes back from its last applied state, sometimes
                # to a single replica (so both replicas serve resumptions).
                enforcer = rng.choice(enforcers)
                addresses = rng.choice(
                    [replicas.addresses, replicas.addresses[:1], replicas.addresses[1:]]
                )
                await restart(enforcer, addresses, seed=step)
        revision, expected = await expected_views(writer_store, root)
        await converge(enforcers, expected, CONVERGE_S)
        for enforcer in enforcers:
            check_sequence(enforcer)
            assert enforcer.client.revision <= revision
        # Each applied revision carried exactly the view at that revision (sampled).
        applied = [(e.enforcer_id, r, v) for e in enforcers for r, v in e.applied]
        assert len(applied) > len(ENFORCERS) * 20
        for enforcer_id, applied_revision, view in rng.sample(applied, 12):
            assert (await views_at(writer_store, root, applied_revision))[enforcer_id] == view
    finally:
        for enforcer in enforcers:
            await enforcer.client.stop()
        await replicas.close()


async def test_replica_killed_enforcers_keep_state_fail_over_and_resume(
    etcd: EtcdServer, etcd_prefix: bytes, writer_store: EtcdStore
) -> None:
    root = etcd_prefix.decode() + "trustwire/v1/"
    changes = Changes(writer_store, root, SEED + 1)
    await changes.register_enforcers()
    for _ in range(60):
        await changes.step()
    replicas = Replicas([etcd.endpoint], root)
    await replicas.start(2)
    # Everyone starts on replica 0 (listed first), replica 1 is the fallback.
    enforcers = start_enforcers(replicas.addresses)
    for e in enforcers:
        e.client.addresses = replicas.addresses
        e.client._next = 0
    try:
        _, expected = await expected_views(writer_store, root)
        await converge(enforcers, expected, CONVERGE_S)
        before = {e.enforcer_id: (e.client.view, e.client.revision) for e in enforcers}
        await replicas.kill(replicas.replicas[0])
        # Enforcers keep their last state while they reconnect.
        for e in enforcers:
            assert (e.client.view, e.client.revision) == before[e.enforcer_id]
        for _ in range(200):
            await changes.step()
        _, expected = await expected_views(writer_store, root)
        await converge(enforcers, expected, CONVERGE_S)
        survivor = replicas.replicas[1].address
        for e in enforcers:
            check_sequence(e)  # one snapshot in total: the failover resumed
            assert e.client.connected_address == survivor
            assert e.client.connects >= 2
    finally:
        for e in enforcers:
            await e.client.stop()
        await replicas.close()


async def test_etcd_restarted_mid_stream_and_compacted_resume(fresh_etcd: EtcdServer) -> None:
    root = "/trustwire/v1/"
    store = await EtcdStore.connect([fresh_etcd.endpoint], timeout=2.0)
    changes = Changes(store, root, SEED + 2)
    await changes.register_enforcers()
    replicas = Replicas([fresh_etcd.endpoint], root)
    await replicas.start(2)
    enforcers = start_enforcers(replicas.addresses)
    try:
        for _ in range(100):
            await changes.step()
        await asyncio.to_thread(fresh_etcd.stop)
        # etcd is down: streams stay up and enforcers keep their last state.
        await asyncio.to_thread(fresh_etcd.start)
        for _ in range(150):
            await changes.step()
        _, expected = await expected_views(store, root)
        await converge(enforcers, expected, CONVERGE_S)
        for e in enforcers:
            check_sequence(e)

        # An enforcer offline across a compaction comes back to a REVISION_COMPACTED snapshot.
        offline = enforcers[0]
        await offline.client.stop()
        for _ in range(60):
            await changes.step()
        await store.compact(await store.revision())
        await restart(offline, replicas.addresses, seed=99)
        _, expected = await expected_views(store, root)
        await converge(enforcers, expected, CONVERGE_S)
        first = offline.client.log[0]
        if first.kind == "snapshot":
            assert first.reason == distribution_pb2.SNAPSHOT_REASON_REVISION_COMPACTED
        else:  # its view did not change across the gap: resumed at an uncompacted revision
            pytest.fail(f"expected a compacted snapshot, got {first}")
        check_sequence(offline, allow_compacted=True)
    finally:
        for e in enforcers:
            await e.client.stop()
        await replicas.close()
        await store.close()


async def test_etcd_member_killed_and_restarted(etcd_cluster: EtcdCluster) -> None:
    root = "/trustwire/v1/"
    endpoints = etcd_cluster.endpoints
    store = await EtcdStore.connect(endpoints, timeout=2.0)
    changes = Changes(store, root, SEED + 3)
    await changes.register_enforcers()
    replicas = Replicas(endpoints, root)
    await replicas.start(2)
    enforcers = start_enforcers(replicas.addresses)
    try:
        for _ in range(80):
            await changes.step()
        victim = etcd_cluster.leader()
        await asyncio.to_thread(etcd_cluster.kill, victim)
        for _ in range(80):
            await changes.step()
        await asyncio.to_thread(etcd_cluster.restart, victim)
        for _ in range(80):
            await changes.step()
        _, expected = await expected_views(store, root)
        await converge(enforcers, expected, CONVERGE_S)
        for e in enforcers:
            check_sequence(e)
    finally:
        for e in enforcers:
            await e.client.stop()
        await replicas.close()
        await store.close()
