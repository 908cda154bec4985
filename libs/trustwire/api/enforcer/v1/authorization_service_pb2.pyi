import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from trustwire.api.common.v1 import decision_pb2 as _decision_pb2
from trustwire.api.common.v1 import envelope_pb2 as _envelope_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EncryptionMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENCRYPTION_MODE_UNSPECIFIED: _ClassVar[EncryptionMode]
    ENCRYPTION_MODE_TLS13_ENFORCER_TUNNEL: _ClassVar[EncryptionMode]
ENCRYPTION_MODE_UNSPECIFIED: EncryptionMode
ENCRYPTION_MODE_TLS13_ENFORCER_TUNNEL: EncryptionMode

class AuthorizeRequest(_message.Message):
    __slots__ = ("profile",)
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    profile: _envelope_pb2.SignedEnvelope
    def __init__(self, profile: _Optional[_Union[_envelope_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class AuthorizeResponse(_message.Message):
    __slots__ = ("profile", "verdict", "reason", "encryption", "preauthorization_ttl", "revision")
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTION_FIELD_NUMBER: _ClassVar[int]
    PREAUTHORIZATION_TTL_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    profile: _envelope_pb2.SignedEnvelope
    verdict: _decision_pb2.Verdict
    reason: _decision_pb2.ReasonCode
    encryption: EncryptionParameters
    preauthorization_ttl: _duration_pb2.Duration
    revision: int
    def __init__(self, profile: _Optional[_Union[_envelope_pb2.SignedEnvelope, _Mapping]] = ..., verdict: _Optional[_Union[_decision_pb2.Verdict, str]] = ..., reason: _Optional[_Union[_decision_pb2.ReasonCode, str]] = ..., encryption: _Optional[_Union[EncryptionParameters, _Mapping]] = ..., preauthorization_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class EncryptionParameters(_message.Message):
    __slots__ = ("mode", "tunnel_address", "server_spiffe_id", "connection_token")
    MODE_FIELD_NUMBER: _ClassVar[int]
    TUNNEL_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SERVER_SPIFFE_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    mode: EncryptionMode
    tunnel_address: str
    server_spiffe_id: str
    connection_token: bytes
    def __init__(self, mode: _Optional[_Union[EncryptionMode, str]] = ..., tunnel_address: _Optional[str] = ..., server_spiffe_id: _Optional[str] = ..., connection_token: _Optional[bytes] = ...) -> None: ...
