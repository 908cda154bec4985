"""The policy this enforcer applies: one compiled view at one revision, and the questions the
handshake asks of it.

An :class:`AppliedPolicy` is immutable: a new revision is a new object swapped in whole, so a
decision in flight keeps the view it started with, and every decision names the revision it
was made on. The directory answers "who is at this address": one of this enforcer's PUs, an
enforced peer PU (and the enforcer that serves it) or an address without an enforcer (an
external network, or nothing known).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from trustwire.policy.decision import DirectionDecision
from trustwire.policy.labels import Labels
from trustwire.policy.model import Direction, IPAddress, Protocol, Scores
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
    "LocalDestination",
    "RemoteDestination",
    "resolve_destination",
]


@dataclass(frozen=True, slots=True)
class LocalDestination:
    """The destination is a PU this enforcer serves (same host)."""

    pu: PuView


@dataclass(frozen=True, slots=True)
class RemoteDestination:
    """An enforced PU on another enforcer: ask it (``Authorize``) before connecting."""

    entry: DirectoryEntry
    enforcer: EnforcerEndpoint


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
    def _local_by_ip(self) -> dict[IPAddress, PuView]:
        return {ip: pu for pu in self.view.pus for ip in pu.ips}

    @cached_property
    def _peer_by_ip(self) -> dict[IPAddress, DirectoryEntry]:
        return {ip: entry for entry in self.view.peers for ip in entry.ips}

    @cached_property
    def _enforcers(self) -> dict[str, EnforcerEndpoint]:
        return {e.enforcer_id: e for e in self.view.enforcers}

    def pu(self, pu_id: str) -> PuView | None:
        return self.view.pus_by_id.get(pu_id)

    def local_pu_at(self, ip: IPAddress) -> PuView | None:
        return self._local_by_ip.get(ip)

    def peer_at(self, ip: IPAddress) -> DirectoryEntry | None:
        return self._peer_by_ip.get(ip)

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


def resolve_destination(policy: AppliedPolicy, own_enforcer: str, ip: IPAddress) -> Destination:
    """Where an outbound connection to ``ip`` goes, by the directory of ``policy``.

    A peer whose enforcer is this one, or whose enforcer has no reachable address, is not
    asked remotely: the former is decided locally, the latter has nobody to ask (it is decided
    as an address, and its own enforcer, lacking a grant, decides by address too).
    """
    local = policy.local_pu_at(ip)
    if local is not None:
        return LocalDestination(local)
    entry = policy.peer_at(ip)
    if entry is not None and entry.enforcer_id and entry.enforcer_id != own_enforcer:
        endpoint = policy.enforcer(entry.enforcer_id)
        if endpoint is not None and endpoint.addresses:
            return RemoteDestination(entry, endpoint)
    network = policy.external_network(ip)
    if network is None:
        return ExternalDestination(ip)
    return ExternalDestination(ip, network.name, network.labels)
