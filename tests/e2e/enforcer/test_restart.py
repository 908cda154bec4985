"""Killing an enforcer process blocks its fail-closed PUs; the restarted process enforces
from what it saved on disk while the policy service is still down.

Enforcer b runs as ``python -m trustwire_enforcer`` (a real process, killed with SIGKILL);
enforcer a runs in this test's process. Enforcer b's state is read through its local API:
there is no event to wait on across the process boundary, so those waits poll, bounded.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from pathlib import Path

import pytest

from tests.e2e.enforcer.conftest import HostFactory
from tests.e2e.enforcer.harness import (
    PORT,
    ControlPlane,
    EnforcerProcess,
    Host,
    WireCapture,
    attempt,
    converge,
    enforcer_settings,
    exchange,
    flows_between,
    flush_flows,
    knows,
    names_policy,
)
from tests.e2e.enforcer.test_enforcer import MARKER, SHOP
from tests.support.netns import LINK_IF, EchoServer, Topology
from tests.support.waiting import eventually
from trustwire.api.enforcer.v1 import enforcer_local_service_pb2 as local_pb
from trustwire_enforcer.local_api import LocalApiClient

pytestmark = [pytest.mark.e2e, pytest.mark.etcd]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def status(client: LocalApiClient) -> local_pb.StatusResponse:
    return local_pb.StatusResponse.FromString(await client.call("Status", b""))


async def test_killed_enforcer_fails_closed_and_restarts_from_its_saved_state(
    plane: ControlPlane, hosts: HostFactory, topo: Topology, tmp_path: Path
) -> None:
    a = await hosts("a")
    settings = await enforcer_settings(
        plane, "node-b", tmp_path / "node-b", listen_address=f"127.0.0.1:{free_port()}"
    )
    b = EnforcerProcess(settings, log=tmp_path / "node-b.log")
    local_b = LocalApiClient(settings.local_socket)
    a1, a2, b1 = topo.pu("a1"), topo.pu("a2"), topo.pu("b1")
    server = EchoServer(b1.name, b1.ip, PORT)
    outside = EchoServer(a1.name, a1.ip, PORT + 1)
    try:
        await b.start()
        web = await a.add_pu(a1.name, labels={"app": "web"})
        await a.add_pu(a2.name, labels={"app": "batch"})
        db = await Host("b", a.enforcer, local_b).add_pu(b1.name, labels={"app": "db"})
        revision = await plane.apply(SHOP)
        await converge([a], lambda view: knows(db)(view) and names_policy("batch-never-db")(view))

        async def b_applied() -> bool:
            return (await status(local_b)).applied_revision >= revision

        await eventually(b_applied)
        assert await asyncio.to_thread(exchange, a1.name, (b1.ip, PORT), b"one") == b"one"
        code, _ = await asyncio.to_thread(attempt, a2.name, (b1.ip, PORT))
        assert code != 0

        b.kill()
        # Fail closed: nothing reaches b1, and b1 reaches nothing, at once (no timeout).
        code, elapsed = await asyncio.to_thread(attempt, a1.name, (b1.ip, PORT))
        assert code != 0
        assert elapsed < 1.0
        code, elapsed = await asyncio.to_thread(attempt, b1.name, (a1.ip, PORT + 1))
        assert code == errno.ECONNREFUSED
        assert elapsed < 1.0

        # The control plane goes away; the restarted enforcer has only its disk.
        await plane.stop_policy()
        await b.start()
        now = await status(local_b)
        assert now.applied_revision >= revision
        listed = local_pb.ListPusResponse.FromString(await local_b.call("ListPus", b""))
        assert [p.pu.id for p in listed.pus] == [db]
        assert listed.pus[0].state == local_pb.LOCAL_PU_STATE_ENFORCED
        assert await asyncio.to_thread(exchange, a1.name, (b1.ip, PORT), b"two") == b"two"
        code, elapsed = await asyncio.to_thread(attempt, a2.name, (b1.ip, PORT))
        assert code != 0
        assert elapsed < 1.0
        assert web
    finally:
        b.terminate()
        server.close()
        outside.close()


ENCRYPT_WEB_DB = """
apiVersion: trustwire.io/v1
kind: NetworkAccessPolicy
metadata: {name: web-to-db-sealed, namespace: shop}
spec:
  priority: 10
  subject: {matchLabels: {app: web}}
  object: {matchLabels: {app: db}}
  ports: [{protocol: TCP, port: 7000}]
  action: encrypt
"""


async def test_the_source_alone_can_require_encryption(
    plane: ControlPlane, hosts: HostFactory, topo: Topology, tmp_path: Path
) -> None:
    """Two enforcers on different views: a's says encrypt web -> db, b's (restored from disk
    while the policy service is down) still says allow. a asks b for encryption in its
    Authorize; b, which allows, grants it encrypted: the payload never crosses the link in
    clear, and both sides record an encrypted connection. Before the request carried the
    source's decision, a refused the connection (PEER_REJECTED)."""
    a = await hosts("a")
    settings = await enforcer_settings(
        plane, "node-b", tmp_path / "node-b", listen_address=f"127.0.0.1:{free_port()}"
    )
    b = EnforcerProcess(settings, log=tmp_path / "node-b.log")
    local_b = LocalApiClient(settings.local_socket)
    a1, b1 = topo.pu("a1"), topo.pu("b1")
    server = EchoServer(b1.name, b1.ip, PORT)
    policy_address = plane.policy_address
    try:
        await b.start()
        web = await a.add_pu(a1.name, labels={"app": "web"})
        db = await Host("b", a.enforcer, local_b).add_pu(b1.name, labels={"app": "db"})
        allowed = await plane.apply(SHOP)

        async def b_applied(revision: int) -> bool:
            return (await status(local_b)).applied_revision >= revision

        await eventually(lambda: b_applied(allowed))
        b.kill()
        sealed = await plane.apply(ENCRYPT_WEB_DB)
        await converge([a], lambda view: knows(db)(view) and names_policy("web-to-db-sealed")(view))
        await plane.stop_policy()
        await b.start()  # its saved view: allow, no encrypt
        assert allowed <= (await status(local_b)).applied_revision < sealed

        sniffer = WireCapture(topo.hosts["a"].name, LINK_IF)
        try:
            echoed = await asyncio.to_thread(exchange, a1.name, (b1.ip, PORT), MARKER)
        finally:
            captured = sniffer.stop()
        assert echoed == MARKER
        assert MARKER[:40] not in captured
        assert len(captured) > len(MARKER)

        await plane.start_policy(policy_address)
        await flush_flows(a)

        async def both_recorded() -> bool:
            return set(flows_between(await plane.flows(), web, db)) == {"egress", "ingress"}

        await eventually(both_recorded)
        pair = flows_between(await plane.flows(), web, db)
        assert pair["egress"].decision.reason == "POLICY_ENCRYPT"
        assert pair["egress"].decision.encrypted
        # b decided on its own (older) view: an allow, encrypted because a required it.
        assert pair["ingress"].decision.reason == "POLICY_ALLOW"
        assert pair["ingress"].decision.policy == "shop/web-to-db"
        assert pair["ingress"].decision.encrypted
        assert pair["ingress"].revision < sealed
        assert pair["egress"].revision >= sealed
    finally:
        b.terminate()
        server.close()
