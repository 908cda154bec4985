from trustwire.api.common.v1 import labels_pb2 as _labels_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Protocol(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROTOCOL_UNSPECIFIED: _ClassVar[Protocol]
    PROTOCOL_TCP: _ClassVar[Protocol]
    PROTOCOL_UDP: _ClassVar[Protocol]
    PROTOCOL_SCTP: _ClassVar[Protocol]
PROTOCOL_UNSPECIFIED: Protocol
PROTOCOL_TCP: Protocol
PROTOCOL_UDP: Protocol
PROTOCOL_SCTP: Protocol

class PortRange(_message.Message):
    __slots__ = ("protocol", "port", "port_name", "end_port")
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    PORT_NAME_FIELD_NUMBER: _ClassVar[int]
    END_PORT_FIELD_NUMBER: _ClassVar[int]
    protocol: Protocol
    port: int
    port_name: str
    end_port: int
    def __init__(self, protocol: _Optional[_Union[Protocol, str]] = ..., port: _Optional[int] = ..., port_name: _Optional[str] = ..., end_port: _Optional[int] = ...) -> None: ...

class Endpoint(_message.Message):
    __slots__ = ("pu_id", "ip", "labels")
    PU_ID_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    pu_id: str
    ip: str
    labels: _labels_pb2.LabelSet
    def __init__(self, pu_id: _Optional[str] = ..., ip: _Optional[str] = ..., labels: _Optional[_Union[_labels_pb2.LabelSet, _Mapping]] = ...) -> None: ...

class Connection(_message.Message):
    __slots__ = ("source", "destination", "protocol", "destination_port")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_PORT_FIELD_NUMBER: _ClassVar[int]
    source: Endpoint
    destination: Endpoint
    protocol: Protocol
    destination_port: int
    def __init__(self, source: _Optional[_Union[Endpoint, _Mapping]] = ..., destination: _Optional[_Union[Endpoint, _Mapping]] = ..., protocol: _Optional[_Union[Protocol, str]] = ..., destination_port: _Optional[int] = ...) -> None: ...
