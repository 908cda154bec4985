from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResourceKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESOURCE_KIND_UNSPECIFIED: _ClassVar[ResourceKind]
    RESOURCE_KIND_NETWORK_ACCESS_POLICY: _ClassVar[ResourceKind]
    RESOURCE_KIND_KUBERNETES_NETWORK_POLICY: _ClassVar[ResourceKind]
    RESOURCE_KIND_EXTERNAL_NETWORK: _ClassVar[ResourceKind]
    RESOURCE_KIND_NAMESPACE: _ClassVar[ResourceKind]
    RESOURCE_KIND_TIER: _ClassVar[ResourceKind]
RESOURCE_KIND_UNSPECIFIED: ResourceKind
RESOURCE_KIND_NETWORK_ACCESS_POLICY: ResourceKind
RESOURCE_KIND_KUBERNETES_NETWORK_POLICY: ResourceKind
RESOURCE_KIND_EXTERNAL_NETWORK: ResourceKind
RESOURCE_KIND_NAMESPACE: ResourceKind
RESOURCE_KIND_TIER: ResourceKind

class ResourceRef(_message.Message):
    __slots__ = ("kind", "namespace", "name")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    kind: ResourceKind
    namespace: str
    name: str
    def __init__(self, kind: _Optional[_Union[ResourceKind, str]] = ..., namespace: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...
