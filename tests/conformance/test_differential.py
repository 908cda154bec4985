"""Random NetworkPolicies, three evaluators: PolicyEngine, ReferenceEvaluator and the naive
``oracle.py`` must agree on every pod pair and on flows to and from external addresses.

The hand-written truth tables elsewhere pin the rules down one at a time; this test looks for
the interactions nobody thought to write down (several policies, mixed peers, ports and
directions). Generation is derandomised so a failure reproduces on every run.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from .harness import Harness
from .model import ALL_PODS, NAMESPACES, PODS, ipv4_of, ipv6_of
from .oracle import Oracle

KEYS = ["pod", "ns", "kubernetes.io/metadata.name", "env"]
VALUES = [*PODS, *NAMESPACES, "prod"]

requirement = st.one_of(
    st.builds(
        lambda k, op, vs: {"key": k, "operator": op, "values": sorted(set(vs))},
        st.sampled_from(KEYS),
        st.sampled_from(["In", "NotIn"]),
        st.lists(st.sampled_from(VALUES), min_size=1, max_size=3),
    ),
    st.builds(
        lambda k, op: {"key": k, "operator": op},
        st.sampled_from(KEYS),
        st.sampled_from(["Exists", "DoesNotExist"]),
    ),
)


def _selector(labels: dict[str, str], exprs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if labels:
        out["matchLabels"] = labels
    if exprs:
        out["matchExpressions"] = exprs
    return out


pod_selector = st.builds(
    _selector,
    st.dictionaries(st.just("pod"), st.sampled_from(PODS), max_size=1),
    st.lists(requirement, max_size=2),
)
namespace_selector = st.builds(
    _selector,
    st.dictionaries(
        st.sampled_from(["ns", "kubernetes.io/metadata.name"]),
        st.sampled_from(NAMESPACES),
        max_size=1,
    ),
    st.lists(requirement, max_size=2),
)

IP_BLOCKS: list[dict[str, Any]] = [
    {"cidr": "10.244.0.0/16"},
    {"cidr": "10.244.0.0/16", "except": ["10.244.2.0/24"]},
    {"cidr": "10.244.1.0/24", "except": [f"{ipv4_of('x/b')}/32"]},
    {"cidr": "10.244.2.11/31"},
    {"cidr": f"{ipv4_of('z/c')}/32"},
    {"cidr": "fd00:10:244:3::/64"},
    {"cidr": f"{ipv6_of('y/a')}/128"},
    {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]},
    {"cidr": "203.0.113.0/24", "except": ["203.0.113.128/25"]},
    {"cidr": "2001:db8::/32"},
]

peer = st.one_of(
    st.builds(lambda s: {"podSelector": s}, pod_selector),
    st.builds(lambda s: {"namespaceSelector": s}, namespace_selector),
    st.builds(
        lambda p, n: {"podSelector": p, "namespaceSelector": n}, pod_selector, namespace_selector
    ),
    st.builds(lambda b: {"ipBlock": b}, st.sampled_from(IP_BLOCKS)),
)


def _port(proto: str | None, port: Any, end: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if proto is not None:
        out["protocol"] = proto
    if port is not None:
        out["port"] = port
        if end is not None and isinstance(port, int):
            out["endPort"] = max(port, end)
    return out


port_entry = st.builds(
    _port,
    st.one_of(st.none(), st.sampled_from(["TCP", "UDP", "SCTP"])),
    st.one_of(
        st.none(),
        st.sampled_from([80, 81, 53]),
        st.sampled_from(["serve-80-tcp", "serve-81-udp", "serve-80-sctp", "serve-81-tcp"]),
    ),
    st.one_of(st.none(), st.sampled_from([80, 81, 443])),
)


def _rule(peers_key: str) -> st.SearchStrategy[dict[str, Any]]:
    def build(
        peers: list[dict[str, Any]] | None, ports: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if peers is not None:
            out[peers_key] = peers
        if ports is not None:
            out["ports"] = ports
        return out

    return st.builds(
        build,
        st.one_of(st.none(), st.lists(peer, max_size=2)),
        st.one_of(st.none(), st.lists(port_entry, max_size=2)),
    )


def _policy(
    index: int,
    ns: str,
    selector: dict[str, Any],
    types: list[str] | None,
    ingress: list[dict[str, Any]] | None,
    egress: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": selector}
    if types is not None:
        spec["policyTypes"] = types
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"p{index}", "namespace": ns},
        "spec": spec,
    }


def _policies(n: int) -> st.SearchStrategy[list[dict[str, Any]]]:
    one = st.tuples(
        st.sampled_from(NAMESPACES),
        pod_selector,
        st.one_of(
            st.none(),
            st.sampled_from([[], ["Ingress"], ["Egress"], ["Ingress", "Egress"]]),
        ),
        st.one_of(st.none(), st.lists(_rule("from"), max_size=2)),
        st.one_of(st.none(), st.lists(_rule("to"), max_size=2)),
    )
    return st.lists(one, min_size=1, max_size=n).map(
        lambda items: [_policy(i, *item) for i, item in enumerate(items)]
    )


PROBES = [("TCP", 80), ("UDP", 81), ("SCTP", 80), ("TCP", 81), ("TCP", 53)]
EXTERNALS = ["203.0.113.7", "203.0.113.200", "2001:db8::7", "10.9.9.9"]


@pytest.mark.parametrize("kind", ["engine", "reference"])
@settings(max_examples=100, deadline=None, derandomize=True)
@given(policies=_policies(4))
def test_random_policies_agree_with_oracle(kind: str, policies: list[dict[str, Any]]) -> None:
    run = Harness(kind).load(yaml.safe_dump_all(policies, sort_keys=False))
    oracle = Oracle(policies)
    wrong: list[str] = []
    for proto, port in PROBES:
        for src in ALL_PODS:
            for dst in [*ALL_PODS, *EXTERNALS]:
                want = oracle.allowed(src, dst, proto, port)
                got = bool(run.decide(src, dst, proto, port).allowed)
                if got is not want:
                    wrong.append(f"{src} -> {dst} {proto}/{port}: oracle {want}, {kind} {got}")
        for src in EXTERNALS:
            for dst in ALL_PODS:
                want = oracle.allowed(src, dst, proto, port)
                got = bool(run.decide(src, dst, proto, port).allowed)
                if got is not want:
                    wrong.append(f"{src} -> {dst} {proto}/{port}: oracle {want}, {kind} {got}")
    assert not wrong, (
        f"{len(wrong)} disagreements, first ones:\n"
        + "\n".join(wrong[:15])
        + "\npolicies:\n"
        + yaml.safe_dump_all(policies, sort_keys=False)
    )
