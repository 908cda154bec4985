"""Hypothesis strategies for random but meaningful clusters: small label vocabularies so that
selectors collide often, a small address range so that ipBlocks and pod IPs overlap."""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from trustwire.policy import (
    Action,
    Cluster,
    Conditions,
    ContainerPort,
    Direction,
    ExternalNetwork,
    IPBlock,
    KubernetesNetworkPolicy,
    KubernetesPeer,
    KubernetesRule,
    Labels,
    LabelSelector,
    Namespace,
    NetworkAccessPolicy,
    Operator,
    PortMatch,
    Protocol,
    PuType,
    Requirement,
    Scores,
    Workload,
)
from trustwire.policy.model import BUILTIN_TIERS, IPNetwork

NAMESPACES = ("x", "y", "z")
KEYS = ("app", "tier", "env")
VALUES = ("a", "b", "c")
PORTS = (80, 81, 443)
PORT_NAMES = ("http", "alt", "tls")
PROTOCOLS = (Protocol.TCP, Protocol.UDP)

labels_st = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=3).map(Labels)


@st.composite
def requirements(draw: st.DrawFn) -> Requirement:
    op = draw(st.sampled_from(list(Operator)))
    values: frozenset[str] = frozenset()
    if op in (Operator.IN, Operator.NOT_IN):
        values = frozenset(draw(st.sets(st.sampled_from(VALUES), min_size=1, max_size=2)))
    return Requirement(draw(st.sampled_from(KEYS)), op, values)


selectors = st.builds(
    LabelSelector,
    labels_st.filter(lambda labels: len(labels) <= 2),
    st.lists(requirements(), max_size=2).map(tuple),
)

# Trustwire selectors may also name reserved labels.
tw_selectors = st.one_of(
    selectors,
    st.builds(
        lambda ns, sel: LabelSelector(
            sel.match_labels.merged({"namespace": ns}), sel.match_expressions
        ),
        st.sampled_from(NAMESPACES),
        selectors,
    ),
    st.just(LabelSelector(Labels({"pu-type": "external"}))),
)


def address(i: int) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(f"10.0.{i // 8}.{i % 8 + 1}")


networks = st.builds(
    lambda base, plen: ipaddress.ip_network(f"10.0.{base}.0/{plen}", strict=False),
    st.integers(0, 3),
    st.sampled_from([16, 22, 24, 30]),
)


@st.composite
def ip_blocks(draw: st.DrawFn) -> IPBlock:
    cidr = draw(networks)
    excepts: list[IPNetwork] = []
    if cidr.prefixlen < 30 and draw(st.booleans()):
        subnets: list[IPNetwork] = list(cidr.subnets(new_prefix=min(cidr.prefixlen + 2, 30)))
        sub = draw(st.sampled_from(subnets[:4]))
        excepts.append(sub)
    return IPBlock(cidr, tuple(excepts))


port_matches = st.one_of(
    st.builds(PortMatch, st.sampled_from(PROTOCOLS)),
    st.builds(PortMatch, st.sampled_from(PROTOCOLS), st.sampled_from(PORTS)),
    st.builds(PortMatch, st.sampled_from(PROTOCOLS), st.sampled_from(PORT_NAMES)),
    st.builds(
        lambda p, lo: PortMatch(p, lo, lo + 1),
        st.sampled_from(PROTOCOLS),
        st.sampled_from((80, 442)),
    ),
)

peers = st.one_of(
    st.builds(KubernetesPeer, pod_selector=selectors),
    st.builds(KubernetesPeer, namespace_selector=selectors),
    st.builds(KubernetesPeer, pod_selector=selectors, namespace_selector=selectors),
    st.builds(KubernetesPeer, ip_block=ip_blocks()),
)

k8s_rules = st.builds(
    KubernetesRule,
    st.lists(peers, max_size=2).map(tuple),
    st.lists(port_matches, max_size=2).map(tuple),
)


@st.composite
def k8s_policies(draw: st.DrawFn, index: int) -> KubernetesNetworkPolicy:
    types = draw(
        st.sampled_from(
            [
                frozenset({Direction.INGRESS}),
                frozenset({Direction.EGRESS}),
                frozenset({Direction.INGRESS, Direction.EGRESS}),
            ]
        )
    )
    return KubernetesNetworkPolicy(
        namespace=draw(st.sampled_from(NAMESPACES)),
        name=f"np{index}",
        pod_selector=draw(selectors),
        policy_types=types,
        ingress=tuple(draw(st.lists(k8s_rules, max_size=2))),
        egress=tuple(draw(st.lists(k8s_rules, max_size=2))),
    )


@st.composite
def access_policies(draw: st.DrawFn, index: int) -> NetworkAccessPolicy:
    action = draw(st.sampled_from(list(Action)))
    return NetworkAccessPolicy(
        name=f"ap{index}",
        namespace=draw(st.sampled_from((None, *NAMESPACES))),
        tier=draw(st.sampled_from([t.name for t in BUILTIN_TIERS])),
        priority=draw(st.integers(0, 3)),
        subject=draw(tw_selectors),
        object=draw(tw_selectors),
        action=action,
        ports=tuple(draw(st.lists(port_matches, max_size=2))),
        observe_action=draw(st.sampled_from((Action.ALLOW, Action.REJECT, Action.ENCRYPT))),
        conditions=draw(
            st.sampled_from(
                (Conditions(), Conditions(min_reputation=0.5), Conditions(max_anomaly=0.5))
            )
        ),
    )


@st.composite
def workloads(draw: st.DrawFn, index: int) -> Workload:
    ports = tuple(
        ContainerPort(port, proto, name)
        for port, proto, name in draw(
            st.lists(
                st.tuples(
                    st.sampled_from(PORTS), st.sampled_from(PROTOCOLS), st.sampled_from(PORT_NAMES)
                ),
                max_size=2,
                unique_by=lambda t: t[2],
            )
        )
    )
    return Workload(
        namespace=draw(st.sampled_from(NAMESPACES)),
        name=f"w{index}",
        labels=draw(labels_st),
        ips=(address(draw(st.integers(0, 31))),) if draw(st.integers(0, 9)) else (),
        ports=ports,
        pu_type=draw(st.sampled_from((PuType.POD, PuType.POD, PuType.PROCESS))),
    )


@st.composite
def clusters(draw: st.DrawFn) -> Cluster:
    n_workloads = draw(st.integers(1, 6))
    ws = [draw(workloads(i)) for i in range(n_workloads)]
    namespaces = {
        name: Namespace.make(
            name,
            draw(st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=2)),
            draw(st.sampled_from((Action.ALLOW, Action.REJECT))),
        )
        for name in NAMESPACES
    }
    k8s = [draw(k8s_policies(i)) for i in range(draw(st.integers(0, 4)))]
    access = [draw(access_policies(i)) for i in range(draw(st.integers(0, 5)))]
    externals = [
        ExternalNetwork(f"net{i}", draw(labels_st), (draw(networks),))
        for i in range(draw(st.integers(0, 2)))
    ]
    return Cluster(
        namespaces=namespaces,
        workloads=tuple(ws),
        kubernetes_policies=tuple(k8s),
        access_policies=tuple(access),
        external_networks=tuple(externals),
        revision=draw(st.integers(0, 10)),
    )


scores = st.sampled_from((Scores(), Scores(reputation=0.2), Scores(anomaly=0.9)))
