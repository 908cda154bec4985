"""The reference evaluator: the policy semantics written as plainly as possible.

It re-reads every policy for every decision: obviously correct, and slow on purpose. The
compiled engine (``compiler.py``) must agree with it on every input; property tests check
that. When the two disagree, this module states the intended semantics.

Semantics (DESIGN.md "Policy model"):

1. A workload connecting to itself is allowed.
2. A connection is allowed when the source's egress and the destination's ingress both allow
   it. A side without an enforcer (an external address) is not evaluated.
3. For one direction of one workload: if Kubernetes NetworkPolicies select it for that
   direction (it is *isolated*), the union of their rules decides and is final. Trustwire
   ``encrypt`` may overlay an allowed flow; nothing else of the Trustwire tiers applies.
4. Otherwise the first matching Trustwire rule by (tier order, priority, name) decides; with
   none, the workload namespace's default action.
5. ``observe`` rules do not enforce; the *observed* verdict is the one obtained when they are
   treated as rules with their ``observe_action``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .decision import Decision, DirectionDecision, ReasonCode
from .model import (
    KUBERNETES_TIER,
    Action,
    Cluster,
    Direction,
    Endpoint,
    KubernetesNetworkPolicy,
    KubernetesPeer,
    KubernetesRule,
    NetworkAccessPolicy,
    Protocol,
    PuType,
    Scores,
    Workload,
)

__all__ = [
    "ReferenceEvaluator",
    "access_policy_matches",
    "kubernetes_peer_matches",
    "ordered_access_policies",
]


def is_node_local(source: Endpoint, destination: Endpoint) -> bool:
    """An address outside every workload that is the destination workload's own node."""
    return (
        source.workload is None
        and source.ip is not None
        and destination.workload is not None
        and source.ip in destination.workload.host_ips
    )


def kubernetes_peer_matches(
    peer: KubernetesPeer, policy_namespace: str, other: Endpoint, cluster: Cluster
) -> bool:
    """Whether one NetworkPolicyPeer of a policy in ``policy_namespace`` selects ``other``."""
    if peer.ip_block is not None:
        return any(peer.ip_block.contains(ip) for ip in other.ips)
    workload = other.workload
    # Pod and namespace selectors select pods only: never processes or external addresses.
    if workload is None or workload.pu_type is not PuType.POD:
        return False
    if peer.namespace_selector is None:
        if workload.namespace != policy_namespace:
            return False
    elif not peer.namespace_selector.matches(cluster.namespace(workload.namespace).labels):
        return False
    return peer.pod_selector is None or peer.pod_selector.matches(workload.labels)


def kubernetes_rule_matches(
    rule: KubernetesRule,
    policy_namespace: str,
    other: Endpoint,
    destination: Workload | None,
    protocol: Protocol,
    port: int,
    cluster: Cluster,
) -> bool:
    if rule.ports and not any(p.matches(protocol, port, destination) for p in rule.ports):
        return False
    if not rule.peers:
        return True
    return any(kubernetes_peer_matches(p, policy_namespace, other, cluster) for p in rule.peers)


def selects(policy: KubernetesNetworkPolicy, workload: Workload, direction: Direction) -> bool:
    return (
        workload.pu_type is PuType.POD
        and direction in policy.policy_types
        and policy.namespace == workload.namespace
        and policy.pod_selector.matches(workload.labels)
    )


def ordered_access_policies(cluster: Cluster) -> list[NetworkAccessPolicy]:
    """Trustwire policies in evaluation order: (tier order, priority, name)."""
    order = cluster.tier_order
    return sorted(
        cluster.access_policies,
        key=lambda p: (order[p.tier], p.priority, p.namespace or "", p.name),
    )


def access_policy_matches(
    policy: NetworkAccessPolicy,
    source: Endpoint,
    destination: Endpoint,
    protocol: Protocol,
    port: int,
    peer_scores: Scores,
) -> bool:
    if policy.namespace is not None:
        namespaces = {e.workload.namespace for e in (source, destination) if e.workload}
        if policy.namespace not in namespaces:
            return False
    if not policy.subject.matches(source.identity_labels):
        return False
    if not policy.object.matches(destination.identity_labels):
        return False
    if policy.ports and not any(
        p.matches(protocol, port, destination.workload) for p in policy.ports
    ):
        return False
    return policy.conditions.hold(peer_scores)


class ReferenceEvaluator:
    """Decides connections by re-reading the whole cluster snapshot every time."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._ordered = ordered_access_policies(cluster)

    def decide(
        self,
        source: Endpoint,
        destination: Endpoint,
        protocol: Protocol,
        port: int,
        *,
        source_scores: Scores | None = None,
        destination_scores: Scores | None = None,
    ) -> Decision:
        revision = self.cluster.revision
        if (
            source.workload is not None
            and destination.workload is not None
            and source.workload.key == destination.workload.key
        ):
            return Decision.self_traffic(revision)
        if is_node_local(source, destination):
            return Decision.node_local(revision)
        egress = None
        ingress = None
        if source.workload is not None:
            egress = self.direction(
                Direction.EGRESS,
                source.workload,
                source,
                destination,
                protocol,
                port,
                destination_scores or Scores(),
            )
        if destination.workload is not None:
            ingress = self.direction(
                Direction.INGRESS,
                destination.workload,
                source,
                destination,
                protocol,
                port,
                source_scores or Scores(),
            )
        return Decision.combine(egress, ingress, revision)

    def direction(
        self,
        direction: Direction,
        workload: Workload,
        source: Endpoint,
        destination: Endpoint,
        protocol: Protocol,
        port: int,
        peer_scores: Scores,
    ) -> DirectionDecision:
        other = destination if direction is Direction.EGRESS else source
        cluster = self.cluster
        isolating = sorted(
            (p for p in cluster.kubernetes_policies if selects(p, workload, direction)),
            key=lambda p: p.name,
        )
        # Trustwire rules, enforced (observe skipped) and observed (observe applied).
        enforced = self._first_rule(source, destination, protocol, port, peer_scores, False)
        observed = self._first_rule(source, destination, protocol, port, peer_scores, True)

        if isolating:
            verdict = kubernetes_verdict(
                isolating, direction, other, destination.workload, protocol, port, cluster
            )
            allowed = verdict is not None
            policy, rule = verdict if verdict is not None else (None, None)
            encrypted = allowed and _action_of(enforced) is Action.ENCRYPT
            observed_encrypted = allowed and _action_of(observed) is Action.ENCRYPT
            # A Trustwire rule whose verdict Kubernetes overrules here, shown by `explain`.
            overridden = (
                enforced.key
                if enforced is not None and (_action_of(enforced) is Action.REJECT) == allowed
                else None
            )
            return DirectionDecision(
                direction=direction,
                allowed=allowed,
                encrypted=encrypted,
                reason=ReasonCode.K8S_ALLOWED if allowed else ReasonCode.K8S_ISOLATED_NO_MATCH,
                tier=KUBERNETES_TIER,
                policy=policy.key if policy is not None else isolating[0].key,
                rule=rule,
                observed_allowed=allowed,
                observed_encrypted=observed_encrypted,
                observed_policy=(
                    observed.key
                    if observed is not None and observed.action is Action.OBSERVE
                    else None
                ),
                overridden_policy=overridden,
            )

        default = cluster.namespace(workload.namespace).default_action
        e_allowed, e_encrypted, reason, tier, key = _tier_outcome(enforced, default)
        o_allowed, o_encrypted, _, _, _ = _tier_outcome(observed, default)
        return DirectionDecision(
            direction=direction,
            allowed=e_allowed,
            encrypted=e_encrypted,
            reason=reason,
            tier=tier,
            policy=key,
            rule=0 if enforced is not None else None,
            observed_allowed=o_allowed,
            observed_encrypted=o_encrypted,
            observed_policy=(
                observed.key if observed is not None and observed.action is Action.OBSERVE else None
            ),
        )

    def _first_rule(
        self,
        source: Endpoint,
        destination: Endpoint,
        protocol: Protocol,
        port: int,
        peer_scores: Scores,
        include_observe: bool,
    ) -> NetworkAccessPolicy | None:
        for policy in self._ordered:
            if policy.action is Action.OBSERVE and not include_observe:
                continue
            if access_policy_matches(policy, source, destination, protocol, port, peer_scores):
                return policy
        return None


def kubernetes_verdict(
    isolating: Sequence[KubernetesNetworkPolicy],
    direction: Direction,
    other: Endpoint,
    destination: Workload | None,
    protocol: Protocol,
    port: int,
    cluster: Cluster,
) -> tuple[KubernetesNetworkPolicy, int] | None:
    """The first (policy, rule index) allowing the flow, by policy name; None: denied."""
    for policy in isolating:
        for index, rule in enumerate(policy.rules(direction)):
            if kubernetes_rule_matches(
                rule, policy.namespace, other, destination, protocol, port, cluster
            ):
                return policy, index
    return None


def _action_of(policy: NetworkAccessPolicy | None) -> Action | None:
    if policy is None:
        return None
    return policy.observe_action if policy.action is Action.OBSERVE else policy.action


def _tier_outcome(
    policy: NetworkAccessPolicy | None, default: Action
) -> tuple[bool, bool, ReasonCode, str | None, str | None]:
    """(allowed, encrypted, reason, tier, policy key) from the first matching Trustwire rule."""
    action = _action_of(policy)
    if policy is None or action is None:
        if default is Action.REJECT:
            return False, False, ReasonCode.NAMESPACE_DEFAULT_REJECT, None, None
        return True, False, ReasonCode.NAMESPACE_DEFAULT_ALLOW, None, None
    if action is Action.REJECT:
        return False, False, ReasonCode.POLICY_REJECT, policy.tier, policy.key
    if action is Action.ENCRYPT:
        return True, True, ReasonCode.POLICY_ENCRYPT, policy.tier, policy.key
    return True, False, ReasonCode.POLICY_ALLOW, policy.tier, policy.key
