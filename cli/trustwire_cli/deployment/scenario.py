"""The demo scenario, derived from the example cluster (``examples/``).

The example files are the single source of truth: the workloads they declare become PUs, the
policy documents are applied to the policy service, and the verdicts ``trustwire simulate -f
examples/`` computes are what the observed connections must match. A Pod becomes a network
namespace with the declared IP, labels and ports; a ``type: process`` ProcessingUnit becomes a
Linux process started with ``trustwire run`` inside the namespace of the host whose address it
declares (a process has no address of its own), so simulate and the live deployment see the
same address, labels and ``pu-type``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trustwire.errors import InvalidArgument
from trustwire.policy import Cluster, PolicyEngine, Protocol, PuType, load_cluster, read_sources

from .topology import HOST_ADDRESSES, host_netns

__all__ = [
    "POLICY_KINDS",
    "Expectation",
    "Probe",
    "PuSpec",
    "Scenario",
    "load_scenario",
]

# What the policy service's Apply accepts. Pods and ProcessingUnits are not applied: in a
# running deployment PUs are registered by their enforcer, never declared by an admin.
POLICY_KINDS = frozenset(
    {"Namespace", "NetworkPolicy", "NetworkAccessPolicy", "ExternalNetwork", "Tier"}
)

# Where each example pod runs. Frontend and API share host a (same-host traffic), the
# database and Prometheus are on host b (their traffic crosses the wire between hosts).
# A pod not listed here goes to host a; a process PU runs on the host of its address.
PLACEMENT: dict[str, str] = {
    "shop/frontend": "a",
    "shop/api": "a",
    "shop/db": "b",
    "monitoring/prometheus": "b",
}


@dataclass(frozen=True, slots=True)
class PortSpec:
    name: str
    number: int


@dataclass(frozen=True, slots=True)
class PuSpec:
    """One example workload as the demo runs it: a network namespace with one address, or a
    process in its host's namespace (``pu_type`` process) with the host's address."""

    key: str  # "namespace/name", as simulate names it
    namespace: str
    name: str
    labels: dict[str, str]
    ip: str
    ports: tuple[PortSpec, ...]
    host: str  # "a" or "b"
    pu_type: PuType = PuType.POD

    @property
    def is_process(self) -> bool:
        return self.pu_type is PuType.PROCESS

    @property
    def netns(self) -> str:
        """The network namespace its sockets live in (a process PU's is its host's)."""
        return host_netns(self.host) if self.is_process else f"tw-{self.name}"


@dataclass(frozen=True, slots=True)
class Probe:
    """One connection the demo drives: from ``source`` to ``destination``'s ``port``."""

    source: PuSpec
    destination: PuSpec
    port: int


@dataclass(frozen=True, slots=True)
class Expectation:
    """What the policy engine over the example files decides for one probe."""

    allowed: bool
    encrypted: bool
    policy: str
    reason: str


@dataclass(frozen=True)
class Scenario:
    examples: Path
    pus: tuple[PuSpec, ...]
    policy_yaml: str
    cluster: Cluster

    def probes(self) -> list[Probe]:
        """Every ordered pair of distinct PUs, on every TCP port the destination declares."""
        return [
            Probe(source, destination, port.number)
            for source in self.pus
            for destination in self.pus
            if source is not destination
            for port in destination.ports
        ]

    def expect(self, probe: Probe) -> Expectation:
        engine = PolicyEngine(self.cluster)
        decision = engine.decide(
            self.cluster.endpoint(probe.source.key),
            self.cluster.endpoint(probe.destination.key),
            Protocol.TCP,
            probe.port,
        )
        deciding = decision.deciding
        return Expectation(
            allowed=decision.allowed,
            encrypted=decision.encrypted,
            policy=(deciding.policy or "") if deciding is not None else "",
            reason=str(decision.reason.value),
        )


def load_scenario(examples: Path) -> Scenario:
    """Read ``examples`` (a directory of YAML files). Raises ``InvalidArgument`` naming the
    problem when the files do not describe a runnable demo."""
    if not examples.is_dir():
        raise InvalidArgument(f"examples directory {examples} not found", field="--examples")
    sources = read_sources([str(examples)])
    cluster = load_cluster(sources)
    pus: list[PuSpec] = []
    for workload in cluster.workloads:
        ipv4 = [str(ip) for ip in workload.ips if ":" not in str(ip)]
        if not ipv4:
            continue  # nothing to put in a namespace: the demo cannot run it
        host = PLACEMENT.get(workload.key, "a")
        if workload.pu_type is PuType.PROCESS:
            host = _process_host(examples, workload.key, ipv4)
        pus.append(
            PuSpec(
                key=workload.key,
                namespace=workload.namespace,
                name=workload.name,
                labels=dict(workload.labels),
                ip=ipv4[0],
                ports=tuple(
                    PortSpec(p.name or "", p.port)
                    for p in workload.ports
                    if p.protocol is Protocol.TCP
                ),
                host=host,
                pu_type=PuType.PROCESS if workload.pu_type is PuType.PROCESS else PuType.POD,
            )
        )
    if not pus:
        raise InvalidArgument(f"{examples}: no workload with an IPv4 address", field="--examples")
    # Names make the namespaces (tw-<name>) and the process PUs' ids (<node>.<name>).
    names = [p.name for p in pus]
    if len(set(names)) != len(names):
        raise InvalidArgument(
            f"{examples}: two workloads share a name across namespaces ({names})",
            field="--examples",
        )
    hosts = [p.host for p in pus if p.is_process]
    if len(set(hosts)) != len(hosts):
        # The enforcer resolves an inbound connection to the PU its address names; two process
        # PUs at one address could not be told apart (docs/enforcer.md, known limits).
        raise InvalidArgument(
            f"{examples}: two process PUs on one host would share its address",
            field="--examples",
        )
    return Scenario(examples, tuple(pus), _policy_yaml(sources), cluster)


def _process_host(examples: Path, key: str, ipv4: Sequence[str]) -> str:
    """The host a process PU runs on: the one whose address it declares. A process registers
    its namespace's addresses, so any other address would make simulate and the live
    deployment disagree about it."""
    hosts = [h for h, address in HOST_ADDRESSES.items() if address in ipv4]
    if len(ipv4) != 1 or not hosts:
        choices = " or ".join(f"{a} (host {h})" for h, a in HOST_ADDRESSES.items())
        raise InvalidArgument(
            f"{examples}: process PU {key} must declare exactly one of its host's addresses, "
            f"{choices}; got {', '.join(ipv4)}",
            field="--examples",
        )
    return hosts[0]


def _policy_yaml(sources: Sequence[tuple[str, str]]) -> str:
    kept: list[Any] = []
    for _, text in sources:
        for document in yaml.safe_load_all(text):
            if isinstance(document, dict) and document.get("kind") in POLICY_KINDS:
                kept.append(document)
    return yaml.safe_dump_all(kept, sort_keys=False)
