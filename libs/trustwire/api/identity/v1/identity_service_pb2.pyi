import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from trustwire.api.common.v1 import envelope_pb2 as _envelope_pb2
from trustwire.api.common.v1 import pagination_pb2 as _pagination_pb2
from trustwire.api.identity.v1 import enrollment_pb2 as _enrollment_pb2
from trustwire.api.identity.v1 import identity_document_pb2 as _identity_document_pb2
from trustwire.api.identity.v1 import trust_bundle_pb2 as _trust_bundle_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateJoinTokenRequest(_message.Message):
    __slots__ = ("kind", "name", "ttl")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    kind: _enrollment_pb2.EnrollmentKind
    name: str
    ttl: _duration_pb2.Duration
    def __init__(self, kind: _Optional[_Union[_enrollment_pb2.EnrollmentKind, str]] = ..., name: _Optional[str] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CreateJoinTokenResponse(_message.Message):
    __slots__ = ("token", "token_id", "spiffe_id", "ca_sha256", "expires_at")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    SPIFFE_ID_FIELD_NUMBER: _ClassVar[int]
    CA_SHA256_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    token: str
    token_id: str
    spiffe_id: str
    ca_sha256: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, token: _Optional[str] = ..., token_id: _Optional[str] = ..., spiffe_id: _Optional[str] = ..., ca_sha256: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EnrollRequest(_message.Message):
    __slots__ = ("join_token", "csr_der")
    JOIN_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CSR_DER_FIELD_NUMBER: _ClassVar[int]
    join_token: str
    csr_der: bytes
    def __init__(self, join_token: _Optional[str] = ..., csr_der: _Optional[bytes] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("certificate_chain_der", "bundle", "spiffe_id", "renew_after")
    CERTIFICATE_CHAIN_DER_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    SPIFFE_ID_FIELD_NUMBER: _ClassVar[int]
    RENEW_AFTER_FIELD_NUMBER: _ClassVar[int]
    certificate_chain_der: _containers.RepeatedScalarFieldContainer[bytes]
    bundle: _trust_bundle_pb2.TrustBundle
    spiffe_id: str
    renew_after: _timestamp_pb2.Timestamp
    def __init__(self, certificate_chain_der: _Optional[_Iterable[bytes]] = ..., bundle: _Optional[_Union[_trust_bundle_pb2.TrustBundle, _Mapping]] = ..., spiffe_id: _Optional[str] = ..., renew_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RenewRequest(_message.Message):
    __slots__ = ("csr_der",)
    CSR_DER_FIELD_NUMBER: _ClassVar[int]
    csr_der: bytes
    def __init__(self, csr_der: _Optional[bytes] = ...) -> None: ...

class RenewResponse(_message.Message):
    __slots__ = ("certificate_chain_der", "bundle", "renew_after")
    CERTIFICATE_CHAIN_DER_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    RENEW_AFTER_FIELD_NUMBER: _ClassVar[int]
    certificate_chain_der: _containers.RepeatedScalarFieldContainer[bytes]
    bundle: _trust_bundle_pb2.TrustBundle
    renew_after: _timestamp_pb2.Timestamp
    def __init__(self, certificate_chain_der: _Optional[_Iterable[bytes]] = ..., bundle: _Optional[_Union[_trust_bundle_pb2.TrustBundle, _Mapping]] = ..., renew_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RevokeEnforcerRequest(_message.Message):
    __slots__ = ("enforcer_id", "reason")
    ENFORCER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    enforcer_id: str
    reason: str
    def __init__(self, enforcer_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RevokeEnforcerResponse(_message.Message):
    __slots__ = ("revocation", "revocation_list_sequence_number")
    REVOCATION_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_LIST_SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    revocation: _trust_bundle_pb2.Revocation
    revocation_list_sequence_number: int
    def __init__(self, revocation: _Optional[_Union[_trust_bundle_pb2.Revocation, _Mapping]] = ..., revocation_list_sequence_number: _Optional[int] = ...) -> None: ...

class ListEnforcersRequest(_message.Message):
    __slots__ = ("page", "include_revoked")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_REVOKED_FIELD_NUMBER: _ClassVar[int]
    page: _pagination_pb2.PageRequest
    include_revoked: bool
    def __init__(self, page: _Optional[_Union[_pagination_pb2.PageRequest, _Mapping]] = ..., include_revoked: _Optional[bool] = ...) -> None: ...

class ListEnforcersResponse(_message.Message):
    __slots__ = ("enforcers", "page")
    ENFORCERS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    enforcers: _containers.RepeatedCompositeFieldContainer[_enrollment_pb2.Enrollment]
    page: _pagination_pb2.PageResponse
    def __init__(self, enforcers: _Optional[_Iterable[_Union[_enrollment_pb2.Enrollment, _Mapping]]] = ..., page: _Optional[_Union[_pagination_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class GetTrustBundleRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetTrustBundleResponse(_message.Message):
    __slots__ = ("bundle", "revocations")
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    REVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    bundle: _trust_bundle_pb2.TrustBundle
    revocations: _trust_bundle_pb2.RevocationList
    def __init__(self, bundle: _Optional[_Union[_trust_bundle_pb2.TrustBundle, _Mapping]] = ..., revocations: _Optional[_Union[_trust_bundle_pb2.RevocationList, _Mapping]] = ...) -> None: ...

class WatchTrustBundleRequest(_message.Message):
    __slots__ = ("known_bundle_sequence_number", "known_revocation_list_sequence_number")
    KNOWN_BUNDLE_SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    KNOWN_REVOCATION_LIST_SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    known_bundle_sequence_number: int
    known_revocation_list_sequence_number: int
    def __init__(self, known_bundle_sequence_number: _Optional[int] = ..., known_revocation_list_sequence_number: _Optional[int] = ...) -> None: ...

class WatchTrustBundleResponse(_message.Message):
    __slots__ = ("bundle", "revocations")
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    REVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    bundle: _trust_bundle_pb2.TrustBundle
    revocations: _trust_bundle_pb2.RevocationList
    def __init__(self, bundle: _Optional[_Union[_trust_bundle_pb2.TrustBundle, _Mapping]] = ..., revocations: _Optional[_Union[_trust_bundle_pb2.RevocationList, _Mapping]] = ...) -> None: ...

class IssueIdentityDocumentRequest(_message.Message):
    __slots__ = ("pu_id", "labels", "attestation", "ttl")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PU_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ATTESTATION_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    pu_id: str
    labels: _containers.ScalarMap[str, str]
    attestation: _identity_document_pb2.Attestation
    ttl: _duration_pb2.Duration
    def __init__(self, pu_id: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., attestation: _Optional[_Union[_identity_document_pb2.Attestation, _Mapping]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class IssueIdentityDocumentResponse(_message.Message):
    __slots__ = ("document", "refresh_after")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    REFRESH_AFTER_FIELD_NUMBER: _ClassVar[int]
    document: _envelope_pb2.SignedEnvelope
    refresh_after: _timestamp_pb2.Timestamp
    def __init__(self, document: _Optional[_Union[_envelope_pb2.SignedEnvelope, _Mapping]] = ..., refresh_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
