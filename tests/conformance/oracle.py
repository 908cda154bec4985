"""A third, deliberately naive evaluation of NetworkPolicy semantics over the test model.

It reads the policies as plain YAML dicts (after no processing but the API server's
defaulting, done here) and answers one question: is this connection allowed? It shares no code
with Trustwire and is written straight from the API reference, so that randomly generated
policies can be checked against both evaluators (``test_differential.py``). It only knows the
standard model of ``model.py`` (no extra labels or ports) and assumes valid input.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from .model import ALL_PODS, PORTS, PROTOCOLS, ipv4_of, ipv6_of

__all__ = ["Oracle"]

Policy = Mapping[str, Any]


def _pod_labels(pod: str) -> dict[str, str]:
    return {"pod": pod.split("/")[1]}


def _ns_labels(ns: str) -> dict[str, str]:
    return {"ns": ns, "kubernetes.io/metadata.name": ns}


def _named_ports(pod: str) -> dict[str, tuple[int, str]]:
    del pod  # every model pod has the same ports
    return {f"serve-{p}-{proto.lower()}": (p, proto) for p in PORTS for proto in PROTOCOLS}


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """``k8s.io/apimachinery`` label selector semantics; ``None`` here means "empty"."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.get("matchExpressions") or []:
        key, op, values = req["key"], req["operator"], set(req.get("values") or [])
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def policy_types(spec: Mapping[str, Any]) -> set[str]:
    """``SetDefaults_NetworkPolicy``: empty means Ingress, plus Egress if egress rules exist."""
    types = list(spec.get("policyTypes") or [])
    if not types:
        types = ["Ingress"] + (["Egress"] if spec.get("egress") else [])
    return set(types)


def _ips(endpoint: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    if endpoint in ALL_PODS:
        return [ipaddress.ip_address(ipv4_of(endpoint)), ipaddress.ip_address(ipv6_of(endpoint))]
    return [ipaddress.ip_address(endpoint)]


def _ip_block_matches(block: Mapping[str, Any], endpoint: str) -> bool:
    cidr = ipaddress.ip_network(block["cidr"], strict=False)
    excepts = [ipaddress.ip_network(e, strict=False) for e in block.get("except") or []]
    return any(
        ip.version == cidr.version
        and ip in cidr
        and not any(ip.version == e.version and ip in e for e in excepts)
        for ip in _ips(endpoint)
    )


def _peer_matches(peer: Mapping[str, Any], policy_ns: str, endpoint: str) -> bool:
    if "ipBlock" in peer:
        return _ip_block_matches(peer["ipBlock"], endpoint)
    if endpoint not in ALL_PODS:
        return False  # selectors select pods, never addresses
    ns = endpoint.split("/")[0]
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], _ns_labels(ns)):
            return False
    elif ns != policy_ns:
        return False
    return selector_matches(peer.get("podSelector"), _pod_labels(endpoint))


def _port_matches(entry: Mapping[str, Any], proto: str, port: int, destination: str) -> bool:
    if entry.get("protocol", "TCP") != proto:
        return False
    if "port" not in entry:
        return True
    value = entry["port"]
    if isinstance(value, str):
        if destination not in ALL_PODS:
            return False
        named = _named_ports(destination).get(value)
        return bool(named == (port, proto))
    end = entry.get("endPort", value)
    return bool(value <= port <= end)


class Oracle:
    def __init__(self, policies: Sequence[Policy]) -> None:
        self.policies = list(policies)

    def _side_allows(self, pod: str, direction: str, peer: str, proto: str, port: int) -> bool:
        ns = pod.split("/")[0]
        selecting = [
            p
            for p in self.policies
            if p["metadata"]["namespace"] == ns
            and selector_matches(p["spec"].get("podSelector"), _pod_labels(pod))
            and direction in policy_types(p["spec"])
        ]
        if not selecting:
            return True
        destination = peer if direction == "Egress" else pod
        rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        for p in selecting:
            for rule in p["spec"].get(rules_key) or []:
                ports = rule.get("ports") or []
                if ports and not any(_port_matches(e, proto, port, destination) for e in ports):
                    continue
                peers = rule.get(peers_key) or []
                if not peers or any(_peer_matches(x, ns, peer) for x in peers):
                    return True
        return False

    def allowed(self, src: str, dst: str, proto: str, port: int) -> bool:
        if src == dst:
            return True
        egress = src not in ALL_PODS or self._side_allows(src, "Egress", dst, proto, port)
        ingress = dst not in ALL_PODS or self._side_allows(dst, "Ingress", src, proto, port)
        return egress and ingress
