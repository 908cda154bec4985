import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from trustwire.api.common.v1 import decision_pb2 as _decision_pb2
from trustwire.api.common.v1 import envelope_pb2 as _envelope_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EncryptionMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENCRYPTION_MODE_UNSPECIFIED: _ClassVar[EncryptionMode]
    ENCRYPTION_MODE_TLS13_ENFORCER_TUNNEL: _ClassVar[EncryptionMode]
ENCRYPTION_MODE_UNSPECIFIED: EncryptionMode
ENCRYPTION_MODE_TLS13_ENFORCER_TUNNEL: EncryptionMode

class AuthorizeRequest(_message.Message):
    __slots__ = ("profile", "egress_action")
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    EGRESS_ACTION_FIELD_NUMBER: _ClassVar[int]
    profile: _envelope_pb2.SignedEnvelope
    egress_action: _decision_pb2.Action
    def __init__(self, profile: _Optional[_Union[_envelope_pb2.SignedEnvelope, _Mapping]] = ..., egress_action: _Optional[_Union[_decision_pb2.Action, str]] = ...) -> None: ...

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

class OpenSessionRequest(_message.Message):
    __slots__ = ("protocol", "ephemeral_public_key", "random", "signer_chain_der")
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    EPHEMERAL_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    RANDOM_FIELD_NUMBER: _ClassVar[int]
    SIGNER_CHAIN_DER_FIELD_NUMBER: _ClassVar[int]
    protocol: str
    ephemeral_public_key: bytes
    random: bytes
    signer_chain_der: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, protocol: _Optional[str] = ..., ephemeral_public_key: _Optional[bytes] = ..., random: _Optional[bytes] = ..., signer_chain_der: _Optional[_Iterable[bytes]] = ...) -> None: ...

class OpenSessionResponse(_message.Message):
    __slots__ = ("session_id", "ephemeral_public_key", "random", "not_before", "not_after", "signature", "signer_chain_der")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    EPHEMERAL_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    RANDOM_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SIGNER_CHAIN_DER_FIELD_NUMBER: _ClassVar[int]
    session_id: bytes
    ephemeral_public_key: bytes
    random: bytes
    not_before: _timestamp_pb2.Timestamp
    not_after: _timestamp_pb2.Timestamp
    signature: bytes
    signer_chain_der: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, session_id: _Optional[bytes] = ..., ephemeral_public_key: _Optional[bytes] = ..., random: _Optional[bytes] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., signature: _Optional[bytes] = ..., signer_chain_der: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ConfirmSessionRequest(_message.Message):
    __slots__ = ("session_id", "signature")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    session_id: bytes
    signature: bytes
    def __init__(self, session_id: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class ConfirmSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

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
