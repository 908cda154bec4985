import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EnrollmentKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENROLLMENT_KIND_UNSPECIFIED: _ClassVar[EnrollmentKind]
    ENROLLMENT_KIND_ENFORCER: _ClassVar[EnrollmentKind]
    ENROLLMENT_KIND_SERVICE: _ClassVar[EnrollmentKind]
ENROLLMENT_KIND_UNSPECIFIED: EnrollmentKind
ENROLLMENT_KIND_ENFORCER: EnrollmentKind
ENROLLMENT_KIND_SERVICE: EnrollmentKind

class Enrollment(_message.Message):
    __slots__ = ("id", "kind", "spiffe_id", "certificate_serial", "certificate_not_after", "enrolled_at", "renewed_at", "revoked_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SPIFFE_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_SERIAL_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    ENROLLED_AT_FIELD_NUMBER: _ClassVar[int]
    RENEWED_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: EnrollmentKind
    spiffe_id: str
    certificate_serial: str
    certificate_not_after: _timestamp_pb2.Timestamp
    enrolled_at: _timestamp_pb2.Timestamp
    renewed_at: _timestamp_pb2.Timestamp
    revoked_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[EnrollmentKind, str]] = ..., spiffe_id: _Optional[str] = ..., certificate_serial: _Optional[str] = ..., certificate_not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., enrolled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., renewed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
