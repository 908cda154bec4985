"""The upstream-style cluster model and the reachability truth table.

Modelled on ``test/e2e/network/netpol/model.go`` and ``reachability.go`` in
kubernetes/kubernetes: three namespaces ``x``, ``y``, ``z`` (labelled ``ns=<name>``), three pods
``a``, ``b``, ``c`` in each (labelled ``pod=<name>``), and every pod serving ports 80 and 81 over
TCP, UDP and SCTP, one container per (port, protocol) with the port named
``serve-<port>-<protocol>`` exactly as upstream names them.

Pod addresses are data only (nothing is ever sent): namespace ``x`` is ``10.244.1.0/24``, ``y`` is
``10.244.2.0/24``, ``z`` is ``10.244.3.0/24``; pods ``a``, ``b``, ``c`` are ``.10``, ``.11``,
``.12``. Every pod is dual-stack; its second address is ``fd00:10:244:<n>::<pod>`` (so ``y/b`` is
``fd00:10:244:2::b``). External addresses used by the scenarios come from the documentation
ranges (``192.0.2.0/24``, ``198.51.100.0/24``, ``203.0.113.0/24``, ``2001:db8::/32``).

The truth table (:class:`Reachability`) has one row per source pod and one column per
destination pod, self included (81 cells). Trustwire's contract makes a pod's traffic to itself
always allowed, so the diagonal is fixed at "allowed" and the ``expect*`` helpers leave it alone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import yaml

__all__ = [
    "ALL_PODS",
    "NAMESPACES",
    "PODS",
    "PORTS",
    "PROTOCOLS",
    "Peer",
    "Reachability",
    "ipv4_of",
    "ipv6_of",
    "model_yaml",
]

NAMESPACES: tuple[str, ...] = ("x", "y", "z")
PODS: tuple[str, ...] = ("a", "b", "c")
PORTS: tuple[int, ...] = (80, 81)
PROTOCOLS: tuple[str, ...] = ("TCP", "UDP", "SCTP")
ALL_PODS: tuple[str, ...] = tuple(f"{ns}/{pod}" for ns in NAMESPACES for pod in PODS)

_NS_OCTET = {"x": 1, "y": 2, "z": 3}
_POD_OCTET = {"a": 10, "b": 11, "c": 12}


def ipv4_of(pod: str) -> str:
    """The IPv4 address (``status.podIP``) of a model pod such as ``"y/b"``."""
    ns, name = pod.split("/")
    return f"10.244.{_NS_OCTET[ns]}.{_POD_OCTET[name]}"


def ipv6_of(pod: str) -> str:
    """The IPv6 address (second entry of ``status.podIPs``) of a model pod."""
    ns, name = pod.split("/")
    return str(ipaddress.IPv6Address(f"fd00:10:244:{_NS_OCTET[ns]}::{name}"))


# A named container port as a pod declares it: (name, containerPort, protocol).
NamedPort = tuple[str, int, str]


def model_yaml(
    *,
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
    pod_labels: Mapping[str, Mapping[str, str]] | None = None,
    extra_ports: Mapping[str, Sequence[NamedPort]] | None = None,
    host_ips: Mapping[str, str] | None = None,
) -> str:
    """The model as multi-document YAML: 3 Namespaces, then 9 Pods.

    ``namespace_labels`` / ``pod_labels`` add labels (keyed ``"x"`` / ``"x/a"``) to the standard
    ones, for scenarios that need a label the upstream model lacks (upstream adds them with
    ``AddNamespaceLabel`` / ``AddPodLabels``). ``extra_ports`` adds containers with named ports to
    given pods, for named-port scenarios where the name resolves differently per pod.
    ``host_ips`` sets ``status.hostIP`` (the node's address) of given pods.
    """
    namespace_labels = namespace_labels or {}
    pod_labels = pod_labels or {}
    extra_ports = extra_ports or {}
    host_ips = host_ips or {}
    unknown = (set(namespace_labels) - set(NAMESPACES)) | (
        (set(pod_labels) | set(extra_ports) | set(host_ips)) - set(ALL_PODS)
    )
    if unknown:
        raise ValueError(f"not in the model: {sorted(unknown)}")

    docs: list[dict[str, object]] = []
    for ns in NAMESPACES:
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"ns": ns, **namespace_labels.get(ns, {})}},
            }
        )
    for pod in ALL_PODS:
        ns, name = pod.split("/")
        containers: list[dict[str, object]] = [
            {
                "name": f"cont-{port}-{proto.lower()}",
                "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
                "ports": [
                    {
                        "name": f"serve-{port}-{proto.lower()}",
                        "containerPort": port,
                        "protocol": proto,
                    }
                ],
            }
            for port in PORTS
            for proto in PROTOCOLS
        ]
        for port_name, number, proto in extra_ports.get(pod, ()):
            containers.append(
                {
                    "name": f"extra-{port_name}",
                    "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
                    "ports": [{"name": port_name, "containerPort": number, "protocol": proto}],
                }
            )
        status: dict[str, object] = {
            "phase": "Running",
            "podIP": ipv4_of(pod),
            "podIPs": [{"ip": ipv4_of(pod)}, {"ip": ipv6_of(pod)}],
        }
        if pod in host_ips:
            status["hostIP"] = host_ips[pod]
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "namespace": ns,
                    "name": name,
                    "labels": {"pod": name, **pod_labels.get(pod, {})},
                },
                "spec": {"containers": containers},
                "status": status,
            }
        )
    return yaml.safe_dump_all(docs, sort_keys=False)


@dataclass(frozen=True)
class Peer:
    """A set of model pods: ``"*"`` (all), ``"x"`` (a namespace), ``"x/a"`` (one pod) or
    ``"*/a"`` (pod ``a`` of every namespace). Mirrors upstream's ``Peer{Namespace, Pod}``."""

    namespace: str | None = None
    pod: str | None = None

    @classmethod
    def parse(cls, spec: str | Peer) -> Peer:
        if isinstance(spec, Peer):
            return spec
        ns, _, pod = spec.partition("/")
        peer = cls(None if ns in ("", "*") else ns, None if pod in ("", "*") else pod)
        if peer.namespace is not None and peer.namespace not in NAMESPACES:
            raise ValueError(f"unknown namespace in peer {spec!r}")
        if peer.pod is not None and peer.pod not in PODS:
            raise ValueError(f"unknown pod in peer {spec!r}")
        return peer

    def matches(self, pod: str) -> bool:
        ns, name = pod.split("/")
        return (self.namespace is None or self.namespace == ns) and (
            self.pod is None or self.pod == name
        )


class Reachability:
    """Expected connectivity of every (from, to) pod pair for one (protocol, port) probe.

    Start from ``default`` everywhere and carve out exceptions, as upstream's
    ``NewReachability(pods, default)`` + ``Expect*`` do. The diagonal (a pod to itself) is
    always allowed and never changed by the helpers; asking for it to be denied is an error in
    the scenario, not something to test.
    """

    def __init__(self, default: bool, pods: Sequence[str] = ALL_PODS) -> None:
        self.pods: tuple[str, ...] = tuple(pods)
        self._cells: dict[tuple[str, str], bool] = {
            (src, dst): (True if src == dst else default) for src in self.pods for dst in self.pods
        }

    def expect(self, src: str, dst: str, allowed: bool) -> Reachability:
        if (src, dst) not in self._cells:
            raise ValueError(f"{src} -> {dst} is not a pair of the model")
        if src == dst:
            if not allowed:
                raise ValueError(f"{src} -> itself is always allowed; do not expect otherwise")
            return self
        self._cells[(src, dst)] = allowed
        return self

    def expect_peer(self, src: str | Peer, dst: str | Peer, allowed: bool) -> Reachability:
        """Every pod of ``src`` to every pod of ``dst`` (self pairs excepted)."""
        s, d = Peer.parse(src), Peer.parse(dst)
        for a in self.pods:
            for b in self.pods:
                if a != b and s.matches(a) and d.matches(b):
                    self._cells[(a, b)] = allowed
        return self

    def expect_all_ingress(self, pod: str, allowed: bool) -> Reachability:
        """Every other pod to ``pod``."""
        return self.expect_peer("*", pod, allowed)

    def expect_all_egress(self, pod: str, allowed: bool) -> Reachability:
        """``pod`` to every other pod."""
        return self.expect_peer(pod, "*", allowed)

    def __getitem__(self, pair: tuple[str, str]) -> bool:
        return self._cells[pair]

    def as_dict(self) -> dict[tuple[str, str], bool]:
        return dict(self._cells)

    def count(self, allowed: bool) -> int:
        return sum(1 for v in self._cells.values() if v is allowed)

    # --- comparison ---------------------------------------------------------------------------

    def mismatches(self, observed: Mapping[tuple[str, str], bool]) -> list[tuple[str, str]]:
        return [pair for pair, want in self._cells.items() if observed[pair] is not want]

    def render_diff(
        self,
        observed: Mapping[tuple[str, str], bool],
        *,
        title: str,
        explain: Callable[[str, str], str] | None = None,
    ) -> str:
        """Expected and observed matrices side by side; mismatched cells are starred.

        Rows are sources ("from"), columns destinations ("to"); ``.`` is allowed, ``X`` denied.
        ``explain(src, dst)`` adds a line per mismatch (e.g. the evaluator's reason).
        """
        bad = set(self.mismatches(observed))
        width = max(len(p) for p in self.pods)

        def header() -> str:
            return " " * width + " " + "".join(f"{p:>{width + 1}}" for p in self.pods)

        def cell(value: bool, mark: bool) -> str:
            text = ("." if value else "X") + ("*" if mark else " ")
            return f"{text:>{width + 1}}"

        left = [header()]
        right = [header()]
        for src in self.pods:
            left.append(
                f"{src:<{width}} "
                + "".join(cell(self._cells[(src, d)], (src, d) in bad) for d in self.pods)
            )
            right.append(
                f"{src:<{width}} "
                + "".join(cell(observed[(src, d)], (src, d) in bad) for d in self.pods)
            )
        gap = "   |   "
        lines = [
            f"{title}: {len(bad)} of {len(self._cells)} pairs differ "
            "(rows = from, columns = to; '.' allowed, 'X' denied, '*' marks a mismatch)",
            f"{'expected':<{len(left[0])}}{gap}observed",
        ]
        lines += [f"{lft}{gap}{rgt}" for lft, rgt in zip(left, right, strict=True)]
        for src, dst in sorted(bad):
            want = "allowed" if self._cells[(src, dst)] else "denied"
            got = "allowed" if observed[(src, dst)] else "denied"
            detail = f"  [{explain(src, dst)}]" if explain else ""
            lines.append(f"  {src} -> {dst}: expected {want}, observed {got}{detail}")
        return "\n".join(lines)


def pairs(pods: Iterable[str] = ALL_PODS) -> list[tuple[str, str]]:
    ps = list(pods)
    return [(s, d) for s in ps for d in ps]
