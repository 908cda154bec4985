"""The one mapping between the domain's enums and the ``common.v1`` protobuf enums.

Every codec at a gRPC/storage edge (policy resources, policy distribution, flow records)
converts the same small enums; they share these tables so the mappings cannot drift. Values
are the generated enum values (typed ``Any``: each generated enum has its own value type);
``*_FROM_PB`` is the inverse of ``*_TO_PB``.
"""

from __future__ import annotations

from typing import Any

from trustwire.api.common.v1 import decision_pb2, labels_pb2, network_pb2, workload_pb2
from trustwire.policy.labels import Operator
from trustwire.policy.model import Action, Direction, Protocol, PuType

__all__ = [
    "ACTION_FROM_PB",
    "ACTION_TO_PB",
    "DIRECTION_FROM_PB",
    "DIRECTION_TO_PB",
    "OPERATOR_FROM_PB",
    "OPERATOR_TO_PB",
    "PROTOCOL_FROM_PB",
    "PROTOCOL_TO_PB",
    "PU_TYPE_FROM_PB",
    "PU_TYPE_TO_PB",
]

ACTION_TO_PB: dict[Action, Any] = {
    Action.ALLOW: decision_pb2.ACTION_ALLOW,
    Action.REJECT: decision_pb2.ACTION_REJECT,
    Action.ENCRYPT: decision_pb2.ACTION_ENCRYPT,
    Action.OBSERVE: decision_pb2.ACTION_OBSERVE,
}
ACTION_FROM_PB: dict[Any, Action] = {v: k for k, v in ACTION_TO_PB.items()}

DIRECTION_TO_PB: dict[Direction, Any] = {
    Direction.INGRESS: decision_pb2.DIRECTION_INGRESS,
    Direction.EGRESS: decision_pb2.DIRECTION_EGRESS,
}
DIRECTION_FROM_PB: dict[Any, Direction] = {v: k for k, v in DIRECTION_TO_PB.items()}

OPERATOR_TO_PB: dict[Operator, Any] = {
    Operator.IN: labels_pb2.LABEL_SELECTOR_OPERATOR_IN,
    Operator.NOT_IN: labels_pb2.LABEL_SELECTOR_OPERATOR_NOT_IN,
    Operator.EXISTS: labels_pb2.LABEL_SELECTOR_OPERATOR_EXISTS,
    Operator.DOES_NOT_EXIST: labels_pb2.LABEL_SELECTOR_OPERATOR_DOES_NOT_EXIST,
}
OPERATOR_FROM_PB: dict[Any, Operator] = {v: k for k, v in OPERATOR_TO_PB.items()}

PROTOCOL_TO_PB: dict[Protocol, Any] = {
    Protocol.TCP: network_pb2.PROTOCOL_TCP,
    Protocol.UDP: network_pb2.PROTOCOL_UDP,
    Protocol.SCTP: network_pb2.PROTOCOL_SCTP,
}
PROTOCOL_FROM_PB: dict[Any, Protocol] = {v: k for k, v in PROTOCOL_TO_PB.items()}

PU_TYPE_TO_PB: dict[PuType, Any] = {
    PuType.POD: workload_pb2.PROCESSING_UNIT_TYPE_POD,
    PuType.PROCESS: workload_pb2.PROCESSING_UNIT_TYPE_PROCESS,
    PuType.EXTERNAL: workload_pb2.PROCESSING_UNIT_TYPE_EXTERNAL,
}
PU_TYPE_FROM_PB: dict[Any, PuType] = {v: k for k, v in PU_TYPE_TO_PB.items()}
