import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from trustwire.api.common.v1 import envelope_pb2 as _envelope_pb2
from trustwire.api.common.v1 import network_pb2 as _network_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrustProfile(_message.Message):
    __slots__ = ("identity_document", "five_tuple", "destination_service", "nonce", "timestamp", "behaviour_score", "reputation_score", "trace_context", "peer_nonce")
    IDENTITY_DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    FIVE_TUPLE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_SERVICE_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    BEHAVIOUR_SCORE_FIELD_NUMBER: _ClassVar[int]
    REPUTATION_SCORE_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    PEER_NONCE_FIELD_NUMBER: _ClassVar[int]
    identity_document: _envelope_pb2.SignedEnvelope
    five_tuple: FiveTuple
    destination_service: str
    nonce: bytes
    timestamp: _timestamp_pb2.Timestamp
    behaviour_score: float
    reputation_score: float
    trace_context: TraceContext
    peer_nonce: bytes
    def __init__(self, identity_document: _Optional[_Union[_envelope_pb2.SignedEnvelope, _Mapping]] = ..., five_tuple: _Optional[_Union[FiveTuple, _Mapping]] = ..., destination_service: _Optional[str] = ..., nonce: _Optional[bytes] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., behaviour_score: _Optional[float] = ..., reputation_score: _Optional[float] = ..., trace_context: _Optional[_Union[TraceContext, _Mapping]] = ..., peer_nonce: _Optional[bytes] = ...) -> None: ...

class FiveTuple(_message.Message):
    __slots__ = ("protocol", "source_ip", "source_port", "destination_ip", "destination_port")
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IP_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PORT_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_IP_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_PORT_FIELD_NUMBER: _ClassVar[int]
    protocol: _network_pb2.Protocol
    source_ip: str
    source_port: int
    destination_ip: str
    destination_port: int
    def __init__(self, protocol: _Optional[_Union[_network_pb2.Protocol, str]] = ..., source_ip: _Optional[str] = ..., source_port: _Optional[int] = ..., destination_ip: _Optional[str] = ..., destination_port: _Optional[int] = ...) -> None: ...

class TraceContext(_message.Message):
    __slots__ = ("traceparent", "tracestate")
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    TRACESTATE_FIELD_NUMBER: _ClassVar[int]
    traceparent: str
    tracestate: str
    def __init__(self, traceparent: _Optional[str] = ..., tracestate: _Optional[str] = ...) -> None: ...
