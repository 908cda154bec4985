"""ipBlock peers (pod IPs and external IPs), ``except``, host bits in CIDRs, and flows whose
source or destination is an address outside the cluster.

Authority: the IPBlock API reference (``cidr`` and ``except``; except entries are carved out of
``cidr``), ``ValidateIPBlock`` (CIDRs are parsed with ``ParseCIDRSloppy``, which keeps only the
network part, so ``10.244.2.99/24`` means ``10.244.2.0/24`` unless the alpha
StrictIPCIDRValidation gate is on), and the concept page: pod and namespace selectors select
pods, never arbitrary addresses. Whether ipBlock applies to pod IPs is left to implementations
by Kubernetes; the Trustwire contract says it does (any of the pod's IPs, see
docs/conformance.md). Upstream e2e names are from ``test/e2e/network/netpol/network_policy.go``.
"""

from __future__ import annotations

from .harness import Harness
from .model import Reachability, ipv4_of, ipv6_of

EXT = "203.0.113.7"  # TEST-NET-3
EXT_HIGH = "203.0.113.200"  # TEST-NET-3, upper half
EXT2 = "198.51.100.1"  # TEST-NET-2
EXT6 = "2001:db8::7"


def _x_a_ingress_from(peers_yaml: str) -> str:
    body = "\n".join("    " + line for line in peers_yaml.strip("\n").splitlines())
    return (
        "apiVersion: networking.k8s.io/v1\n"
        "kind: NetworkPolicy\n"
        "metadata: {name: x-a-ingress, namespace: x}\n"
        "spec:\n"
        "  podSelector: {matchLabels: {pod: a}}\n"
        "  policyTypes: [Ingress]\n"
        "  ingress:\n"
        "  - from:\n" + body + "\n"
    )


def _x_a_egress_to(peers_yaml: str, ports_yaml: str = "") -> str:
    body = "\n".join("    " + line for line in peers_yaml.strip("\n").splitlines())
    ports = (
        "\n    ports:\n" + "\n".join("    " + line for line in ports_yaml.strip("\n").splitlines())
        if ports_yaml
        else ""
    )
    return (
        "apiVersion: networking.k8s.io/v1\n"
        "kind: NetworkPolicy\n"
        "metadata: {name: x-a-egress, namespace: x}\n"
        "spec:\n"
        "  podSelector: {matchLabels: {pod: a}}\n"
        "  policyTypes: [Egress]\n"
        "  egress:\n"
        "  - to:\n" + body + ports + "\n"
    )


def _only_from(*sources: str) -> Reachability:
    r = Reachability(True).expect_all_ingress("x/a", False)
    for src in sources:
        r.expect_peer(src, "x/a", True)
    return r


def _only_to(*destinations: str) -> Reachability:
    r = Reachability(True).expect_all_egress("x/a", False)
    for dst in destinations:
        r.expect_peer("x/a", dst, True)
    return r


def test_ingress_ip_block_matches_pod_ips(run: Harness) -> None:
    run.load(_x_a_ingress_from("- ipBlock: {cidr: 10.244.2.0/24}"))
    run.check_probes([("TCP", 80, _only_from("y")), ("UDP", 81, _only_from("y"))])


def test_ingress_ip_block_except_excludes_one_pod(run: Harness) -> None:
    run.load(
        _x_a_ingress_from(
            f"""
- ipBlock:
    cidr: 10.244.0.0/16
    except: [{ipv4_of("y/b")}/32, 10.244.3.0/24]
"""
        )
    )
    run.check("TCP", 80, _only_from("x", "y/a", "y/c"))


# Upstream: "should allow egress access to server in CIDR block".
def test_egress_to_single_pod_ip(run: Harness) -> None:
    run.load(_x_a_egress_to(f"- ipBlock: {{cidr: {ipv4_of('y/b')}/32}}"))
    run.check("TCP", 80, _only_to("y/b"))


def test_egress_to_single_pod_ipv6(run: Harness) -> None:
    run.load(_x_a_egress_to(f'- ipBlock: {{cidr: "{ipv6_of("z/c")}/128"}}'))
    run.check("TCP", 80, _only_to("z/c"))


# Upstream: "should enforce except clause while egress access to server in CIDR block".
def test_egress_large_cidr_with_except(run: Harness) -> None:
    # Upstream builds the /4 around the pod IP (makeLargeCIDRForIP): 10.244.1.11 -> 0.0.0.0/4.
    run.load(
        _x_a_egress_to(
            f"""
- ipBlock:
    cidr: 0.0.0.0/4
    except: [{ipv4_of("x/b")}/32]
"""
        )
    )
    run.check("TCP", 80, Reachability(True).expect("x/a", "x/b", False))


# Upstream: "should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed".
def test_ip_in_except_of_one_policy_allowed_by_another(run: Harness) -> None:
    first = _x_a_egress_to(
        f"""
- ipBlock:
    cidr: 0.0.0.0/4
    except: [{ipv4_of("x/b")}/32]
"""
    )
    second = _x_a_egress_to(f"- ipBlock: {{cidr: {ipv4_of('x/b')}/32}}").replace(
        "name: x-a-egress", "name: x-a-egress-to-b"
    )
    run.load(first + "---\n" + second)
    run.check("TCP", 80, Reachability(True))


def test_ip_in_except_of_one_peer_allowed_by_another_peer(run: Harness) -> None:
    run.load(
        _x_a_ingress_from(
            f"""
- ipBlock:
    cidr: 10.244.0.0/16
    except: [10.244.2.0/24]
- ipBlock:
    cidr: {ipv4_of("y/b")}/32
"""
        )
    )
    run.check("TCP", 80, _only_from("x", "z", "y/b"))


def test_cidr_with_host_bits_is_masked(run: Harness) -> None:
    # 10.244.2.99/24 is accepted by the API server and means 10.244.2.0/24; the except entry
    # 10.244.2.11/31 means 10.244.2.10/31, i.e. both y/a (.10) and y/b (.11).
    run.load(
        _x_a_ingress_from(
            """
- ipBlock:
    cidr: 10.244.2.99/24
    except: [10.244.2.11/31]
- ipBlock:
    cidr: 10.244.3.12/30
"""
        )
    )
    # 10.244.3.12/30 -> 10.244.3.12-15: z/c only (z/a .10 and z/b .11 are outside).
    run.check("TCP", 80, _only_from("y/c", "z/c"))


def test_ip_block_matches_a_pods_secondary_ipv6(run: Harness) -> None:
    run.load(_x_a_ingress_from('- ipBlock: {cidr: "fd00:10:244:3::/64"}'))
    run.check("TCP", 80, _only_from("z"))


def test_any_of_the_pod_ips_may_match(run: Harness) -> None:
    # y is carved out of the IPv4 block, but y/b still matches through its IPv6 address.
    run.load(
        _x_a_ingress_from(
            f"""
- ipBlock:
    cidr: 10.244.0.0/16
    except: [10.244.2.0/24]
- ipBlock:
    cidr: "{ipv6_of("y/b")}/128"
"""
        )
    )
    run.check("TCP", 80, _only_from("x", "z", "y/b"))


def test_ipv4_default_route_matches_all_pods_and_ipv4_externals_only(run: Harness) -> None:
    run.load(_x_a_ingress_from("- ipBlock: {cidr: 0.0.0.0/0}"))
    run.check("TCP", 80, Reachability(True))
    run.check_flows(
        [
            (EXT, "x/a", "TCP", 80, True),
            (EXT2, "x/a", "UDP", 81, True),
            (EXT6, "x/a", "TCP", 80, False),
        ]
    )


def test_external_ip_block_does_not_match_pods(run: Harness) -> None:
    run.load(_x_a_ingress_from("- ipBlock: {cidr: 192.0.2.0/24}"))
    run.check("TCP", 80, _only_from())
    run.check_flows([("192.0.2.5", "x/a", "TCP", 80, True), (EXT, "x/a", "TCP", 80, False)])


def test_external_source_to_non_isolated_and_isolated_pods(run: Harness) -> None:
    # Only the destination's ingress counts for an external source; x's egress deny is
    # irrelevant to traffic arriving from outside.
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny-ingress, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          policyTypes: [Ingress]
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny-egress, namespace: x}
        spec:
          podSelector: {}
          policyTypes: [Egress]
        """
    )
    run.check_flows(
        [
            (EXT, "x/a", "TCP", 80, False),
            (EXT, "x/b", "TCP", 80, True),
            (EXT6, "x/c", "SCTP", 81, True),
            (EXT, "y/a", "UDP", 80, True),
            ("x/b", EXT, "TCP", 443, False),
            ("y/b", EXT, "TCP", 443, True),
            ("y/b", EXT6, "UDP", 53, True),
        ]
    )
    d = run.decide(EXT, "x/a", "TCP", 80)
    assert d.egress is None, "an external source has no egress enforcer"
    assert d.ingress is not None
    assert not d.ingress.allowed
    d = run.decide("x/b", EXT, "TCP", 443)
    assert d.ingress is None, "an external destination has no ingress enforcer"
    assert d.egress is not None
    assert not d.egress.allowed


def test_external_source_matched_by_ip_block_with_except(run: Harness) -> None:
    run.load(
        _x_a_ingress_from(
            """
- ipBlock:
    cidr: 203.0.113.0/24
    except: [203.0.113.128/25]
"""
        )
    )
    run.check("TCP", 80, _only_from())
    run.check_flows(
        [
            (EXT, "x/a", "TCP", 80, True),
            ("203.0.113.0", "x/a", "TCP", 80, True),
            ("203.0.113.127", "x/a", "TCP", 80, True),
            ("203.0.113.128", "x/a", "TCP", 80, False),
            (EXT_HIGH, "x/a", "TCP", 80, False),
            (EXT2, "x/a", "TCP", 80, False),
        ]
    )


def test_selectors_never_match_external_sources(run: Harness) -> None:
    # namespaceSelector {} is "all pods in all namespaces", not "everything".
    run.load(
        _x_a_ingress_from(
            """
- namespaceSelector: {}
- podSelector: {}
- namespaceSelector: {}
  podSelector: {}
"""
        )
    )
    run.check("TCP", 80, Reachability(True))
    run.check_flows([(EXT, "x/a", "TCP", 80, False), (EXT6, "x/a", "TCP", 80, False)])


def test_rule_without_peers_admits_external_sources(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: port-only, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          ingress:
          - ports: [{protocol: UDP, port: 53}]
        """
    )
    run.check_flows(
        [
            (EXT, "x/a", "UDP", 53, True),
            (EXT6, "x/a", "UDP", 53, True),
            (EXT, "x/a", "TCP", 53, False),
        ]
    )


def test_egress_to_external_cidr_on_one_port(run: Harness) -> None:
    run.load(_x_a_egress_to("- ipBlock: {cidr: 203.0.113.0/24}", "- {protocol: TCP, port: 443}"))
    run.check("TCP", 443, _only_to())
    run.check_flows(
        [
            ("x/a", EXT, "TCP", 443, True),
            ("x/a", EXT_HIGH, "TCP", 443, True),
            ("x/a", EXT, "TCP", 80, False),
            ("x/a", EXT, "UDP", 443, False),
            ("x/a", EXT2, "TCP", 443, False),
            ("x/b", EXT2, "TCP", 443, True),
        ]
    )


def test_egress_to_ipv6_external(run: Harness) -> None:
    run.load(_x_a_egress_to('- ipBlock: {cidr: "2001:db8::/32"}'))
    run.check("TCP", 80, _only_to())
    run.check_flows(
        [
            ("x/a", EXT6, "TCP", 80, True),
            ("x/a", "2001:db9::1", "TCP", 80, False),
            ("x/a", EXT, "TCP", 80, False),
        ]
    )


def test_egress_selectors_never_match_external_destinations(run: Harness) -> None:
    run.load(_x_a_egress_to("- namespaceSelector: {}"))
    run.check("TCP", 80, Reachability(True))
    run.check_flows([("x/a", EXT, "TCP", 80, False), ("x/a", EXT6, "TCP", 80, False)])


def test_egress_rule_without_peers_reaches_external_destinations(run: Harness) -> None:
    # The usual "allow DNS anywhere" rule: no `to`, so every destination, pods and IPs alike.
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-dns, namespace: x}
        spec:
          podSelector: {}
          policyTypes: [Egress]
          egress:
          - ports:
            - {protocol: UDP, port: 53}
            - {protocol: TCP, port: 53}
        """
    )
    run.check("UDP", 53, Reachability(True))
    run.check("UDP", 80, Reachability(True).expect_peer("x", "*", False))
    run.check_flows(
        [
            ("x/a", EXT, "UDP", 53, True),
            ("x/c", EXT6, "TCP", 53, True),
            ("x/a", EXT, "UDP", 54, False),
            ("x/a", EXT, "SCTP", 53, False),
        ]
    )


def test_named_port_never_matches_an_ip_destination(run: Harness) -> None:
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: egress-named, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          policyTypes: [Egress]
          egress:
          - ports:
            - port: serve-80-tcp
        """
    )
    run.check("TCP", 80, Reachability(True))
    run.check("TCP", 81, _only_to())
    run.check_flows([("x/a", EXT, "TCP", 80, False), ("x/a", EXT6, "TCP", 80, False)])


def test_named_port_ingress_from_external_resolves_on_destination_pod(run: Harness) -> None:
    # The destination is a pod, so the name resolves there even though the source is an IP.
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: ingress-named, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          ingress:
          - ports:
            - port: serve-80-tcp
        """
    )
    run.check_flows(
        [
            (EXT, "x/a", "TCP", 80, True),
            (EXT, "x/a", "TCP", 81, False),
            (EXT, "x/a", "UDP", 80, False),
        ]
    )


def test_no_policies_external_flows_allowed(run: Harness) -> None:
    # Pods that no policy selects talk to and from the outside freely.
    run.load("")
    run.check_flows(
        [
            (EXT, "z/c", "TCP", 80, True),
            ("z/c", EXT, "TCP", 80, True),
            (EXT6, "y/a", "UDP", 81, True),
            ("y/a", EXT6, "SCTP", 81, True),
        ]
    )


def test_local_node_may_always_reach_its_pods(run: Harness) -> None:
    # NetworkPolicySpec.ingress (API reference): "Traffic is allowed to a pod if there are no
    # NetworkPolicies selecting the pod ..., OR if the traffic source is the pod's local node,
    # OR if the traffic matches at least one ingress rule". The concept page: "traffic to and
    # from the node where a Pod is running is always allowed".
    run.load(
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny-ingress, namespace: x}
        spec:
          podSelector: {}
          policyTypes: [Ingress]
        """,
        host_ips={"x/a": "192.168.0.1", "x/b": "192.168.0.2"},
    )
    run.check_flows(
        [
            ("192.168.0.2", "x/a", "TCP", 80, False),  # another node: an ordinary address
            ("192.168.0.1", "x/a", "TCP", 80, True),  # x/a's own node
        ]
    )
