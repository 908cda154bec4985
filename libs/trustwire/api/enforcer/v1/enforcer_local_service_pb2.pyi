import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from trustwire.api.common.v1 import error_pb2 as _error_pb2
from trustwire.api.policy.v1 import enforcer_pb2 as _enforcer_pb2
from trustwire.api.policy.v1 import processing_unit_pb2 as _processing_unit_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LocalPuState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOCAL_PU_STATE_UNSPECIFIED: _ClassVar[LocalPuState]
    LOCAL_PU_STATE_PENDING: _ClassVar[LocalPuState]
    LOCAL_PU_STATE_ENFORCED: _ClassVar[LocalPuState]
    LOCAL_PU_STATE_FAILED: _ClassVar[LocalPuState]
LOCAL_PU_STATE_UNSPECIFIED: LocalPuState
LOCAL_PU_STATE_PENDING: LocalPuState
LOCAL_PU_STATE_ENFORCED: LocalPuState
LOCAL_PU_STATE_FAILED: LocalPuState

class AddPuRequest(_message.Message):
    __slots__ = ("netns_path", "pid", "name", "namespace", "labels", "ports", "fail_mode")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NETNS_PATH_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    FAIL_MODE_FIELD_NUMBER: _ClassVar[int]
    netns_path: str
    pid: int
    name: str
    namespace: str
    labels: _containers.ScalarMap[str, str]
    ports: _containers.RepeatedCompositeFieldContainer[_processing_unit_pb2.NamedPort]
    fail_mode: _processing_unit_pb2.FailMode
    def __init__(self, netns_path: _Optional[str] = ..., pid: _Optional[int] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., ports: _Optional[_Iterable[_Union[_processing_unit_pb2.NamedPort, _Mapping]]] = ..., fail_mode: _Optional[_Union[_processing_unit_pb2.FailMode, str]] = ...) -> None: ...

class AddPuResponse(_message.Message):
    __slots__ = ("pu",)
    PU_FIELD_NUMBER: _ClassVar[int]
    pu: _processing_unit_pb2.ProcessingUnit
    def __init__(self, pu: _Optional[_Union[_processing_unit_pb2.ProcessingUnit, _Mapping]] = ...) -> None: ...

class RemovePuRequest(_message.Message):
    __slots__ = ("pu_id",)
    PU_ID_FIELD_NUMBER: _ClassVar[int]
    pu_id: str
    def __init__(self, pu_id: _Optional[str] = ...) -> None: ...

class RemovePuResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPusResponse(_message.Message):
    __slots__ = ("pus",)
    PUS_FIELD_NUMBER: _ClassVar[int]
    pus: _containers.RepeatedCompositeFieldContainer[LocalPu]
    def __init__(self, pus: _Optional[_Iterable[_Union[LocalPu, _Mapping]]] = ...) -> None: ...

class LocalPu(_message.Message):
    __slots__ = ("pu", "state", "applied_revision", "last_error", "identity_document_expires_at", "attested_labels", "pid", "cgroup_path")
    class AttestedLabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PU_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    APPLIED_REVISION_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_DOCUMENT_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ATTESTED_LABELS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    CGROUP_PATH_FIELD_NUMBER: _ClassVar[int]
    pu: _processing_unit_pb2.ProcessingUnit
    state: LocalPuState
    applied_revision: int
    last_error: _error_pb2.ErrorDetail
    identity_document_expires_at: _timestamp_pb2.Timestamp
    attested_labels: _containers.ScalarMap[str, str]
    pid: int
    cgroup_path: str
    def __init__(self, pu: _Optional[_Union[_processing_unit_pb2.ProcessingUnit, _Mapping]] = ..., state: _Optional[_Union[LocalPuState, str]] = ..., applied_revision: _Optional[int] = ..., last_error: _Optional[_Union[_error_pb2.ErrorDetail, _Mapping]] = ..., identity_document_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attested_labels: _Optional[_Mapping[str, str]] = ..., pid: _Optional[int] = ..., cgroup_path: _Optional[str] = ...) -> None: ...

class PrepareRunRequest(_message.Message):
    __slots__ = ("executable", "name", "namespace", "labels", "ports", "fail_mode")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EXECUTABLE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    FAIL_MODE_FIELD_NUMBER: _ClassVar[int]
    executable: str
    name: str
    namespace: str
    labels: _containers.ScalarMap[str, str]
    ports: _containers.RepeatedCompositeFieldContainer[_processing_unit_pb2.NamedPort]
    fail_mode: _processing_unit_pb2.FailMode
    def __init__(self, executable: _Optional[str] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., ports: _Optional[_Iterable[_Union[_processing_unit_pb2.NamedPort, _Mapping]]] = ..., fail_mode: _Optional[_Union[_processing_unit_pb2.FailMode, str]] = ...) -> None: ...

class PrepareRunResponse(_message.Message):
    __slots__ = ("pu_id", "cgroup_path", "join_deadline")
    PU_ID_FIELD_NUMBER: _ClassVar[int]
    CGROUP_PATH_FIELD_NUMBER: _ClassVar[int]
    JOIN_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    pu_id: str
    cgroup_path: str
    join_deadline: _timestamp_pb2.Timestamp
    def __init__(self, pu_id: _Optional[str] = ..., cgroup_path: _Optional[str] = ..., join_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StartRunRequest(_message.Message):
    __slots__ = ("pu_id", "pid")
    PU_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    pu_id: str
    pid: int
    def __init__(self, pu_id: _Optional[str] = ..., pid: _Optional[int] = ...) -> None: ...

class StartRunResponse(_message.Message):
    __slots__ = ("pu",)
    PU_FIELD_NUMBER: _ClassVar[int]
    pu: LocalPu
    def __init__(self, pu: _Optional[_Union[LocalPu, _Mapping]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("enforcer_id", "trust_domain", "version", "datapath", "policy_connected", "applied_revision", "certificate_not_after", "pu_count", "started_at")
    ENFORCER_ID_FIELD_NUMBER: _ClassVar[int]
    TRUST_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DATAPATH_FIELD_NUMBER: _ClassVar[int]
    POLICY_CONNECTED_FIELD_NUMBER: _ClassVar[int]
    APPLIED_REVISION_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    PU_COUNT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    enforcer_id: str
    trust_domain: str
    version: str
    datapath: _enforcer_pb2.Datapath
    policy_connected: bool
    applied_revision: int
    certificate_not_after: _timestamp_pb2.Timestamp
    pu_count: int
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, enforcer_id: _Optional[str] = ..., trust_domain: _Optional[str] = ..., version: _Optional[str] = ..., datapath: _Optional[_Union[_enforcer_pb2.Datapath, str]] = ..., policy_connected: _Optional[bool] = ..., applied_revision: _Optional[int] = ..., certificate_not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pu_count: _Optional[int] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
