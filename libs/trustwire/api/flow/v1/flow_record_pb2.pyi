import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from trustwire.api.common.v1 import decision_pb2 as _decision_pb2
from trustwire.api.common.v1 import network_pb2 as _network_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FlowRecord(_message.Message):
    __slots__ = ("reporter_enforcer_id", "source", "destination", "protocol", "decision", "revision", "bytes_sent", "bytes_received", "connection_count", "window_start", "window_end", "trace_id")
    REPORTER_ENFORCER_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_COUNT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    reporter_enforcer_id: str
    source: FlowEndpoint
    destination: FlowEndpoint
    protocol: _network_pb2.Protocol
    decision: _decision_pb2.Decision
    revision: int
    bytes_sent: int
    bytes_received: int
    connection_count: int
    window_start: _timestamp_pb2.Timestamp
    window_end: _timestamp_pb2.Timestamp
    trace_id: str
    def __init__(self, reporter_enforcer_id: _Optional[str] = ..., source: _Optional[_Union[FlowEndpoint, _Mapping]] = ..., destination: _Optional[_Union[FlowEndpoint, _Mapping]] = ..., protocol: _Optional[_Union[_network_pb2.Protocol, str]] = ..., decision: _Optional[_Union[_decision_pb2.Decision, _Mapping]] = ..., revision: _Optional[int] = ..., bytes_sent: _Optional[int] = ..., bytes_received: _Optional[int] = ..., connection_count: _Optional[int] = ..., window_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trace_id: _Optional[str] = ...) -> None: ...

class FlowEndpoint(_message.Message):
    __slots__ = ("pu_id", "labels", "trust_domain", "ip", "port", "external_network")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PU_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TRUST_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_NETWORK_FIELD_NUMBER: _ClassVar[int]
    pu_id: str
    labels: _containers.ScalarMap[str, str]
    trust_domain: str
    ip: str
    port: int
    external_network: str
    def __init__(self, pu_id: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., trust_domain: _Optional[str] = ..., ip: _Optional[str] = ..., port: _Optional[int] = ..., external_network: _Optional[str] = ...) -> None: ...
