"""Deciding over one enforcer's view: what the enforcer runs for its own PUs.

The enforcer knows one side of a connection: its PU, the direction, and the peer as it sees
it: a verified identity (PU id and signed labels from the Trust Profile) or a bare address.
:meth:`ViewEvaluator.decide` returns exactly the ``DirectionDecision`` the reference evaluator
computes for that side (property-tested in ``tests/unit/distribution/test_view_equivalence.py``),
using only the view: peer sets, prefix tables and the directory (model.py states the peer
matching contract).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..decision import DirectionDecision, ReasonCode
from ..labels import Labels
from ..model import (
    GOOD_CITIZEN,
    KUBERNETES_TIER,
    Action,
    ContainerPort,
    Direction,
    IPAddress,
    PortMatch,
    Protocol,
    Scores,
)
from .model import EnforcerView, PeerSet, RuleSetView, RuleView

__all__ = ["Peer", "ViewEvaluator", "ports_match"]


@dataclass(frozen=True, slots=True)
class Peer:
    """The other side as the enforcer sees it: an identity (``pu_id`` and its signed labels),
    or an address without identity (``pu_id`` None)."""

    pu_id: str | None = None
    labels: Labels = field(default_factory=Labels)
    ip: IPAddress | None = None

    @staticmethod
    def identity(pu_id: str, labels: Labels, ip: IPAddress | None = None) -> Peer:
        return Peer(pu_id=pu_id, labels=labels, ip=ip)

    @staticmethod
    def address(ip: IPAddress) -> Peer:
        return Peer(ip=ip)


def ports_match(
    ports: tuple[PortMatch, ...],
    protocol: Protocol,
    port: int,
    destination_ports: tuple[ContainerPort, ...] | None,
) -> bool:
    """``PortMatch.matches`` with the destination given by its declared ports (None: unknown,
    so a named port cannot match)."""
    if not ports:
        return True
    for clause in ports:
        if clause.protocol is not protocol:
            continue
        if clause.port is None:
            return True
        if isinstance(clause.port, str):
            if destination_ports is None:
                continue
            resolved = next(
                (
                    p.port
                    for p in destination_ports
                    if p.name == clause.port and p.protocol is protocol
                ),
                None,
            )
            if resolved == port:
                return True
        elif clause.end_port is None:
            if port == clause.port:
                return True
        elif clause.port <= port <= clause.end_port:
            return True
    return False


def _action_of(rule: RuleView | None) -> Action | None:
    if rule is None:
        return None
    return rule.observed_action if rule.action is Action.OBSERVE else rule.action


class ViewEvaluator:
    """Decisions for the PUs of one view. Build one per applied view."""

    def __init__(self, view: EnforcerView) -> None:
        self.view = view
        self._pus = view.pus_by_id
        self._directory = view.peers_by_id
        # id(PeerSet) -> (PeerSet, its pu_ids as a set); the PeerSet is kept alive so the id
        # cannot be reused while the entry exists.
        self._id_sets: dict[int, tuple[PeerSet, frozenset[str]]] = {}

    def decide(
        self,
        pu_id: str,
        direction: Direction,
        peer: Peer,
        protocol: Protocol,
        port: int,
        *,
        peer_scores: Scores | None = None,
    ) -> DirectionDecision | None:
        """The verdict of ``direction`` for PU ``pu_id`` against ``peer``; None when no policy
        applies (the PU talking to itself). Raises KeyError for a PU not in the view."""
        own = self._pus[pu_id]
        if peer.pu_id is not None and peer.pu_id == pu_id:
            return None
        if direction is Direction.INGRESS and peer.pu_id is None and peer.ip in own.host_ips:
            return DirectionDecision(
                direction=Direction.INGRESS,
                allowed=True,
                encrypted=False,
                reason=ReasonCode.NODE_LOCAL,
            )
        rule_set = own.ingress if direction is Direction.INGRESS else own.egress
        if direction is Direction.INGRESS:
            destination_ports: tuple[ContainerPort, ...] | None = own.ports
        else:
            entry = self._directory.get(peer.pu_id) if peer.pu_id is not None else None
            destination_ports = entry.ports if entry is not None else None
        return self._direction(
            direction,
            rule_set,
            peer,
            protocol,
            port,
            destination_ports,
            peer_scores or GOOD_CITIZEN,
        )

    def _direction(
        self,
        direction: Direction,
        rule_set: RuleSetView,
        peer: Peer,
        protocol: Protocol,
        port: int,
        destination_ports: tuple[ContainerPort, ...] | None,
        scores: Scores,
    ) -> DirectionDecision:
        enforced: RuleView | None = None
        observed: RuleView | None = None
        for rule in rule_set.rules:
            if not self._peer_matches(rule.peer, peer):
                continue
            if not ports_match(rule.ports, protocol, port, destination_ports):
                continue
            if not rule.conditions.hold(scores):
                continue
            if observed is None:
                observed = rule
            if rule.action is not Action.OBSERVE:
                enforced = rule
                break
        observed_policy = (
            observed.policy.key
            if observed is not None and observed.action is Action.OBSERVE
            else None
        )
        if rule_set.kubernetes_isolated:
            found = next(
                (
                    r
                    for r in rule_set.kubernetes_rules
                    if self._peer_matches(r.peer, peer)
                    and ports_match(r.ports, protocol, port, destination_ports)
                ),
                None,
            )
            allowed = found is not None
            return DirectionDecision(
                direction=direction,
                allowed=allowed,
                encrypted=allowed and _action_of(enforced) is Action.ENCRYPT,
                reason=ReasonCode.K8S_ALLOWED if allowed else ReasonCode.K8S_ISOLATED_NO_MATCH,
                tier=KUBERNETES_TIER,
                policy=(found.policy if found else rule_set.kubernetes_policies[0]).key,
                rule=found.rule_index if found is not None else None,
                observed_allowed=allowed,
                observed_encrypted=allowed and _action_of(observed) is Action.ENCRYPT,
                observed_policy=observed_policy,
                overridden_policy=(
                    enforced.policy.key
                    if enforced is not None and (_action_of(enforced) is Action.REJECT) == allowed
                    else None
                ),
            )
        default = rule_set.default_action
        e_allowed, e_encrypted, reason = _outcome(enforced, default)
        o_allowed, o_encrypted, _ = _outcome(observed, default)
        return DirectionDecision(
            direction=direction,
            allowed=e_allowed,
            encrypted=e_encrypted,
            reason=reason,
            tier=enforced.tier if enforced is not None else None,
            policy=enforced.policy.key if enforced is not None else None,
            rule=0 if enforced is not None else None,
            observed_allowed=o_allowed,
            observed_encrypted=o_encrypted,
            observed_policy=observed_policy,
        )

    def _peer_matches(self, peer_set: PeerSet, peer: Peer) -> bool:
        if peer.pu_id is not None:
            if peer.pu_id in self._directory:
                return peer.pu_id in self._ids(peer_set)
            return peer_set.selector is not None and peer_set.selector.matches(peer.labels)
        if peer.ip is None:
            return False
        return longest_prefix_included(peer_set, peer.ip)

    def _ids(self, peer_set: PeerSet) -> frozenset[str]:
        cached = self._id_sets.get(id(peer_set))
        if cached is None:
            cached = (peer_set, frozenset(peer_set.pu_ids))
            self._id_sets[id(peer_set)] = cached
        return cached[1]


def longest_prefix_included(peer_set: PeerSet, ip: IPAddress) -> bool:
    """Whether the longest prefix containing ``ip`` is an included one (ties: excluded)."""
    best = -1
    included = False
    for net in peer_set.cidrs:
        if net.version == ip.version and ip in net and net.prefixlen > best:
            best, included = net.prefixlen, True
    for net in peer_set.except_cidrs:
        if net.version == ip.version and ip in net and net.prefixlen >= best:
            best, included = net.prefixlen, False
    return included


def _outcome(rule: RuleView | None, default: Action) -> tuple[bool, bool, ReasonCode]:
    action = _action_of(rule)
    if action is None:
        if default is Action.REJECT:
            return False, False, ReasonCode.NAMESPACE_DEFAULT_REJECT
        return True, False, ReasonCode.NAMESPACE_DEFAULT_ALLOW
    if action is Action.REJECT:
        return False, False, ReasonCode.POLICY_REJECT
    if action is Action.ENCRYPT:
        return True, True, ReasonCode.POLICY_ENCRYPT
    return True, False, ReasonCode.POLICY_ALLOW
