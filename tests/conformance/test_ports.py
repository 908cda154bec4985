"""Ports and protocols: numbers, names, the TCP default, UDP, SCTP, ``endPort`` ranges, rules
with only ports or only peers, several ports and several rules.

Authority: the NetworkPolicyPort API reference (``protocol`` defaults to TCP; a missing
``port`` matches all ports of the protocol; a named port matches when the destination pod has
a container port of that name and protocol; ``endPort`` makes an inclusive range), the
concept page "Targeting a range of ports", and ``SetDefaults_NetworkPolicyPort``. Upstream e2e
names are from ``test/e2e/network/netpol/network_policy.go``.
"""

from __future__ import annotations

from .harness import Harness
from .model import Reachability


def _x_a_ingress(rule_yaml: str, name: str = "x-a-ingress") -> str:
    body = "\n".join("  " + line for line in rule_yaml.strip("\n").splitlines())
    return (
        "apiVersion: networking.k8s.io/v1\n"
        "kind: NetworkPolicy\n"
        f"metadata: {{name: {name}, namespace: x}}\n"
        "spec:\n"
        "  podSelector: {matchLabels: {pod: a}}\n"
        "  policyTypes: [Ingress]\n"
        "  ingress:\n" + body + "\n"
    )


ALL = Reachability(True)
X_A_CLOSED = Reachability(True).expect_all_ingress("x/a", False)


# Upstream: "should enforce policy based on Ports" (TCP, UDP and SCTP variants) and
# "should enforce multiple, stacked policies with overlapping podSelectors" (first step).
def test_port_number_with_namespace_peer(run: Harness) -> None:
    run.load(
        _x_a_ingress(
            """
- from:
  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}
  ports:
  - {protocol: TCP, port: 81}
"""
        )
    )
    only_y = Reachability(True).expect_all_ingress("x/a", False).expect_peer("y", "x/a", True)
    run.check_probes(
        [
            ("TCP", 81, only_y),
            ("TCP", 80, X_A_CLOSED),
            ("UDP", 81, X_A_CLOSED),
            ("SCTP", 81, X_A_CLOSED),
        ]
    )


def test_port_number_udp_and_sctp(run: Harness) -> None:
    run.load(
        _x_a_ingress(
            """
- from:
  - namespaceSelector: {matchLabels: {ns: y}}
  ports:
  - {protocol: UDP, port: 81}
- from:
  - namespaceSelector: {matchLabels: {ns: z}}
  ports:
  - {protocol: SCTP, port: 81}
"""
        )
    )
    from_y = Reachability(True).expect_all_ingress("x/a", False).expect_peer("y", "x/a", True)
    from_z = Reachability(True).expect_all_ingress("x/a", False).expect_peer("z", "x/a", True)
    run.check_probes(
        [
            ("UDP", 81, from_y),
            ("SCTP", 81, from_z),
            ("TCP", 81, X_A_CLOSED),
            ("UDP", 80, X_A_CLOSED),
        ]
    )


# Upstream: "should enforce multiple, stacked policies with overlapping podSelectors" (second
# step: a second policy unblocks port 80).
def test_stacked_policies_on_different_ports(run: Harness) -> None:
    first = _x_a_ingress(
        """
- from:
  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}
  ports:
  - {protocol: TCP, port: 81}
""",
        name="allow-client-a-via-ns-selector",
    )
    second = _x_a_ingress(
        """
- from:
  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}
  ports:
  - {protocol: TCP, port: 80}
""",
        name="allow-client-a-via-ns-selector-80",
    )
    run.load(first + "---\n" + second)
    only_y = Reachability(True).expect_all_ingress("x/a", False).expect_peer("y", "x/a", True)
    run.check_probes([("TCP", 80, only_y), ("TCP", 81, only_y), ("TCP", 82, X_A_CLOSED)])


def test_protocol_defaults_to_tcp(run: Harness) -> None:
    run.load(_x_a_ingress("- ports:\n  - port: 80"))
    run.check_probes(
        [
            ("TCP", 80, ALL),
            ("UDP", 80, X_A_CLOSED),
            ("SCTP", 80, X_A_CLOSED),
            ("TCP", 81, X_A_CLOSED),
        ]
    )


# Upstream: "should not allow access by TCP when a policy specifies only UDP".
def test_udp_only_rule_does_not_allow_tcp(run: Harness) -> None:
    run.load(_x_a_ingress("- ports:\n  - {protocol: UDP, port: 81}"))
    run.check_probes([("TCP", 81, X_A_CLOSED), ("UDP", 81, ALL), ("SCTP", 81, X_A_CLOSED)])


# Upstream: "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the
# plugin doesn't support SCTP".
def test_sctp_rule_is_not_tcp(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny-ingress, namespace: x}
        spec:
          podSelector: {}
          policyTypes: [Ingress]
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-only-sctp-ingress-on-port-81, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          ingress:
          - ports:
            - {protocol: SCTP, port: 81}
        """
    )
    deny_x = Reachability(True).expect_peer("*", "x", False)
    sctp = Reachability(True).expect_peer("*", "x", False).expect_all_ingress("x/a", True)
    run.check_probes([("TCP", 81, deny_x), ("UDP", 81, deny_x), ("SCTP", 81, sctp)])


# Upstream: "should properly isolate pods that are selected by a policy allowing SCTP, even if
# the plugin doesn't support SCTP".
def test_sctp_only_policy_still_isolates(run: Harness) -> None:
    run.load(_x_a_ingress("- ports:\n  - {protocol: SCTP, port: 80}"))
    run.check_probes([("TCP", 81, X_A_CLOSED), ("TCP", 80, X_A_CLOSED), ("SCTP", 80, ALL)])


# Upstream: "should enforce ingress policy allowing any port traffic to a server on a specific
# protocol".
def test_protocol_without_port_matches_every_port(run: Harness) -> None:
    run.load(_x_a_ingress("- ports:\n  - protocol: TCP"))
    run.check_probes(
        [("TCP", 80, ALL), ("TCP", 81, ALL), ("TCP", 65535, ALL), ("UDP", 80, X_A_CLOSED)]
    )


# Upstream: "should allow ingress access on one named port".
def test_named_port_ingress(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-all, namespace: x}
        spec:
          podSelector: {}
          ingress:
          - ports:
            - port: serve-81-tcp
        """
    )
    deny_x = Reachability(True).expect_peer("*", "x", False)
    run.check_probes([("TCP", 81, ALL), ("TCP", 80, deny_x), ("UDP", 81, deny_x)])


# Upstream: "should allow ingress access from namespace on one named port".
def test_named_port_ingress_from_namespace(run: Harness) -> None:
    run.load(
        _x_a_ingress(
            """
- from:
  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}
  ports:
  - {protocol: TCP, port: serve-80-tcp}
"""
        )
    )
    only_y = Reachability(True).expect_all_ingress("x/a", False).expect_peer("y", "x/a", True)
    run.check_probes([("TCP", 80, only_y), ("TCP", 81, X_A_CLOSED)])


# Upstream: "should allow egress access on one named port".
def test_named_port_egress(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-egress, namespace: x}
        spec:
          podSelector: {}
          policyTypes: [Egress]
          egress:
          - ports:
            - port: serve-80-tcp
        """
    )
    deny_from_x = Reachability(True).expect_peer("x", "*", False)
    run.check_probes([("TCP", 80, ALL), ("TCP", 81, deny_from_x), ("UDP", 80, deny_from_x)])


def test_named_port_of_another_protocol_does_not_match(run: Harness) -> None:
    # serve-80-udp exists on every pod, but the rule's protocol defaults to TCP: for TCP/80 the
    # name resolves to a UDP port (no match); for UDP/80 the rule's protocol is TCP (no match).
    run.load(_x_a_ingress("- ports:\n  - port: serve-80-udp"))
    run.check_probes([("TCP", 80, X_A_CLOSED), ("UDP", 80, X_A_CLOSED), ("SCTP", 80, X_A_CLOSED)])


def test_named_port_with_matching_protocol(run: Harness) -> None:
    run.load(_x_a_ingress("- ports:\n  - {protocol: UDP, port: serve-80-udp}"))
    run.check_probes([("UDP", 80, ALL), ("TCP", 80, X_A_CLOSED), ("UDP", 81, X_A_CLOSED)])


def test_named_port_number_must_equal_probed_port(run: Harness) -> None:
    run.load(_x_a_ingress("- ports:\n  - port: serve-81-tcp"))
    run.check_probes([("TCP", 80, X_A_CLOSED), ("TCP", 81, ALL), ("TCP", 82, X_A_CLOSED)])


def test_named_port_unknown_on_destination_matches_nothing(run: Harness) -> None:
    run.load(_x_a_ingress("- ports:\n  - port: no-such-port"))
    run.check_probes([("TCP", 80, X_A_CLOSED), ("TCP", 81, X_A_CLOSED)])


def test_named_port_resolves_per_destination_pod(run: Harness) -> None:
    # The name "web" means 8080 on x/b and 9090 on x/c, and is UDP on x/a: one rule, three
    # different answers, decided by the destination pod's own container ports.
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: web-only, namespace: x}
        spec:
          podSelector: {}
          ingress:
          - ports:
            - port: web
        """,
        extra_ports={
            "x/a": [("web", 8080, "UDP")],
            "x/b": [("web", 8080, "TCP")],
            "x/c": [("web", 9090, "TCP")],
            "y/a": [("web", 7070, "TCP")],
        },
    )
    deny_x = Reachability(True).expect_peer("*", "x", False)
    tcp8080 = Reachability(True).expect_peer("*", "x", False).expect_all_ingress("x/b", True)
    tcp9090 = Reachability(True).expect_peer("*", "x", False).expect_all_ingress("x/c", True)
    run.check_probes(
        [
            ("TCP", 8080, tcp8080),
            ("TCP", 9090, tcp9090),
            ("UDP", 8080, deny_x),
            ("TCP", 7070, deny_x),
            ("TCP", 80, deny_x),
        ]
    )


def test_named_port_egress_resolves_on_destination(run: Harness) -> None:
    # Egress from x/a to "web": the name is looked up on the destination, not on x/a.
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: egress-web, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          policyTypes: [Egress]
          egress:
          - ports:
            - port: web
        """,
        extra_ports={"x/a": [("web", 9090, "TCP")], "y/b": [("web", 8080, "TCP")]},
    )
    closed = Reachability(True).expect_all_egress("x/a", False)
    run.check_probes(
        [
            (
                "TCP",
                8080,
                Reachability(True).expect_all_egress("x/a", False).expect("x/a", "y/b", True),
            ),
            ("TCP", 9090, closed),
        ]
    )


def test_end_port_range_is_inclusive(run: Harness) -> None:
    run.load(_x_a_ingress("- ports:\n  - {protocol: TCP, port: 80, endPort: 82}"))
    run.check_probes(
        [
            ("TCP", 79, X_A_CLOSED),
            ("TCP", 80, ALL),
            ("TCP", 81, ALL),
            ("TCP", 82, ALL),
            ("TCP", 83, X_A_CLOSED),
            ("UDP", 81, X_A_CLOSED),
        ]
    )


def test_end_port_equal_to_port_is_a_single_port(run: Harness) -> None:
    run.load(_x_a_ingress("- ports:\n  - {port: 81, endPort: 81}"))
    run.check_probes([("TCP", 80, X_A_CLOSED), ("TCP", 81, ALL), ("TCP", 82, X_A_CLOSED)])


def test_end_port_range_udp_and_egress(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: egress-range, namespace: y}
        spec:
          podSelector: {matchLabels: {pod: c}}
          policyTypes: [Egress]
          egress:
          - to:
            - namespaceSelector: {matchLabels: {ns: z}}
            ports:
            - {protocol: UDP, port: 32000, endPort: 32768}
        """
    )
    closed = Reachability(True).expect_all_egress("y/c", False)
    to_z = Reachability(True).expect_all_egress("y/c", False).expect_peer("y/c", "z", True)
    run.check_probes(
        [
            ("UDP", 31999, closed),
            ("UDP", 32000, to_z),
            ("UDP", 32400, to_z),
            ("UDP", 32768, to_z),
            ("UDP", 32769, closed),
            ("TCP", 32400, closed),
        ]
    )


def test_full_port_range(run: Harness) -> None:
    run.load(_x_a_ingress("- ports:\n  - {protocol: SCTP, port: 1, endPort: 65535}"))
    run.check_probes([("SCTP", 1, ALL), ("SCTP", 65535, ALL), ("TCP", 1, X_A_CLOSED)])


def test_rule_with_ports_but_no_from_admits_all_sources(run: Harness) -> None:
    run.load(_x_a_ingress("- ports:\n  - {protocol: TCP, port: 81}"))
    run.check_probes([("TCP", 81, ALL), ("TCP", 80, X_A_CLOSED)])


def test_rule_with_from_but_no_ports_admits_all_ports(run: Harness) -> None:
    run.load(_x_a_ingress("- from:\n  - namespaceSelector: {matchLabels: {ns: z}}"))
    from_z = Reachability(True).expect_all_ingress("x/a", False).expect_peer("z", "x/a", True)
    run.check_probes(
        [("TCP", 80, from_z), ("UDP", 81, from_z), ("SCTP", 80, from_z), ("TCP", 12345, from_z)]
    )


def test_several_ports_in_one_rule_are_or(run: Harness) -> None:
    run.load(_x_a_ingress("- ports:\n  - {protocol: TCP, port: 80}\n  - {protocol: UDP, port: 81}"))
    run.check_probes(
        [("TCP", 80, ALL), ("UDP", 81, ALL), ("TCP", 81, X_A_CLOSED), ("UDP", 80, X_A_CLOSED)]
    )


def test_peer_and_port_of_one_rule_are_and_rules_are_or(run: Harness) -> None:
    # y may use TCP/80 only, z TCP/81 only: mixing a peer of one rule with the port of the
    # other must not be allowed.
    run.load(
        _x_a_ingress(
            """
- from:
  - namespaceSelector: {matchLabels: {ns: y}}
  ports:
  - port: 80
- from:
  - namespaceSelector: {matchLabels: {ns: z}}
  ports:
  - port: 81
"""
        )
    )
    from_y = Reachability(True).expect_all_ingress("x/a", False).expect_peer("y", "x/a", True)
    from_z = Reachability(True).expect_all_ingress("x/a", False).expect_peer("z", "x/a", True)
    run.check_probes([("TCP", 80, from_y), ("TCP", 81, from_z)])


# Upstream: "should work with Ingress, Egress specified together".
def test_ingress_and_egress_together(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-client-a-via-pod-selector, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          policyTypes: [Egress, Ingress]
          ingress:
          - from:
            - podSelector: {matchLabels: {pod: b}}
          egress:
          - ports:
            - port: 80
        """
    )
    r80 = Reachability(True).expect_all_ingress("x/a", False).expect("x/b", "x/a", True)
    r81 = Reachability(True).expect_all_ingress("x/a", False).expect_all_egress("x/a", False)
    r81.expect("x/b", "x/a", True)
    run.check_probes([("TCP", 80, r80), ("TCP", 81, r81)])


def test_both_sides_must_allow(run: Harness) -> None:
    # x/a may send to y on TCP/80-81; y/b only admits TCP/81 from x. Only x/a -> y/b:81 and
    # x/a -> y/{a,c}:80-81 pass; other x pods reach y/b on 81 only.
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: a-egress, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          policyTypes: [Egress]
          egress:
          - to: [{namespaceSelector: {matchLabels: {ns: y}}}]
            ports: [{port: 80, endPort: 81}]
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: b-ingress, namespace: y}
        spec:
          podSelector: {matchLabels: {pod: b}}
          policyTypes: [Ingress]
          ingress:
          - from: [{namespaceSelector: {matchLabels: {ns: x}}}]
            ports: [{port: 81}]
        """
    )
    r80 = Reachability(True).expect_all_egress("x/a", False).expect_peer("x/a", "y", True)
    r80.expect_all_ingress("y/b", False)
    r81 = Reachability(True).expect_all_egress("x/a", False).expect_peer("x/a", "y", True)
    r81.expect_all_ingress("y/b", False).expect_peer("x", "y/b", True)
    run.check_probes([("TCP", 80, r80), ("TCP", 81, r81)])
