"""Protobuf messages to domain values and back: the only module of the service that builds or
reads ``trustwire.api`` messages (the servicer calls it; the domain never sees protobuf).

Field paths in ``InvalidArgument`` errors are the request's proto field names, so a client can
point at what it sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from google.protobuf import duration_pb2, timestamp_pb2

from trustwire.api.common.v1 import envelope_pb2, workload_pb2
from trustwire.api.identity.v1 import (
    enrollment_pb2,
    identity_document_pb2,
    identity_service_pb2,
    trust_bundle_pb2,
)
from trustwire.errors import InvalidArgument
from trustwire.identity import Attestation
from trustwire.policy.model import PuType

from ..enrollment import IssuedCredential
from ..records import EnrollmentKind, EnrollmentRecord, RevocationRecord
from ..revocation import TrustState

__all__ = [
    "attestation_from_pb",
    "duration_from_pb",
    "enroll_response",
    "enrollment_kind_from_pb",
    "enrollment_kind_to_pb",
    "enrollment_to_pb",
    "renew_response",
    "revocation_to_pb",
    "timestamp",
    "trust_state_to_pb",
]

_KIND_TO_PB = {
    EnrollmentKind.ENFORCER: enrollment_pb2.ENROLLMENT_KIND_ENFORCER,
    EnrollmentKind.SERVICE: enrollment_pb2.ENROLLMENT_KIND_SERVICE,
}
_KIND_FROM_PB: dict[int, EnrollmentKind] = {
    int(number): kind for kind, number in _KIND_TO_PB.items()
}
_PU_TYPE_FROM_PB: dict[int, PuType] = {
    workload_pb2.PROCESSING_UNIT_TYPE_POD: PuType.POD,
    workload_pb2.PROCESSING_UNIT_TYPE_PROCESS: PuType.PROCESS,
    workload_pb2.PROCESSING_UNIT_TYPE_EXTERNAL: PuType.EXTERNAL,
}


def timestamp(when: datetime) -> timestamp_pb2.Timestamp:
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(when.astimezone(UTC))
    return message


def datetime_from_pb(message: timestamp_pb2.Timestamp) -> datetime:
    return message.ToDatetime(tzinfo=UTC)


def duration_from_pb(message: duration_pb2.Duration, field: str) -> timedelta:
    if message.seconds < 0 or message.nanos < 0:
        raise InvalidArgument("must not be negative", field=field)
    return message.ToTimedelta()


def enrollment_kind_from_pb(value: int, field: str = "kind") -> EnrollmentKind:
    kind: EnrollmentKind | None = _KIND_FROM_PB.get(value)
    if kind is None:
        raise InvalidArgument(
            "must be ENROLLMENT_KIND_ENFORCER or ENROLLMENT_KIND_SERVICE", field=field
        )
    return kind


def enrollment_kind_to_pb(kind: EnrollmentKind) -> int:
    return _KIND_TO_PB[kind]


def _der(certificates: Iterable[object]) -> list[bytes]:
    return [
        cert.public_bytes(serialization.Encoding.DER)  # type: ignore[attr-defined]
        for cert in certificates
    ]


def enrollment_to_pb(record: EnrollmentRecord) -> enrollment_pb2.Enrollment:
    message = enrollment_pb2.Enrollment(
        id=record.name,
        kind=_KIND_TO_PB[record.kind],
        spiffe_id=record.spiffe_id,
        certificate_serial=format(record.serial, "x"),
        certificate_not_after=timestamp(record.not_after),
        enrolled_at=timestamp(record.enrolled_at),
    )
    if record.renewed_at is not None:
        message.renewed_at.CopyFrom(timestamp(record.renewed_at))
    if record.revoked_at is not None:
        message.revoked_at.CopyFrom(timestamp(record.revoked_at))
    return message


def revocation_to_pb(record: RevocationRecord) -> trust_bundle_pb2.Revocation:
    return trust_bundle_pb2.Revocation(
        serial=format(record.serial, "x"),
        spiffe_id=record.spiffe_id,
        enforcer_id=record.enforcer_id,
        revoked_at=timestamp(record.revoked_at),
        certificate_not_after=timestamp(record.certificate_not_after),
        reason=record.reason,
    )


def trust_state_to_pb(
    state: TrustState, trust_domain: str
) -> tuple[trust_bundle_pb2.TrustBundle, trust_bundle_pb2.RevocationList]:
    bundle = trust_bundle_pb2.TrustBundle(
        trust_domain=trust_domain,
        ca_certificates_der=_der(state.anchors),
        sequence_number=state.bundle_sequence,
        updated_at=timestamp(state.updated_at),
    )
    revocations = trust_bundle_pb2.RevocationList(
        trust_domain=trust_domain,
        revocations=[revocation_to_pb(entry) for entry in state.revocations],
        sequence_number=state.revocation_sequence,
    )
    return bundle, revocations


def enroll_response(
    issued: IssuedCredential, bundle: trust_bundle_pb2.TrustBundle
) -> identity_service_pb2.EnrollResponse:
    return identity_service_pb2.EnrollResponse(
        certificate_chain_der=_der(issued.issued.chain),
        bundle=bundle,
        spiffe_id=str(issued.spiffe_id),
        renew_after=timestamp(issued.renew_after),
    )


def renew_response(
    issued: IssuedCredential, bundle: trust_bundle_pb2.TrustBundle
) -> identity_service_pb2.RenewResponse:
    return identity_service_pb2.RenewResponse(
        certificate_chain_der=_der(issued.issued.chain),
        bundle=bundle,
        renew_after=timestamp(issued.renew_after),
    )


def attestation_from_pb(message: identity_document_pb2.Attestation) -> Attestation:
    pu_type = _PU_TYPE_FROM_PB.get(message.pu_type)
    if pu_type is None:
        raise InvalidArgument("a PU type is required", field="attestation.pu_type")
    return Attestation(
        pu_type=pu_type,
        namespace=message.namespace,
        exe_sha256=message.exe_sha256,
        uid=message.uid if message.HasField("uid") else None,
        image=message.image,
        image_digest=message.image_digest,
        service_account=message.service_account,
        node=message.node,
    )


def envelope_from_wire(data: bytes) -> envelope_pb2.SignedEnvelope:
    """The library returns the envelope's wire bytes; the response embeds the message."""
    return envelope_pb2.SignedEnvelope.FromString(data)


_PU_TYPE_TO_PB: dict[PuType, Any] = {pu: number for number, pu in _PU_TYPE_FROM_PB.items()}


def attestation_to_pb(attestation: Attestation) -> identity_document_pb2.Attestation:
    message = identity_document_pb2.Attestation(
        pu_type=_PU_TYPE_TO_PB[attestation.pu_type],
        namespace=attestation.namespace,
        exe_sha256=attestation.exe_sha256,
        image=attestation.image,
        image_digest=attestation.image_digest,
        service_account=attestation.service_account,
        node=attestation.node,
    )
    if attestation.uid is not None:
        message.uid = attestation.uid
    return message
