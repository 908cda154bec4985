"""Proxy-mode datapath on real namespaces: allow, reject, encrypt (with capture), revoke,
fail-closed, cleanup. Clients run on threads (``asyncio.to_thread``) because the datapath under
test runs on this test's event loop."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import secrets
import socket
import time
from collections.abc import Callable

import pytest

from tests.e2e.datapath.conftest import Cluster
from tests.support.netns import (
    LINK_IF,
    EchoServer,
    Sniffer,
    Topology,
    connect_in,
    existing_namespaces,
)
from trustwire_enforcer.datapath import (
    Action,
    Direction,
    FiveTuple,
    InterceptedConnection,
    Outcome,
    Verdict,
)
from trustwire_enforcer.datapath.netns import run_command_in_netns
from trustwire_enforcer.datapath.rules import installed_ruleset

pytestmark = pytest.mark.e2e

PORT = 7000


def _exchange(netns: str, address: tuple[str, int], payload: bytes, timeout: float = 3.0) -> bytes:
    """Connect, send everything, half-close, read until the server's FIN."""
    sock = connect_in(netns, address, timeout)
    try:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        sock.close()


def _fixed(verdict: Verdict) -> Callable[[InterceptedConnection], Verdict]:
    return lambda conn: verdict


def _expect_reset(netns: str, address: tuple[str, int], timeout: float = 3.0) -> tuple[int, float]:
    """Connect and try one request; return (errno, seconds until the failure). Proxy mode
    completes the TCP handshake with the local listener, so a rejection shows up as a reset on
    the first read (or as a refusal at connect when the kernel rejects)."""
    started = time.monotonic()
    try:
        sock = connect_in(netns, address, timeout)
    except OSError as exc:
        return exc.errno or -1, time.monotonic() - started
    try:
        try:
            sock.sendall(b"hello")
            data = sock.recv(100)
        except OSError as exc:
            return exc.errno or -1, time.monotonic() - started
        return (0 if data else -2), time.monotonic() - started
    finally:
        sock.close()


async def test_allowed_traffic_passes_both_ways_with_exact_bytes(
    cluster: Cluster, topo: Topology
) -> None:
    a1, b1 = topo.pu("a1"), topo.pu("b1")
    await cluster.enforce("a1")
    await cluster.enforce("b1")
    server_b = EchoServer(b1.name, b1.ip, PORT)
    server_a = EchoServer(a1.name, a1.ip, PORT)
    try:
        payload = os.urandom(3 * 1024 * 1024 + 17)
        echoed = await asyncio.to_thread(_exchange, a1.name, (b1.ip, PORT), payload)
        assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()
        back = os.urandom(100_003)
        assert await asyncio.to_thread(_exchange, b1.name, (a1.ip, PORT), back) == back
        # Both connections went through both enforcers: one outbound and one inbound relay each.
        reports_a = await cluster.enforcer("a").wait_reports(2)
        reports_b = await cluster.enforcer("b").wait_reports(2)
        assert cluster.handshakes == 2
        out_a = next(r for r in reports_a if r.connection.direction is Direction.EGRESS)
        in_b = next(r for r in reports_b if r.connection.direction is Direction.INGRESS)
        assert out_a.outcome is Outcome.CLOSED
        assert in_b.outcome is Outcome.CLOSED
        assert out_a.bytes_from_pu == len(payload) == out_a.bytes_to_pu
        assert in_b.bytes_to_pu == len(payload) == in_b.bytes_from_pu
        # The destination observed exactly the tuple the source bound (and would have signed).
        assert in_b.connection.five_tuple == out_a.connection.upstream
        assert out_a.connection.upstream is not None
        assert out_a.connection.five_tuple.source_ip == out_a.connection.upstream.source_ip
    finally:
        server_a.close()
        server_b.close()


async def test_rejected_connection_fails_fast_with_reset(cluster: Cluster, topo: Topology) -> None:
    a1, b1 = topo.pu("a1"), topo.pu("b1")
    await cluster.enforce("a1")
    await cluster.enforce("b1")
    cluster.policy = lambda conn: Verdict.reject("test_denied", rule="deny-7000")
    server = EchoServer(b1.name, b1.ip, PORT)
    try:
        err, elapsed = await asyncio.to_thread(_expect_reset, a1.name, (b1.ip, PORT))
        assert err in (errno.ECONNRESET, errno.ECONNREFUSED, errno.EPIPE), err
        assert elapsed < 1.0, f"rejection took {elapsed:.3f}s: looks like a timeout"
        (report,) = await cluster.enforcer("a").wait_reports(1)
        assert report.outcome is Outcome.REJECTED
        assert report.detail == "test_denied"
        assert server.peers == []  # nothing reached the destination PU
    finally:
        server.close()


async def test_inbound_without_authorization_is_rejected(cluster: Cluster, topo: Topology) -> None:
    """A source without an enforcer (a2 is not enforced) has no grant at b: default reject."""
    a2, b1 = topo.pu("a2"), topo.pu("b1")
    await cluster.enforce("b1")
    server = EchoServer(b1.name, b1.ip, PORT)
    try:
        err, elapsed = await asyncio.to_thread(_expect_reset, a2.name, (b1.ip, PORT))
        assert err in (errno.ECONNRESET, errno.ECONNREFUSED, errno.EPIPE)
        assert elapsed < 1.0
        (report,) = await cluster.enforcer("b").wait_reports(1)
        assert report.connection.direction is Direction.INGRESS
        assert report.outcome is Outcome.REJECTED
        assert report.detail == "no_authorization"
        assert server.peers == []
    finally:
        server.close()


async def test_kernel_blocked_destination_is_refused_without_userspace(
    cluster: Cluster, topo: Topology
) -> None:
    import ipaddress

    from trustwire_enforcer.datapath.rules import set_blocked_outbound

    a1, b1 = topo.pu("a1"), topo.pu("b1")
    await cluster.enforce("a1")
    await asyncio.to_thread(set_blocked_outbound, a1.name, [(ipaddress.IPv4Address(b1.ip), PORT)])
    err, elapsed = await asyncio.to_thread(_expect_reset, a1.name, (b1.ip, PORT))
    assert err == errno.ECONNREFUSED
    assert elapsed < 1.0
    assert cluster.enforcer("a").reports == []  # decided in the kernel


async def test_encrypt_hides_plaintext_on_the_wire_and_allow_does_not(
    cluster: Cluster, topo: Topology
) -> None:
    a1, b1 = topo.pu("a1"), topo.pu("b1")
    await cluster.enforce("a1")
    await cluster.enforce("b1")
    server = EchoServer(b1.name, b1.ip, PORT)
    wire = topo.hosts["a"].name
    try:
        for action in (Action.ENCRYPT, Action.ALLOW):
            cluster.policy = _fixed(Verdict(action, str(action)))
            marker = b"TW-MARKER-" + secrets.token_hex(16).encode()
            payload = marker * 64
            sniffer = Sniffer(wire, LINK_IF)
            try:
                echoed = await asyncio.to_thread(_exchange, a1.name, (b1.ip, PORT), payload)
            finally:
                captured = sniffer.stop()
            assert echoed == payload
            assert sniffer.frames > 0
            if action is Action.ENCRYPT:
                assert marker not in captured, "plaintext crossed the wire under encrypt"
            else:
                assert marker in captured, "capture saw no plaintext for allow: capture is broken"
        reports = await cluster.enforcer("b").wait_reports(2)
        assert [r.verdict.action for r in reports if r.verdict] == [Action.ENCRYPT, Action.ALLOW]
        assert all(r.outcome is Outcome.CLOSED for r in reports)
    finally:
        server.close()


async def test_encrypt_refuses_an_unexpected_peer_enforcer(
    cluster: Cluster, topo: Topology
) -> None:
    """The destination expects the TLS peer named by the handshake; a different (valid) identity
    is refused, so one enforcer's grant cannot be used by another."""
    a1, b1 = topo.pu("a1"), topo.pu("b1")
    await cluster.enforce("a1")
    await cluster.enforce("b1")
    cluster.policy = lambda conn: Verdict.encrypt(None)
    b = cluster.enforcer("b")
    original_grant = b.grants.grant

    def grant_expecting_someone_else(
        ft: FiveTuple, verdict: Verdict, ttl: float | None = None
    ) -> None:
        original_grant(ft, Verdict.encrypt("spiffe://td/enforcer/mallory"), ttl)

    b.grants.grant = grant_expecting_someone_else  # type: ignore[method-assign, assignment]
    server = EchoServer(b1.name, b1.ip, PORT)
    try:
        err, elapsed = await asyncio.to_thread(_expect_reset, a1.name, (b1.ip, PORT))
        assert err in (errno.ECONNRESET, errno.EPIPE, -2)
        assert elapsed < 1.0
        (report,) = await b.wait_reports(1)
        assert report.outcome is Outcome.PEER_REJECTED
        assert "mallory" in report.detail
        assert server.peers == []
    finally:
        server.close()


async def test_encrypt_resumes_between_enforcers_and_still_checks_the_peer(
    cluster: Cluster, topo: Topology
) -> None:
    """Later connections between the same enforcers resume the first one's TLS session (ADR
    0012), and the destination's peer identity check still refuses a resumed session whose
    certificate is not the enforcer the handshake named."""
    a1, b1 = topo.pu("a1"), topo.pu("b1")
    await cluster.enforce("a1")
    await cluster.enforce("b1")
    cluster.policy = lambda conn: Verdict.encrypt(None)  # the fake handshake names the peers
    a, b = cluster.enforcer("a"), cluster.enforcer("b")
    server = EchoServer(b1.name, b1.ip, PORT)
    try:
        for _ in range(3):
            payload = secrets.token_bytes(4096)
            assert await asyncio.to_thread(_exchange, a1.name, (b1.ip, PORT), payload) == payload
        await b.wait_reports(3)
        a_stats, b_stats = a.datapath.tls_stats(), b.datapath.tls_stats()
        assert a_stats is not None
        assert b_stats is not None
        assert (a_stats.full, a_stats.resumed) == (1, 2)
        assert (b_stats.full, b_stats.resumed) == (1, 2)

        original_grant = b.grants.grant

        def grant_expecting_someone_else(
            ft: FiveTuple, verdict: Verdict, ttl: float | None = None
        ) -> None:
            original_grant(ft, Verdict.encrypt("spiffe://td/enforcer/mallory"), ttl)

        b.grants.grant = grant_expecting_someone_else  # type: ignore[method-assign, assignment]
        err, _ = await asyncio.to_thread(_expect_reset, a1.name, (b1.ip, PORT))
        assert err in (errno.ECONNRESET, errno.EPIPE, -2)
        reports = await b.wait_reports(4)
        assert reports[-1].outcome is Outcome.PEER_REJECTED
        assert "mallory" in reports[-1].detail
        b_after = b.datapath.tls_stats()
        assert b_after is not None
        assert b_after.resumed == 3, "the refused session was resumed"
        assert len(server.peers) == 3  # the refused peer never reached the application
    finally:
        server.close()


async def test_policy_change_closes_established_connection(
    cluster: Cluster, topo: Topology
) -> None:
    a1, b1 = topo.pu("a1"), topo.pu("b1")
    await cluster.enforce("a1")
    await cluster.enforce("b1")
    server = EchoServer(b1.name, b1.ip, PORT)
    sock = await asyncio.to_thread(connect_in, a1.name, (b1.ip, PORT))
    try:
        await asyncio.to_thread(sock.sendall, b"ping")
        assert await asyncio.to_thread(sock.recv, 100) == b"ping"

        def denied(conn: InterceptedConnection) -> bool:
            return conn.five_tuple.destination_port == PORT

        closed = cluster.enforcer("a").datapath.close_where(
            lambda r: denied(r.connection), "revision_42"
        )
        assert closed == 1
        started = time.monotonic()

        def read_until_failure() -> int:
            sock.settimeout(2.0)
            try:
                return -2 if sock.recv(100) == b"" else 0
            except OSError as exc:
                return exc.errno or -1

        err = await asyncio.to_thread(read_until_failure)
        assert err == errno.ECONNRESET, err  # an abort, not a clean end of stream
        assert time.monotonic() - started < 1.0
        reports = await cluster.enforcer("a").wait_reports(1)
        assert reports[0].outcome is Outcome.ABORTED
        assert reports[0].detail == "revision_42"
        # The destination side's relay ends too (the reset propagates).
        reports_b = await cluster.enforcer("b").wait_reports(1)
        assert reports_b[0].outcome in (Outcome.RESET, Outcome.CLOSED)
    finally:
        sock.close()
        server.close()


async def test_fail_closed_when_listeners_are_gone(cluster: Cluster, topo: Topology) -> None:
    """What a crashed enforcer leaves: rules without listeners. The PU cannot connect out (nor
    be reached), and fails fast. Then the orderly-stop variants: closed keeps it closed with the
    CLOSED table; open removes the rules."""
    a1, b1 = topo.pu("a1"), topo.pu("b1")
    a = cluster.enforcer("a")
    server = EchoServer(b1.name, b1.ip, PORT)
    try:
        await cluster.enforce("a1")
        await a.datapath.remove_pu("a1", rules="keep")  # listeners gone, rules stay
        err, elapsed = await asyncio.to_thread(_expect_reset, a1.name, (b1.ip, PORT))
        assert err == errno.ECONNREFUSED
        assert elapsed < 1.0
        assert server.peers == []

        await cluster.enforce("a1")
        await a.datapath.remove_pu("a1", rules="fail_mode")  # default fail mode: closed
        table = await asyncio.to_thread(installed_ruleset, a1.name)
        assert table is not None
        assert {c["name"] for c in table["chains"]} == {"closed_out", "closed_in"}
        err, elapsed = await asyncio.to_thread(_expect_reset, a1.name, (b1.ip, PORT))
        assert err == errno.ECONNREFUSED
        assert elapsed < 1.0

        from trustwire_enforcer.datapath import FailMode

        await a.datapath.add_pu("a1", a1.name, fail_mode=FailMode.OPEN)
        await a.datapath.remove_pu("a1", rules="fail_mode")
        assert await asyncio.to_thread(installed_ruleset, a1.name) is None
        assert await asyncio.to_thread(_exchange, a1.name, (b1.ip, PORT), b"open") == b"open"
        assert len(server.peers) == 1
    finally:
        server.close()


async def test_direct_connection_to_a_listener_port_is_refused(
    cluster: Cluster, topo: Topology
) -> None:
    a2, b1 = topo.pu("a2"), topo.pu("b1")
    await cluster.enforce("b1")
    err, elapsed = await asyncio.to_thread(_expect_reset, a2.name, (b1.ip, 15006))
    assert err in (errno.ECONNRESET, errno.ECONNREFUSED, errno.EPIPE)
    assert elapsed < 1.0
    (report,) = await cluster.enforcer("b").wait_reports(1)
    assert report.outcome is Outcome.NOT_REDIRECTED


async def test_rules_are_idempotent_and_cleanup_leaves_nothing(
    cluster: Cluster, topo: Topology
) -> None:
    from trustwire_enforcer.datapath.rules import PuRuleset, apply_ruleset, remove_ruleset

    a1 = topo.pu("a1")
    await cluster.enforce("a1")
    first = await asyncio.to_thread(installed_ruleset, a1.name)
    await asyncio.to_thread(apply_ruleset, a1.name, PuRuleset())
    await asyncio.to_thread(apply_ruleset, a1.name, PuRuleset())
    again = await asyncio.to_thread(installed_ruleset, a1.name)
    assert first is not None
    assert again is not None
    assert len(again["rules"]) == len(first["rules"])
    await cluster.enforcer("a").datapath.remove_pu("a1")
    assert await asyncio.to_thread(installed_ruleset, a1.name) is None
    await asyncio.to_thread(remove_ruleset, a1.name)  # removing twice is fine
    listing = await asyncio.to_thread(run_command_in_netns, a1.name, ["nft", "list", "ruleset"])
    assert listing.stdout.strip() == ""
    names = [ns.name for ns in topo.pus.values()] + [h.name for h in topo.hosts.values()]
    assert set(names) <= existing_namespaces()
    topo.destroy()
    assert not set(names) & existing_namespaces()
