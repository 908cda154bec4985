import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrustBundle(_message.Message):
    __slots__ = ("trust_domain", "ca_certificates_der", "sequence_number", "updated_at")
    TRUST_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATES_DER_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    trust_domain: str
    ca_certificates_der: _containers.RepeatedScalarFieldContainer[bytes]
    sequence_number: int
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, trust_domain: _Optional[str] = ..., ca_certificates_der: _Optional[_Iterable[bytes]] = ..., sequence_number: _Optional[int] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Revocation(_message.Message):
    __slots__ = ("serial", "spiffe_id", "enforcer_id", "revoked_at", "certificate_not_after", "reason")
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    SPIFFE_ID_FIELD_NUMBER: _ClassVar[int]
    ENFORCER_ID_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    serial: str
    spiffe_id: str
    enforcer_id: str
    revoked_at: _timestamp_pb2.Timestamp
    certificate_not_after: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, serial: _Optional[str] = ..., spiffe_id: _Optional[str] = ..., enforcer_id: _Optional[str] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., certificate_not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class RevocationList(_message.Message):
    __slots__ = ("trust_domain", "revocations", "sequence_number")
    TRUST_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    REVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    trust_domain: str
    revocations: _containers.RepeatedCompositeFieldContainer[Revocation]
    sequence_number: int
    def __init__(self, trust_domain: _Optional[str] = ..., revocations: _Optional[_Iterable[_Union[Revocation, _Mapping]]] = ..., sequence_number: _Optional[int] = ...) -> None: ...
