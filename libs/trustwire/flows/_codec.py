"""The one module of ``trustwire.flows`` that touches protobuf: flow records and filters to and
from ``trustwire.api.flow.v1`` messages.

Decoding never trusts input: every problem is ``InvalidArgument`` naming the field path
(``records[3].destination.ip``). Used by the policy service (ingest, query, watch), the
enforcer (report) and the CLI (display).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import timestamp_pb2

from trustwire import wire_enums
from trustwire.api.common.v1 import decision_pb2 as decision_pb
from trustwire.api.common.v1 import labels_pb2 as labels_pb
from trustwire.api.common.v1 import network_pb2 as network_pb
from trustwire.api.common.v1 import resource_pb2 as resource_pb
from trustwire.api.flow.v1 import flow_record_pb2 as record_pb
from trustwire.api.flow.v1 import flow_service_pb2 as service_pb
from trustwire.errors import InvalidArgument
from trustwire.policy.labels import Labels, LabelSelector, Operator, Requirement
from trustwire.policy.model import KUBERNETES_TIER, Protocol

from .query import FlowFilter
from .record import FlowDecision, FlowEndpoint, FlowRecord, Verdict

__all__ = [
    "filter_from_proto",
    "filter_to_proto",
    "reason_from_proto",
    "reason_to_proto",
    "record_from_proto",
    "record_to_proto",
    "timestamp_from_proto",
    "timestamp_to_proto",
]

# Shared with every other codec at the edge (one mapping, no drift).
_PROTOCOL_TO_PB = wire_enums.PROTOCOL_TO_PB
_PROTOCOL_FROM_PB = wire_enums.PROTOCOL_FROM_PB
_VERDICT_TO_PB: dict[Verdict, Any] = {
    Verdict.ALLOW: decision_pb.VERDICT_ALLOW,
    Verdict.REJECT: decision_pb.VERDICT_REJECT,
}
_VERDICT_FROM_PB: dict[Any, Verdict] = {v: k for k, v in _VERDICT_TO_PB.items()}
_DIRECTION_TO_PB = wire_enums.DIRECTION_TO_PB
_DIRECTION_FROM_PB = wire_enums.DIRECTION_FROM_PB
_OPERATOR_TO_PB = wire_enums.OPERATOR_TO_PB
_OPERATOR_FROM_PB = wire_enums.OPERATOR_FROM_PB
_REASON_PREFIX = "REASON_CODE_"


# ------------------------------------------------------------------------------ scalars


def timestamp_to_proto(when: datetime) -> Any:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(when.astimezone(UTC))
    return ts


def timestamp_from_proto(ts: Any) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]


def reason_to_proto(reason: str) -> Any:
    try:
        return decision_pb.ReasonCode.Value(_REASON_PREFIX + reason)
    except ValueError:
        raise InvalidArgument(f"unknown reason code {reason!r}", field="reason") from None


def reason_from_proto(value: int, *, field: str) -> str:
    try:
        name: str = decision_pb.ReasonCode.Name(value)
    except ValueError:
        raise InvalidArgument(f"{field}: unknown reason code {value}", field=field) from None
    if value == decision_pb.REASON_CODE_UNSPECIFIED:
        raise InvalidArgument(f"{field}: required", field=field)
    return name.removeprefix(_REASON_PREFIX)


def _protocol_from_proto(value: int, *, field: str) -> Protocol:
    protocol = _PROTOCOL_FROM_PB.get(value)
    if protocol is None:
        raise InvalidArgument(f"{field}: TCP, UDP or SCTP is required", field=field)
    return protocol


def _verdict_from_proto(value: int, *, field: str, required: bool) -> Verdict | None:
    verdict = _VERDICT_FROM_PB.get(value)
    if verdict is None and (required or value != decision_pb.VERDICT_UNSPECIFIED):
        raise InvalidArgument(f"{field}: ALLOW or REJECT is required", field=field)
    return verdict


# ------------------------------------------------------------------------- policy refs


def _policy_ref(tier: str | None, key: str | None) -> Any | None:
    if key is None:
        return None
    namespace, _, name = key.rpartition("/")
    kind = (
        resource_pb.RESOURCE_KIND_KUBERNETES_NETWORK_POLICY
        if tier == KUBERNETES_TIER
        else resource_pb.RESOURCE_KIND_NETWORK_ACCESS_POLICY
    )
    return resource_pb.ResourceRef(kind=kind, namespace=namespace, name=name)


def _policy_key(message: Any, has: bool) -> str | None:
    if not has or not message.name:
        return None
    return f"{message.namespace}/{message.name}" if message.namespace else str(message.name)


# ------------------------------------------------------------------------------ records


def _endpoint_to_proto(e: FlowEndpoint) -> Any:
    return record_pb.FlowEndpoint(
        pu_id=e.pu_id,
        labels=dict(e.labels.items()),
        trust_domain=e.trust_domain,
        ip=e.ip,
        port=e.port,
        external_network=e.external_network,
    )


def _endpoint_from_proto(message: Any, path: str) -> FlowEndpoint:
    endpoint = FlowEndpoint(
        pu_id=message.pu_id,
        labels=Labels(dict(message.labels)),
        trust_domain=message.trust_domain,
        ip=message.ip,
        port=int(message.port),
        external_network=message.external_network,
    )
    endpoint.validate(path)
    return endpoint


def _decision_to_proto(d: FlowDecision) -> Any:
    message = decision_pb.Decision(
        direction=_DIRECTION_TO_PB[d.direction],
        verdict=_VERDICT_TO_PB[d.verdict],
        encrypted=d.encrypted,
        reason=reason_to_proto(d.reason),
        tier=d.tier or "",
        rule_index=d.rule or 0,
    )
    policy = _policy_ref(d.tier, d.policy)
    if policy is not None:
        message.policy.CopyFrom(policy)
        if d.tier == KUBERNETES_TIER:
            message.kubernetes_policies.append(policy)
    if d.observed_verdict is not None:
        message.observed_verdict = _VERDICT_TO_PB[d.observed_verdict]
    observed = _policy_ref(None, d.observed_policy)
    if observed is not None:
        message.observed_policy.CopyFrom(observed)
    return message


def _decision_from_proto(message: Any, path: str) -> FlowDecision:
    direction = _DIRECTION_FROM_PB.get(message.direction)
    if direction is None:
        raise InvalidArgument(
            f"{path}.direction: INGRESS or EGRESS is required", field=f"{path}.direction"
        )
    verdict = _verdict_from_proto(message.verdict, field=f"{path}.verdict", required=True)
    assert verdict is not None
    policy = _policy_key(message.policy, message.HasField("policy"))
    return FlowDecision(
        direction=direction,
        verdict=verdict,
        reason=reason_from_proto(message.reason, field=f"{path}.reason"),
        encrypted=message.encrypted,
        tier=message.tier or None,
        policy=policy,
        rule=int(message.rule_index) if policy is not None else None,
        observed_verdict=_verdict_from_proto(
            message.observed_verdict, field=f"{path}.observed_verdict", required=False
        ),
        observed_policy=_policy_key(message.observed_policy, message.HasField("observed_policy")),
    )


def record_to_proto(record: FlowRecord) -> Any:
    """The wire form. ``trace_sample`` does not travel (the message has no field for it)."""
    return record_pb.FlowRecord(
        reporter_enforcer_id=record.reporter,
        source=_endpoint_to_proto(record.source),
        destination=_endpoint_to_proto(record.destination),
        protocol=_PROTOCOL_TO_PB[record.protocol],
        decision=_decision_to_proto(record.decision),
        revision=record.revision,
        bytes_sent=record.bytes_sent,
        bytes_received=record.bytes_received,
        connection_count=record.connection_count,
        window_start=timestamp_to_proto(record.window_start),
        window_end=timestamp_to_proto(record.window_end),
        trace_id=record.trace_id,
    )


def record_from_proto(message: Any, *, path: str = "record") -> FlowRecord:
    """A validated record; ``InvalidArgument`` naming the field otherwise."""
    for required in ("source", "destination", "decision", "window_start", "window_end"):
        if not message.HasField(required):
            raise InvalidArgument(f"{path}.{required}: required", field=f"{path}.{required}")
    record = FlowRecord(
        reporter=message.reporter_enforcer_id,
        source=_endpoint_from_proto(message.source, f"{path}.source"),
        destination=_endpoint_from_proto(message.destination, f"{path}.destination"),
        protocol=_protocol_from_proto(message.protocol, field=f"{path}.protocol"),
        decision=_decision_from_proto(message.decision, f"{path}.decision"),
        revision=int(message.revision),
        window_start=timestamp_from_proto(message.window_start),
        window_end=timestamp_from_proto(message.window_end),
        connection_count=int(message.connection_count),
        bytes_sent=int(message.bytes_sent),
        bytes_received=int(message.bytes_received),
        trace_id=message.trace_id,
        trace_sample=(message.trace_id,) if message.trace_id else (),
    )
    record.validate(path)
    return record


# ------------------------------------------------------------------------------ filters


def _selector_to_proto(selector: LabelSelector) -> Any:
    return labels_pb.LabelSelector(
        match_labels=dict(selector.match_labels.items()),
        match_expressions=[
            labels_pb.LabelSelectorRequirement(
                key=r.key, operator=_OPERATOR_TO_PB[r.operator], values=sorted(r.values)
            )
            for r in selector.match_expressions
        ],
    )


def _selector_from_proto(message: Any, path: str) -> LabelSelector:
    requirements = []
    for i, expr in enumerate(message.match_expressions):
        field = f"{path}.match_expressions[{i}]"
        op = _OPERATOR_FROM_PB.get(expr.operator)
        if op is None:
            raise InvalidArgument(f"{field}.operator: an operator is required", field=field)
        values = frozenset(expr.values)
        if (op in (Operator.IN, Operator.NOT_IN)) != bool(values):
            raise InvalidArgument(
                f"{field}.values: required for In/NotIn, empty for Exists/DoesNotExist",
                field=field,
            )
        requirements.append(Requirement(expr.key, op, values))
    return LabelSelector(Labels(dict(message.match_labels)), tuple(requirements))


def filter_to_proto(f: FlowFilter) -> Any:
    message = service_pb.FlowFilter(
        pu_ids=sorted(f.pu_ids),
        namespace=f.namespace,
        verdicts=sorted(_VERDICT_TO_PB[v] for v in f.verdicts),
        reasons=sorted(reason_to_proto(r) for r in f.reasons),
        trace_id=f.trace_id,
        destination_port=f.destination_port,
        protocol=_PROTOCOL_TO_PB[f.protocol] if f.protocol else network_pb.PROTOCOL_UNSPECIFIED,
        reporter_enforcer_id=f.reporter,
        only_observed_mismatch=f.only_observed_mismatch,
    )
    if f.source_selector is not None:
        message.source_selector.CopyFrom(_selector_to_proto(f.source_selector))
    if f.destination_selector is not None:
        message.destination_selector.CopyFrom(_selector_to_proto(f.destination_selector))
    if f.policy:
        namespace, _, name = f.policy.rpartition("/")
        message.policy.CopyFrom(resource_pb.ResourceRef(namespace=namespace, name=name))
    return message


def filter_from_proto(message: Any, *, path: str = "filter") -> FlowFilter:
    verdicts = frozenset(
        v
        for i, value in enumerate(message.verdicts)
        if (v := _verdict_from_proto(value, field=f"{path}.verdicts[{i}]", required=True))
    )
    reasons = frozenset(
        reason_from_proto(value, field=f"{path}.reasons[{i}]")
        for i, value in enumerate(message.reasons)
    )
    policy = ""
    if message.HasField("policy"):
        if not message.policy.name:
            raise InvalidArgument(f"{path}.policy.name: required", field=f"{path}.policy.name")
        ref = message.policy
        # The kind is not needed to match: policy keys are unique across the two kinds'
        # namespaces in practice, and a kind-less filter is what the CLI sends.
        policy = f"{ref.namespace}/{ref.name}" if ref.namespace else str(ref.name)
    if not 0 <= message.destination_port <= 65535:
        raise InvalidArgument(
            f"{path}.destination_port: must be 0..65535", field=f"{path}.destination_port"
        )
    return FlowFilter(
        pu_ids=frozenset(message.pu_ids),
        namespace=message.namespace,
        source_selector=(
            _selector_from_proto(message.source_selector, f"{path}.source_selector")
            if message.HasField("source_selector")
            else None
        ),
        destination_selector=(
            _selector_from_proto(message.destination_selector, f"{path}.destination_selector")
            if message.HasField("destination_selector")
            else None
        ),
        verdicts=verdicts,
        reasons=reasons,
        policy=policy,
        trace_id=message.trace_id,
        destination_port=int(message.destination_port),
        protocol=(
            _protocol_from_proto(message.protocol, field=f"{path}.protocol")
            if message.protocol != network_pb.PROTOCOL_UNSPECIFIED
            else None
        ),
        reporter=message.reporter_enforcer_id,
        only_observed_mismatch=message.only_observed_mismatch,
    )
