import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from trustwire.api.common.v1 import decision_pb2 as _decision_pb2
from trustwire.api.common.v1 import labels_pb2 as _labels_pb2
from trustwire.api.common.v1 import network_pb2 as _network_pb2
from trustwire.api.common.v1 import pagination_pb2 as _pagination_pb2
from trustwire.api.common.v1 import resource_pb2 as _resource_pb2
from trustwire.api.policy.v1 import distribution_pb2 as _distribution_pb2
from trustwire.api.policy.v1 import enforcer_pb2 as _enforcer_pb2
from trustwire.api.policy.v1 import network_access_policy_pb2 as _network_access_policy_pb2
from trustwire.api.policy.v1 import processing_unit_pb2 as _processing_unit_pb2
from trustwire.api.policy.v1 import resource_pb2 as _resource_pb2_1
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChangeType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_TYPE_UNSPECIFIED: _ClassVar[ChangeType]
    CHANGE_TYPE_CREATED: _ClassVar[ChangeType]
    CHANGE_TYPE_UPDATED: _ClassVar[ChangeType]
    CHANGE_TYPE_UNCHANGED: _ClassVar[ChangeType]
    CHANGE_TYPE_DELETED: _ClassVar[ChangeType]
CHANGE_TYPE_UNSPECIFIED: ChangeType
CHANGE_TYPE_CREATED: ChangeType
CHANGE_TYPE_UPDATED: ChangeType
CHANGE_TYPE_UNCHANGED: ChangeType
CHANGE_TYPE_DELETED: ChangeType

class ApplyRequest(_message.Message):
    __slots__ = ("yaml", "resources", "dry_run")
    YAML_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    yaml: YamlDocuments
    resources: ResourceList
    dry_run: bool
    def __init__(self, yaml: _Optional[_Union[YamlDocuments, _Mapping]] = ..., resources: _Optional[_Union[ResourceList, _Mapping]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class YamlDocuments(_message.Message):
    __slots__ = ("text", "source_name")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_NAME_FIELD_NUMBER: _ClassVar[int]
    text: str
    source_name: str
    def __init__(self, text: _Optional[str] = ..., source_name: _Optional[str] = ...) -> None: ...

class ResourceList(_message.Message):
    __slots__ = ("resources",)
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    resources: _containers.RepeatedCompositeFieldContainer[_resource_pb2_1.Resource]
    def __init__(self, resources: _Optional[_Iterable[_Union[_resource_pb2_1.Resource, _Mapping]]] = ...) -> None: ...

class ApplyResponse(_message.Message):
    __slots__ = ("changes", "revision", "impacts")
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    IMPACTS_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[ResourceChange]
    revision: int
    impacts: _containers.RepeatedCompositeFieldContainer[FlowImpact]
    def __init__(self, changes: _Optional[_Iterable[_Union[ResourceChange, _Mapping]]] = ..., revision: _Optional[int] = ..., impacts: _Optional[_Iterable[_Union[FlowImpact, _Mapping]]] = ...) -> None: ...

class ApplyErrors(_message.Message):
    __slots__ = ("errors",)
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    errors: _containers.RepeatedCompositeFieldContainer[DocumentError]
    def __init__(self, errors: _Optional[_Iterable[_Union[DocumentError, _Mapping]]] = ...) -> None: ...

class DocumentError(_message.Message):
    __slots__ = ("source_name", "document_index", "kind", "namespace", "name", "field", "message", "reason")
    SOURCE_NAME_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_INDEX_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    source_name: str
    document_index: int
    kind: str
    namespace: str
    name: str
    field: str
    message: str
    reason: str
    def __init__(self, source_name: _Optional[str] = ..., document_index: _Optional[int] = ..., kind: _Optional[str] = ..., namespace: _Optional[str] = ..., name: _Optional[str] = ..., field: _Optional[str] = ..., message: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ResourceChange(_message.Message):
    __slots__ = ("ref", "change", "diff", "resource")
    REF_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    DIFF_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    ref: _resource_pb2.ResourceRef
    change: ChangeType
    diff: str
    resource: _resource_pb2_1.Resource
    def __init__(self, ref: _Optional[_Union[_resource_pb2.ResourceRef, _Mapping]] = ..., change: _Optional[_Union[ChangeType, str]] = ..., diff: _Optional[str] = ..., resource: _Optional[_Union[_resource_pb2_1.Resource, _Mapping]] = ...) -> None: ...

class FlowImpact(_message.Message):
    __slots__ = ("connection", "before", "after", "observed_connection_count", "last_seen")
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_CONNECTION_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    connection: _network_pb2.Connection
    before: _decision_pb2.Explanation
    after: _decision_pb2.Explanation
    observed_connection_count: int
    last_seen: _timestamp_pb2.Timestamp
    def __init__(self, connection: _Optional[_Union[_network_pb2.Connection, _Mapping]] = ..., before: _Optional[_Union[_decision_pb2.Explanation, _Mapping]] = ..., after: _Optional[_Union[_decision_pb2.Explanation, _Mapping]] = ..., observed_connection_count: _Optional[int] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetPolicyRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: _resource_pb2.ResourceRef
    def __init__(self, ref: _Optional[_Union[_resource_pb2.ResourceRef, _Mapping]] = ...) -> None: ...

class GetPolicyResponse(_message.Message):
    __slots__ = ("resource",)
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    resource: _resource_pb2_1.Resource
    def __init__(self, resource: _Optional[_Union[_resource_pb2_1.Resource, _Mapping]] = ...) -> None: ...

class ListPoliciesRequest(_message.Message):
    __slots__ = ("kinds", "namespace", "tier", "label_selector", "page")
    KINDS_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    LABEL_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    kinds: _containers.RepeatedScalarFieldContainer[_resource_pb2.ResourceKind]
    namespace: str
    tier: str
    label_selector: _labels_pb2.LabelSelector
    page: _pagination_pb2.PageRequest
    def __init__(self, kinds: _Optional[_Iterable[_Union[_resource_pb2.ResourceKind, str]]] = ..., namespace: _Optional[str] = ..., tier: _Optional[str] = ..., label_selector: _Optional[_Union[_labels_pb2.LabelSelector, _Mapping]] = ..., page: _Optional[_Union[_pagination_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListPoliciesResponse(_message.Message):
    __slots__ = ("resources", "page")
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    resources: _containers.RepeatedCompositeFieldContainer[_resource_pb2_1.Resource]
    page: _pagination_pb2.PageResponse
    def __init__(self, resources: _Optional[_Iterable[_Union[_resource_pb2_1.Resource, _Mapping]]] = ..., page: _Optional[_Union[_pagination_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class DeletePolicyRequest(_message.Message):
    __slots__ = ("ref", "resource_version", "dry_run")
    REF_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    ref: _resource_pb2.ResourceRef
    resource_version: str
    dry_run: bool
    def __init__(self, ref: _Optional[_Union[_resource_pb2.ResourceRef, _Mapping]] = ..., resource_version: _Optional[str] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class DeletePolicyResponse(_message.Message):
    __slots__ = ("change", "revision", "impacts")
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    IMPACTS_FIELD_NUMBER: _ClassVar[int]
    change: ResourceChange
    revision: int
    impacts: _containers.RepeatedCompositeFieldContainer[FlowImpact]
    def __init__(self, change: _Optional[_Union[ResourceChange, _Mapping]] = ..., revision: _Optional[int] = ..., impacts: _Optional[_Iterable[_Union[FlowImpact, _Mapping]]] = ...) -> None: ...

class ExplainRequest(_message.Message):
    __slots__ = ("connection", "revision", "reputation_score", "behaviour_score")
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    REPUTATION_SCORE_FIELD_NUMBER: _ClassVar[int]
    BEHAVIOUR_SCORE_FIELD_NUMBER: _ClassVar[int]
    connection: _network_pb2.Connection
    revision: int
    reputation_score: float
    behaviour_score: float
    def __init__(self, connection: _Optional[_Union[_network_pb2.Connection, _Mapping]] = ..., revision: _Optional[int] = ..., reputation_score: _Optional[float] = ..., behaviour_score: _Optional[float] = ...) -> None: ...

class ExplainResponse(_message.Message):
    __slots__ = ("explanation", "trace")
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    explanation: _decision_pb2.Explanation
    trace: _containers.RepeatedCompositeFieldContainer[RuleEvaluation]
    def __init__(self, explanation: _Optional[_Union[_decision_pb2.Explanation, _Mapping]] = ..., trace: _Optional[_Iterable[_Union[RuleEvaluation, _Mapping]]] = ...) -> None: ...

class RuleEvaluation(_message.Message):
    __slots__ = ("direction", "policy", "rule_index", "matched", "detail")
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    RULE_INDEX_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    direction: _decision_pb2.Direction
    policy: _resource_pb2.ResourceRef
    rule_index: int
    matched: bool
    detail: str
    def __init__(self, direction: _Optional[_Union[_decision_pb2.Direction, str]] = ..., policy: _Optional[_Union[_resource_pb2.ResourceRef, _Mapping]] = ..., rule_index: _Optional[int] = ..., matched: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class SimulateRequest(_message.Message):
    __slots__ = ("upserts", "deletions", "connections", "include_observed_flows", "observed_window")
    UPSERTS_FIELD_NUMBER: _ClassVar[int]
    DELETIONS_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_OBSERVED_FLOWS_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_WINDOW_FIELD_NUMBER: _ClassVar[int]
    upserts: _containers.RepeatedCompositeFieldContainer[_resource_pb2_1.Resource]
    deletions: _containers.RepeatedCompositeFieldContainer[_resource_pb2.ResourceRef]
    connections: _containers.RepeatedCompositeFieldContainer[_network_pb2.Connection]
    include_observed_flows: bool
    observed_window: _duration_pb2.Duration
    def __init__(self, upserts: _Optional[_Iterable[_Union[_resource_pb2_1.Resource, _Mapping]]] = ..., deletions: _Optional[_Iterable[_Union[_resource_pb2.ResourceRef, _Mapping]]] = ..., connections: _Optional[_Iterable[_Union[_network_pb2.Connection, _Mapping]]] = ..., include_observed_flows: _Optional[bool] = ..., observed_window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class SimulateResponse(_message.Message):
    __slots__ = ("impacts", "revision")
    IMPACTS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    impacts: _containers.RepeatedCompositeFieldContainer[FlowImpact]
    revision: int
    def __init__(self, impacts: _Optional[_Iterable[_Union[FlowImpact, _Mapping]]] = ..., revision: _Optional[int] = ...) -> None: ...

class RegisterPuRequest(_message.Message):
    __slots__ = ("pu",)
    PU_FIELD_NUMBER: _ClassVar[int]
    pu: _processing_unit_pb2.ProcessingUnit
    def __init__(self, pu: _Optional[_Union[_processing_unit_pb2.ProcessingUnit, _Mapping]] = ...) -> None: ...

class RegisterPuResponse(_message.Message):
    __slots__ = ("pu",)
    PU_FIELD_NUMBER: _ClassVar[int]
    pu: _processing_unit_pb2.ProcessingUnit
    def __init__(self, pu: _Optional[_Union[_processing_unit_pb2.ProcessingUnit, _Mapping]] = ...) -> None: ...

class DeregisterPuRequest(_message.Message):
    __slots__ = ("pu_id",)
    PU_ID_FIELD_NUMBER: _ClassVar[int]
    pu_id: str
    def __init__(self, pu_id: _Optional[str] = ...) -> None: ...

class DeregisterPuResponse(_message.Message):
    __slots__ = ("revision",)
    REVISION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    def __init__(self, revision: _Optional[int] = ...) -> None: ...

class ListPusRequest(_message.Message):
    __slots__ = ("enforcer_id", "namespace", "label_selector", "page")
    ENFORCER_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    LABEL_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    enforcer_id: str
    namespace: str
    label_selector: _labels_pb2.LabelSelector
    page: _pagination_pb2.PageRequest
    def __init__(self, enforcer_id: _Optional[str] = ..., namespace: _Optional[str] = ..., label_selector: _Optional[_Union[_labels_pb2.LabelSelector, _Mapping]] = ..., page: _Optional[_Union[_pagination_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListPusResponse(_message.Message):
    __slots__ = ("pus", "page")
    PUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    pus: _containers.RepeatedCompositeFieldContainer[_processing_unit_pb2.ProcessingUnit]
    page: _pagination_pb2.PageResponse
    def __init__(self, pus: _Optional[_Iterable[_Union[_processing_unit_pb2.ProcessingUnit, _Mapping]]] = ..., page: _Optional[_Union[_pagination_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class RegisterEnforcerRequest(_message.Message):
    __slots__ = ("enforcer",)
    ENFORCER_FIELD_NUMBER: _ClassVar[int]
    enforcer: _enforcer_pb2.Enforcer
    def __init__(self, enforcer: _Optional[_Union[_enforcer_pb2.Enforcer, _Mapping]] = ...) -> None: ...

class RegisterEnforcerResponse(_message.Message):
    __slots__ = ("enforcer",)
    ENFORCER_FIELD_NUMBER: _ClassVar[int]
    enforcer: _enforcer_pb2.Enforcer
    def __init__(self, enforcer: _Optional[_Union[_enforcer_pb2.Enforcer, _Mapping]] = ...) -> None: ...

class ListEnforcersRequest(_message.Message):
    __slots__ = ("only_lagging", "page")
    ONLY_LAGGING_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    only_lagging: bool
    page: _pagination_pb2.PageRequest
    def __init__(self, only_lagging: _Optional[bool] = ..., page: _Optional[_Union[_pagination_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListEnforcersResponse(_message.Message):
    __slots__ = ("enforcers", "current_revision", "page")
    ENFORCERS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_REVISION_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    enforcers: _containers.RepeatedCompositeFieldContainer[_enforcer_pb2.Enforcer]
    current_revision: int
    page: _pagination_pb2.PageResponse
    def __init__(self, enforcers: _Optional[_Iterable[_Union[_enforcer_pb2.Enforcer, _Mapping]]] = ..., current_revision: _Optional[int] = ..., page: _Optional[_Union[_pagination_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class WatchPolicyRequest(_message.Message):
    __slots__ = ("subscription", "ack")
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    subscription: _distribution_pb2.PolicySubscription
    ack: _distribution_pb2.PolicyAck
    def __init__(self, subscription: _Optional[_Union[_distribution_pb2.PolicySubscription, _Mapping]] = ..., ack: _Optional[_Union[_distribution_pb2.PolicyAck, _Mapping]] = ...) -> None: ...

class WatchPolicyResponse(_message.Message):
    __slots__ = ("nonce", "revision", "snapshot", "delta", "traceparent", "write_traceparents")
    NONCE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    WRITE_TRACEPARENTS_FIELD_NUMBER: _ClassVar[int]
    nonce: str
    revision: int
    snapshot: _distribution_pb2.PolicySnapshot
    delta: _distribution_pb2.PolicyDelta
    traceparent: str
    write_traceparents: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, nonce: _Optional[str] = ..., revision: _Optional[int] = ..., snapshot: _Optional[_Union[_distribution_pb2.PolicySnapshot, _Mapping]] = ..., delta: _Optional[_Union[_distribution_pb2.PolicyDelta, _Mapping]] = ..., traceparent: _Optional[str] = ..., write_traceparents: _Optional[_Iterable[str]] = ...) -> None: ...

class SuggestRequest(_message.Message):
    __slots__ = ("object_selector", "namespace", "start_time", "end_time", "label_keys", "tier", "action")
    OBJECT_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    LABEL_KEYS_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    object_selector: _labels_pb2.LabelSelector
    namespace: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    label_keys: _containers.RepeatedScalarFieldContainer[str]
    tier: str
    action: _decision_pb2.Action
    def __init__(self, object_selector: _Optional[_Union[_labels_pb2.LabelSelector, _Mapping]] = ..., namespace: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., label_keys: _Optional[_Iterable[str]] = ..., tier: _Optional[str] = ..., action: _Optional[_Union[_decision_pb2.Action, str]] = ...) -> None: ...

class SuggestResponse(_message.Message):
    __slots__ = ("suggestions", "yaml", "unreachable_replicas")
    SUGGESTIONS_FIELD_NUMBER: _ClassVar[int]
    YAML_FIELD_NUMBER: _ClassVar[int]
    UNREACHABLE_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    suggestions: _containers.RepeatedCompositeFieldContainer[Suggestion]
    yaml: str
    unreachable_replicas: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, suggestions: _Optional[_Iterable[_Union[Suggestion, _Mapping]]] = ..., yaml: _Optional[str] = ..., unreachable_replicas: _Optional[_Iterable[str]] = ...) -> None: ...

class Suggestion(_message.Message):
    __slots__ = ("policy", "flow_count", "connection_count", "already_allowed")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    FLOW_COUNT_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_COUNT_FIELD_NUMBER: _ClassVar[int]
    ALREADY_ALLOWED_FIELD_NUMBER: _ClassVar[int]
    policy: _network_access_policy_pb2.NetworkAccessPolicy
    flow_count: int
    connection_count: int
    already_allowed: bool
    def __init__(self, policy: _Optional[_Union[_network_access_policy_pb2.NetworkAccessPolicy, _Mapping]] = ..., flow_count: _Optional[int] = ..., connection_count: _Optional[int] = ..., already_allowed: _Optional[bool] = ...) -> None: ...
