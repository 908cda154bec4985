from trustwire.api.common.v1 import pagination_pb2 as _pagination_pb2
from trustwire.api.gateway.v1 import federation_pb2 as _federation_pb2
from trustwire.api.identity.v1 import trust_bundle_pb2 as _trust_bundle_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExchangeBundleRequest(_message.Message):
    __slots__ = ("bundle", "revocations")
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    REVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    bundle: _trust_bundle_pb2.TrustBundle
    revocations: _trust_bundle_pb2.RevocationList
    def __init__(self, bundle: _Optional[_Union[_trust_bundle_pb2.TrustBundle, _Mapping]] = ..., revocations: _Optional[_Union[_trust_bundle_pb2.RevocationList, _Mapping]] = ...) -> None: ...

class ExchangeBundleResponse(_message.Message):
    __slots__ = ("bundle", "revocations")
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    REVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    bundle: _trust_bundle_pb2.TrustBundle
    revocations: _trust_bundle_pb2.RevocationList
    def __init__(self, bundle: _Optional[_Union[_trust_bundle_pb2.TrustBundle, _Mapping]] = ..., revocations: _Optional[_Union[_trust_bundle_pb2.RevocationList, _Mapping]] = ...) -> None: ...

class WatchFederatedBundleRequest(_message.Message):
    __slots__ = ("known_bundle_sequence_number", "known_revocation_list_sequence_number")
    KNOWN_BUNDLE_SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    KNOWN_REVOCATION_LIST_SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    known_bundle_sequence_number: int
    known_revocation_list_sequence_number: int
    def __init__(self, known_bundle_sequence_number: _Optional[int] = ..., known_revocation_list_sequence_number: _Optional[int] = ...) -> None: ...

class WatchFederatedBundleResponse(_message.Message):
    __slots__ = ("bundle", "revocations")
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    REVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    bundle: _trust_bundle_pb2.TrustBundle
    revocations: _trust_bundle_pb2.RevocationList
    def __init__(self, bundle: _Optional[_Union[_trust_bundle_pb2.TrustBundle, _Mapping]] = ..., revocations: _Optional[_Union[_trust_bundle_pb2.RevocationList, _Mapping]] = ...) -> None: ...

class ListExportedIdentitiesRequest(_message.Message):
    __slots__ = ("page",)
    PAGE_FIELD_NUMBER: _ClassVar[int]
    page: _pagination_pb2.PageRequest
    def __init__(self, page: _Optional[_Union[_pagination_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListExportedIdentitiesResponse(_message.Message):
    __slots__ = ("identities", "page", "sequence_number")
    IDENTITIES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    identities: _containers.RepeatedCompositeFieldContainer[_federation_pb2.ExportedIdentity]
    page: _pagination_pb2.PageResponse
    sequence_number: int
    def __init__(self, identities: _Optional[_Iterable[_Union[_federation_pb2.ExportedIdentity, _Mapping]]] = ..., page: _Optional[_Union[_pagination_pb2.PageResponse, _Mapping]] = ..., sequence_number: _Optional[int] = ...) -> None: ...

class ExportIdentitiesRequest(_message.Message):
    __slots__ = ("sequence_number", "full_set", "upserted", "removed_pu_ids")
    SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    FULL_SET_FIELD_NUMBER: _ClassVar[int]
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_PU_IDS_FIELD_NUMBER: _ClassVar[int]
    sequence_number: int
    full_set: bool
    upserted: _containers.RepeatedCompositeFieldContainer[_federation_pb2.ExportedIdentity]
    removed_pu_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sequence_number: _Optional[int] = ..., full_set: _Optional[bool] = ..., upserted: _Optional[_Iterable[_Union[_federation_pb2.ExportedIdentity, _Mapping]]] = ..., removed_pu_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ExportIdentitiesResponse(_message.Message):
    __slots__ = ("applied", "sequence_number")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    sequence_number: int
    def __init__(self, applied: _Optional[bool] = ..., sequence_number: _Optional[int] = ...) -> None: ...
