from trustwire.api.common.v1 import resource_pb2 as _resource_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_UNSPECIFIED: _ClassVar[Action]
    ACTION_ALLOW: _ClassVar[Action]
    ACTION_REJECT: _ClassVar[Action]
    ACTION_ENCRYPT: _ClassVar[Action]
    ACTION_OBSERVE: _ClassVar[Action]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_ALLOW: _ClassVar[Verdict]
    VERDICT_REJECT: _ClassVar[Verdict]

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_UNSPECIFIED: _ClassVar[Direction]
    DIRECTION_INGRESS: _ClassVar[Direction]
    DIRECTION_EGRESS: _ClassVar[Direction]

class ReasonCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REASON_CODE_UNSPECIFIED: _ClassVar[ReasonCode]
    REASON_CODE_K8S_ALLOWED: _ClassVar[ReasonCode]
    REASON_CODE_K8S_ISOLATED_NO_MATCH: _ClassVar[ReasonCode]
    REASON_CODE_POLICY_ALLOW: _ClassVar[ReasonCode]
    REASON_CODE_POLICY_REJECT: _ClassVar[ReasonCode]
    REASON_CODE_POLICY_ENCRYPT: _ClassVar[ReasonCode]
    REASON_CODE_NAMESPACE_DEFAULT_ALLOW: _ClassVar[ReasonCode]
    REASON_CODE_NAMESPACE_DEFAULT_REJECT: _ClassVar[ReasonCode]
    REASON_CODE_SELF_TRAFFIC: _ClassVar[ReasonCode]
    REASON_CODE_EXTERNAL_CIDR_RULE: _ClassVar[ReasonCode]
    REASON_CODE_PEER_REJECTED: _ClassVar[ReasonCode]
    REASON_CODE_NO_ENFORCER: _ClassVar[ReasonCode]
    REASON_CODE_NODE_LOCAL: _ClassVar[ReasonCode]
    REASON_CODE_BAD_SIGNATURE: _ClassVar[ReasonCode]
    REASON_CODE_EXPIRED: _ClassVar[ReasonCode]
    REASON_CODE_REVOKED: _ClassVar[ReasonCode]
    REASON_CODE_REPLAYED: _ClassVar[ReasonCode]
    REASON_CODE_CLOCK_SKEW: _ClassVar[ReasonCode]
    REASON_CODE_FOREIGN_TRUST_DOMAIN: _ClassVar[ReasonCode]
    REASON_CODE_UNKNOWN_CA: _ClassVar[ReasonCode]
    REASON_CODE_ADDRESS_MISMATCH: _ClassVar[ReasonCode]
    REASON_CODE_DOCUMENT_ENFORCER_MISMATCH: _ClassVar[ReasonCode]
    REASON_CODE_MALFORMED_PROFILE: _ClassVar[ReasonCode]
    REASON_CODE_NOT_YET_VALID: _ClassVar[ReasonCode]
    REASON_CODE_WRONG_PAYLOAD_TYPE: _ClassVar[ReasonCode]
    REASON_CODE_CERTIFICATE_INVALID: _ClassVar[ReasonCode]
    REASON_CODE_UNKNOWN_SESSION: _ClassVar[ReasonCode]
    REASON_CODE_HANDSHAKE_TIMEOUT: _ClassVar[ReasonCode]
    REASON_CODE_POLICY_NOT_SYNCED: _ClassVar[ReasonCode]
    REASON_CODE_FAIL_OPEN: _ClassVar[ReasonCode]
    REASON_CODE_FAIL_CLOSED: _ClassVar[ReasonCode]
ACTION_UNSPECIFIED: Action
ACTION_ALLOW: Action
ACTION_REJECT: Action
ACTION_ENCRYPT: Action
ACTION_OBSERVE: Action
VERDICT_UNSPECIFIED: Verdict
VERDICT_ALLOW: Verdict
VERDICT_REJECT: Verdict
DIRECTION_UNSPECIFIED: Direction
DIRECTION_INGRESS: Direction
DIRECTION_EGRESS: Direction
REASON_CODE_UNSPECIFIED: ReasonCode
REASON_CODE_K8S_ALLOWED: ReasonCode
REASON_CODE_K8S_ISOLATED_NO_MATCH: ReasonCode
REASON_CODE_POLICY_ALLOW: ReasonCode
REASON_CODE_POLICY_REJECT: ReasonCode
REASON_CODE_POLICY_ENCRYPT: ReasonCode
REASON_CODE_NAMESPACE_DEFAULT_ALLOW: ReasonCode
REASON_CODE_NAMESPACE_DEFAULT_REJECT: ReasonCode
REASON_CODE_SELF_TRAFFIC: ReasonCode
REASON_CODE_EXTERNAL_CIDR_RULE: ReasonCode
REASON_CODE_PEER_REJECTED: ReasonCode
REASON_CODE_NO_ENFORCER: ReasonCode
REASON_CODE_NODE_LOCAL: ReasonCode
REASON_CODE_BAD_SIGNATURE: ReasonCode
REASON_CODE_EXPIRED: ReasonCode
REASON_CODE_REVOKED: ReasonCode
REASON_CODE_REPLAYED: ReasonCode
REASON_CODE_CLOCK_SKEW: ReasonCode
REASON_CODE_FOREIGN_TRUST_DOMAIN: ReasonCode
REASON_CODE_UNKNOWN_CA: ReasonCode
REASON_CODE_ADDRESS_MISMATCH: ReasonCode
REASON_CODE_DOCUMENT_ENFORCER_MISMATCH: ReasonCode
REASON_CODE_MALFORMED_PROFILE: ReasonCode
REASON_CODE_NOT_YET_VALID: ReasonCode
REASON_CODE_WRONG_PAYLOAD_TYPE: ReasonCode
REASON_CODE_CERTIFICATE_INVALID: ReasonCode
REASON_CODE_UNKNOWN_SESSION: ReasonCode
REASON_CODE_HANDSHAKE_TIMEOUT: ReasonCode
REASON_CODE_POLICY_NOT_SYNCED: ReasonCode
REASON_CODE_FAIL_OPEN: ReasonCode
REASON_CODE_FAIL_CLOSED: ReasonCode

class Decision(_message.Message):
    __slots__ = ("direction", "verdict", "encrypted", "reason", "tier", "policy", "rule_index", "kubernetes_policies", "observed_verdict", "observed_policy")
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    RULE_INDEX_FIELD_NUMBER: _ClassVar[int]
    KUBERNETES_POLICIES_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_VERDICT_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_POLICY_FIELD_NUMBER: _ClassVar[int]
    direction: Direction
    verdict: Verdict
    encrypted: bool
    reason: ReasonCode
    tier: str
    policy: _resource_pb2.ResourceRef
    rule_index: int
    kubernetes_policies: _containers.RepeatedCompositeFieldContainer[_resource_pb2.ResourceRef]
    observed_verdict: Verdict
    observed_policy: _resource_pb2.ResourceRef
    def __init__(self, direction: _Optional[_Union[Direction, str]] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., encrypted: _Optional[bool] = ..., reason: _Optional[_Union[ReasonCode, str]] = ..., tier: _Optional[str] = ..., policy: _Optional[_Union[_resource_pb2.ResourceRef, _Mapping]] = ..., rule_index: _Optional[int] = ..., kubernetes_policies: _Optional[_Iterable[_Union[_resource_pb2.ResourceRef, _Mapping]]] = ..., observed_verdict: _Optional[_Union[Verdict, str]] = ..., observed_policy: _Optional[_Union[_resource_pb2.ResourceRef, _Mapping]] = ...) -> None: ...

class Explanation(_message.Message):
    __slots__ = ("verdict", "encrypted", "egress", "ingress", "revision")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTED_FIELD_NUMBER: _ClassVar[int]
    EGRESS_FIELD_NUMBER: _ClassVar[int]
    INGRESS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    verdict: Verdict
    encrypted: bool
    egress: Decision
    ingress: Decision
    revision: int
    def __init__(self, verdict: _Optional[_Union[Verdict, str]] = ..., encrypted: _Optional[bool] = ..., egress: _Optional[_Union[Decision, _Mapping]] = ..., ingress: _Optional[_Union[Decision, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...
