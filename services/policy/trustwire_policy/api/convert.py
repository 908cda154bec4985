"""Decisions, endpoints and changes between the policy domain and API messages.

(Resource conversion lives in ``trustwire_policy.codec``, shared with storage; this module holds
what only the transport needs.)
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from trustwire.api.common.v1 import decision_pb2 as decision_pb
from trustwire.api.common.v1 import network_pb2 as network_pb
from trustwire.api.policy.v1 import policy_service_pb2 as service_pb
from trustwire.errors import InvalidArgument
from trustwire.policy import (
    Cluster,
    Decision,
    DirectionDecision,
    Endpoint,
    Labels,
    Protocol,
    PuType,
    Workload,
)
from trustwire.policy.model import KUBERNETES_TIER

from .. import codec
from ..codec import Kind
from ..repository import Change, ChangeType
from ..state import StateSnapshot

__all__ = [
    "EndpointSpec",
    "change_to_proto",
    "connection_of",
    "explanation",
    "parse_connection",
]

_CHANGE_TYPES: dict[str, Any] = {
    ChangeType.CREATED: service_pb.CHANGE_TYPE_CREATED,
    ChangeType.UPDATED: service_pb.CHANGE_TYPE_UPDATED,
    ChangeType.UNCHANGED: service_pb.CHANGE_TYPE_UNCHANGED,
    ChangeType.DELETED: service_pb.CHANGE_TYPE_DELETED,
}


def change_to_proto(change: Change) -> Any:
    message = service_pb.ResourceChange(
        ref=codec.ref_to_proto(change.kind, change.namespace, change.name),
        change=_CHANGE_TYPES[change.change],
        diff=change.diff,
    )
    if change.after is not None:
        message.resource.CopyFrom(change.after)
    return message


# ------------------------------------------------------------------------- decisions


def _policy_ref(tier: str | None, key: str | None) -> Any | None:
    if key is None:
        return None
    namespace, _, name = key.rpartition("/")
    kind = Kind.KUBERNETES_NETWORK_POLICY if tier == KUBERNETES_TIER else Kind.NETWORK_ACCESS_POLICY
    return codec.ref_to_proto(kind, namespace, name)


def _verdict(allowed: bool) -> Any:
    return decision_pb.VERDICT_ALLOW if allowed else decision_pb.VERDICT_REJECT


def _reason(d: DirectionDecision) -> Any:
    return decision_pb.ReasonCode.Value(f"REASON_CODE_{d.reason.value}")


def _direction(d: DirectionDecision) -> Any:
    message = decision_pb.Decision(
        direction=codec.direction_to_proto(d.direction),
        verdict=_verdict(d.allowed),
        encrypted=d.encrypted,
        reason=_reason(d),
        tier=d.tier or "",
        rule_index=d.rule or 0,
    )
    policy = _policy_ref(d.tier, d.policy)
    if policy is not None:
        message.policy.CopyFrom(policy)
        if d.tier == KUBERNETES_TIER:
            message.kubernetes_policies.append(policy)
    if d.observed_policy is not None:
        message.observed_verdict = _verdict(d.observed_allowed)
        observed = _policy_ref(None, d.observed_policy)
        if observed is not None:
            message.observed_policy.CopyFrom(observed)
    return message


def explanation(decision: Decision) -> Any:
    message = decision_pb.Explanation(
        verdict=_verdict(decision.allowed),
        encrypted=decision.encrypted,
        revision=decision.revision,
    )
    if decision.egress is not None:
        message.egress.CopyFrom(_direction(decision.egress))
    if decision.ingress is not None:
        message.ingress.CopyFrom(_direction(decision.ingress))
    return message


# ------------------------------------------------------------------------- endpoints


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """A request endpoint resolved against a snapshot: a workload key, an address, or a
    hypothetical workload (labels only) that must be added to the cluster to be decided."""

    workload_key: str | None = None
    ip: str | None = None
    hypothetical: Workload | None = None

    def endpoint(self, cluster: Cluster) -> Endpoint:
        if self.hypothetical is not None:
            return cluster.endpoint(self.hypothetical.key)
        if self.workload_key is not None:
            return cluster.endpoint(self.workload_key)
        assert self.ip is not None
        return cluster.endpoint(self.ip)


def _endpoint_spec(snapshot: StateSnapshot, message: Any, field: str, n: int) -> EndpointSpec:
    which = message.WhichOneof("kind")
    if which == "pu_id":
        pu_id = message.pu_id
        key = snapshot.workload_of_pu.get(pu_id)
        if key is None and snapshot.cluster.workload(pu_id) is not None:
            key = pu_id  # `namespace/name` of a workload, as the CLI names them
        if key is None:
            raise InvalidArgument(
                f"{field}.pu_id: no PU {pu_id!r} (give a PU id or namespace/name)",
                field=f"{field}.pu_id",
                reason="UNKNOWN_PU",
            )
        return EndpointSpec(workload_key=key)
    if which == "ip":
        try:
            ipaddress.ip_address(message.ip)
        except ValueError:
            raise InvalidArgument(
                f"{field}.ip: invalid IP address {message.ip!r}", field=f"{field}.ip"
            ) from None
        return EndpointSpec(ip=message.ip)
    if which == "labels":
        labels = dict(message.labels.labels)
        pu_type = PuType.PROCESS if labels.get("pu-type") == "process" else PuType.POD
        workload = Workload(
            namespace=labels.get("namespace", "default"),
            name=f"hypothetical-{n}",
            labels=Labels(labels),
            pu_type=pu_type,
            trust_domain=labels.get("trust-domain", snapshot.cluster.trust_domain),
        )
        return EndpointSpec(hypothetical=workload)
    raise InvalidArgument(f"{field}: an endpoint is required", field=field)


@dataclass(frozen=True, slots=True)
class ParsedConnection:
    source: EndpointSpec
    destination: EndpointSpec
    protocol: Protocol
    port: int


def parse_connection(snapshot: StateSnapshot, message: Any, field: str) -> ParsedConnection:
    protocol = codec.protocol_from_proto(message.protocol, field=f"{field}.protocol")
    port = int(message.destination_port)
    if not 1 <= port <= 65535:
        raise InvalidArgument(
            f"{field}.destination_port: must be between 1 and 65535, got {port}",
            field=f"{field}.destination_port",
        )
    return ParsedConnection(
        _endpoint_spec(snapshot, message.source, f"{field}.source", 0),
        _endpoint_spec(snapshot, message.destination, f"{field}.destination", 1),
        protocol,
        port,
    )


def connection_of(
    snapshot: StateSnapshot, source: str, destination: str, protocol: Protocol, port: int
) -> Any:
    """A ``Connection`` between two workloads (by key), naming them by PU id when known."""

    def endpoint(key: str) -> Any:
        return network_pb.Endpoint(pu_id=snapshot.pu_of_workload.get(key, key))

    return network_pb.Connection(
        source=endpoint(source),
        destination=endpoint(destination),
        protocol=codec.protocol_to_proto(protocol),
        destination_port=port,
    )
