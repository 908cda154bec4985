"""The one conversion between per-enforcer views (domain, ``trustwire.policy.views``) and the
distribution protobuf messages (``CompiledPu``, ``PolicySnapshot``, ``PolicyDelta``, ...).

Decoding is the exact inverse of encoding (round-trip property test), and encoding is
deterministic: repeated fields follow the views' sorted order and selector values are sorted,
so two replicas serialise equal views to equal bytes (``SerializeToString(deterministic=True)``
also orders map entries).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from trustwire import wire_enums
from trustwire.api.common.v1 import (
    labels_pb2,
    network_pb2,
    resource_pb2,
)
from trustwire.api.policy.v1 import (
    distribution_pb2,
    external_network_pb2,
    meta_pb2,
    network_access_policy_pb2,
    processing_unit_pb2,
)
from trustwire.errors import InvalidArgument
from trustwire.policy.labels import Labels, LabelSelector, Requirement
from trustwire.policy.model import (
    Conditions,
    ContainerPort,
    IPAddress,
    IPNetwork,
    PortMatch,
    Protocol,
)
from trustwire.policy.views import (
    DirectoryEntry,
    EnforcerEndpoint,
    EnforcerView,
    ExternalNetworkView,
    PeerSet,
    PolicyKind,
    PolicyRef,
    PuView,
    RuleSetView,
    RuleView,
    ViewDelta,
)

_V = TypeVar("_V")

__all__ = [
    "EncodeCache",
    "delta_from_proto",
    "delta_to_proto",
    "pu_from_proto",
    "pu_to_proto",
    "snapshot_parts",
    "snapshot_to_proto",
    "view_from_snapshot",
]

# Shared with every other codec at the edge (one mapping, no drift).
_ACTION = wire_enums.ACTION_TO_PB
_ACTION_BACK = wire_enums.ACTION_FROM_PB
_PROTOCOL = wire_enums.PROTOCOL_TO_PB
_PROTOCOL_BACK = wire_enums.PROTOCOL_FROM_PB
_PU_TYPE = wire_enums.PU_TYPE_TO_PB
_PU_TYPE_BACK = wire_enums.PU_TYPE_FROM_PB
_OPERATOR = wire_enums.OPERATOR_TO_PB
_OPERATOR_BACK = wire_enums.OPERATOR_FROM_PB
_KIND = {
    PolicyKind.ACCESS: resource_pb2.RESOURCE_KIND_NETWORK_ACCESS_POLICY,
    PolicyKind.KUBERNETES: resource_pb2.RESOURCE_KIND_KUBERNETES_NETWORK_POLICY,
}
_KIND_BACK = {v: k for k, v in _KIND.items()}


def _lookup(table: Mapping[Any, _V], value: int, field: str) -> _V:
    try:
        return table[value]
    except KeyError:
        raise InvalidArgument(f"{field}: unknown value {value}", field=field) from None


# ---------------------------------------------------------------------------- small values


def _ips(values: Iterable[str]) -> tuple[IPAddress, ...]:
    return tuple(ipaddress.ip_address(v) for v in values)


def _nets(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(v) for v in values)


def _ports_to_proto(ports: Sequence[ContainerPort]) -> list[processing_unit_pb2.NamedPort]:
    return [
        processing_unit_pb2.NamedPort(
            name=p.name or "", protocol=_PROTOCOL[p.protocol], number=p.port
        )
        for p in ports
    ]


def _ports_from_proto(ports: Iterable[processing_unit_pb2.NamedPort]) -> tuple[ContainerPort, ...]:
    return tuple(
        ContainerPort(
            port=p.number,
            protocol=_lookup(_PROTOCOL_BACK, p.protocol, "ports.protocol"),
            name=p.name or None,
        )
        for p in ports
    )


def _selector_to_proto(selector: LabelSelector) -> labels_pb2.LabelSelector:
    return labels_pb2.LabelSelector(
        match_labels=dict(selector.match_labels.items()),
        match_expressions=[
            labels_pb2.LabelSelectorRequirement(
                key=r.key, operator=_OPERATOR[r.operator], values=sorted(r.values)
            )
            for r in selector.match_expressions
        ],
    )


def _selector_from_proto(message: labels_pb2.LabelSelector) -> LabelSelector:
    return LabelSelector(
        Labels(dict(message.match_labels)),
        tuple(
            Requirement(
                r.key,
                _lookup(_OPERATOR_BACK, r.operator, "selector.operator"),
                frozenset(r.values),
            )
            for r in message.match_expressions
        ),
    )


def _port_range(match: PortMatch) -> network_pb2.PortRange:
    message = network_pb2.PortRange(protocol=_PROTOCOL[match.protocol])
    if isinstance(match.port, str):
        message.port_name = match.port
    elif match.port is not None:
        message.port = match.port
        message.end_port = match.end_port or 0
    return message


def _port_match(message: network_pb2.PortRange) -> PortMatch:
    protocol: Protocol = _lookup(_PROTOCOL_BACK, message.protocol, "ports.protocol")
    start = message.WhichOneof("start")
    if start == "port_name":
        return PortMatch(protocol, message.port_name)
    if start == "port":
        return PortMatch(protocol, message.port, message.end_port or None)
    return PortMatch(protocol)


def _ref_to_proto(ref: PolicyRef) -> resource_pb2.ResourceRef:
    return resource_pb2.ResourceRef(kind=_KIND[ref.kind], namespace=ref.namespace, name=ref.name)


def _ref_from_proto(message: resource_pb2.ResourceRef) -> PolicyRef:
    kind: PolicyKind = _lookup(_KIND_BACK, message.kind, "policy.kind")
    return PolicyRef(kind, message.namespace, message.name)


# ---------------------------------------------------------------------------- encode cache


class EncodeCache:
    """Encoded entries of one revision, shared by every stream of a replica.

    Views of one revision share their ``RuleView`` and ``DirectoryEntry`` objects (the
    builder memoises them), so a rule or peer that N enforcers receive is encoded once, not
    N times. Keyed by object identity (the objects are kept alive here, so ids stay unique);
    an equal but distinct object is simply encoded again. Bytes are identical either way:
    encoding is deterministic.
    """

    def __init__(self) -> None:
        self._rules: dict[int, tuple[RuleView, distribution_pb2.CompiledRule]] = {}
        self._peers: dict[int, tuple[DirectoryEntry, distribution_pb2.DirectoryEntry]] = {}

    def rule(self, rule: RuleView) -> distribution_pb2.CompiledRule:
        hit = self._rules.get(id(rule))
        if hit is None:
            hit = (rule, _encode_rule(rule))
            self._rules[id(rule)] = hit
        return hit[1]

    def peer(self, entry: DirectoryEntry) -> distribution_pb2.DirectoryEntry:
        hit = self._peers.get(id(entry))
        if hit is None:
            hit = (entry, _encode_peer(entry))
            self._peers[id(entry)] = hit
        return hit[1]


# ---------------------------------------------------------------------------- rules


def _rule_to_proto(
    rule: RuleView, cache: EncodeCache | None = None
) -> distribution_pb2.CompiledRule:
    return cache.rule(rule) if cache is not None else _encode_rule(rule)


def _encode_rule(rule: RuleView) -> distribution_pb2.CompiledRule:
    peer = distribution_pb2.CompiledPeer(
        pu_ids=rule.peer.pu_ids,
        cidrs=[str(c) for c in rule.peer.cidrs],
        except_cidrs=[str(c) for c in rule.peer.except_cidrs],
    )
    if rule.peer.selector is not None:
        peer.selector.CopyFrom(_selector_to_proto(rule.peer.selector))
    conditions = network_access_policy_pb2.Conditions()
    if rule.conditions.min_reputation is not None:
        conditions.min_reputation = rule.conditions.min_reputation
    if rule.conditions.max_anomaly is not None:
        conditions.max_anomaly = rule.conditions.max_anomaly
    return distribution_pb2.CompiledRule(
        policy=_ref_to_proto(rule.policy),
        rule_index=rule.rule_index,
        tier=rule.tier,
        priority=rule.priority,
        peer=peer,
        ports=[_port_range(p) for p in rule.ports],
        action=_ACTION[rule.action],
        observed_action=_ACTION[rule.observed_action],
        conditions=conditions,
    )


def _rule_from_proto(message: distribution_pb2.CompiledRule) -> RuleView:
    peer = message.peer
    conditions = message.conditions
    return RuleView(
        policy=_ref_from_proto(message.policy),
        rule_index=message.rule_index,
        tier=message.tier,
        priority=message.priority,
        peer=PeerSet(
            pu_ids=tuple(peer.pu_ids),
            selector=_selector_from_proto(peer.selector) if peer.HasField("selector") else None,
            cidrs=_nets(peer.cidrs),
            except_cidrs=_nets(peer.except_cidrs),
        ),
        ports=tuple(_port_match(p) for p in message.ports),
        action=_lookup(_ACTION_BACK, message.action, "rule.action"),
        observed_action=_lookup(_ACTION_BACK, message.observed_action, "rule.observed_action"),
        conditions=Conditions(
            min_reputation=(
                conditions.min_reputation if conditions.HasField("min_reputation") else None
            ),
            max_anomaly=conditions.max_anomaly if conditions.HasField("max_anomaly") else None,
        ),
    )


def _rule_set_to_proto(
    rule_set: RuleSetView, cache: EncodeCache | None = None
) -> distribution_pb2.CompiledRuleSet:
    return distribution_pb2.CompiledRuleSet(
        kubernetes_isolated=rule_set.kubernetes_isolated,
        kubernetes_rules=[_rule_to_proto(r, cache) for r in rule_set.kubernetes_rules],
        rules=[_rule_to_proto(r, cache) for r in rule_set.rules],
        default_action=_ACTION[rule_set.default_action],
        kubernetes_policies=[_ref_to_proto(r) for r in rule_set.kubernetes_policies],
    )


def _rule_set_from_proto(message: distribution_pb2.CompiledRuleSet) -> RuleSetView:
    return RuleSetView(
        kubernetes_policies=tuple(_ref_from_proto(r) for r in message.kubernetes_policies),
        kubernetes_rules=tuple(_rule_from_proto(r) for r in message.kubernetes_rules),
        rules=tuple(_rule_from_proto(r) for r in message.rules),
        default_action=_lookup(_ACTION_BACK, message.default_action, "default_action"),
    )


# ---------------------------------------------------------------------------- entries


def pu_to_proto(pu: PuView, cache: EncodeCache | None = None) -> distribution_pb2.CompiledPu:
    return distribution_pb2.CompiledPu(
        pu=processing_unit_pb2.ProcessingUnit(
            id=pu.id,
            name=pu.name,
            namespace=pu.namespace,
            labels=dict(pu.labels.items()),
            type=_PU_TYPE[pu.pu_type],
            ips=[str(ip) for ip in pu.ips],
            ports=_ports_to_proto(pu.ports),
            enforcer_id=pu.enforcer_id,
            fail_mode=(
                processing_unit_pb2.FAIL_MODE_OPEN
                if pu.fail_open
                else processing_unit_pb2.FAIL_MODE_CLOSED
            ),
        ),
        ingress=_rule_set_to_proto(pu.ingress, cache),
        egress=_rule_set_to_proto(pu.egress, cache),
        host_ips=[str(ip) for ip in pu.host_ips],
    )


def pu_from_proto(message: distribution_pb2.CompiledPu) -> PuView:
    pu = message.pu
    return PuView(
        id=pu.id,
        name=pu.name,
        namespace=pu.namespace,
        labels=Labels(dict(pu.labels)),
        pu_type=_lookup(_PU_TYPE_BACK, pu.type, "pu.type"),
        ips=_ips(pu.ips),
        ports=_ports_from_proto(pu.ports),
        enforcer_id=pu.enforcer_id,
        fail_open=pu.fail_mode == processing_unit_pb2.FAIL_MODE_OPEN,
        host_ips=_ips(message.host_ips),
        ingress=_rule_set_from_proto(message.ingress),
        egress=_rule_set_from_proto(message.egress),
    )


def _peer_to_proto(
    entry: DirectoryEntry, cache: EncodeCache | None = None
) -> distribution_pb2.DirectoryEntry:
    return cache.peer(entry) if cache is not None else _encode_peer(entry)


def _encode_peer(entry: DirectoryEntry) -> distribution_pb2.DirectoryEntry:
    return distribution_pb2.DirectoryEntry(
        pu_id=entry.pu_id,
        trust_domain=entry.trust_domain,
        ips=[str(ip) for ip in entry.ips],
        enforcer_id=entry.enforcer_id,
        type=_PU_TYPE[entry.pu_type],
        ports=_ports_to_proto(entry.ports),
    )


def _peer_from_proto(message: distribution_pb2.DirectoryEntry) -> DirectoryEntry:
    return DirectoryEntry(
        pu_id=message.pu_id,
        trust_domain=message.trust_domain,
        ips=_ips(message.ips),
        enforcer_id=message.enforcer_id,
        pu_type=_lookup(_PU_TYPE_BACK, message.type, "peer.type"),
        ports=_ports_from_proto(message.ports),
    )


def _enforcer_to_proto(endpoint: EnforcerEndpoint) -> distribution_pb2.EnforcerEndpoint:
    return distribution_pb2.EnforcerEndpoint(
        enforcer_id=endpoint.enforcer_id,
        trust_domain=endpoint.trust_domain,
        addresses=endpoint.addresses,
    )


def _enforcer_from_proto(message: distribution_pb2.EnforcerEndpoint) -> EnforcerEndpoint:
    return EnforcerEndpoint(
        enforcer_id=message.enforcer_id,
        trust_domain=message.trust_domain,
        addresses=tuple(message.addresses),
    )


def _external_to_proto(net: ExternalNetworkView) -> external_network_pb2.ExternalNetwork:
    return external_network_pb2.ExternalNetwork(
        metadata=meta_pb2.ObjectMeta(
            name=net.name, namespace=net.namespace, labels=dict(net.labels.items())
        ),
        spec=external_network_pb2.ExternalNetworkSpec(
            cidrs=[str(c) for c in net.cidrs], except_cidrs=[str(c) for c in net.except_cidrs]
        ),
    )


def _external_from_proto(message: external_network_pb2.ExternalNetwork) -> ExternalNetworkView:
    return ExternalNetworkView(
        namespace=message.metadata.namespace,
        name=message.metadata.name,
        labels=Labels(dict(message.metadata.labels)),
        cidrs=_nets(message.spec.cidrs),
        except_cidrs=_nets(message.spec.except_cidrs),
    )


# ---------------------------------------------------------------------------- messages


def snapshot_to_proto(
    view: EnforcerView,
    reason: distribution_pb2.SnapshotReason,
    cache: EncodeCache | None = None,
) -> distribution_pb2.PolicySnapshot:
    return distribution_pb2.PolicySnapshot(
        reason=reason,
        final_part=True,
        pus=[pu_to_proto(p, cache) for p in view.pus],
        peers=[_peer_to_proto(p, cache) for p in view.peers],
        enforcers=[_enforcer_to_proto(e) for e in view.enforcers],
        external_networks=[_external_to_proto(n) for n in view.external_networks],
    )


def snapshot_parts(
    view: EnforcerView,
    reason: distribution_pb2.SnapshotReason,
    max_bytes: int,
    cache: EncodeCache | None = None,
) -> list[distribution_pb2.PolicySnapshot]:
    """The snapshot split into parts of about ``max_bytes`` (PUs spread over parts in order;
    directory, enforcers and external networks in the last). One part when it fits."""
    whole = snapshot_to_proto(view, reason, cache)
    if whole.ByteSize() <= max_bytes or len(whole.pus) <= 1:
        return [whole]
    parts: list[distribution_pb2.PolicySnapshot] = []
    current = distribution_pb2.PolicySnapshot(reason=reason)
    size = 0
    for pu in whole.pus:
        pu_size = pu.ByteSize()
        if current.pus and size + pu_size > max_bytes:
            parts.append(current)
            current = distribution_pb2.PolicySnapshot(reason=reason)
            size = 0
        current.pus.append(pu)
        size += pu_size
    current.peers.extend(whole.peers)
    current.enforcers.extend(whole.enforcers)
    current.external_networks.extend(whole.external_networks)
    current.final_part = True
    parts.append(current)
    return parts


def view_from_snapshot(
    enforcer_id: str, parts: Sequence[distribution_pb2.PolicySnapshot]
) -> EnforcerView:
    """The view carried by the parts of one snapshot (in the order received)."""
    pus: list[PuView] = []
    peers: list[DirectoryEntry] = []
    enforcers: list[EnforcerEndpoint] = []
    externals: list[ExternalNetworkView] = []
    for part in parts:
        pus.extend(pu_from_proto(p) for p in part.pus)
        peers.extend(_peer_from_proto(p) for p in part.peers)
        enforcers.extend(_enforcer_from_proto(e) for e in part.enforcers)
        externals.extend(_external_from_proto(n) for n in part.external_networks)
    return EnforcerView(
        enforcer_id=enforcer_id,
        pus=tuple(sorted(pus, key=lambda p: p.id)),
        peers=tuple(sorted(peers, key=lambda p: p.pu_id)),
        enforcers=tuple(sorted(enforcers, key=lambda e: e.enforcer_id)),
        external_networks=tuple(sorted(externals, key=lambda n: n.key)),
    )


def delta_to_proto(
    delta: ViewDelta, base_revision: int, cache: EncodeCache | None = None
) -> distribution_pb2.PolicyDelta:
    return distribution_pb2.PolicyDelta(
        base_revision=base_revision,
        upserted_pus=[pu_to_proto(p, cache) for p in delta.upserted_pus],
        removed_pu_ids=delta.removed_pu_ids,
        upserted_peers=[_peer_to_proto(p, cache) for p in delta.upserted_peers],
        removed_peer_ids=delta.removed_peer_ids,
        upserted_enforcers=[_enforcer_to_proto(e) for e in delta.upserted_enforcers],
        removed_enforcer_ids=delta.removed_enforcer_ids,
        upserted_external_networks=[
            _external_to_proto(n) for n in delta.upserted_external_networks
        ],
        removed_external_networks=[
            resource_pb2.ResourceRef(
                kind=resource_pb2.RESOURCE_KIND_EXTERNAL_NETWORK, namespace=ns, name=name
            )
            for ns, name in delta.removed_external_networks
        ],
    )


def delta_from_proto(message: distribution_pb2.PolicyDelta) -> ViewDelta:
    return ViewDelta(
        upserted_pus=tuple(pu_from_proto(p) for p in message.upserted_pus),
        removed_pu_ids=tuple(message.removed_pu_ids),
        upserted_peers=tuple(_peer_from_proto(p) for p in message.upserted_peers),
        removed_peer_ids=tuple(message.removed_peer_ids),
        upserted_enforcers=tuple(_enforcer_from_proto(e) for e in message.upserted_enforcers),
        removed_enforcer_ids=tuple(message.removed_enforcer_ids),
        upserted_external_networks=tuple(
            _external_from_proto(n) for n in message.upserted_external_networks
        ),
        removed_external_networks=tuple(
            (r.namespace, r.name) for r in message.removed_external_networks
        ),
    )
