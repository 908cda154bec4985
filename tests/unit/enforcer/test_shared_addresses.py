"""Process PUs share their namespace's addresses: a destination is resolved by (address, port).

The source resolves a peer by the ports PUs declare (the directory carries them); this
enforcer's own PUs by the kernel's answer to "whose cgroup owns the socket listening there"
(``listeners.py``, checked here against a real listening socket in a real cgroup). Namespace
PUs, one per address, resolve as before.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry import trace

from trustwire.flows import ConnectionFacts
from trustwire.identity import FiveTuple
from trustwire.policy.decision import DirectionDecision, ReasonCode
from trustwire.policy.labels import Labels
from trustwire.policy.model import Action, ContainerPort, Direction, IPAddress, Protocol, PuType
from trustwire.policy.views import (
    DirectoryEntry,
    EnforcerEndpoint,
    EnforcerView,
    PuView,
    RuleSetView,
)
from trustwire_enforcer.datapath import Action as DatapathAction
from trustwire_enforcer.datapath import Direction as DatapathDirection
from trustwire_enforcer.datapath import InterceptedConnection, PreAuthorizations
from trustwire_enforcer.datapath.cgroups import TrustwireCgroups
from trustwire_enforcer.handshake import Handshake, _combined_egress
from trustwire_enforcer.listeners import ListenerIndex, cgroup_ids
from trustwire_enforcer.policy_state import (
    AppliedPolicy,
    ExternalDestination,
    LocalDestination,
    RemoteDestination,
    resolve_destination,
)

HOST = ipaddress.IPv4Address("10.0.1.1")
PEER_HOST = ipaddress.IPv4Address("10.0.2.1")
_OPEN = RuleSetView((), (), (), Action.ALLOW)


def _pu(pu_id: str, ip: ipaddress.IPv4Address, *ports: int) -> PuView:
    return PuView(
        pu_id,
        pu_id.rpartition(".")[2],
        "shop",
        Labels(),
        PuType.PROCESS,
        (ip,),
        tuple(ContainerPort(p, Protocol.TCP, f"p{p}") for p in ports),
        "node-1",
        False,
        (),
        _OPEN,
        _OPEN,
    )


def _entry(pu_id: str, ip: ipaddress.IPv4Address, *ports: int) -> DirectoryEntry:
    declared = tuple(ContainerPort(p, Protocol.TCP, f"p{p}") for p in ports)
    return DirectoryEntry(pu_id, "td", (ip,), "node-2", PuType.PROCESS, declared)


def _policy(pus: tuple[PuView, ...] = (), peers: tuple[DirectoryEntry, ...] = ()) -> AppliedPolicy:
    view = EnforcerView(
        enforcer_id="node-1",
        pus=pus,
        peers=peers,
        enforcers=(EnforcerEndpoint("node-2", "", ("127.0.0.1:15443",)),),
    )
    return AppliedPolicy(view, 3)


def test_a_source_picks_the_peer_declaring_the_port_among_pus_sharing_an_address() -> None:
    web, api = _entry("node-2.web", PEER_HOST, 8080), _entry("node-2.api", PEER_HOST, 9090)
    policy = _policy(peers=(web, api))
    for port, expected in ((8080, "node-2.web"), (9090, "node-2.api")):
        destination = resolve_destination(policy, "node-1", PEER_HOST, port)
        assert isinstance(destination, RemoteDestination)
        assert [e.pu_id for e in destination.entries] == [expected]
    # Nobody declares the port: every PU at the address is a candidate; the destination
    # enforcer's answer names the one that listens.
    undeclared = resolve_destination(policy, "node-1", PEER_HOST, 7000)
    assert isinstance(undeclared, RemoteDestination)
    assert {e.pu_id for e in undeclared.entries} == {"node-2.web", "node-2.api"}


def test_one_pu_per_address_resolves_whatever_the_port() -> None:
    single = _entry("node-2.db", PEER_HOST)
    policy = _policy(pus=(_pu("node-1.web", HOST),), peers=(single,))
    remote = resolve_destination(policy, "node-1", PEER_HOST, 1234)
    assert isinstance(remote, RemoteDestination)
    assert remote.entries == (single,)
    local = resolve_destination(policy, "node-1", HOST, 1234)
    assert isinstance(local, LocalDestination)
    assert local.pu.id == "node-1.web"
    # No kernel question is asked for a single PU.
    assert policy.local_pu_at(HOST, 1234, lambda pus, port: None) is not None


def test_own_pus_sharing_an_address_resolve_by_the_listening_socket_then_declared_ports() -> None:
    web, api = _pu("node-1.web", HOST, 8080), _pu("node-1.api", HOST)
    policy = _policy(pus=(web, api))
    asked: list[int] = []

    def api_listens(pus: tuple[PuView, ...], port: int) -> PuView | None:
        asked.append(port)
        return api if port == 9090 else None

    # The kernel's answer wins, even over a declaration.
    assert policy.local_pu_at(HOST, 9090, api_listens) is api
    # Nobody listens: the PU declaring the port (its listener may not be up yet).
    assert policy.local_pu_at(HOST, 8080, api_listens) is web
    assert asked == [9090, 8080]
    # Neither: nobody to authorize for, and a local source decides it as an address.
    assert policy.local_pu_at(HOST, 7000, api_listens) is None
    assert isinstance(resolve_destination(policy, "node-1", HOST, 7000), ExternalDestination)


def test_the_intent_sent_for_several_candidates_rejects_only_if_all_are_rejected() -> None:
    def decision(allowed: bool, encrypted: bool = False) -> DirectionDecision:
        return DirectionDecision(Direction.EGRESS, allowed, encrypted, ReasonCode.POLICY_ALLOW)

    reject, allow, encrypt = decision(False), decision(True), decision(True, True)
    assert _combined_egress([reject, reject]) is Action.REJECT
    assert _combined_egress([reject, allow]) is Action.ALLOW
    assert _combined_egress([allow, encrypt]) is Action.ENCRYPT
    assert _combined_egress([reject, encrypt]) is Action.ENCRYPT
    assert _combined_egress([reject]) is Action.REJECT


@pytest.fixture
def cgroup() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root (a cgroup)")
    tree = TrustwireCgroups()
    path = tree.create(f"unit-listeners-{os.getpid()}")
    try:
        yield path
    finally:
        TrustwireCgroups.kill(path)
        TrustwireCgroups.remove(path)  # the child was reaped by the test: the cgroup is empty


def test_the_kernel_names_the_cgroup_owning_a_listening_socket(cgroup: Path) -> None:
    """A process in ``cgroup`` listens (dual-stack ``::``, as many servers do): the listener
    dump finds it, for any local IPv4 address, with the cgroup's id; an IPv4 listener of this
    process (another cgroup) on another port is not confused with it."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, sys\n"
            "s = socket.socket(socket.AF_INET6)\n"
            "s.bind(('::', 0)); s.listen()\n"
            "print(s.getsockname()[1], flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: (cgroup / "cgroup.procs").write_text(str(os.getpid())),
    )
    mine = socket.socket()
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        mine.bind(("127.0.0.1", 0))
        mine.listen()
        index = ListenerIndex()
        try:
            inode = os.stat("/proc/self/ns/net").st_ino
            found = index.listeners("/proc/self/ns/net", inode, HOST, port)
            assert {listener.cgroup_id for listener in found} <= cgroup_ids(cgroup)
            assert len(found) == 1
            other = index.listeners("/proc/self/ns/net", inode, HOST, mine.getsockname()[1])
            assert other == []  # bound to 127.0.0.1 only: not reachable at HOST
            loopback = ipaddress.IPv4Address("127.0.0.1")
            assert not {
                listener.cgroup_id
                for listener in index.listeners(
                    "/proc/self/ns/net", inode, loopback, mine.getsockname()[1]
                )
            } & cgroup_ids(cgroup)
        finally:
            index.close()
    finally:
        mine.close()
        child.kill()
        child.wait()


class _Trust:
    spiffe_id = "spiffe://td/enforcer/node-1"

    class credential:
        class trust_domain:
            name = "td"


class _Pus:
    """This enforcer's PUs as the handshake sees them; ``api`` listens on every port."""

    def document(self, pu_id: str) -> bytes | None:
        return b"doc"

    def listening_pu(self, pu_ids: Sequence[str], ip: IPAddress, port: int) -> str | None:
        return "node-1.api" if "node-1.api" in pu_ids else None


class _Flows:
    def __init__(self) -> None:
        self.facts: list[ConnectionFacts] = []

    def record(self, facts: ConnectionFacts) -> None:
        self.facts.append(facts)


async def test_a_grant_decided_for_one_pu_never_admits_a_connection_to_another() -> None:
    """A local source connects to the shared address: the kernel names ``api`` as listener,
    so the inbound side is granted to ``api``. Should the connection reach ``admin``'s
    listener instead (ports shared with SO_REUSEPORT, a listener that moved), the grant is not
    used for it: refused, and recorded under ``admin`` with ADDRESS_MISMATCH."""
    web = _pu("node-1.web", ipaddress.IPv4Address("10.0.1.2"))
    api, admin = _pu("node-1.api", HOST), _pu("node-1.admin", HOST)
    policy = _policy(pus=(web, api, admin))
    flows = _Flows()
    handshake = Handshake(
        enforcer_id="node-1",
        trust=_Trust(),  # type: ignore[arg-type]
        identities=_Pus(),
        policy=lambda: policy,
        channels=None,  # type: ignore[arg-type]
        grants=PreAuthorizations(),
        flows=flows,  # type: ignore[arg-type]
        tracer=trace.get_tracer("test"),
    )
    wire = FiveTuple(Protocol.TCP, web.ips[0], 40000, HOST, 9090)
    outbound = await handshake.decide(
        InterceptedConnection(1, web.id, DatapathDirection.EGRESS, wire, wire)
    )
    assert outbound.action is DatapathAction.ALLOW
    misdelivered = await handshake.decide(
        InterceptedConnection(2, admin.id, DatapathDirection.INGRESS, wire)
    )
    assert misdelivered.action is DatapathAction.REJECT
    assert misdelivered.reason == "ADDRESS_MISMATCH"
    # The grant was single-use and is gone: a second arrival is decided without one.
    assert handshake.grants.take(wire) is None
