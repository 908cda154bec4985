import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from trustwire.api.common.v1 import error_pb2 as _error_pb2
from trustwire.api.common.v1 import labels_pb2 as _labels_pb2
from trustwire.api.identity.v1 import trust_bundle_pb2 as _trust_bundle_pb2
from trustwire.api.policy.v1 import distribution_pb2 as _distribution_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FederationPeer(_message.Message):
    __slots__ = ("trust_domain", "endpoint", "bootstrap_ca_certificates_der", "export_selector", "refresh_interval")
    TRUST_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_CA_CERTIFICATES_DER_FIELD_NUMBER: _ClassVar[int]
    EXPORT_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    REFRESH_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    trust_domain: str
    endpoint: str
    bootstrap_ca_certificates_der: _containers.RepeatedScalarFieldContainer[bytes]
    export_selector: _labels_pb2.LabelSelector
    refresh_interval: _duration_pb2.Duration
    def __init__(self, trust_domain: _Optional[str] = ..., endpoint: _Optional[str] = ..., bootstrap_ca_certificates_der: _Optional[_Iterable[bytes]] = ..., export_selector: _Optional[_Union[_labels_pb2.LabelSelector, _Mapping]] = ..., refresh_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class FederationPeerStatus(_message.Message):
    __slots__ = ("connected", "bundle", "revocations", "last_sync", "last_error", "imported_identity_count", "exported_identity_count")
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    REVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    LAST_SYNC_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    IMPORTED_IDENTITY_COUNT_FIELD_NUMBER: _ClassVar[int]
    EXPORTED_IDENTITY_COUNT_FIELD_NUMBER: _ClassVar[int]
    connected: bool
    bundle: _trust_bundle_pb2.TrustBundle
    revocations: _trust_bundle_pb2.RevocationList
    last_sync: _timestamp_pb2.Timestamp
    last_error: _error_pb2.ErrorDetail
    imported_identity_count: int
    exported_identity_count: int
    def __init__(self, connected: _Optional[bool] = ..., bundle: _Optional[_Union[_trust_bundle_pb2.TrustBundle, _Mapping]] = ..., revocations: _Optional[_Union[_trust_bundle_pb2.RevocationList, _Mapping]] = ..., last_sync: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[_Union[_error_pb2.ErrorDetail, _Mapping]] = ..., imported_identity_count: _Optional[int] = ..., exported_identity_count: _Optional[int] = ...) -> None: ...

class ExportedIdentity(_message.Message):
    __slots__ = ("entry", "labels", "enforcer")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ENFORCER_FIELD_NUMBER: _ClassVar[int]
    entry: _distribution_pb2.DirectoryEntry
    labels: _containers.ScalarMap[str, str]
    enforcer: _distribution_pb2.EnforcerEndpoint
    def __init__(self, entry: _Optional[_Union[_distribution_pb2.DirectoryEntry, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., enforcer: _Optional[_Union[_distribution_pb2.EnforcerEndpoint, _Mapping]] = ...) -> None: ...
