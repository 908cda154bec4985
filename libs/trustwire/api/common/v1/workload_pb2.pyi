from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class ProcessingUnitType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROCESSING_UNIT_TYPE_UNSPECIFIED: _ClassVar[ProcessingUnitType]
    PROCESSING_UNIT_TYPE_POD: _ClassVar[ProcessingUnitType]
    PROCESSING_UNIT_TYPE_PROCESS: _ClassVar[ProcessingUnitType]
    PROCESSING_UNIT_TYPE_EXTERNAL: _ClassVar[ProcessingUnitType]
PROCESSING_UNIT_TYPE_UNSPECIFIED: ProcessingUnitType
PROCESSING_UNIT_TYPE_POD: ProcessingUnitType
PROCESSING_UNIT_TYPE_PROCESS: ProcessingUnitType
PROCESSING_UNIT_TYPE_EXTERNAL: ProcessingUnitType
