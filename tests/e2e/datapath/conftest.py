"""Two enforcers (hosts a and b), each a ProxyDatapath in this process, on a real topology.

The handshake is a fake with the real shape: the source's ``decide`` looks the destination up
in a directory, evaluates a test-set policy, and (for allow/encrypt) records a grant in the
destination enforcer's ``PreAuthorizations`` under ``conn.upstream``: the tuple the source
enforcer bound, exactly what a real ``Authorize`` would carry. The destination's ``decide`` is
the library's ``inbound_decider``: it must find that grant by the tuple its listener observes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import pytest

from tests.e2e.datapath.pki import ThrowawayCa
from tests.support.netns import Topology, build_topology, unique_prefix
from trustwire_enforcer.datapath import (
    ConnectionReport,
    Decider,
    Direction,
    InterceptedConnection,
    PreAuthorizations,
    ProxyDatapath,
    Verdict,
    inbound_decider,
)


@pytest.fixture(scope="session")
def ca() -> ThrowawayCa:
    return ThrowawayCa()


# ------------------------------------------------------------------------ topology


@pytest.fixture
def topo() -> Iterator[Topology]:
    topology = build_topology(unique_prefix(), pus_per_host=2)
    try:
        yield topology
    finally:
        topology.destroy()


# ------------------------------------------------------------------- enforcers


Policy = Callable[[InterceptedConnection], Verdict]


def allow_all(conn: InterceptedConnection) -> Verdict:
    return Verdict.allow()


@dataclass
class Enforcer:
    node: str
    spiffe_id: str
    grants: PreAuthorizations
    datapath: ProxyDatapath = field(init=False)
    reports: list[ConnectionReport] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, report: ConnectionReport) -> None:
        self.reports.append(report)
        self._arrived.set()

    async def wait_reports(self, count: int, within: float = 3.0) -> list[ConnectionReport]:
        """Reports arrive on the loop after the relay thread ends; wait (bounded) for them."""
        async with asyncio.timeout(within):
            while len(self.reports) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return list(self.reports)


@dataclass
class Cluster:
    """The directory (PU IP -> enforcer) and the policy the fake handshake applies."""

    topo: Topology
    enforcers: dict[str, Enforcer] = field(default_factory=dict)
    directory: dict[str, str] = field(default_factory=dict)  # PU ip -> node
    policy: Policy = allow_all
    handshakes: int = 0

    def enforcer(self, node: str) -> Enforcer:
        return self.enforcers[node]

    async def enforce(self, pu_key: str) -> None:
        pu = self.topo.pu(pu_key)
        await self.enforcers[pu.host].datapath.add_pu(pu_key, pu.name)
        self.directory[pu.ip] = pu.host


def _make_decider(cluster: Cluster, node: str) -> Decider:
    async def outbound(conn: InterceptedConnection) -> Verdict:
        assert conn.direction is Direction.EGRESS
        assert conn.upstream is not None
        dest_node = cluster.directory.get(str(conn.five_tuple.destination_ip))
        verdict = cluster.policy(conn)
        if dest_node is None or verdict.action == "reject":
            return verdict  # external destination, or denied at the source
        cluster.handshakes += 1
        me, dest = cluster.enforcers[node], cluster.enforcers[dest_node]
        # What the destination enforcer does on Authorize: pre-authorize the signed tuple,
        # naming the source enforcer as the TLS peer to expect.
        dest.grants.grant(
            conn.upstream, Verdict(verdict.action, verdict.reason, verdict.rule, me.spiffe_id)
        )
        return Verdict(verdict.action, verdict.reason, verdict.rule, dest.spiffe_id)

    return outbound


@pytest.fixture
async def cluster(topo: Topology, ca: ThrowawayCa) -> AsyncIterator[Cluster]:
    cl = Cluster(topo)
    for node in topo.hosts:
        cred = ca.enforcer(node)
        grants = PreAuthorizations(ttl=5.0)
        enforcer = Enforcer(node, cred.spiffe_id, grants)
        enforcer.datapath = ProxyDatapath(
            inbound_decider(grants, _make_decider(cl, node)),
            tls=cred.tls(),
            on_report=enforcer.record,
            decide_timeout=2.0,
            connect_timeout=2.0,
            handshake_timeout=2.0,
        )
        cl.enforcers[node] = enforcer
    try:
        yield cl
    finally:
        for enforcer in cl.enforcers.values():
            await enforcer.datapath.close(rules="remove")
