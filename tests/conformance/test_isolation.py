"""Isolation, ``policyTypes`` defaulting, empty vs absent rule lists, stacking of policies.

Authority: the Kubernetes "Network Policies" concept page (isolated vs non-isolated pods,
policies are additive), the NetworkPolicySpec API reference, and the API server's defaulting
(``SetDefaults_NetworkPolicy`` in ``pkg/apis/networking/v1/defaults.go``): when ``policyTypes``
is empty it becomes ``[Ingress]``, plus ``Egress`` only if ``spec.egress`` has at least one rule.
Upstream e2e names are from ``test/e2e/network/netpol/network_policy.go``.
"""

from __future__ import annotations

import pytest

from .harness import Harness
from .model import Reachability

DENY_INGRESS_X = Reachability(True).expect_peer("*", "x", False)
DENY_EGRESS_X = Reachability(True).expect_peer("x", "*", False)


def test_no_policies_everything_allowed(run: Harness) -> None:
    run.load("")
    run.check_probes(
        [
            ("TCP", 80, Reachability(True)),
            ("UDP", 81, Reachability(True)),
            ("SCTP", 80, Reachability(True)),
            ("TCP", 5432, Reachability(True)),
        ]
    )


# Upstream: "should support a 'default-deny-ingress' policy" (TCP, UDP and SCTP variants).
@pytest.mark.parametrize(
    "policy",
    [
        pytest.param(
            """
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: deny-ingress, namespace: x}
            spec:
              podSelector: {}
              policyTypes: [Ingress]
            """,
            id="policyTypes-Ingress",
        ),
        pytest.param(
            """
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: deny-ingress, namespace: x}
            spec:
              podSelector: {}
            """,
            id="policyTypes-omitted",
        ),
        pytest.param(
            """
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: deny-ingress, namespace: x}
            spec:
              podSelector: {}
              policyTypes: []
            """,
            id="policyTypes-empty-list",
        ),
        pytest.param(
            """
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: deny-ingress, namespace: x}
            spec:
              podSelector: {}
              ingress: []
            """,
            id="ingress-empty-list",
        ),
        pytest.param(
            """
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: deny-ingress, namespace: x}
            spec:
              podSelector: {matchLabels: {}, matchExpressions: []}
              policyTypes: [Ingress]
              ingress: []
            """,
            id="explicit-empty-selector-and-rules",
        ),
    ],
)
def test_default_deny_ingress(run: Harness, policy: str) -> None:
    run.load(policy)
    run.check_probes(
        [
            ("TCP", 80, DENY_INGRESS_X),
            ("UDP", 80, DENY_INGRESS_X),
            ("SCTP", 81, DENY_INGRESS_X),
        ]
    )


# Upstream: "should deny egress from all pods in a namespace".
def test_default_deny_egress(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny-egress, namespace: x}
        spec:
          podSelector: {}
          policyTypes: [Egress]
        """
    )
    run.check_probes([("TCP", 80, DENY_EGRESS_X), ("UDP", 81, DENY_EGRESS_X)])


# Upstream: "should deny egress from pods based on PodSelector".
def test_deny_egress_of_one_pod(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny-egress-pod-a, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          policyTypes: [Egress]
        """
    )
    run.check("TCP", 80, Reachability(True).expect_all_egress("x/a", False))


# Upstream: "should support a 'default-deny-all' policy" and
# "should stop enforcing policies after they are deleted" (first half).
def test_default_deny_all(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny-all, namespace: x}
        spec:
          podSelector: {}
          policyTypes: [Ingress, Egress]
        """
    )
    r = Reachability(True).expect_peer("*", "x", False).expect_peer("x", "*", False)
    run.check_probes([("TCP", 80, r), ("UDP", 81, r), ("SCTP", 80, r)])


# Upstream: "should support allow-all policy".
def test_allow_all_ingress_with_one_empty_rule(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-all, namespace: x}
        spec:
          podSelector: {}
          ingress:
          - {}
        """
    )
    run.check_probes(
        [
            ("TCP", 80, Reachability(True)),
            ("TCP", 81, Reachability(True)),
            ("UDP", 80, Reachability(True)),
            ("SCTP", 81, Reachability(True)),
        ]
    )


def test_rule_with_empty_from_and_ports_lists_matches_everything(run: Harness) -> None:
    # API reference: "If this field is empty or missing, this rule matches all sources" and
    # "... matches all ports"; an empty list is not a deny.
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-all-spelled-out, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          policyTypes: [Ingress, Egress]
          ingress:
          - from: []
            ports: []
          egress:
          - to: []
            ports: []
        """
    )
    run.check_probes([("TCP", 80, Reachability(True)), ("UDP", 81, Reachability(True))])


def test_allow_all_egress(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-all-egress, namespace: x}
        spec:
          podSelector: {}
          policyTypes: [Egress]
          egress:
          - {}
        """
    )
    run.check_probes([("TCP", 80, Reachability(True)), ("SCTP", 81, Reachability(True))])


def test_empty_egress_list_without_policy_types_isolates_ingress_only(run: Harness) -> None:
    # Defaulting adds Egress only when spec.egress has at least one rule; `egress: []` has none,
    # so this is an Ingress-only policy: ingress to x is denied, egress from x is untouched.
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: looks-like-deny-egress, namespace: x}
        spec:
          podSelector: {}
          egress: []
        """
    )
    run.check_probes([("TCP", 80, DENY_INGRESS_X), ("UDP", 81, DENY_INGRESS_X)])


def test_empty_egress_list_with_policy_type_egress_denies_egress(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny-egress, namespace: x}
        spec:
          podSelector: {}
          policyTypes: [Egress]
          egress: []
        """
    )
    run.check("TCP", 80, DENY_EGRESS_X)


@pytest.mark.parametrize("policy_types", ["", "policyTypes: []"], ids=["omitted", "empty-list"])
def test_egress_rules_without_policy_types_isolate_both_directions(
    run: Harness, policy_types: str
) -> None:
    # Defaulting: [Ingress] always, plus Egress because there is an egress rule. The policy has
    # no ingress rules, so x/a also loses all ingress.
    run.load(
        f"""
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {{name: egress-to-b, namespace: x}}
        spec:
          podSelector: {{matchLabels: {{pod: a}}}}
          {policy_types}
          egress:
          - to:
            - podSelector: {{matchLabels: {{pod: b}}}}
        """
    )
    r = Reachability(True)
    r.expect_all_ingress("x/a", False)
    r.expect_all_egress("x/a", False)
    r.expect("x/a", "x/b", True)
    run.check("TCP", 80, r)


def test_policy_type_egress_only_ignores_ingress_rules(run: Harness) -> None:
    # policyTypes is explicit, so the ingress section does not make the pod ingress-isolated:
    # a policy only "applies to" the directions listed in policyTypes.
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: egress-only, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          policyTypes: [Egress]
          ingress:
          - from:
            - podSelector: {matchLabels: {pod: b}}
          egress:
          - to:
            - namespaceSelector: {matchLabels: {ns: y}}
        """
    )
    r = Reachability(True).expect_all_egress("x/a", False).expect_peer("x/a", "y", True)
    run.check("TCP", 80, r)


def test_policy_type_ingress_only_ignores_egress_rules(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: ingress-only, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          policyTypes: [Ingress]
          ingress:
          - from:
            - podSelector: {matchLabels: {pod: b}}
          egress:
          - to:
            - podSelector: {matchLabels: {pod: c}}
        """
    )
    r = Reachability(True).expect_all_ingress("x/a", False).expect("x/b", "x/a", True)
    run.check("TCP", 80, r)


def test_both_policy_types_with_only_ingress_rules_denies_all_egress(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: ingress-rules-both-types, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          policyTypes: [Ingress, Egress]
          ingress:
          - from:
            - podSelector: {matchLabels: {pod: b}}
        """
    )
    r = Reachability(True).expect_all_ingress("x/a", False).expect_all_egress("x/a", False)
    r.expect("x/b", "x/a", True)
    run.check_probes([("TCP", 80, r), ("UDP", 81, r)])


def test_policy_selecting_no_pods_has_no_effect(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: selects-nothing, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: does-not-exist}}
          policyTypes: [Ingress, Egress]
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: selects-nothing-either, namespace: y}
        spec:
          podSelector:
            matchExpressions:
            - {key: pod, operator: DoesNotExist}
        """
    )
    run.check_probes([("TCP", 80, Reachability(True)), ("UDP", 81, Reachability(True))])


def test_policy_only_affects_its_own_namespace(run: Harness) -> None:
    # A policy's podSelector selects pods of the policy's namespace only: deny-all in y and a
    # pod=a deny in z must not isolate x/a.
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny-all, namespace: y}
        spec:
          podSelector: {}
          policyTypes: [Ingress]
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny-a, namespace: z}
        spec:
          podSelector: {matchLabels: {pod: a}}
          policyTypes: [Ingress, Egress]
        """
    )
    r = Reachability(True).expect_peer("*", "y", False)
    r.expect_all_ingress("z/a", False).expect_all_egress("z/a", False)
    run.check("TCP", 80, r)


# Upstream: "should enforce policy to allow ingress traffic for a target".
def test_deny_all_plus_allow_all_to_one_target(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny-all, namespace: x}
        spec:
          podSelector: {}
          policyTypes: [Ingress]
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-all-to-a, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          ingress:
          - from:
            - podSelector: {}
              namespaceSelector: {}
        """
    )
    r = Reachability(True).expect_all_ingress("x/b", False).expect_all_ingress("x/c", False)
    run.check("TCP", 80, r)


def test_multiple_policies_on_one_pod_are_a_union(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-from-x-b, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          ingress:
          - from:
            - podSelector: {matchLabels: {pod: b}}
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-from-y-c, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          ingress:
          - from:
            - namespaceSelector: {matchLabels: {ns: y}}
              podSelector: {matchLabels: {pod: c}}
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny-ingress-a, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          policyTypes: [Ingress]
        """
    )
    r = Reachability(True).expect_all_ingress("x/a", False)
    r.expect("x/b", "x/a", True).expect("y/c", "x/a", True)
    run.check("TCP", 80, r)


# Upstream: "should enforce multiple ingress policies with ingress allow-all policy taking
# precedence".
def test_ingress_allow_all_policy_wins_over_port_restricted_policy(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-ingress-port-80, namespace: x}
        spec:
          podSelector: {}
          policyTypes: [Ingress]
          ingress:
          - ports:
            - port: 80
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-ingress, namespace: x}
        spec:
          podSelector: {}
          policyTypes: [Ingress]
          ingress:
          - {}
        """
    )
    run.check_probes([("TCP", 81, Reachability(True)), ("TCP", 80, Reachability(True))])


# Upstream: "should enforce multiple egress policies with egress allow-all policy taking
# precedence" (first step: only the port-80 policy).
def test_egress_port_restricted_policy_alone(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-egress-port-80, namespace: x}
        spec:
          podSelector: {}
          policyTypes: [Egress]
          egress:
          - ports:
            - port: 80
        """
    )
    run.check_probes([("TCP", 81, DENY_EGRESS_X), ("TCP", 80, Reachability(True))])


# Upstream: "should enforce multiple egress policies with egress allow-all policy taking
# precedence" (second step: plus allow-all egress).
def test_egress_allow_all_policy_wins_over_deny_and_port_policies(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-egress-port-80, namespace: x}
        spec:
          podSelector: {}
          policyTypes: [Egress]
          egress:
          - ports:
            - port: 80
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny-egress, namespace: x}
        spec:
          podSelector: {}
          policyTypes: [Egress]
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-egress, namespace: x}
        spec:
          podSelector: {}
          policyTypes: [Egress]
          egress:
          - {}
        """
    )
    run.check_probes([("TCP", 81, Reachability(True)), ("UDP", 80, Reachability(True))])


# Upstream: "should deny ingress access to updated pod" (after the label is added).
def test_isolation_follows_pod_labels(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny-ingress-via-label-selector, namespace: x}
        spec:
          podSelector: {matchLabels: {target: isolated}}
          policyTypes: [Ingress]
        """,
        pod_labels={"x/a": {"target": "isolated"}, "y/b": {"target": "isolated"}},
    )
    # y/b carries the label too, but the policy lives in x.
    run.check("TCP", 80, Reachability(True).expect_all_ingress("x/a", False))


# Upstream: "should enforce policies to check ingress and egress policies can be controlled
# independently based on PodSelector".
def test_ingress_and_egress_controlled_independently(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-egress-for-target, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          policyTypes: [Egress]
          egress:
          - {}
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny-ingress-via-label-selector, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          policyTypes: [Ingress]
        """
    )
    run.check("TCP", 80, Reachability(True).expect_all_ingress("x/a", False))


def test_self_traffic_allowed_under_deny_all(run: Harness) -> None:
    # Kubernetes docs: "a pod cannot block access to itself". Every pod here is isolated in both
    # directions with nothing allowed, so only the diagonal stays open.
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny-all, namespace: x}
        spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny-all, namespace: y}
        spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny-all, namespace: z}
        spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
        """
    )
    r = Reachability(False)
    assert r.count(True) == 9  # exactly the diagonal
    run.check_probes([("TCP", 80, r), ("UDP", 81, r), ("SCTP", 80, r), ("TCP", 9999, r)])
    d = run.decide("x/a", "x/a", "TCP", 80)
    assert d.allowed
    assert d.reason == "SELF_TRAFFIC"


def test_self_traffic_allowed_when_rules_exclude_self(run: Harness) -> None:
    # x/a only admits x/b and may only send to x/b, on UDP/53; neither rule matches x/a -> x/a.
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: narrow, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          ingress:
          - from: [{podSelector: {matchLabels: {pod: b}}}]
            ports: [{protocol: UDP, port: 53}]
          egress:
          - to: [{podSelector: {matchLabels: {pod: b}}}]
            ports: [{protocol: UDP, port: 53}]
        """
    )
    r = Reachability(True).expect_all_ingress("x/a", False).expect_all_egress("x/a", False)
    run.check("TCP", 80, r)
    r53 = Reachability(True).expect_all_ingress("x/a", False).expect_all_egress("x/a", False)
    r53.expect("x/b", "x/a", True).expect("x/a", "x/b", True)
    run.check("UDP", 53, r53)
