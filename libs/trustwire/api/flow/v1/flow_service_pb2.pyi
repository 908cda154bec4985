import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from trustwire.api.common.v1 import decision_pb2 as _decision_pb2
from trustwire.api.common.v1 import labels_pb2 as _labels_pb2
from trustwire.api.common.v1 import network_pb2 as _network_pb2
from trustwire.api.common.v1 import pagination_pb2 as _pagination_pb2
from trustwire.api.common.v1 import resource_pb2 as _resource_pb2
from trustwire.api.flow.v1 import flow_record_pb2 as _flow_record_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QueryScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUERY_SCOPE_UNSPECIFIED: _ClassVar[QueryScope]
    QUERY_SCOPE_LOCAL: _ClassVar[QueryScope]
QUERY_SCOPE_UNSPECIFIED: QueryScope
QUERY_SCOPE_LOCAL: QueryScope

class ReportFlowsRequest(_message.Message):
    __slots__ = ("batch_id", "records")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    records: _containers.RepeatedCompositeFieldContainer[_flow_record_pb2.FlowRecord]
    def __init__(self, batch_id: _Optional[str] = ..., records: _Optional[_Iterable[_Union[_flow_record_pb2.FlowRecord, _Mapping]]] = ...) -> None: ...

class ReportFlowsResponse(_message.Message):
    __slots__ = ("accepted_count", "duplicate")
    ACCEPTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    accepted_count: int
    duplicate: bool
    def __init__(self, accepted_count: _Optional[int] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class FlowFilter(_message.Message):
    __slots__ = ("pu_ids", "namespace", "source_selector", "destination_selector", "verdicts", "reasons", "policy", "trace_id", "destination_port", "protocol", "reporter_enforcer_id", "only_observed_mismatch")
    PU_IDS_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    VERDICTS_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_PORT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    REPORTER_ENFORCER_ID_FIELD_NUMBER: _ClassVar[int]
    ONLY_OBSERVED_MISMATCH_FIELD_NUMBER: _ClassVar[int]
    pu_ids: _containers.RepeatedScalarFieldContainer[str]
    namespace: str
    source_selector: _labels_pb2.LabelSelector
    destination_selector: _labels_pb2.LabelSelector
    verdicts: _containers.RepeatedScalarFieldContainer[_decision_pb2.Verdict]
    reasons: _containers.RepeatedScalarFieldContainer[_decision_pb2.ReasonCode]
    policy: _resource_pb2.ResourceRef
    trace_id: str
    destination_port: int
    protocol: _network_pb2.Protocol
    reporter_enforcer_id: str
    only_observed_mismatch: bool
    def __init__(self, pu_ids: _Optional[_Iterable[str]] = ..., namespace: _Optional[str] = ..., source_selector: _Optional[_Union[_labels_pb2.LabelSelector, _Mapping]] = ..., destination_selector: _Optional[_Union[_labels_pb2.LabelSelector, _Mapping]] = ..., verdicts: _Optional[_Iterable[_Union[_decision_pb2.Verdict, str]]] = ..., reasons: _Optional[_Iterable[_Union[_decision_pb2.ReasonCode, str]]] = ..., policy: _Optional[_Union[_resource_pb2.ResourceRef, _Mapping]] = ..., trace_id: _Optional[str] = ..., destination_port: _Optional[int] = ..., protocol: _Optional[_Union[_network_pb2.Protocol, str]] = ..., reporter_enforcer_id: _Optional[str] = ..., only_observed_mismatch: _Optional[bool] = ...) -> None: ...

class QueryFlowsRequest(_message.Message):
    __slots__ = ("filter", "start_time", "end_time", "page", "scope")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    filter: FlowFilter
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    page: _pagination_pb2.PageRequest
    scope: QueryScope
    def __init__(self, filter: _Optional[_Union[FlowFilter, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page: _Optional[_Union[_pagination_pb2.PageRequest, _Mapping]] = ..., scope: _Optional[_Union[QueryScope, str]] = ...) -> None: ...

class QueryFlowsResponse(_message.Message):
    __slots__ = ("records", "page", "unreachable_replicas", "record_page_tokens")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    UNREACHABLE_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    RECORD_PAGE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[_flow_record_pb2.FlowRecord]
    page: _pagination_pb2.PageResponse
    unreachable_replicas: _containers.RepeatedScalarFieldContainer[str]
    record_page_tokens: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, records: _Optional[_Iterable[_Union[_flow_record_pb2.FlowRecord, _Mapping]]] = ..., page: _Optional[_Union[_pagination_pb2.PageResponse, _Mapping]] = ..., unreachable_replicas: _Optional[_Iterable[str]] = ..., record_page_tokens: _Optional[_Iterable[str]] = ...) -> None: ...

class WatchFlowsRequest(_message.Message):
    __slots__ = ("filter",)
    FILTER_FIELD_NUMBER: _ClassVar[int]
    filter: FlowFilter
    def __init__(self, filter: _Optional[_Union[FlowFilter, _Mapping]] = ...) -> None: ...

class WatchFlowsResponse(_message.Message):
    __slots__ = ("records", "dropped_count")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_COUNT_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[_flow_record_pb2.FlowRecord]
    dropped_count: int
    def __init__(self, records: _Optional[_Iterable[_Union[_flow_record_pb2.FlowRecord, _Mapping]]] = ..., dropped_count: _Optional[int] = ...) -> None: ...
