import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from trustwire.api.common.v1 import error_pb2 as _error_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Datapath(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATAPATH_UNSPECIFIED: _ClassVar[Datapath]
    DATAPATH_PROXY: _ClassVar[Datapath]
    DATAPATH_NETWORK: _ClassVar[Datapath]
DATAPATH_UNSPECIFIED: Datapath
DATAPATH_PROXY: Datapath
DATAPATH_NETWORK: Datapath

class Enforcer(_message.Message):
    __slots__ = ("id", "node", "addresses", "version", "datapaths", "registered_at", "status")
    ID_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DATAPATHS_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    id: str
    node: str
    addresses: _containers.RepeatedScalarFieldContainer[str]
    version: str
    datapaths: _containers.RepeatedScalarFieldContainer[Datapath]
    registered_at: _timestamp_pb2.Timestamp
    status: EnforcerStatus
    def __init__(self, id: _Optional[str] = ..., node: _Optional[str] = ..., addresses: _Optional[_Iterable[str]] = ..., version: _Optional[str] = ..., datapaths: _Optional[_Iterable[_Union[Datapath, str]]] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[EnforcerStatus, _Mapping]] = ...) -> None: ...

class EnforcerStatus(_message.Message):
    __slots__ = ("connected", "acked_revision", "acked_at", "nacked_revision", "last_error", "lag_revisions", "last_seen", "pu_count", "connected_replica")
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    ACKED_REVISION_FIELD_NUMBER: _ClassVar[int]
    ACKED_AT_FIELD_NUMBER: _ClassVar[int]
    NACKED_REVISION_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAG_REVISIONS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    PU_COUNT_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_REPLICA_FIELD_NUMBER: _ClassVar[int]
    connected: bool
    acked_revision: int
    acked_at: _timestamp_pb2.Timestamp
    nacked_revision: int
    last_error: _error_pb2.ErrorDetail
    lag_revisions: int
    last_seen: _timestamp_pb2.Timestamp
    pu_count: int
    connected_replica: str
    def __init__(self, connected: _Optional[bool] = ..., acked_revision: _Optional[int] = ..., acked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., nacked_revision: _Optional[int] = ..., last_error: _Optional[_Union[_error_pb2.ErrorDetail, _Mapping]] = ..., lag_revisions: _Optional[int] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pu_count: _Optional[int] = ..., connected_replica: _Optional[str] = ...) -> None: ...
