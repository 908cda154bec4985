import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from trustwire.api.common.v1 import workload_pb2 as _workload_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IdentityDocument(_message.Message):
    __slots__ = ("document_id", "pu_id", "trust_domain", "enforcer_id", "spiffe_id", "labels", "attestation", "issued_at", "expires_at")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PU_ID_FIELD_NUMBER: _ClassVar[int]
    TRUST_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    ENFORCER_ID_FIELD_NUMBER: _ClassVar[int]
    SPIFFE_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ATTESTATION_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    pu_id: str
    trust_domain: str
    enforcer_id: str
    spiffe_id: str
    labels: _containers.ScalarMap[str, str]
    attestation: Attestation
    issued_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, document_id: _Optional[str] = ..., pu_id: _Optional[str] = ..., trust_domain: _Optional[str] = ..., enforcer_id: _Optional[str] = ..., spiffe_id: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., attestation: _Optional[_Union[Attestation, _Mapping]] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Attestation(_message.Message):
    __slots__ = ("pu_type", "namespace", "exe_sha256", "uid", "image", "image_digest", "service_account", "node")
    PU_TYPE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    EXE_SHA256_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    pu_type: _workload_pb2.ProcessingUnitType
    namespace: str
    exe_sha256: str
    uid: int
    image: str
    image_digest: str
    service_account: str
    node: str
    def __init__(self, pu_type: _Optional[_Union[_workload_pb2.ProcessingUnitType, str]] = ..., namespace: _Optional[str] = ..., exe_sha256: _Optional[str] = ..., uid: _Optional[int] = ..., image: _Optional[str] = ..., image_digest: _Optional[str] = ..., service_account: _Optional[str] = ..., node: _Optional[str] = ...) -> None: ...
