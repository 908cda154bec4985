"""The policy this enforcer applies: one compiled view at one revision, and the questions the
handshake asks of it.

An :class:`AppliedPolicy` is immutable: a new revision is a new object swapped in whole, so a
decision in flight keeps the view it started with, and every decision names the revision it
was made on. The directory answers "who is at this address and port": one of this enforcer's
PUs, an enforced peer PU (and the enforcer that serves it) or an address without an enforcer
(an external network, or nothing known).

An address is one PU's, except for process PUs, which share their network namespace's
addresses with each other: there the port decides. The directory carries the ports each PU
declares (``trustwire run --port``), so a source picks the PU declaring the destination port;
this enforcer's own PUs are resolved by the kernel (which PU's cgroup owns the listening
socket), given as ``listening``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from trustwire.policy.decision import DirectionDecision
from trustwire.policy.labels import Labels
from trustwire.policy.model import ContainerPort, Direction, IPAddress, Protocol, Scores
from trustwire.policy.views import (
    DirectoryEntry,
    EnforcerEndpoint,
    EnforcerView,
    ExternalNetworkView,
    Peer,
    PuView,
    ViewEvaluator,
)
from trustwire.policy.views.evaluator import longest_prefix_included
from trustwire.policy.views.model import PeerSet

__all__ = [
    "AppliedPolicy",
    "ExternalDestination",
    "Listening",
    "LocalDestination",
    "RemoteDestination",
    "declares",
    "resolve_destination",
]

# Of several local PUs sharing an address, the one listening on the port (None: not known).
Listening = Callable[[tuple[PuView, ...], int], PuView | None]


@dataclass(frozen=True, slots=True)
class LocalDestination:
    """The destination is a PU this enforcer serves (same host)."""

    pu: PuView


@dataclass(frozen=True, slots=True)
class RemoteDestination:
    """An enforced PU on another enforcer: ask it (``Authorize``) before connecting.

    ``entries`` holds one PU, or, where several process PUs share the address and none
    declares the port, each of them (all served by ``enforcer``): the destination enforcer
    knows which one listens, and its answer names it."""

    entries: tuple[DirectoryEntry, ...]
    enforcer: EnforcerEndpoint

    @property
    def entry(self) -> DirectoryEntry:
        return self.entries[0]


@dataclass(frozen=True, slots=True)
class ExternalDestination:
    """No enforcer to ask: egress by CIDR rules only. ``network`` names the most specific
    external network containing the address ("" when none does)."""

    ip: IPAddress
    network: str = ""
    labels: Labels = field(default_factory=Labels)


Destination = LocalDestination | RemoteDestination | ExternalDestination


@dataclass(frozen=True)
class AppliedPolicy:
    view: EnforcerView
    revision: int

    @cached_property
    def evaluator(self) -> ViewEvaluator:
        return ViewEvaluator(self.view)

    @cached_property
    def _local_by_ip(self) -> dict[IPAddress, tuple[PuView, ...]]:
        found: dict[IPAddress, list[PuView]] = {}
        for pu in self.view.pus:
            for ip in pu.ips:
                found.setdefault(ip, []).append(pu)
        return {ip: tuple(pus) for ip, pus in found.items()}

    @cached_property
    def _peer_by_ip(self) -> dict[IPAddress, tuple[DirectoryEntry, ...]]:
        found: dict[IPAddress, list[DirectoryEntry]] = {}
        for entry in self.view.peers:
            for ip in entry.ips:
                found.setdefault(ip, []).append(entry)
        return {ip: tuple(entries) for ip, entries in found.items()}

    @cached_property
    def _enforcers(self) -> dict[str, EnforcerEndpoint]:
        return {e.enforcer_id: e for e in self.view.enforcers}

    def pu(self, pu_id: str) -> PuView | None:
        return self.view.pus_by_id.get(pu_id)

    def local_pus_at(self, ip: IPAddress) -> tuple[PuView, ...]:
        """This enforcer's PUs at ``ip``: one, or several process PUs sharing a namespace."""
        return self._local_by_ip.get(ip, ())

    def local_pu_at(
        self, ip: IPAddress, port: int, listening: Listening | None = None
    ) -> PuView | None:
        """The PU of this enforcer a connection to ``ip:port`` is for. Where PUs share the
        address: the one ``listening`` names (the kernel's answer), else the only one declaring
        the port; None when that does not single one out (nobody to authorize for)."""
        pus = self.local_pus_at(ip)
        if len(pus) <= 1:
            return pus[0] if pus else None
        if listening is not None:
            owner = listening(pus, port)
            if owner is not None:
                return owner
        declaring = [pu for pu in pus if declares(pu.ports, port)]
        return declaring[0] if len(declaring) == 1 else None

    def peers_at(self, ip: IPAddress, port: int) -> tuple[DirectoryEntry, ...]:
        """The directory's PUs a connection to ``ip:port`` may be for: the one PU at the
        address; where several share it, those declaring the port, else all of them."""
        entries = self._peer_by_ip.get(ip, ())
        if len(entries) <= 1:
            return entries
        declaring = tuple(e for e in entries if declares(e.ports, port))
        return declaring or entries

    def peer(self, pu_id: str) -> DirectoryEntry | None:
        return self.view.peers_by_id.get(pu_id)

    def enforcer(self, enforcer_id: str) -> EnforcerEndpoint | None:
        return self._enforcers.get(enforcer_id)

    def external_network(self, ip: IPAddress) -> ExternalNetworkView | None:
        """The most specific external network containing ``ip`` (for flow labels)."""
        best: tuple[int, ExternalNetworkView] | None = None
        for net in self.view.external_networks:
            peer_set = PeerSet(cidrs=net.cidrs, except_cidrs=net.except_cidrs)
            if not longest_prefix_included(peer_set, ip):
                continue
            length = max(c.prefixlen for c in net.cidrs if c.version == ip.version and ip in c)
            if best is None or length > best[0]:
                best = (length, net)
        return best[1] if best is not None else None

    def decide(
        self,
        pu_id: str,
        direction: Direction,
        peer: Peer,
        port: int,
        *,
        scores: Scores | None = None,
    ) -> DirectionDecision | None:
        """``None``: no policy applies (a PU talking to itself). Raises ``KeyError`` for a PU
        the view does not hold (not yet synced: the caller fails closed)."""
        return self.evaluator.decide(pu_id, direction, peer, Protocol.TCP, port, peer_scores=scores)


def declares(ports: tuple[ContainerPort, ...], port: int) -> bool:
    return any(p.port == port and p.protocol is Protocol.TCP for p in ports)


def resolve_destination(
    policy: AppliedPolicy,
    own_enforcer: str,
    ip: IPAddress,
    port: int,
    listening: Listening | None = None,
) -> Destination:
    """Where an outbound connection to ``ip:port`` goes, by the directory of ``policy``.

    A peer whose enforcer is this one, or whose enforcer has no reachable address, is not
    asked remotely: the former is decided locally, the latter has nobody to ask (it is decided
    as an address, and its own enforcer, lacking a grant, decides by address too).
    """
    local = policy.local_pu_at(ip, port, listening)
    if local is not None:
        return LocalDestination(local)
    if policy.local_pus_at(ip):
        # Several of our PUs share the address and none is known to serve the port: nobody
        # would receive the connection (the kernel resets it); decided as an address.
        return ExternalDestination(ip)
    entries = policy.peers_at(ip, port)
    if entries:
        first = entries[0]
        if first.enforcer_id and first.enforcer_id != own_enforcer:
            endpoint = policy.enforcer(first.enforcer_id)
            if endpoint is not None and endpoint.addresses:
                # PUs sharing an address share a host, hence an enforcer: ask that one.
                same = tuple(e for e in entries if e.enforcer_id == first.enforcer_id)
                return RemoteDestination(same, endpoint)
    network = policy.external_network(ip)
    if network is None:
        return ExternalDestination(ip)
    return ExternalDestination(ip, network.name, network.labels)
