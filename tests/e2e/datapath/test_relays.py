"""Relay mechanics on real namespaces: plain relays on the event loop (and their move to a
thread once they carry bulk), encrypted relays with batched TLS records. Same harness as
test_proxy.py: two enforcers in this process, clients on threads."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable

import pytest

from tests.e2e.datapath.conftest import Cluster
from tests.e2e.datapath.test_proxy import PORT, _exchange, _expect_reset, _fixed
from tests.support.netns import EchoServer, Topology, connect_in
from trustwire_enforcer.datapath import Action, Direction, Outcome, Verdict
from trustwire_enforcer.datapath.loop_relay import PROMOTE_AFTER
from trustwire_enforcer.datapath.netns import socket_in_netns

pytestmark = pytest.mark.e2e


class BannerServer:
    """Server-first protocol (SMTP, MySQL...): sends a banner on accept before reading, then
    echoes. The relay must carry bytes from the side that did not open the connection first."""

    BANNER = b"220 banner-first\r\n"

    def __init__(self, netns: str, host: str, port: int) -> None:
        self._sock = socket_in_netns(netns)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(16)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.sendall(self.BANNER)
                    while data := conn.recv(65536):
                        conn.sendall(data)
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(timeout=5)


def _banner_then_echo(netns: str, address: tuple[str, int]) -> tuple[bytes, bytes]:
    sock = connect_in(netns, address, 3.0)
    try:
        sock.settimeout(3.0)
        banner = b""
        while len(banner) < len(BannerServer.BANNER):
            chunk = sock.recv(100)
            if not chunk:
                break
            banner += chunk
        sock.sendall(b"after-banner")
        sock.shutdown(socket.SHUT_WR)
        rest = b""
        while chunk := sock.recv(65536):
            rest += chunk
        return banner, rest
    finally:
        sock.close()


def _wait_until(condition: Callable[[], bool], within: float) -> bool:
    """Poll a condition kept by another thread (the servers count on their own threads)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize("action", [Action.ALLOW, Action.ENCRYPT])
async def test_server_speaks_first(cluster: Cluster, topo: Topology, action: Action) -> None:
    a1, b1 = topo.pu("a1"), topo.pu("b1")
    await cluster.enforce("a1")
    await cluster.enforce("b1")
    cluster.policy = _fixed(Verdict(action, str(action)))
    server = BannerServer(b1.name, b1.ip, PORT)
    try:
        banner, rest = await asyncio.to_thread(_banner_then_echo, a1.name, (b1.ip, PORT))
        assert banner == BannerServer.BANNER
        assert rest == b"after-banner"
        reports = await cluster.enforcer("a").wait_reports(1)
        assert reports[0].outcome is Outcome.CLOSED
        assert reports[0].bytes_to_pu == len(BannerServer.BANNER) + len(b"after-banner")
    finally:
        server.close()


async def test_encrypted_bulk_is_exact_both_ways(cluster: Cluster, topo: Topology) -> None:
    """Many TLS records per syscall: every byte arrives, in order, and half-close still ends
    the stream only after the last record."""
    a1, b1 = topo.pu("a1"), topo.pu("b1")
    await cluster.enforce("a1")
    await cluster.enforce("b1")
    cluster.policy = _fixed(Verdict.encrypt(None))
    server = EchoServer(b1.name, b1.ip, PORT)
    try:
        payload = os.urandom(5 * 1024 * 1024 + 3)
        echoed = await asyncio.to_thread(_exchange, a1.name, (b1.ip, PORT), payload, 10.0)
        assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()
        (out_a,) = await cluster.enforcer("a").wait_reports(1)
        (in_b,) = await cluster.enforcer("b").wait_reports(1)
        for report in (out_a, in_b):
            assert report.outcome is Outcome.CLOSED
            assert report.bytes_from_pu == len(payload) == report.bytes_to_pu
    finally:
        server.close()


async def test_upstream_refused_resets_the_application(cluster: Cluster, topo: Topology) -> None:
    """Allowed, but nothing listens at the destination: the destination enforcer's local
    connect is refused, it resets the wire connection, and the source resets the app."""
    a1, b1 = topo.pu("a1"), topo.pu("b1")
    await cluster.enforce("a1")
    await cluster.enforce("b1")
    err, elapsed = await asyncio.to_thread(_expect_reset, a1.name, (b1.ip, PORT))
    assert err in (errno.ECONNRESET, errno.EPIPE, -2), err
    assert elapsed < 1.0
    (in_b,) = await cluster.enforcer("b").wait_reports(1)
    assert in_b.outcome is Outcome.UPSTREAM_FAILED
    (out_a,) = await cluster.enforcer("a").wait_reports(1)
    assert out_a.outcome in (Outcome.RESET, Outcome.CLOSED)


@pytest.mark.parametrize("action", [Action.ALLOW, Action.ENCRYPT])
async def test_close_where_resets_a_bulk_relay(
    cluster: Cluster, topo: Topology, action: Action
) -> None:
    """A plain relay that carried more than PROMOTE_AFTER bytes has moved from the loop to a
    thread; revocation must still reach it (and an encrypted one)."""
    a1, b1 = topo.pu("a1"), topo.pu("b1")
    await cluster.enforce("a1")
    await cluster.enforce("b1")
    cluster.policy = _fixed(Verdict(action, str(action)))
    sink = EchoServer(b1.name, b1.ip, PORT, echo=False)
    sock = await asyncio.to_thread(connect_in, a1.name, (b1.ip, PORT))
    try:
        sock.settimeout(3.0)
        chunk = bytes(256 * 1024)
        target = 4 * PROMOTE_AFTER
        for _ in range(target // len(chunk)):
            await asyncio.to_thread(sock.sendall, chunk)
        assert await asyncio.to_thread(_wait_until, lambda: sink.received >= target, 5.0)
        assert sink.received == target
        a = cluster.enforcer("a")
        assert a.datapath.close_where(lambda r: True, "revision_7") == 1

        def write_until_failure() -> int:
            try:
                for _ in range(100):  # bounded: a reset shows within a few writes
                    sock.sendall(chunk)
                    time.sleep(0.01)
            except OSError as exc:
                return exc.errno or -1
            return 0

        err = await asyncio.to_thread(write_until_failure)
        assert err in (errno.ECONNRESET, errno.EPIPE), err
        (report,) = await a.wait_reports(1)
        assert report.outcome is Outcome.ABORTED
        assert report.detail == "revision_7"
        assert report.bytes_from_pu >= target
    finally:
        sock.close()
        sink.close()


async def test_many_concurrent_connections_of_mixed_sizes(cluster: Cluster, topo: Topology) -> None:
    """Loop relays interleaved with relays that move to threads mid-stream; every byte exact,
    every connection reported once, nothing left registered."""
    a1, b1 = topo.pu("a1"), topo.pu("b1")
    await cluster.enforce("a1")
    await cluster.enforce("b1")
    server = EchoServer(b1.name, b1.ip, PORT, threads=16)
    sizes = [1, 100, 70_000, 3 * PROMOTE_AFTER // 2] * 8
    payloads = [os.urandom(n) for n in sizes]
    try:
        results = await asyncio.gather(
            *(asyncio.to_thread(_exchange, a1.name, (b1.ip, PORT), p, 10.0) for p in payloads)
        )
        assert [len(r) for r in results] == sizes
        assert all(r == p for r, p in zip(results, payloads, strict=True))
        for node in ("a", "b"):
            reports = await cluster.enforcer(node).wait_reports(len(sizes), within=10.0)
            assert len(reports) == len(sizes)
            assert all(r.outcome is Outcome.CLOSED for r in reports)
            assert sorted(r.bytes_from_pu for r in reports) == sorted(sizes)
            assert len(cluster.enforcer(node).datapath.relays) == 0
        directions = {r.connection.direction for r in cluster.enforcer("a").reports}
        assert directions == {Direction.EGRESS}
    finally:
        server.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_no_descriptor_outlives_the_datapath(cluster: Cluster, topo: Topology) -> None:
    """Pooled pipes, eventfds of promoted relays, stock sockets, TLS sockets: after close()
    the process holds exactly the descriptors it held before the PUs were added."""
    a1, b1 = topo.pu("a1"), topo.pu("b1")
    server = EchoServer(b1.name, b1.ip, PORT, threads=8)
    before = _open_fds()
    try:
        await cluster.enforce("a1")
        await cluster.enforce("b1")
        for action in (Action.ALLOW, Action.ENCRYPT):
            cluster.policy = _fixed(Verdict(action, str(action)))
            payloads = [os.urandom(n) for n in (10, 50_000, 2 * PROMOTE_AFTER)] * 3
            results = await asyncio.gather(
                *(asyncio.to_thread(_exchange, a1.name, (b1.ip, PORT), p, 10.0) for p in payloads)
            )
            assert results == payloads
        for node in ("a", "b"):
            await cluster.enforcer(node).wait_reports(18, within=10.0)
            await cluster.enforcer(node).datapath.close(rules="remove")
        assert _open_fds() == before
    finally:
        server.close()
