from trustwire.api.common.v1 import decision_pb2 as _decision_pb2
from trustwire.api.common.v1 import labels_pb2 as _labels_pb2
from trustwire.api.common.v1 import network_pb2 as _network_pb2
from trustwire.api.policy.v1 import meta_pb2 as _meta_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NetworkAccessPolicy(_message.Message):
    __slots__ = ("metadata", "spec")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    metadata: _meta_pb2.ObjectMeta
    spec: NetworkAccessPolicySpec
    def __init__(self, metadata: _Optional[_Union[_meta_pb2.ObjectMeta, _Mapping]] = ..., spec: _Optional[_Union[NetworkAccessPolicySpec, _Mapping]] = ...) -> None: ...

class NetworkAccessPolicySpec(_message.Message):
    __slots__ = ("tier", "priority", "subject", "object", "ports", "action", "observed_action", "conditions")
    TIER_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_ACTION_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    tier: str
    priority: int
    subject: _labels_pb2.LabelSelector
    object: _labels_pb2.LabelSelector
    ports: _containers.RepeatedCompositeFieldContainer[_network_pb2.PortRange]
    action: _decision_pb2.Action
    observed_action: _decision_pb2.Action
    conditions: Conditions
    def __init__(self, tier: _Optional[str] = ..., priority: _Optional[int] = ..., subject: _Optional[_Union[_labels_pb2.LabelSelector, _Mapping]] = ..., object: _Optional[_Union[_labels_pb2.LabelSelector, _Mapping]] = ..., ports: _Optional[_Iterable[_Union[_network_pb2.PortRange, _Mapping]]] = ..., action: _Optional[_Union[_decision_pb2.Action, str]] = ..., observed_action: _Optional[_Union[_decision_pb2.Action, str]] = ..., conditions: _Optional[_Union[Conditions, _Mapping]] = ...) -> None: ...

class Conditions(_message.Message):
    __slots__ = ("min_reputation", "max_anomaly")
    MIN_REPUTATION_FIELD_NUMBER: _ClassVar[int]
    MAX_ANOMALY_FIELD_NUMBER: _ClassVar[int]
    min_reputation: float
    max_anomaly: float
    def __init__(self, min_reputation: _Optional[float] = ..., max_anomaly: _Optional[float] = ...) -> None: ...
