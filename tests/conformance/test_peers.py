"""Peers: podSelector, namespaceSelector, both in one peer (AND) vs separate peers (OR),
empty selectors, matchExpressions operators, the automatic ``kubernetes.io/metadata.name`` label.

Authority: the concept page section "Behavior of to and from selectors", the NetworkPolicyPeer
API reference (a podSelector alone selects pods in the policy's own namespace; with a
namespaceSelector it selects those pods in the selected namespaces), and label selector
semantics from ``k8s.io/apimachinery/pkg/labels`` (``NotIn`` and ``DoesNotExist`` hold when the
key is absent). Upstream e2e names are from ``test/e2e/network/netpol/network_policy.go``.
"""

from __future__ import annotations

import pytest

from .harness import Harness
from .model import Reachability


def _x_a_ingress_from(peers_yaml: str) -> str:
    """An ingress policy on x/a whose single rule's ``from`` is ``peers_yaml``."""
    body = "\n".join("    " + line for line in peers_yaml.strip("\n").splitlines())
    return (
        "apiVersion: networking.k8s.io/v1\n"
        "kind: NetworkPolicy\n"
        "metadata: {name: x-a-ingress, namespace: x}\n"
        "spec:\n"
        "  podSelector: {matchLabels: {pod: a}}\n"
        "  ingress:\n"
        "  - from:\n" + body + "\n"
    )


def _only_from(*sources: str) -> Reachability:
    r = Reachability(True).expect_all_ingress("x/a", False)
    for src in sources:
        r.expect_peer(src, "x/a", True)
    return r


# Upstream: "should enforce policy to allow traffic from pods within server namespace based on
# PodSelector".
def test_pod_selector_peer_is_same_namespace_only(run: Harness) -> None:
    run.load(_x_a_ingress_from("- podSelector: {matchLabels: {pod: b}}"))
    # y/b and z/b carry pod=b too, but a lone podSelector only looks in x.
    run.check("TCP", 80, _only_from("x/b"))


# Upstream: "should deny ingress from pods on other namespaces".
def test_empty_pod_selector_peer_means_own_namespace(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny-empty-policy, namespace: x}
        spec:
          podSelector: {}
          ingress:
          - from:
            - podSelector: {}
        """
    )
    run.check(
        "TCP", 80, Reachability(True).expect_peer("y", "x", False).expect_peer("z", "x", False)
    )


# Upstream: "should enforce policy to allow traffic only from a different namespace, based on
# NamespaceSelector".
def test_namespace_selector_peer_selects_all_pods_of_namespace(run: Harness) -> None:
    run.load(_x_a_ingress_from("- namespaceSelector: {matchLabels: {ns: y}}"))
    run.check("TCP", 80, _only_from("y"))


# Upstream: "should enforce policy to allow ingress traffic from pods in all namespaces".
def test_empty_namespace_selector_selects_every_namespace(run: Harness) -> None:
    run.load(_x_a_ingress_from("- namespaceSelector: {}"))
    run.check("TCP", 80, Reachability(True))


def test_empty_namespace_selector_with_pod_selector(run: Harness) -> None:
    run.load(
        _x_a_ingress_from(
            """
- namespaceSelector: {}
  podSelector: {matchLabels: {pod: b}}
"""
        )
    )
    run.check("TCP", 80, _only_from("*/b"))


# Upstream: "should enforce policy based on PodSelector and NamespaceSelector".
def test_pod_and_namespace_selector_in_one_peer_is_and(run: Harness) -> None:
    run.load(
        _x_a_ingress_from(
            """
- namespaceSelector:
    matchExpressions:
    - {key: ns, operator: NotIn, values: [x]}
  podSelector:
    matchLabels: {pod: b}
"""
        )
    )
    run.check("TCP", 80, _only_from("y/b", "z/b"))


# Upstream: "should enforce policy based on PodSelector or NamespaceSelector".
def test_pod_and_namespace_selector_in_separate_peers_is_or(run: Harness) -> None:
    run.load(
        _x_a_ingress_from(
            """
- namespaceSelector:
    matchExpressions:
    - {key: ns, operator: NotIn, values: [x]}
- podSelector:
    matchLabels: {pod: b}
"""
        )
    )
    run.check("TCP", 80, _only_from("y", "z", "x/b"))


# Upstream: "should enforce policy to allow traffic only from a pod in a different namespace
# based on PodSelector and NamespaceSelector" (TCP, UDP and SCTP variants).
@pytest.mark.parametrize("proto", ["TCP", "UDP", "SCTP"])
def test_one_pod_in_another_namespace(run: Harness, proto: str) -> None:
    run.load(
        _x_a_ingress_from(
            """
- namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}
  podSelector: {matchLabels: {pod: a}}
"""
        )
    )
    run.check(proto, 80, _only_from("y/a"))


# Upstream: "should enforce policy based on Multiple PodSelectors and NamespaceSelectors".
def test_pod_in_and_namespace_not_in(run: Harness) -> None:
    run.load(
        _x_a_ingress_from(
            """
- namespaceSelector:
    matchExpressions:
    - {key: kubernetes.io/metadata.name, operator: NotIn, values: [x]}
  podSelector:
    matchExpressions:
    - {key: pod, operator: In, values: [b, c]}
"""
        )
    )
    run.check("TCP", 80, _only_from("y/b", "y/c", "z/b", "z/c"))


# Upstream: "should enforce policy based on any PodSelectors".
def test_several_pod_selector_peers(run: Harness) -> None:
    run.load(
        _x_a_ingress_from(
            """
- podSelector: {matchLabels: {pod: b}}
- podSelector: {matchLabels: {pod: c}}
"""
        )
    )
    run.check("TCP", 80, _only_from("x/b", "x/c"))


# Upstream: "should enforce policy based on PodSelector with MatchExpressions".
def test_match_expressions_in(run: Harness) -> None:
    run.load(
        _x_a_ingress_from(
            """
- podSelector:
    matchExpressions:
    - {key: pod, operator: In, values: [b]}
"""
        )
    )
    run.check("TCP", 80, _only_from("x/b"))


# Upstream: "should enforce policy based on NamespaceSelector with MatchExpressions".
def test_match_expressions_in_on_namespace_name(run: Harness) -> None:
    run.load(
        _x_a_ingress_from(
            """
- namespaceSelector:
    matchExpressions:
    - {key: kubernetes.io/metadata.name, operator: In, values: [y]}
"""
        )
    )
    run.check("TCP", 80, _only_from("y"))


def test_match_expressions_not_in_matches_absent_key(run: Harness) -> None:
    # Only y carries env=prod; x has no env label at all and must still match NotIn.
    run.load(
        _x_a_ingress_from(
            """
- namespaceSelector:
    matchExpressions:
    - {key: env, operator: NotIn, values: [prod]}
"""
        ),
        namespace_labels={"y": {"env": "prod"}, "z": {"env": "dev"}},
    )
    run.check("TCP", 80, _only_from("x", "z"))


def test_match_expressions_does_not_exist_matches_absent_key(run: Harness) -> None:
    run.load(
        _x_a_ingress_from(
            """
- namespaceSelector:
    matchExpressions:
    - {key: env, operator: DoesNotExist}
"""
        ),
        namespace_labels={"y": {"env": "prod"}, "z": {"env": ""}},
    )
    # z has env with an empty value: the key exists, so z does not match.
    run.check("TCP", 80, _only_from("x"))


def test_match_expressions_exists(run: Harness) -> None:
    run.load(
        _x_a_ingress_from(
            """
- podSelector:
    matchExpressions:
    - {key: role, operator: Exists}
"""
        ),
        pod_labels={"x/b": {"role": ""}, "x/c": {"role": "db"}, "y/b": {"role": "db"}},
    )
    # x/b's role is empty but present; y/b is outside the policy's namespace.
    run.check("TCP", 80, _only_from("x/b", "x/c"))


def test_match_expressions_not_in_on_pod_label(run: Harness) -> None:
    run.load(
        _x_a_ingress_from(
            """
- podSelector:
    matchExpressions:
    - {key: tier, operator: NotIn, values: [frontend, cache]}
"""
        ),
        pod_labels={"x/b": {"tier": "frontend"}, "x/c": {"tier": "backend"}},
    )
    # x/c: value not in the set; x/a: key absent (and self anyway).
    run.check("TCP", 80, _only_from("x/c"))


def test_match_labels_and_match_expressions_are_anded(run: Harness) -> None:
    run.load(
        _x_a_ingress_from(
            """
- namespaceSelector:
    matchLabels: {team: blue}
    matchExpressions:
    - {key: env, operator: In, values: [prod, staging]}
    - {key: legacy, operator: DoesNotExist}
"""
        ),
        namespace_labels={
            "x": {"team": "blue", "env": "prod", "legacy": "yes"},
            "y": {"team": "blue", "env": "staging"},
            "z": {"team": "red", "env": "prod"},
        },
    )
    run.check("TCP", 80, _only_from("y"))


def test_all_match_expressions_must_hold(run: Harness) -> None:
    run.load(
        _x_a_ingress_from(
            """
- namespaceSelector: {}
  podSelector:
    matchExpressions:
    - {key: pod, operator: In, values: [a, b]}
    - {key: pod, operator: NotIn, values: [a]}
"""
        )
    )
    run.check("TCP", 80, _only_from("*/b"))


# Upstream: "should enforce policy to allow traffic based on NamespaceSelector with MatchLabels
# using default ns label".
def test_namespace_name_label_is_automatic(run: Harness) -> None:
    run.load(
        _x_a_ingress_from("- namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}")
    )
    run.check("TCP", 80, _only_from("y"))


def test_namespace_name_label_cannot_be_overridden(run: Harness) -> None:
    # The API server sets kubernetes.io/metadata.name to the namespace's name, whatever the
    # manifest says; namespace z claiming to be "y" must not match.
    run.load(
        _x_a_ingress_from("- namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}"),
        namespace_labels={"z": {"kubernetes.io/metadata.name": "y"}},
    )
    run.check("TCP", 80, _only_from("y"))


# Upstream: "should allow ingress access from updated namespace" (after the label is added).
def test_namespace_selector_on_extra_label(run: Harness) -> None:
    run.load(
        _x_a_ingress_from("- namespaceSelector: {matchLabels: {ns2: updated}}"),
        namespace_labels={"y": {"ns2": "updated"}},
    )
    run.check("TCP", 80, _only_from("y"))


# Upstream: "should allow ingress access from updated pod" (after the label is added).
def test_pod_selector_needs_every_match_label(run: Harness) -> None:
    run.load(
        _x_a_ingress_from("- podSelector: {matchLabels: {pod: b, pod2: updated}}"),
        pod_labels={"x/b": {"pod2": "updated"}, "x/c": {"pod2": "other"}},
    )
    run.check("TCP", 80, _only_from("x/b"))


def test_namespace_selector_does_not_match_pod_labels(run: Harness) -> None:
    # pod=b is a pod label, never a namespace label: this selects no namespace at all.
    run.load(_x_a_ingress_from("- namespaceSelector: {matchLabels: {pod: b}}"))
    run.check("TCP", 80, _only_from())


# Upstream: "should enforce egress policy allowing traffic to a server in a different namespace
# based on PodSelector and NamespaceSelector".
def test_egress_to_one_pod_in_another_namespace(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-to-ns-y-pod-a, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          policyTypes: [Egress]
          egress:
          - to:
            - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}
              podSelector: {matchLabels: {pod: a}}
        """
    )
    run.check(
        "TCP", 80, Reachability(True).expect_all_egress("x/a", False).expect("x/a", "y/a", True)
    )


def test_egress_pod_selector_peer_is_same_namespace_only(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: egress-to-b, namespace: y}
        spec:
          podSelector: {}
          policyTypes: [Egress]
          egress:
          - to:
            - podSelector: {matchLabels: {pod: b}}
        """
    )
    r = Reachability(True).expect_peer("y", "*", False).expect_peer("y", "y/b", True)
    run.check("UDP", 81, r)


# Upstream: "should enforce policy based on NamespaceSelector with MatchExpressions using
# default ns label".
def test_egress_namespace_not_in(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-ns-y-match-selector-for-immutable-ns-label, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          policyTypes: [Egress]
          egress:
          - to:
            - namespaceSelector:
                matchExpressions:
                - {key: kubernetes.io/metadata.name, operator: NotIn, values: [y]}
        """
    )
    run.check("TCP", 80, Reachability(True).expect_peer("x/a", "y", False))


# Upstream: "should support denying of egress traffic on the client side (even if the server
# explicitly allows this traffic)".
def test_egress_deny_wins_even_if_ingress_allows(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-to-ns-y-pod-a, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          policyTypes: [Egress]
          egress:
          - to:
            - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}
              podSelector: {matchLabels: {pod: a}}
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-from-xa-on-ya-match-selector, namespace: y}
        spec:
          podSelector: {matchLabels: {pod: a}}
          policyTypes: [Ingress]
          ingress:
          - from:
            - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: x}}
              podSelector: {matchLabels: {pod: a}}
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-from-xa-on-yb-match-selector, namespace: y}
        spec:
          podSelector: {matchLabels: {pod: b}}
          policyTypes: [Ingress]
          ingress:
          - from:
            - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: x}}
              podSelector: {matchLabels: {pod: a}}
        """
    )
    r = Reachability(True)
    r.expect_peer("x/a", "*", False)
    r.expect_peer("*", "y/a", False)
    r.expect_peer("x/a", "y/a", True)
    r.expect_peer("*", "y/b", False)
    run.check("TCP", 80, r)
