from trustwire.api.policy.v1 import external_network_pb2 as _external_network_pb2
from trustwire.api.policy.v1 import kubernetes_network_policy_pb2 as _kubernetes_network_policy_pb2
from trustwire.api.policy.v1 import namespace_pb2 as _namespace_pb2
from trustwire.api.policy.v1 import network_access_policy_pb2 as _network_access_policy_pb2
from trustwire.api.policy.v1 import tier_pb2 as _tier_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Resource(_message.Message):
    __slots__ = ("network_access_policy", "kubernetes_network_policy", "external_network", "namespace", "tier")
    NETWORK_ACCESS_POLICY_FIELD_NUMBER: _ClassVar[int]
    KUBERNETES_NETWORK_POLICY_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_NETWORK_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    network_access_policy: _network_access_policy_pb2.NetworkAccessPolicy
    kubernetes_network_policy: _kubernetes_network_policy_pb2.KubernetesNetworkPolicy
    external_network: _external_network_pb2.ExternalNetwork
    namespace: _namespace_pb2.Namespace
    tier: _tier_pb2.Tier
    def __init__(self, network_access_policy: _Optional[_Union[_network_access_policy_pb2.NetworkAccessPolicy, _Mapping]] = ..., kubernetes_network_policy: _Optional[_Union[_kubernetes_network_policy_pb2.KubernetesNetworkPolicy, _Mapping]] = ..., external_network: _Optional[_Union[_external_network_pb2.ExternalNetwork, _Mapping]] = ..., namespace: _Optional[_Union[_namespace_pb2.Namespace, _Mapping]] = ..., tier: _Optional[_Union[_tier_pb2.Tier, _Mapping]] = ...) -> None: ...
