"""Simulation: decide many probes at once, before anything is applied.

``simulate`` answers "what would every workload be able to reach on these ports", the basis of
`trustwire simulate` (and later of dry-run applies that list the flows whose verdict changes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from trustwire.errors import InvalidArgument

from .compiler import PolicyEngine
from .decision import Decision
from .model import Cluster, Endpoint, Protocol

__all__ = ["Probe", "ProbeResult", "declared_ports", "parse_port", "parse_probe", "simulate"]


@dataclass(frozen=True, slots=True)
class Probe:
    source: str
    destination: str
    protocol: Protocol
    port: int


@dataclass(frozen=True, slots=True)
class ProbeResult:
    probe: Probe
    source: Endpoint
    destination: Endpoint
    decision: Decision


def parse_port(text: str, *, field: str = "port") -> tuple[Protocol, int]:
    """``TCP/80``, ``udp/53`` or a bare ``80`` (TCP)."""
    proto_text, sep, number_text = text.partition("/")
    if not sep:
        proto_text, number_text = "TCP", text
    try:
        protocol = Protocol(proto_text.upper())
    except ValueError:
        raise InvalidArgument(
            f"{field} {text!r}: unknown protocol {proto_text!r} (TCP, UDP, SCTP)", field=field
        ) from None
    if not number_text.isdigit() or not 1 <= int(number_text) <= 65535:
        raise InvalidArgument(
            f"{field} {text!r}: expected PROTO/PORT with a port from 1 to 65535", field=field
        )
    return protocol, int(number_text)


def parse_probe(text: str) -> Probe:
    """``FROM,TO,PROTO/PORT`` where FROM and TO are ``namespace/name`` or an IP address."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3 or not all(parts):
        raise InvalidArgument(f"probe {text!r}: expected FROM,TO,PROTO/PORT", field="probe")
    protocol, port = parse_port(parts[2], field="probe")
    return Probe(parts[0], parts[1], protocol, port)


def declared_ports(cluster: Cluster) -> list[tuple[Protocol, int]]:
    """Every (protocol, port) some workload declares, sorted."""
    found = {(p.protocol, p.port) for w in cluster.workloads for p in w.ports}
    return sorted(found, key=lambda pp: (pp[0].value, pp[1]))


def simulate(
    engine: PolicyEngine,
    ports: Sequence[tuple[Protocol, int]],
    probes: Iterable[Probe] = (),
) -> list[ProbeResult]:
    """Every ordered pair of workloads (self included) on every port, then each extra probe."""
    cluster = engine.cluster
    results: list[ProbeResult] = []
    endpoints = [(w.key, cluster.endpoint(w.key)) for w in cluster.workloads]
    for protocol, port in ports:
        for src_key, src in endpoints:
            for dst_key, dst in endpoints:
                decision = engine.decide(src, dst, protocol, port)
                results.append(
                    ProbeResult(Probe(src_key, dst_key, protocol, port), src, dst, decision)
                )
    for probe in probes:
        src = cluster.endpoint(probe.source)
        dst = cluster.endpoint(probe.destination)
        decision = engine.decide(src, dst, probe.protocol, probe.port)
        results.append(ProbeResult(probe, src, dst, decision))
    return results
