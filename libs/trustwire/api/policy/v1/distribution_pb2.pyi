from trustwire.api.common.v1 import decision_pb2 as _decision_pb2
from trustwire.api.common.v1 import error_pb2 as _error_pb2
from trustwire.api.common.v1 import labels_pb2 as _labels_pb2
from trustwire.api.common.v1 import network_pb2 as _network_pb2
from trustwire.api.common.v1 import resource_pb2 as _resource_pb2
from trustwire.api.common.v1 import workload_pb2 as _workload_pb2
from trustwire.api.policy.v1 import external_network_pb2 as _external_network_pb2
from trustwire.api.policy.v1 import network_access_policy_pb2 as _network_access_policy_pb2
from trustwire.api.policy.v1 import processing_unit_pb2 as _processing_unit_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SnapshotReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SNAPSHOT_REASON_UNSPECIFIED: _ClassVar[SnapshotReason]
    SNAPSHOT_REASON_INITIAL: _ClassVar[SnapshotReason]
    SNAPSHOT_REASON_REVISION_COMPACTED: _ClassVar[SnapshotReason]
    SNAPSHOT_REASON_COALESCED: _ClassVar[SnapshotReason]
    SNAPSHOT_REASON_RESYNC: _ClassVar[SnapshotReason]
SNAPSHOT_REASON_UNSPECIFIED: SnapshotReason
SNAPSHOT_REASON_INITIAL: SnapshotReason
SNAPSHOT_REASON_REVISION_COMPACTED: SnapshotReason
SNAPSHOT_REASON_COALESCED: SnapshotReason
SNAPSHOT_REASON_RESYNC: SnapshotReason

class PolicySubscription(_message.Message):
    __slots__ = ("enforcer_id", "resume_revision")
    ENFORCER_ID_FIELD_NUMBER: _ClassVar[int]
    RESUME_REVISION_FIELD_NUMBER: _ClassVar[int]
    enforcer_id: str
    resume_revision: int
    def __init__(self, enforcer_id: _Optional[str] = ..., resume_revision: _Optional[int] = ...) -> None: ...

class PolicyAck(_message.Message):
    __slots__ = ("response_nonce", "applied_revision", "error_detail")
    RESPONSE_NONCE_FIELD_NUMBER: _ClassVar[int]
    APPLIED_REVISION_FIELD_NUMBER: _ClassVar[int]
    ERROR_DETAIL_FIELD_NUMBER: _ClassVar[int]
    response_nonce: str
    applied_revision: int
    error_detail: _error_pb2.ErrorDetail
    def __init__(self, response_nonce: _Optional[str] = ..., applied_revision: _Optional[int] = ..., error_detail: _Optional[_Union[_error_pb2.ErrorDetail, _Mapping]] = ...) -> None: ...

class PolicySnapshot(_message.Message):
    __slots__ = ("reason", "final_part", "pus", "peers", "enforcers", "external_networks")
    REASON_FIELD_NUMBER: _ClassVar[int]
    FINAL_PART_FIELD_NUMBER: _ClassVar[int]
    PUS_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    ENFORCERS_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_NETWORKS_FIELD_NUMBER: _ClassVar[int]
    reason: SnapshotReason
    final_part: bool
    pus: _containers.RepeatedCompositeFieldContainer[CompiledPu]
    peers: _containers.RepeatedCompositeFieldContainer[DirectoryEntry]
    enforcers: _containers.RepeatedCompositeFieldContainer[EnforcerEndpoint]
    external_networks: _containers.RepeatedCompositeFieldContainer[_external_network_pb2.ExternalNetwork]
    def __init__(self, reason: _Optional[_Union[SnapshotReason, str]] = ..., final_part: _Optional[bool] = ..., pus: _Optional[_Iterable[_Union[CompiledPu, _Mapping]]] = ..., peers: _Optional[_Iterable[_Union[DirectoryEntry, _Mapping]]] = ..., enforcers: _Optional[_Iterable[_Union[EnforcerEndpoint, _Mapping]]] = ..., external_networks: _Optional[_Iterable[_Union[_external_network_pb2.ExternalNetwork, _Mapping]]] = ...) -> None: ...

class PolicyDelta(_message.Message):
    __slots__ = ("base_revision", "upserted_pus", "removed_pu_ids", "upserted_peers", "removed_peer_ids", "upserted_enforcers", "removed_enforcer_ids", "upserted_external_networks", "removed_external_networks")
    BASE_REVISION_FIELD_NUMBER: _ClassVar[int]
    UPSERTED_PUS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_PU_IDS_FIELD_NUMBER: _ClassVar[int]
    UPSERTED_PEERS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_PEER_IDS_FIELD_NUMBER: _ClassVar[int]
    UPSERTED_ENFORCERS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_ENFORCER_IDS_FIELD_NUMBER: _ClassVar[int]
    UPSERTED_EXTERNAL_NETWORKS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_EXTERNAL_NETWORKS_FIELD_NUMBER: _ClassVar[int]
    base_revision: int
    upserted_pus: _containers.RepeatedCompositeFieldContainer[CompiledPu]
    removed_pu_ids: _containers.RepeatedScalarFieldContainer[str]
    upserted_peers: _containers.RepeatedCompositeFieldContainer[DirectoryEntry]
    removed_peer_ids: _containers.RepeatedScalarFieldContainer[str]
    upserted_enforcers: _containers.RepeatedCompositeFieldContainer[EnforcerEndpoint]
    removed_enforcer_ids: _containers.RepeatedScalarFieldContainer[str]
    upserted_external_networks: _containers.RepeatedCompositeFieldContainer[_external_network_pb2.ExternalNetwork]
    removed_external_networks: _containers.RepeatedCompositeFieldContainer[_resource_pb2.ResourceRef]
    def __init__(self, base_revision: _Optional[int] = ..., upserted_pus: _Optional[_Iterable[_Union[CompiledPu, _Mapping]]] = ..., removed_pu_ids: _Optional[_Iterable[str]] = ..., upserted_peers: _Optional[_Iterable[_Union[DirectoryEntry, _Mapping]]] = ..., removed_peer_ids: _Optional[_Iterable[str]] = ..., upserted_enforcers: _Optional[_Iterable[_Union[EnforcerEndpoint, _Mapping]]] = ..., removed_enforcer_ids: _Optional[_Iterable[str]] = ..., upserted_external_networks: _Optional[_Iterable[_Union[_external_network_pb2.ExternalNetwork, _Mapping]]] = ..., removed_external_networks: _Optional[_Iterable[_Union[_resource_pb2.ResourceRef, _Mapping]]] = ...) -> None: ...

class CompiledPu(_message.Message):
    __slots__ = ("pu", "ingress", "egress", "host_ips")
    PU_FIELD_NUMBER: _ClassVar[int]
    INGRESS_FIELD_NUMBER: _ClassVar[int]
    EGRESS_FIELD_NUMBER: _ClassVar[int]
    HOST_IPS_FIELD_NUMBER: _ClassVar[int]
    pu: _processing_unit_pb2.ProcessingUnit
    ingress: CompiledRuleSet
    egress: CompiledRuleSet
    host_ips: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, pu: _Optional[_Union[_processing_unit_pb2.ProcessingUnit, _Mapping]] = ..., ingress: _Optional[_Union[CompiledRuleSet, _Mapping]] = ..., egress: _Optional[_Union[CompiledRuleSet, _Mapping]] = ..., host_ips: _Optional[_Iterable[str]] = ...) -> None: ...

class CompiledRuleSet(_message.Message):
    __slots__ = ("kubernetes_isolated", "kubernetes_rules", "rules", "default_action", "kubernetes_policies")
    KUBERNETES_ISOLATED_FIELD_NUMBER: _ClassVar[int]
    KUBERNETES_RULES_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_ACTION_FIELD_NUMBER: _ClassVar[int]
    KUBERNETES_POLICIES_FIELD_NUMBER: _ClassVar[int]
    kubernetes_isolated: bool
    kubernetes_rules: _containers.RepeatedCompositeFieldContainer[CompiledRule]
    rules: _containers.RepeatedCompositeFieldContainer[CompiledRule]
    default_action: _decision_pb2.Action
    kubernetes_policies: _containers.RepeatedCompositeFieldContainer[_resource_pb2.ResourceRef]
    def __init__(self, kubernetes_isolated: _Optional[bool] = ..., kubernetes_rules: _Optional[_Iterable[_Union[CompiledRule, _Mapping]]] = ..., rules: _Optional[_Iterable[_Union[CompiledRule, _Mapping]]] = ..., default_action: _Optional[_Union[_decision_pb2.Action, str]] = ..., kubernetes_policies: _Optional[_Iterable[_Union[_resource_pb2.ResourceRef, _Mapping]]] = ...) -> None: ...

class CompiledRule(_message.Message):
    __slots__ = ("policy", "rule_index", "tier", "priority", "peer", "ports", "action", "observed_action", "conditions")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    RULE_INDEX_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_ACTION_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    policy: _resource_pb2.ResourceRef
    rule_index: int
    tier: str
    priority: int
    peer: CompiledPeer
    ports: _containers.RepeatedCompositeFieldContainer[_network_pb2.PortRange]
    action: _decision_pb2.Action
    observed_action: _decision_pb2.Action
    conditions: _network_access_policy_pb2.Conditions
    def __init__(self, policy: _Optional[_Union[_resource_pb2.ResourceRef, _Mapping]] = ..., rule_index: _Optional[int] = ..., tier: _Optional[str] = ..., priority: _Optional[int] = ..., peer: _Optional[_Union[CompiledPeer, _Mapping]] = ..., ports: _Optional[_Iterable[_Union[_network_pb2.PortRange, _Mapping]]] = ..., action: _Optional[_Union[_decision_pb2.Action, str]] = ..., observed_action: _Optional[_Union[_decision_pb2.Action, str]] = ..., conditions: _Optional[_Union[_network_access_policy_pb2.Conditions, _Mapping]] = ...) -> None: ...

class CompiledPeer(_message.Message):
    __slots__ = ("pu_ids", "selector", "cidrs", "except_cidrs")
    PU_IDS_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    CIDRS_FIELD_NUMBER: _ClassVar[int]
    EXCEPT_CIDRS_FIELD_NUMBER: _ClassVar[int]
    pu_ids: _containers.RepeatedScalarFieldContainer[str]
    selector: _labels_pb2.LabelSelector
    cidrs: _containers.RepeatedScalarFieldContainer[str]
    except_cidrs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, pu_ids: _Optional[_Iterable[str]] = ..., selector: _Optional[_Union[_labels_pb2.LabelSelector, _Mapping]] = ..., cidrs: _Optional[_Iterable[str]] = ..., except_cidrs: _Optional[_Iterable[str]] = ...) -> None: ...

class DirectoryEntry(_message.Message):
    __slots__ = ("pu_id", "trust_domain", "ips", "enforcer_id", "type", "ports")
    PU_ID_FIELD_NUMBER: _ClassVar[int]
    TRUST_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    IPS_FIELD_NUMBER: _ClassVar[int]
    ENFORCER_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    pu_id: str
    trust_domain: str
    ips: _containers.RepeatedScalarFieldContainer[str]
    enforcer_id: str
    type: _workload_pb2.ProcessingUnitType
    ports: _containers.RepeatedCompositeFieldContainer[_processing_unit_pb2.NamedPort]
    def __init__(self, pu_id: _Optional[str] = ..., trust_domain: _Optional[str] = ..., ips: _Optional[_Iterable[str]] = ..., enforcer_id: _Optional[str] = ..., type: _Optional[_Union[_workload_pb2.ProcessingUnitType, str]] = ..., ports: _Optional[_Iterable[_Union[_processing_unit_pb2.NamedPort, _Mapping]]] = ...) -> None: ...

class EnforcerEndpoint(_message.Message):
    __slots__ = ("enforcer_id", "trust_domain", "addresses")
    ENFORCER_ID_FIELD_NUMBER: _ClassVar[int]
    TRUST_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    enforcer_id: str
    trust_domain: str
    addresses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, enforcer_id: _Optional[str] = ..., trust_domain: _Optional[str] = ..., addresses: _Optional[_Iterable[str]] = ...) -> None: ...
