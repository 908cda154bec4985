"""The etcd fixtures run a real etcd, and aetcd does what the store will rely on.

Besides checking the fixtures, these tests pin down the aetcd behaviour that later code maps to
its own errors (see docs/decisions/0001-etcd-client-aetcd.md):

- a watch from a compacted revision is created, then its iterator raises
  ``aetcd.exceptions.RevisionCompactedError`` with ``compacted_revision`` set;
- a watch whose server goes away raises ``aetcd.exceptions.ConnectionFailedError`` (gRPC
  UNAVAILABLE), a different class, so "resync from a snapshot" and "reconnect and resume" can be
  told apart.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aetcd
import aetcd.exceptions
import aetcd.rtypes
import pytest

from tests.support import etcd as etcd_support
from tests.support.etcd import EtcdCluster, EtcdNotFoundError, EtcdServer, find_etcd_binary

pytestmark = pytest.mark.etcd

WAIT = 10.0  # bound on every wait for a condition


def client_for(host: str, port: int) -> Any:
    # Always set a timeout: without one, aetcd waits forever for a watch to be created.
    return aetcd.Client(host=host, port=port, timeout=5)


@pytest.fixture
async def client(etcd: EtcdServer) -> AsyncIterator[Any]:
    async with client_for(etcd.host, etcd.port) as c:
        yield c


async def next_event(watch: Any) -> Any:
    """The next event of an aetcd watch, or the error its stream ends with, within WAIT."""
    async with asyncio.timeout(WAIT):
        async for event in watch:
            return event
    raise AssertionError("watch ended without an event")


async def test_put_get_round_trips_arbitrary_bytes(client: Any, etcd_prefix: bytes) -> None:
    key = etcd_prefix + b"\x00\xff-not-utf8"
    value = bytes(range(256)) * 4

    await client.put(key, value)
    got = await client.get(key)

    assert got is not None
    assert got.key == key
    assert got.value == value
    assert await client.get(etcd_prefix + b"absent") is None


async def test_revision_increases_with_every_write(
    client: Any, etcd: EtcdServer, etcd_prefix: bytes
) -> None:
    first = await client.put(etcd_prefix + b"a", b"1")
    second = await client.put(etcd_prefix + b"b", b"2")
    got = await client.get(etcd_prefix + b"b")

    assert second.header.revision > first.header.revision > 0
    assert got.mod_revision == second.header.revision
    assert etcd.revision() >= second.header.revision  # the gateway sees the same store


async def test_compare_and_swap_on_mod_revision_has_one_winner(
    client: Any, etcd_prefix: bytes
) -> None:
    key = etcd_prefix + b"policy"
    await client.put(key, b"v0")
    seen = (await client.get(key)).mod_revision

    async def swap(value: bytes) -> bool:
        succeeded, _ = await client.transaction(
            compare=[client.transactions.mod(key) == seen],
            success=[client.transactions.put(key, value)],
            failure=[],
        )
        return bool(succeeded)

    assert await swap(b"winner") is True
    assert await swap(b"loser") is False  # its compare saw a newer mod_revision
    got = await client.get(key)
    assert got.value == b"winner"
    assert got.mod_revision > seen


async def test_watch_receives_a_put_event(client: Any, etcd_prefix: bytes) -> None:
    key = etcd_prefix + b"watched"
    watch = await client.watch(key)  # returns once etcd confirmed the watch
    try:
        put = await client.put(key, b"hello")
        event = await next_event(watch)
    finally:
        await watch.cancel()

    assert event.kind == aetcd.rtypes.EventKind.PUT
    assert event.kv.key == key
    assert event.kv.value == b"hello"
    assert event.kv.mod_revision == put.header.revision


async def test_watch_from_a_compacted_revision_raises_revision_compacted(
    fresh_etcd: EtcdServer,
) -> None:
    async with client_for(fresh_etcd.host, fresh_etcd.port) as c:
        revisions = [(await c.put(b"k", v)).header.revision for v in (b"1", b"2", b"3")]
        fresh_etcd.compact(revisions[-1])  # keeps revisions[-1], drops everything before it

        stale = await c.watch(b"k", start_revision=revisions[0])  # creation still succeeds
        with pytest.raises(aetcd.exceptions.RevisionCompactedError) as caught:
            await next_event(stale)
        assert caught.value.compacted_revision == revisions[-1]

        # The compaction revision itself is still watchable: resuming there is legal.
        current = await c.watch(b"k", start_revision=revisions[-1])
        try:
            event = await next_event(current)
        finally:
            await current.cancel()
        assert (event.kv.value, event.kv.mod_revision) == (b"3", revisions[-1])

        # Compacting at or below the compacted revision is gRPC OUT_OF_RANGE, which aetcd does
        # not map: it arrives as the base ClientError.
        with pytest.raises(aetcd.exceptions.ClientError, match="required revision has been"):
            await c.compact(revisions[0])


async def test_restart_preserves_data_and_endpoint(fresh_etcd: EtcdServer) -> None:
    endpoint = fresh_etcd.endpoint
    async with client_for(fresh_etcd.host, fresh_etcd.port) as c:
        written = await c.put(b"durable", b"value")
        watch = await c.watch(b"durable")
        fresh_etcd.stop()
        # A broken stream is not a compaction: the watch fails with ConnectionFailedError.
        with pytest.raises(aetcd.exceptions.ConnectionFailedError):
            await next_event(watch)

    fresh_etcd.start()
    assert fresh_etcd.endpoint == endpoint
    # A new client: an old channel fails fast while gRPC is in reconnect backoff.
    async with client_for(fresh_etcd.host, fresh_etcd.port) as c:
        got = await c.get(b"durable")
    assert got is not None
    assert (got.value, got.mod_revision) == (b"value", written.header.revision)

    fresh_etcd.restart()
    assert fresh_etcd.healthy()


async def test_cluster_keeps_quorum_when_the_leader_dies(etcd_cluster: EtcdCluster) -> None:
    assert len(set(etcd_cluster.endpoints)) == 3
    dead = etcd_cluster.wait_for_leader()

    etcd_cluster.kill(dead)
    survivor = etcd_cluster.wait_for_leader()  # the two others elect a new leader
    assert survivor != dead
    m = etcd_cluster.members[survivor]
    async with client_for(m.host, m.port) as c:
        written = await c.put(b"quorum", b"two of three")

    etcd_cluster.restart(dead)  # returns once its /health passes
    back = etcd_cluster.members[dead]
    assert back.healthy()
    async with client_for(back.host, back.port) as c:
        # Serializable: answered from the member's own copy, so it has caught up.
        got = await c.get(b"quorum", serializable=True)
    assert got is not None
    assert (got.value, got.mod_revision) == (b"two of three", written.header.revision)


def test_first_start_retries_on_fresh_ports_when_a_port_is_taken(
    etcd_binary: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    real_free_ports = etcd_support.free_ports
    offered: list[list[int]] = []

    def racy_free_ports(count: int) -> list[int]:
        ports = real_free_ports(count)
        if not offered:
            ports[0] = taken.getsockname()[1]  # someone grabbed the client port meanwhile
        offered.append(ports)
        return ports

    monkeypatch.setattr(etcd_support, "free_ports", racy_free_ports)
    try:
        with EtcdServer(tmp_path, binary=etcd_binary) as server:
            assert len(offered) == 2
            assert server.port == offered[1][0] != taken.getsockname()[1]
            assert server.healthy()
    finally:
        taken.close()


def test_missing_binary_names_the_bootstrap_script(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(etcd_support.ETCD_BIN_ENV, "/nonexistent/etcd")
    with pytest.raises(EtcdNotFoundError, match=r"etcd not found: .*scripts/bootstrap"):
        find_etcd_binary()

    monkeypatch.delenv(etcd_support.ETCD_BIN_ENV)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(etcd_support, "FALLBACK_BINARY", "/nonexistent/etcd")
    with pytest.raises(EtcdNotFoundError, match=r"^etcd not found: run scripts/bootstrap"):
        find_etcd_binary()
