import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from trustwire.api.common.v1 import decision_pb2 as _decision_pb2
from trustwire.api.common.v1 import labels_pb2 as _labels_pb2
from trustwire.api.policy.v1 import meta_pb2 as _meta_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DocumentFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DOCUMENT_FORMAT_UNSPECIFIED: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_YAML: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_JSON: _ClassVar[DocumentFormat]
DOCUMENT_FORMAT_UNSPECIFIED: DocumentFormat
DOCUMENT_FORMAT_YAML: DocumentFormat
DOCUMENT_FORMAT_JSON: DocumentFormat

class KubernetesNetworkPolicy(_message.Message):
    __slots__ = ("metadata", "original", "format", "pod_selector", "policy_types", "ingress_rule_count", "egress_rule_count", "kubernetes_uid", "kubernetes_resource_version", "imported_at")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    POD_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    POLICY_TYPES_FIELD_NUMBER: _ClassVar[int]
    INGRESS_RULE_COUNT_FIELD_NUMBER: _ClassVar[int]
    EGRESS_RULE_COUNT_FIELD_NUMBER: _ClassVar[int]
    KUBERNETES_UID_FIELD_NUMBER: _ClassVar[int]
    KUBERNETES_RESOURCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    IMPORTED_AT_FIELD_NUMBER: _ClassVar[int]
    metadata: _meta_pb2.ObjectMeta
    original: bytes
    format: DocumentFormat
    pod_selector: _labels_pb2.LabelSelector
    policy_types: _containers.RepeatedScalarFieldContainer[_decision_pb2.Direction]
    ingress_rule_count: int
    egress_rule_count: int
    kubernetes_uid: str
    kubernetes_resource_version: str
    imported_at: _timestamp_pb2.Timestamp
    def __init__(self, metadata: _Optional[_Union[_meta_pb2.ObjectMeta, _Mapping]] = ..., original: _Optional[bytes] = ..., format: _Optional[_Union[DocumentFormat, str]] = ..., pod_selector: _Optional[_Union[_labels_pb2.LabelSelector, _Mapping]] = ..., policy_types: _Optional[_Iterable[_Union[_decision_pb2.Direction, str]]] = ..., ingress_rule_count: _Optional[int] = ..., egress_rule_count: _Optional[int] = ..., kubernetes_uid: _Optional[str] = ..., kubernetes_resource_version: _Optional[str] = ..., imported_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
