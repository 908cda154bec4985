import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from trustwire.api.common.v1 import pagination_pb2 as _pagination_pb2
from trustwire.api.gateway.v1 import federation_pb2 as _federation_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_ADMIN: _ClassVar[Role]
    ROLE_VIEWER: _ClassVar[Role]
    ROLE_ENFORCER: _ClassVar[Role]
    ROLE_SERVICE: _ClassVar[Role]
    ROLE_FEDERATED_GATEWAY: _ClassVar[Role]

class AuthenticationMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUTHENTICATION_METHOD_UNSPECIFIED: _ClassVar[AuthenticationMethod]
    AUTHENTICATION_METHOD_MTLS: _ClassVar[AuthenticationMethod]
    AUTHENTICATION_METHOD_BEARER_TOKEN: _ClassVar[AuthenticationMethod]
ROLE_UNSPECIFIED: Role
ROLE_ADMIN: Role
ROLE_VIEWER: Role
ROLE_ENFORCER: Role
ROLE_SERVICE: Role
ROLE_FEDERATED_GATEWAY: Role
AUTHENTICATION_METHOD_UNSPECIFIED: AuthenticationMethod
AUTHENTICATION_METHOD_MTLS: AuthenticationMethod
AUTHENTICATION_METHOD_BEARER_TOKEN: AuthenticationMethod

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WhoAmIResponse(_message.Message):
    __slots__ = ("principal", "subject", "trust_domain", "role", "authentication_method", "credential_expires_at", "allowed_methods")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    TRUST_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    AUTHENTICATION_METHOD_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_METHODS_FIELD_NUMBER: _ClassVar[int]
    principal: str
    subject: str
    trust_domain: str
    role: Role
    authentication_method: AuthenticationMethod
    credential_expires_at: _timestamp_pb2.Timestamp
    allowed_methods: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, principal: _Optional[str] = ..., subject: _Optional[str] = ..., trust_domain: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., authentication_method: _Optional[_Union[AuthenticationMethod, str]] = ..., credential_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., allowed_methods: _Optional[_Iterable[str]] = ...) -> None: ...

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetServerInfoResponse(_message.Message):
    __slots__ = ("trust_domain", "version", "services")
    TRUST_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    trust_domain: str
    version: str
    services: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, trust_domain: _Optional[str] = ..., version: _Optional[str] = ..., services: _Optional[_Iterable[str]] = ...) -> None: ...

class ApiToken(_message.Message):
    __slots__ = ("token_id", "subject", "role", "description", "created_at", "expires_at", "revoked_at")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    subject: str
    role: Role
    description: str
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    revoked_at: _timestamp_pb2.Timestamp
    def __init__(self, token_id: _Optional[str] = ..., subject: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., description: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateApiTokenRequest(_message.Message):
    __slots__ = ("subject", "role", "ttl", "description")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subject: str
    role: Role
    ttl: _duration_pb2.Duration
    description: str
    def __init__(self, subject: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., description: _Optional[str] = ...) -> None: ...

class CreateApiTokenResponse(_message.Message):
    __slots__ = ("token", "api_token")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    API_TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: str
    api_token: ApiToken
    def __init__(self, token: _Optional[str] = ..., api_token: _Optional[_Union[ApiToken, _Mapping]] = ...) -> None: ...

class ListApiTokensRequest(_message.Message):
    __slots__ = ("include_inactive", "page")
    INCLUDE_INACTIVE_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    include_inactive: bool
    page: _pagination_pb2.PageRequest
    def __init__(self, include_inactive: _Optional[bool] = ..., page: _Optional[_Union[_pagination_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListApiTokensResponse(_message.Message):
    __slots__ = ("api_tokens", "page")
    API_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    api_tokens: _containers.RepeatedCompositeFieldContainer[ApiToken]
    page: _pagination_pb2.PageResponse
    def __init__(self, api_tokens: _Optional[_Iterable[_Union[ApiToken, _Mapping]]] = ..., page: _Optional[_Union[_pagination_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class RevokeApiTokenRequest(_message.Message):
    __slots__ = ("token_id",)
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    def __init__(self, token_id: _Optional[str] = ...) -> None: ...

class RevokeApiTokenResponse(_message.Message):
    __slots__ = ("api_token",)
    API_TOKEN_FIELD_NUMBER: _ClassVar[int]
    api_token: ApiToken
    def __init__(self, api_token: _Optional[_Union[ApiToken, _Mapping]] = ...) -> None: ...

class SetFederationPeerRequest(_message.Message):
    __slots__ = ("peer",)
    PEER_FIELD_NUMBER: _ClassVar[int]
    peer: _federation_pb2.FederationPeer
    def __init__(self, peer: _Optional[_Union[_federation_pb2.FederationPeer, _Mapping]] = ...) -> None: ...

class SetFederationPeerResponse(_message.Message):
    __slots__ = ("peer",)
    PEER_FIELD_NUMBER: _ClassVar[int]
    peer: _federation_pb2.FederationPeer
    def __init__(self, peer: _Optional[_Union[_federation_pb2.FederationPeer, _Mapping]] = ...) -> None: ...

class ListFederationPeersRequest(_message.Message):
    __slots__ = ("page",)
    PAGE_FIELD_NUMBER: _ClassVar[int]
    page: _pagination_pb2.PageRequest
    def __init__(self, page: _Optional[_Union[_pagination_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class FederationPeerInfo(_message.Message):
    __slots__ = ("peer", "status")
    PEER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    peer: _federation_pb2.FederationPeer
    status: _federation_pb2.FederationPeerStatus
    def __init__(self, peer: _Optional[_Union[_federation_pb2.FederationPeer, _Mapping]] = ..., status: _Optional[_Union[_federation_pb2.FederationPeerStatus, _Mapping]] = ...) -> None: ...

class ListFederationPeersResponse(_message.Message):
    __slots__ = ("peers", "page")
    PEERS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    peers: _containers.RepeatedCompositeFieldContainer[FederationPeerInfo]
    page: _pagination_pb2.PageResponse
    def __init__(self, peers: _Optional[_Iterable[_Union[FederationPeerInfo, _Mapping]]] = ..., page: _Optional[_Union[_pagination_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class DeleteFederationPeerRequest(_message.Message):
    __slots__ = ("trust_domain",)
    TRUST_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    trust_domain: str
    def __init__(self, trust_domain: _Optional[str] = ...) -> None: ...

class DeleteFederationPeerResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
