"""The policy domain: frozen value types for everything a decision depends on.

These are what the loader produces, the evaluators consume and the stores persist (after
conversion at their edge). Nothing here knows about YAML, protobuf, gRPC or etcd.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from trustwire.errors import InvalidArgument

from .labels import Labels, LabelSelector

__all__ = [
    "BUILTIN_TIERS",
    "KUBERNETES_TIER",
    "RESERVED_LABELS",
    "Action",
    "Cluster",
    "Conditions",
    "ContainerPort",
    "Direction",
    "Endpoint",
    "ExternalNetwork",
    "IPAddress",
    "IPBlock",
    "IPNetwork",
    "KubernetesNetworkPolicy",
    "KubernetesPeer",
    "KubernetesRule",
    "Namespace",
    "NetworkAccessPolicy",
    "PortMatch",
    "Protocol",
    "PuType",
    "Scores",
    "Tier",
    "Workload",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Labels that only attestation may set (DESIGN.md "Policy model"). A workload's own labels
# with these keys are overwritten by the attested values, so a workload cannot claim them.
RESERVED_LABELS = frozenset(
    {
        "trust-domain",
        "namespace",
        "pu-type",
        "image",
        "exe-sha256",
        "user",
        "k8s:serviceaccount",
        "enforcer",
    }
)

# Reserved labels a Workload derives from its own fields, never from ``attested``.
_FIELD_LABELS = frozenset({"namespace", "pu-type", "trust-domain"})

# Kubernetes sets this label on every namespace; selectors commonly use it.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


class Protocol(enum.StrEnum):
    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


class Direction(enum.StrEnum):
    INGRESS = "Ingress"
    EGRESS = "Egress"


class Action(enum.StrEnum):
    ALLOW = "allow"
    REJECT = "reject"
    ENCRYPT = "encrypt"
    OBSERVE = "observe"


class PuType(enum.StrEnum):
    POD = "pod"
    PROCESS = "process"
    EXTERNAL = "external"


@dataclass(frozen=True, slots=True)
class ContainerPort:
    """A port a workload declares; named ports in policies resolve against these."""

    port: int
    protocol: Protocol = Protocol.TCP
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Scores:
    """Behaviour and reputation carried by a Trust Profile; simulation assumes a good citizen."""

    reputation: float = 1.0
    anomaly: float = 0.0


GOOD_CITIZEN = Scores()


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    labels: Labels = field(default_factory=Labels)
    # What Trustwire tiers decide when no rule matches a PU of this namespace:
    # ALLOW (Kubernetes-compatible) or REJECT (zero-trust).
    default_action: Action = Action.ALLOW

    @staticmethod
    def make(
        name: str,
        labels: Mapping[str, str] | None = None,
        default_action: Action = Action.ALLOW,
    ) -> Namespace:
        # Kubernetes adds this label to every namespace (immutable, always equal to the name).
        merged = {**(labels or {}), NAMESPACE_NAME_LABEL: name}
        return Namespace(name=name, labels=Labels(merged), default_action=default_action)


@dataclass(frozen=True, slots=True)
class Workload:
    """A PU with an enforcer: a pod, or a Linux process registered as a ProcessingUnit."""

    namespace: str
    name: str
    labels: Labels = field(default_factory=Labels)
    ips: tuple[IPAddress, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    pu_type: PuType = PuType.POD
    trust_domain: str = ""
    # Addresses of the node the workload runs on: traffic from there is always admitted
    # (kubelet probes; Kubernetes' NetworkPolicySpec.ingress says so).
    host_ips: tuple[IPAddress, ...] = ()
    # Reserved labels an attesting party vouched for beyond the fields above (the serving
    # ``enforcer``; a process's ``exe-sha256`` and ``user``; ``image``,
    # ``k8s:serviceaccount``): the same labels its identity document carries, so a selector
    # matches the PU in the policy service's view exactly as on the wire. Only reserved keys
    # count; the ones derived from fields (namespace, pu-type, trust-domain) are ignored here.
    attested: Labels = field(default_factory=Labels)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def identity_labels(self) -> Labels:
        """The labels Trustwire selectors see: the workload's own plus the attested ones."""
        attested = {
            k: v
            for k, v in self.attested.items()
            if k in RESERVED_LABELS and k not in _FIELD_LABELS
        }
        attested["namespace"] = self.namespace
        attested["pu-type"] = self.pu_type.value
        if self.trust_domain:
            attested["trust-domain"] = self.trust_domain
        own = {k: v for k, v in self.labels.items() if k not in RESERVED_LABELS}
        return Labels({**own, **attested})

    def resolve_port(self, name: str, protocol: Protocol) -> int | None:
        for port in self.ports:
            if port.name == name and port.protocol is protocol:
                return port.port
        return None


@dataclass(frozen=True, slots=True)
class IPBlock:
    cidr: IPNetwork
    excepts: tuple[IPNetwork, ...] = ()

    def contains(self, ip: IPAddress) -> bool:
        if ip.version != self.cidr.version or ip not in self.cidr:
            return False
        return not any(ip in ex for ex in self.excepts)


@dataclass(frozen=True, slots=True)
class PortMatch:
    """One port clause. ``port`` None means every port of ``protocol``; a str is a named port,
    resolved on the destination workload (name, protocol and number must all agree)."""

    protocol: Protocol = Protocol.TCP
    port: int | str | None = None
    end_port: int | None = None

    def matches(self, protocol: Protocol, port: int, destination: Workload | None) -> bool:
        if protocol is not self.protocol:
            return False
        if self.port is None:
            return True
        if isinstance(self.port, str):
            if destination is None:
                return False
            return destination.resolve_port(self.port, protocol) == port
        if self.end_port is None:
            return port == self.port
        return self.port <= port <= self.end_port

    def __str__(self) -> str:
        if self.port is None:
            return f"{self.protocol.value}/*"
        if self.end_port is not None:
            return f"{self.protocol.value}/{self.port}-{self.end_port}"
        return f"{self.protocol.value}/{self.port}"


@dataclass(frozen=True, slots=True)
class KubernetesPeer:
    """A NetworkPolicyPeer: either ``ip_block`` alone, or pod and/or namespace selectors (AND).

    ``namespace_selector`` None means "the policy's own namespace".
    """

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True, slots=True)
class KubernetesRule:
    """An ingress or egress rule. Empty ``peers`` means all peers; empty ``ports`` all ports."""

    peers: tuple[KubernetesPeer, ...] = ()
    ports: tuple[PortMatch, ...] = ()


@dataclass(frozen=True, slots=True)
class KubernetesNetworkPolicy:
    """A ``networking.k8s.io/v1`` NetworkPolicy after API-server defaulting."""

    namespace: str
    name: str
    pod_selector: LabelSelector
    policy_types: frozenset[Direction]
    ingress: tuple[KubernetesRule, ...] = ()
    egress: tuple[KubernetesRule, ...] = ()
    # The document exactly as imported, for round-tripping (`trustwire get -o yaml`).
    source: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def rules(self, direction: Direction) -> tuple[KubernetesRule, ...]:
        return self.ingress if direction is Direction.INGRESS else self.egress


@dataclass(frozen=True, slots=True)
class Tier:
    """Trustwire tiers are evaluated by ascending ``order``; the Kubernetes tier is above all."""

    name: str
    order: int


KUBERNETES_TIER = "kubernetes"
BUILTIN_TIERS = (
    Tier("security", 100),
    Tier("platform", 200),
    Tier("application", 300),
    Tier("baseline", 400),
)


@dataclass(frozen=True, slots=True)
class Conditions:
    """Optional conditions on the peer's Trust Profile scores; all given ones must hold."""

    min_reputation: float | None = None
    max_anomaly: float | None = None

    def hold(self, scores: Scores) -> bool:
        if self.min_reputation is not None and scores.reputation < self.min_reputation:
            return False
        return not (self.max_anomaly is not None and scores.anomaly > self.max_anomaly)

    @property
    def is_empty(self) -> bool:
        return self.min_reputation is None and self.max_anomaly is None


@dataclass(frozen=True, slots=True)
class NetworkAccessPolicy:
    """A Trustwire policy: ``subject`` (initiator) may/may not reach ``object`` on ``ports``.

    A namespaced policy applies only to connections with an endpoint in its namespace; a policy
    with ``namespace`` None is cluster-wide. ``observe`` policies record ``observe_action`` as
    the would-be verdict without enforcing it.
    """

    name: str
    namespace: str | None
    tier: str
    priority: int
    subject: LabelSelector
    object: LabelSelector
    action: Action
    ports: tuple[PortMatch, ...] = ()
    observe_action: Action = Action.REJECT
    conditions: Conditions = field(default_factory=Conditions)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True, slots=True)
class ExternalNetwork:
    """A network without an enforcer, named by CIDRs and given labels for selectors."""

    name: str
    labels: Labels
    cidrs: tuple[IPNetwork, ...]

    def identity_labels(self) -> Labels:
        own = {k: v for k, v in self.labels.items() if k not in RESERVED_LABELS}
        return Labels({**own, "pu-type": PuType.EXTERNAL.value})


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One end of a connection: a workload, or an address outside every workload."""

    workload: Workload | None
    ip: IPAddress | None
    # For addresses: the labels of the most specific ExternalNetwork containing the address.
    external_labels: Labels = field(default_factory=Labels)
    external_network: str | None = None

    @property
    def ips(self) -> tuple[IPAddress, ...]:
        if self.workload is not None:
            return self.workload.ips
        return (self.ip,) if self.ip is not None else ()

    @property
    def identity_labels(self) -> Labels:
        if self.workload is not None:
            return self.workload.identity_labels()
        return self.external_labels

    def __str__(self) -> str:
        if self.workload is not None:
            return self.workload.key
        return str(self.ip)


@dataclass(frozen=True)
class Cluster:
    """A consistent snapshot of everything decisions depend on, at one ``revision``."""

    namespaces: Mapping[str, Namespace]
    workloads: tuple[Workload, ...]
    kubernetes_policies: tuple[KubernetesNetworkPolicy, ...] = ()
    access_policies: tuple[NetworkAccessPolicy, ...] = ()
    external_networks: tuple[ExternalNetwork, ...] = ()
    tiers: tuple[Tier, ...] = BUILTIN_TIERS
    revision: int = 0
    trust_domain: str = ""

    @cached_property
    def _by_key(self) -> dict[str, Workload]:
        return {w.key: w for w in self.workloads}

    @cached_property
    def _by_ip(self) -> dict[IPAddress, list[Workload]]:
        index: dict[IPAddress, list[Workload]] = {}
        for w in self.workloads:
            for ip in w.ips:
                index.setdefault(ip, []).append(w)
        return index

    @cached_property
    def tier_order(self) -> dict[str, int]:
        return {t.name: t.order for t in self.tiers}

    def workload(self, key: str) -> Workload | None:
        return self._by_key.get(key)

    def namespace(self, name: str) -> Namespace:
        ns = self.namespaces.get(name)
        return ns if ns is not None else Namespace.make(name)

    def endpoint(self, spec: str) -> Endpoint:
        """``namespace/name`` of a workload, or an IP address.

        An address that belongs to exactly one workload is that workload: that is what the
        enforcer sees on the wire. Any other address is an endpoint outside the cluster.
        """
        try:
            ip = ipaddress.ip_address(spec)
        except ValueError:
            workload = self.workload(spec)
            if workload is None:
                if "/" not in spec:
                    raise InvalidArgument(
                        f"endpoint {spec!r}: expected NAMESPACE/NAME or an IP address",
                        field="endpoint",
                    ) from None
                raise InvalidArgument(
                    f"endpoint {spec!r}: no such workload", field="endpoint"
                ) from None
            return Endpoint(workload=workload, ip=workload.ips[0] if workload.ips else None)
        owners = self._by_ip.get(ip, [])
        if len(owners) == 1:
            return Endpoint(workload=owners[0], ip=ip)
        return self.external_endpoint(ip)

    def external_endpoint(self, ip: IPAddress) -> Endpoint:
        best: ExternalNetwork | None = None
        best_len = -1
        for net in self.external_networks:
            for cidr in net.cidrs:
                if cidr.version == ip.version and ip in cidr and cidr.prefixlen > best_len:
                    best, best_len = net, cidr.prefixlen
        if best is None:
            return Endpoint(workload=None, ip=ip, external_labels=Labels({"pu-type": "external"}))
        return Endpoint(
            workload=None,
            ip=ip,
            external_labels=best.identity_labels(),
            external_network=best.name,
        )

    def with_changes(self, **changes: object) -> Cluster:
        """A new snapshot with some fields replaced (a cheap functional update)."""
        fields: dict[str, object] = {
            "namespaces": self.namespaces,
            "workloads": self.workloads,
            "kubernetes_policies": self.kubernetes_policies,
            "access_policies": self.access_policies,
            "external_networks": self.external_networks,
            "tiers": self.tiers,
            "revision": self.revision,
            "trust_domain": self.trust_domain,
        }
        fields.update(changes)
        return Cluster(**fields)  # type: ignore[arg-type]


def sorted_ports(ports: Iterable[ContainerPort]) -> tuple[ContainerPort, ...]:
    return tuple(sorted(ports, key=lambda p: (p.protocol.value, p.port, p.name or "")))
