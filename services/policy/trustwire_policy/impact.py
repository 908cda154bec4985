"""Which flows a change would flip: the dry-run half of Apply, Delete and Simulate.

Pure domain code: two ``Cluster`` snapshots (before and after the change, in memory) and the
policy engine on both. The work is bounded: only pairs with an endpoint the change can affect
are evaluated (workloads a changed policy's selectors or namespace reach; everyone when a tier
or external network changes), on the destination's declared ports plus the single ports the
changed policies name, and at most ``max_decisions`` connections in all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from trustwire.policy import (
    Cluster,
    Decision,
    ExternalNetwork,
    KubernetesNetworkPolicy,
    Namespace,
    NetworkAccessPolicy,
    PolicyEngine,
    PortMatch,
    Protocol,
    Tier,
    Workload,
)

from .codec import DomainObject, Kind
from .state import assemble_cluster

__all__ = ["FlowChange", "affected_workloads", "changed_flows", "cluster_with"]


@dataclass(frozen=True, slots=True)
class FlowChange:
    source: Workload
    destination: Workload
    protocol: Protocol
    port: int
    before: Decision
    after: Decision


def _identity(obj: DomainObject) -> tuple[Kind, str]:
    if isinstance(obj, NetworkAccessPolicy):
        return Kind.NETWORK_ACCESS_POLICY, obj.key
    if isinstance(obj, KubernetesNetworkPolicy):
        return Kind.KUBERNETES_NETWORK_POLICY, obj.key
    if isinstance(obj, Namespace):
        return Kind.NAMESPACE, obj.name
    if isinstance(obj, Tier):
        return Kind.TIER, obj.name
    return Kind.EXTERNAL_NETWORK, obj.name


def _objects(cluster: Cluster) -> dict[tuple[Kind, str], DomainObject]:
    out: dict[tuple[Kind, str], DomainObject] = {}
    everything: list[Iterable[DomainObject]] = [
        cluster.namespaces.values(),
        cluster.tiers,
        cluster.access_policies,
        cluster.kubernetes_policies,
        cluster.external_networks,
    ]
    for group in everything:
        for obj in group:
            out[_identity(obj)] = obj
    return out


def cluster_with(
    cluster: Cluster,
    upserts: Sequence[DomainObject],
    deletions: Sequence[tuple[Kind, str, str]] = (),
) -> tuple[Cluster, list[DomainObject]]:
    """``cluster`` with objects replaced/added and deleted (in memory), and the objects the
    change touched (old and new versions) for :func:`affected_workloads`."""
    objects = _objects(cluster)
    touched: list[DomainObject] = []
    for kind, namespace, name in deletions:
        key = (kind, f"{namespace}/{name}" if namespace else name)
        old = objects.pop(key, None)
        if old is not None:
            touched.append(old)
    for obj in upserts:
        identity = _identity(obj)
        old = objects.get(identity)
        if old is not None:
            touched.append(old)
        objects[identity] = obj
        touched.append(obj)
    after = assemble_cluster(
        objects.values(),
        cluster.workloads,
        revision=cluster.revision,
        trust_domain=cluster.trust_domain,
    )
    return after, touched


def affected_workloads(cluster: Cluster, touched: Sequence[DomainObject]) -> set[str] | None:
    """Keys of the workloads whose decisions the touched objects can change; ``None``: all."""
    keys: set[str] = set()
    for obj in touched:
        if isinstance(obj, Tier | ExternalNetwork):
            return None
        for w in cluster.workloads:
            if isinstance(obj, NetworkAccessPolicy):
                labels = w.identity_labels()
                hit = obj.subject.matches(labels) or obj.object.matches(labels)
            elif isinstance(obj, KubernetesNetworkPolicy):
                hit = w.namespace == obj.namespace
            else:
                hit = w.namespace == obj.name
            if hit:
                keys.add(w.key)
    return keys


def _named_ports(touched: Sequence[DomainObject]) -> set[tuple[Protocol, int]]:
    ports: set[tuple[Protocol, int]] = set()
    for obj in touched:
        matches: list[PortMatch] = []
        if isinstance(obj, NetworkAccessPolicy):
            matches.extend(obj.ports)
        elif isinstance(obj, KubernetesNetworkPolicy):
            for rule in obj.ingress + obj.egress:
                matches.extend(rule.ports)
        for m in matches:
            if isinstance(m.port, int) and m.end_port is None:
                ports.add((m.protocol, m.port))
    return ports


def changed_flows(
    before: PolicyEngine,
    after: PolicyEngine,
    touched: Sequence[DomainObject],
    *,
    max_decisions: int,
    max_impacts: int,
) -> tuple[list[FlowChange], bool]:
    """Flows whose verdict (allowed, encrypted, observed) differs; and whether the bound cut
    the evaluation short."""
    cluster = before.cluster
    affected = affected_workloads(cluster, touched)
    if affected is None:
        affected = {w.key for w in cluster.workloads}
    extra = _named_ports(touched)
    workloads = list(cluster.workloads)
    by_key = {w.key: w for w in workloads}
    endpoints = {w.key: cluster.endpoint(w.key) for w in workloads}
    after_endpoints = {w.key: after.cluster.endpoint(w.key) for w in workloads}
    pairs: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for a in sorted(affected):
        for w in workloads:
            for pair in ((a, w.key), (w.key, a)):
                if pair[0] != pair[1] and pair not in seen:
                    seen.add(pair)
                    pairs.append(pair)
    changes: list[FlowChange] = []
    budget = max_decisions
    for src_key, dst_key in pairs:
        destination = by_key[dst_key]
        ports = {(p.protocol, p.port) for p in destination.ports} | extra
        for protocol, port in sorted(ports, key=lambda pp: (pp[0].value, pp[1])):
            if budget <= 0:
                return changes, True
            budget -= 1
            old = before.decide(endpoints[src_key], endpoints[dst_key], protocol, port)
            new = after.decide(after_endpoints[src_key], after_endpoints[dst_key], protocol, port)
            if (old.allowed, old.encrypted, old.observed_allowed) != (
                new.allowed,
                new.encrypted,
                new.observed_allowed,
            ):
                changes.append(FlowChange(by_key[src_key], destination, protocol, port, old, new))
                if len(changes) >= max_impacts:
                    return changes, True
    return changes, False
