"""A deterministic, realistic synthetic cluster for the policy-engine benchmark.

Same seed, same sizes: same cluster, byte for byte, so figures from different runs and machines
compare. The shape follows what large clusters look like rather than what is easy to decide:

- ~20 namespaces with team/env labels, some zero-trust (default ``reject``);
- pods whose label sets (app, tier, env, team, version, track) are all distinct, so every
  workload is its own identity and the decision cache cannot fold them together;
- Kubernetes NetworkPolicies (default-deny, per-app ingress, some egress isolation with DNS and
  ipBlock rules) counted by their ingress + egress rules;
- Trustwire ``NetworkAccessPolicy`` objects in all four built-in tiers, mostly namespaced
  application rules keyed on ``app``, with matchExpressions, named ports, observe (audit) rules
  and a few score conditions;
- a handful of ExternalNetworks (the internet, corp VPN, SaaS ranges).

Model objects are built directly rather than through YAML: parsing 10,000 documents would
dominate the set-up time and is not what the benchmark measures. The collections are ordered the
way ``build_cluster`` orders them so the result is indistinguishable from a loaded cluster.
"""

from __future__ import annotations

import ipaddress
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

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
    Requirement,
    Workload,
)
from trustwire.policy.model import BUILTIN_TIERS, NAMESPACE_NAME_LABEL, sorted_ports

__all__ = ["ClusterCounts", "SyntheticCluster", "generate"]

# Share of the rule budget spent on Kubernetes NetworkPolicy rules; the rest are Trustwire
# policies (one rule each). Clusters migrating to Trustwire keep a sizeable imported tier.
K8S_SHARE = 0.3

# (name, team, env, default action). Zero-trust namespaces are the sensitive ones.
_NAMESPACES: tuple[tuple[str, str, str, Action], ...] = (
    ("kube-system", "platform", "prod", Action.ALLOW),
    ("monitoring", "platform", "prod", Action.ALLOW),
    ("ingress", "platform", "prod", Action.ALLOW),
    ("shop", "storefront", "prod", Action.ALLOW),
    ("payments", "payments", "prod", Action.REJECT),
    ("checkout", "storefront", "prod", Action.ALLOW),
    ("catalog", "catalog", "prod", Action.ALLOW),
    ("search", "catalog", "prod", Action.ALLOW),
    ("auth", "identity", "prod", Action.REJECT),
    ("users", "identity", "prod", Action.REJECT),
    ("orders", "fulfilment", "prod", Action.ALLOW),
    ("shipping", "fulfilment", "prod", Action.ALLOW),
    ("inventory", "fulfilment", "staging", Action.ALLOW),
    ("analytics", "data", "prod", Action.ALLOW),
    ("ml", "data", "dev", Action.ALLOW),
    ("billing", "payments", "prod", Action.REJECT),
    ("notifications", "engagement", "staging", Action.ALLOW),
    ("reviews", "engagement", "dev", Action.ALLOW),
    ("ads", "growth", "dev", Action.ALLOW),
    ("ledger", "payments", "prod", Action.REJECT),
)

_TCP, _UDP = Protocol.TCP, Protocol.UDP
_HTTP = ContainerPort(8080, _TCP, "http")
_HTTPS = ContainerPort(8443, _TCP, "https")
_GRPC = ContainerPort(9000, _TCP, "grpc")
_METRICS = ContainerPort(9090, _TCP, "metrics")

# app -> (tier label, declared container ports). Named ports matter: policies use them.
_APPS: dict[str, tuple[str, tuple[ContainerPort, ...]]] = {
    "web": ("frontend", (_HTTP, _HTTPS, _METRICS)),
    "ui": ("frontend", (_HTTP, _METRICS)),
    "gateway": ("frontend", (_HTTP, _HTTPS, _GRPC, _METRICS)),
    "api": ("backend", (_HTTP, _GRPC, _METRICS)),
    "worker": ("backend", (_METRICS,)),
    "auth": ("backend", (_GRPC, _METRICS)),
    "search": ("backend", (_HTTP, _METRICS)),
    "scheduler": ("backend", (_GRPC, _METRICS)),
    "notifier": ("backend", (_HTTP, _METRICS)),
    "pricing": ("backend", (_GRPC, _METRICS)),
    "recommender": ("backend", (_GRPC, _HTTP, _METRICS)),
    "ledger": ("backend", (_GRPC, _METRICS)),
    "postgres": (
        "data",
        (ContainerPort(5432, _TCP, "postgres"), ContainerPort(9187, _TCP, "metrics")),
    ),
    "redis": ("data", (ContainerPort(6379, _TCP, "redis"), ContainerPort(9121, _TCP, "metrics"))),
    "kafka": ("data", (ContainerPort(9092, _TCP, "kafka"), ContainerPort(9308, _TCP, "metrics"))),
    "mongo": ("data", (ContainerPort(27017, _TCP, "mongo"),)),
    "elasticsearch": (
        "data",
        (ContainerPort(9200, _TCP, "http"), ContainerPort(9300, _TCP, "transport")),
    ),
    "memcached": ("data", (ContainerPort(11211, _TCP, "memcache"),)),
}
# Infrastructure apps live only in their namespaces.
_DNS_PORTS = (
    ContainerPort(53, _UDP, "dns"),
    ContainerPort(53, _TCP, "dns-tcp"),
    ContainerPort(9153, _TCP, "metrics"),
)
_INGRESS_PORTS = (ContainerPort(80, _TCP, "http"), ContainerPort(443, _TCP, "https"), _METRICS)
_INFRA_APPS: dict[str, tuple[tuple[str, str, tuple[ContainerPort, ...]], ...]] = {
    "kube-system": (
        ("coredns", "infra", _DNS_PORTS),
        ("metrics-server", "infra", (ContainerPort(4443, _TCP, "https"),)),
    ),
    "monitoring": (
        ("prometheus", "infra", (ContainerPort(9090, _TCP, "web"),)),
        ("fluentd", "infra", (ContainerPort(24224, _TCP, "forward"), _METRICS)),
    ),
    "ingress": (("nginx-ingress", "infra", _INGRESS_PORTS),),
}
_APPS_PER_NAMESPACE = 9
# Every app's (tier, ports), infrastructure included: rules target declared ports.
_CATALOGUE: dict[str, tuple[str, tuple[ContainerPort, ...]]] = {
    **_APPS,
    **{app: (tier, ports) for apps in _INFRA_APPS.values() for app, tier, ports in apps},
}

# External networks: most-specific CIDR wins, 0.0.0.0/0 catches the rest.
_EXTERNAL: tuple[tuple[str, dict[str, str], tuple[str, ...]], ...] = (
    ("internet", {"zone": "internet"}, ("0.0.0.0/0",)),
    ("corp-vpn", {"zone": "corp"}, ("172.16.0.0/12",)),
    ("office-nyc", {"zone": "corp", "site": "nyc"}, ("172.20.0.0/16",)),
    ("aws-s3", {"zone": "saas", "service": "s3"}, ("52.216.0.0/15", "3.5.0.0/19")),
    ("github", {"zone": "saas", "service": "github"}, ("140.82.112.0/20",)),
    ("stripe", {"zone": "saas", "service": "stripe"}, ("54.187.174.0/24",)),
    ("datadog", {"zone": "saas", "service": "datadog"}, ("34.120.0.0/16",)),
    ("partner-bank", {"zone": "partner", "partner": "bank"}, ("198.51.100.0/24",)),
)

# ipBlocks NetworkPolicies use (a few): egress to the internet but not the cluster, the office.
_IP_BLOCKS: tuple[IPBlock, ...] = (
    IPBlock(
        ipaddress.ip_network("0.0.0.0/0"),
        (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("172.16.0.0/12")),
    ),
    IPBlock(ipaddress.ip_network("172.20.0.0/16")),
    IPBlock(ipaddress.ip_network("52.216.0.0/15")),
    IPBlock(ipaddress.ip_network("198.51.100.0/24")),
    IPBlock(ipaddress.ip_network("10.0.0.0/8"), (ipaddress.ip_network("10.3.0.0/16"),)),
)

# Addresses outside every workload, one or more per ExternalNetwork, some inside ipBlocks.
EXTERNAL_ADDRESSES: tuple[str, ...] = (
    "8.8.8.8",
    "93.184.216.34",
    "172.16.3.3",
    "172.20.5.5",
    "52.216.1.1",
    "3.5.1.1",
    "140.82.112.4",
    "54.187.174.169",
    "34.120.1.1",
    "198.51.100.7",
    "10.250.0.1",
    "10.3.200.1",
)

_COMMON_PORTS: tuple[tuple[Protocol, int], ...] = (
    (_TCP, 80),
    (_TCP, 443),
    (_TCP, 22),
    (_TCP, 8080),
    (_TCP, 5432),
    (_TCP, 6379),
    (_UDP, 53),
    (_TCP, 53),
    (_TCP, 9090),
    (_TCP, 31337),
)


@dataclass(frozen=True)
class ClusterCounts:
    """What was actually generated (printed so nobody has to trust the parameters)."""

    namespaces: int
    workloads: int
    kubernetes_policies: int
    kubernetes_ingress_rules: int
    kubernetes_egress_rules: int
    access_policies: int
    access_by_tier: dict[str, int]
    access_by_action: dict[str, int]
    access_namespaced: int
    access_with_expressions: int
    access_with_conditions: int
    external_networks: int
    ip_block_peers: int

    @property
    def kubernetes_rules(self) -> int:
        return self.kubernetes_ingress_rules + self.kubernetes_egress_rules

    @property
    def rules(self) -> int:
        return self.kubernetes_rules + self.access_policies


@dataclass(frozen=True)
class SyntheticCluster:
    cluster: Cluster
    counts: ClusterCounts


@dataclass
class _Pods:
    """Per-namespace view the rule generators draw from."""

    apps: dict[str, list[str]]  # namespace -> apps present
    versions: dict[tuple[str, str], list[str]]  # (namespace, app) -> versions present
    team: dict[str, str]
    env: dict[str, str]


def _sel(
    labels: dict[str, str] | None = None, expressions: Sequence[Requirement] = ()
) -> LabelSelector:
    return LabelSelector(Labels(labels or {}), tuple(expressions))


def _req(key: str, operator: Operator, *values: str) -> Requirement:
    return Requirement(key, operator, frozenset(values))


def _namespaces(count: int) -> list[tuple[str, str, str, Action]]:
    specs = list(_NAMESPACES[:count])
    # Beyond the named ones (only for --identities far above 1,000): numbered tenants.
    for i in range(len(specs), count):
        specs.append((f"tenant-{i:03d}", f"tenant-{i:03d}", "prod", Action.ALLOW))
    return specs


def _workloads(
    rng: random.Random, identities: int
) -> tuple[list[Namespace], list[Workload], _Pods]:
    # 50 pods per namespace at the nominal size; never fewer than 3 namespaces so small
    # (--quick) clusters still have cross-namespace traffic.
    ns_count = max(3, math.ceil(identities / 50))
    specs = _namespaces(ns_count)
    per_ns = [
        identities // ns_count + (1 if i < identities % ns_count else 0) for i in range(ns_count)
    ]
    namespaces: list[Namespace] = []
    workloads: list[Workload] = []
    pods = _Pods(apps={}, versions={}, team={}, env={})
    generic = sorted(_APPS)
    for ns_index, ((ns, team, env, default), count) in enumerate(zip(specs, per_ns, strict=True)):
        namespaces.append(Namespace.make(ns, {"team": team, "env": env}, default))
        pods.team[ns], pods.env[ns] = team, env
        catalogue: dict[str, tuple[str, tuple[ContainerPort, ...]]] = {
            app: (tier, ports) for app, tier, ports in _INFRA_APPS.get(ns, ())
        }
        for app in rng.sample(generic, _APPS_PER_NAMESPACE - len(catalogue)):
            catalogue[app] = _APPS[app]
        apps = sorted(catalogue)
        # Distinct (app, version, track) per pod: every pod its own identity.
        versions_needed = max(4, math.ceil(count / (len(apps) * 2)) + 1)
        combos = [
            (app, f"v{v}", track)
            for app in apps
            for v in range(1, versions_needed + 1)
            for track in ("stable", "canary")
        ]
        chosen = sorted(rng.sample(combos, count))
        pods.apps[ns] = sorted({app for app, _, _ in chosen})
        for i, (app, version, track) in enumerate(chosen):
            tier, ports = catalogue[app]
            labels = {
                "app": app,
                "tier": tier,
                "env": env,
                "team": team,
                "version": version,
                "track": track,
            }
            if app == "coredns":
                labels["k8s-app"] = "kube-dns"
            pods.versions.setdefault((ns, app), []).append(version)
            workloads.append(
                Workload(
                    namespace=ns,
                    name=f"{app}-{version}-{track}-{i:03d}",
                    labels=Labels(labels),
                    ips=(ipaddress.ip_address(f"10.{ns_index + 1}.{i // 200}.{i % 200 + 10}"),),
                    ports=sorted_ports(ports),
                )
            )
    for key in pods.versions:
        pods.versions[key] = sorted(set(pods.versions[key]))
    return namespaces, workloads, pods


def _port_matches(
    rng: random.Random, app: str | None, *, allow_all: bool = True
) -> tuple[PortMatch, ...]:
    """1-2 port clauses: named ports of the target app, numbers, sometimes a range or none."""
    roll = rng.random()
    if allow_all and roll < 0.1:
        return ()
    declared = _CATALOGUE[app][1] if app is not None else (_HTTP,)
    chosen = rng.sample(declared, min(len(declared), rng.randint(1, 2)))
    out: list[PortMatch] = []
    for port in chosen:
        if rng.random() < 0.5 and port.name is not None:
            out.append(PortMatch(port.protocol, port.name))
        else:
            out.append(PortMatch(port.protocol, port.port))
    if roll > 0.95:
        out.append(PortMatch(_TCP, 30000, 32767))
    return tuple(out)


def _target_selector(rng: random.Random, pods: _Pods, ns: str, app: str) -> LabelSelector:
    roll = rng.random()
    if roll < 0.6:
        return _sel({"app": app})
    if roll < 0.8:
        versions = pods.versions[(ns, app)]
        return _sel(
            {"app": app},
            [_req("version", Operator.IN, *rng.sample(versions, min(2, len(versions))))],
        )
    if roll < 0.9:
        return _sel({"app": app}, [_req("track", Operator.NOT_IN, "canary")])
    return _sel({"tier": _CATALOGUE[app][0]})


def _k8s_peer(
    rng: random.Random, pods: _Pods, ns: str, namespaces: Sequence[str]
) -> KubernetesPeer:
    roll = rng.random()
    if roll < 0.02:
        return KubernetesPeer(ip_block=rng.choice(_IP_BLOCKS[1:]))
    if roll < 0.55:
        return KubernetesPeer(pod_selector=_sel({"app": rng.choice(pods.apps[ns])}))
    other = rng.choice(namespaces)
    if roll < 0.85:
        return KubernetesPeer(
            pod_selector=_sel({"app": rng.choice(pods.apps[other])}),
            namespace_selector=_sel({NAMESPACE_NAME_LABEL: other}),
        )
    if roll < 0.95:
        return KubernetesPeer(namespace_selector=_sel({"team": pods.team[other]}))
    return KubernetesPeer(
        pod_selector=_sel({"app": "prometheus"}),
        namespace_selector=_sel({NAMESPACE_NAME_LABEL: "monitoring"}),
    )


_DNS_EGRESS = KubernetesRule(
    peers=(
        KubernetesPeer(
            pod_selector=_sel({"k8s-app": "kube-dns"}),
            namespace_selector=_sel({NAMESPACE_NAME_LABEL: "kube-system"}),
        ),
    ),
    ports=(PortMatch(_UDP, 53), PortMatch(_TCP, 53)),
)


def _k8s_policies(rng: random.Random, pods: _Pods, budget: int) -> list[KubernetesNetworkPolicy]:
    namespaces = sorted(pods.apps)
    policies: list[KubernetesNetworkPolicy] = []
    used = 0
    # Default-deny ingress in about half the namespaces: zero rules, but it isolates every pod.
    for ns in namespaces[::2]:
        policies.append(
            KubernetesNetworkPolicy(
                namespace=ns,
                name="default-deny-ingress",
                pod_selector=_sel(),
                policy_types=frozenset({Direction.INGRESS}),
            )
        )
    serial = 0
    # Bounded: each iteration adds at least one rule.
    while used < budget:
        ns = namespaces[serial % len(namespaces)]
        serial += 1
        app = rng.choice(pods.apps[ns])
        ingress: list[KubernetesRule] = []
        for _ in range(rng.randint(1, 3)):
            peers = (
                ()
                if rng.random() < 0.03
                else tuple(_k8s_peer(rng, pods, ns, namespaces) for _ in range(rng.randint(1, 3)))
            )
            ingress.append(KubernetesRule(peers=peers, ports=_port_matches(rng, app)))
        egress: list[KubernetesRule] = []
        if rng.random() < 0.25:
            egress.append(_DNS_EGRESS)
            for _ in range(rng.randint(0, 2)):
                if rng.random() < 0.15:
                    block = rng.choice(_IP_BLOCKS[:4])
                    egress.append(
                        KubernetesRule(
                            peers=(KubernetesPeer(ip_block=block),), ports=(PortMatch(_TCP, 443),)
                        )
                    )
                else:
                    target = rng.choice(pods.apps[ns])
                    egress.append(
                        KubernetesRule(
                            peers=(KubernetesPeer(pod_selector=_sel({"app": target})),),
                            ports=_port_matches(rng, target),
                        )
                    )
        # Trim the last policy so the total is exact.
        room = budget - used
        ingress = ingress[:room]
        egress = egress[: room - len(ingress)]
        used += len(ingress) + len(egress)
        types = {Direction.INGRESS}
        if egress:
            types.add(Direction.EGRESS)
        policies.append(
            KubernetesNetworkPolicy(
                namespace=ns,
                name=f"allow-{app}-{serial:05d}",
                pod_selector=_target_selector(rng, pods, ns, app),
                policy_types=frozenset(types),
                ingress=tuple(ingress),
                egress=tuple(egress),
            )
        )
    return policies


def _expression(rng: random.Random, pods: _Pods, ns: str, app: str) -> Requirement:
    roll = rng.random()
    if roll < 0.35:
        versions = pods.versions.get((ns, app), ["v1"])
        return _req("version", Operator.IN, *rng.sample(versions, min(2, len(versions))))
    if roll < 0.6:
        return _req("track", Operator.NOT_IN, "canary")
    if roll < 0.8:
        return _req("team", Operator.EXISTS)
    return _req("legacy", Operator.DOES_NOT_EXIST)


def _access_policy(
    rng: random.Random, pods: _Pods, serial: int, namespaces: Sequence[str]
) -> NetworkAccessPolicy:
    tier = rng.choices(
        ("security", "platform", "application", "baseline"), weights=(10, 15, 65, 10)
    )[0]
    ns = rng.choice(namespaces)
    other = rng.choice(namespaces)
    app = rng.choice(pods.apps[ns])
    peer_app = rng.choice(pods.apps[other])
    namespace: str | None = None
    ports: tuple[PortMatch, ...] = ()
    conditions = Conditions()
    observe_action = Action.REJECT
    roll = rng.random()
    if tier == "security":
        # Cluster-wide guard rails: environment and team separation, data-tier encryption,
        # egress restrictions, audits of canaries.
        if roll < 0.3:
            subject = _sel({"env": rng.choice(("dev", "staging")), "team": pods.team[ns]})
            obj = _sel({"env": "prod"}, [_req("tier", Operator.IN, "data", "backend")])
            action = Action.REJECT
        elif roll < 0.55:
            subject = _sel({"team": pods.team[ns]})
            obj = _sel({"tier": "data", "team": pods.team[other]})
            action = Action.ENCRYPT
        elif roll < 0.75:
            subject = _sel({"tier": "data", "namespace": ns})
            obj = _sel({"zone": "internet"})
            action = Action.REJECT
        elif roll < 0.95:
            subject = _sel({"track": "canary", "app": app})
            obj = _sel({"tier": "data"})
            action = Action.OBSERVE
        else:
            # Rare: a selector with no matchLabels (the compiler cannot index it).
            subject = _sel(expressions=[_req("tier", Operator.IN, "frontend")])
            obj = _sel({"service": rng.choice(("s3", "stripe", "github"))})
            action = Action.REJECT
        if rng.random() < 0.03:
            conditions = Conditions(min_reputation=0.5, max_anomaly=0.8)
    elif tier == "platform":
        if roll < 0.4:
            subject = _sel({"app": "prometheus", "namespace": "monitoring"})
            obj = _sel({"app": peer_app, "namespace": other})
            ports = (PortMatch(_TCP, "metrics"),)
            action = Action.ALLOW
        elif roll < 0.7:
            subject = _sel({"app": "nginx-ingress", "namespace": "ingress"})
            obj = _sel({"tier": "frontend", "namespace": other})
            ports = (PortMatch(_TCP, "http"), PortMatch(_TCP, "https"))
            action = Action.ALLOW
        elif roll < 0.97:
            subject = _sel({"team": pods.team[ns], "namespace": ns})
            obj = _sel({"k8s-app": "kube-dns", "namespace": "kube-system"})
            ports = (PortMatch(_UDP, 53), PortMatch(_TCP, 53))
            action = Action.ALLOW
        else:
            subject = _sel(expressions=[_req("pu-type", Operator.IN, "pod")])
            obj = _sel({"app": "fluentd"})
            ports = (PortMatch(_TCP, "forward"),)
            action = Action.ALLOW
    elif tier == "application":
        namespace = ns
        subject_labels = {"app": app}
        object_labels = {"app": peer_app}
        if other != ns:
            object_labels["namespace"] = other
        subject = _sel(
            subject_labels,
            [_expression(rng, pods, ns, app)] if rng.random() < 0.2 else (),
        )
        obj = _sel(
            object_labels,
            [_expression(rng, pods, other, peer_app)] if rng.random() < 0.2 else (),
        )
        if rng.random() < 0.05:
            # Egress to a SaaS or partner network instead of a pod.
            obj = _sel({"service": rng.choice(("s3", "stripe", "github", "datadog"))})
            ports = (PortMatch(_TCP, 443),)
        else:
            ports = _port_matches(rng, peer_app)
        action = rng.choices(
            (Action.ALLOW, Action.ENCRYPT, Action.REJECT, Action.OBSERVE),
            weights=(70, 15, 10, 5),
        )[0]
        if action is Action.OBSERVE:
            observe_action = rng.choice((Action.REJECT, Action.ALLOW, Action.ENCRYPT))
        if rng.random() < 0.01:
            conditions = Conditions(min_reputation=0.3)
    else:  # baseline: broad namespace and team defaults
        if roll < 0.5:
            namespace = ns
            subject = _sel({"namespace": ns})
            obj = _sel({"namespace": ns})
            action = Action.ALLOW
        elif roll < 0.9:
            subject = _sel({"team": pods.team[ns]})
            obj = _sel({"team": pods.team[other]}, [_req("tier", Operator.NOT_IN, "frontend")])
            action = Action.REJECT if rng.random() < 0.5 else Action.ALLOW
        else:
            subject = _sel(expressions=[_req("env", Operator.IN, "dev")])
            obj = _sel({"env": "prod", "namespace": other})
            action = Action.REJECT
    return NetworkAccessPolicy(
        name=f"{tier}-{serial:05d}",
        namespace=namespace,
        tier=tier,
        priority=rng.randrange(10, 1000, 10),
        subject=subject,
        object=obj,
        action=action,
        ports=ports,
        observe_action=observe_action,
        conditions=conditions,
    )


def _external_networks() -> list[ExternalNetwork]:
    return sorted(
        (
            ExternalNetwork(name, Labels(labels), tuple(ipaddress.ip_network(c) for c in cidrs))
            for name, labels, cidrs in _EXTERNAL
        ),
        key=lambda n: n.name,
    )


def generate(*, rules: int, identities: int, seed: int) -> SyntheticCluster:
    """The cluster for ``rules`` rules (Kubernetes ingress+egress rules plus Trustwire policies)
    over ``identities`` workloads, all distinct identities."""
    if rules < 10 or identities < 10:
        raise ValueError("need at least 10 rules and 10 identities")
    rng = random.Random(seed)
    namespaces, workloads, pods = _workloads(rng, identities)
    k8s = _k8s_policies(rng, pods, round(rules * K8S_SHARE))
    k8s_rules = sum(len(p.ingress) + len(p.egress) for p in k8s)
    ns_names = sorted(pods.apps)
    access = [_access_policy(rng, pods, i, ns_names) for i in range(rules - k8s_rules)]
    externals = _external_networks()
    cluster = Cluster(
        namespaces={n.name: n for n in sorted(namespaces, key=lambda n: n.name)},
        workloads=tuple(sorted(workloads, key=lambda w: w.key)),
        kubernetes_policies=tuple(sorted(k8s, key=lambda p: p.key)),
        access_policies=tuple(access),
        external_networks=tuple(externals),
        tiers=BUILTIN_TIERS,
        revision=1,
    )
    counts = ClusterCounts(
        namespaces=len(namespaces),
        workloads=len(workloads),
        kubernetes_policies=len(k8s),
        kubernetes_ingress_rules=sum(len(p.ingress) for p in k8s),
        kubernetes_egress_rules=sum(len(p.egress) for p in k8s),
        access_policies=len(access),
        access_by_tier=dict(sorted(Counter(p.tier for p in access).items())),
        access_by_action=dict(sorted(Counter(p.action.value for p in access).items())),
        access_namespaced=sum(p.namespace is not None for p in access),
        access_with_expressions=sum(
            bool(p.subject.match_expressions or p.object.match_expressions) for p in access
        ),
        access_with_conditions=sum(not p.conditions.is_empty for p in access),
        external_networks=len(externals),
        ip_block_peers=sum(
            peer.ip_block is not None for p in k8s for r in p.ingress + p.egress for peer in r.peers
        ),
    )
    return SyntheticCluster(cluster=cluster, counts=counts)
