"""Protobuf <-> enforcer domain values, in one place."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from google.protobuf import duration_pb2, timestamp_pb2

from trustwire.api.common.v1 import decision_pb2, envelope_pb2, workload_pb2
from trustwire.api.enforcer.v1 import (
    authorization_service_pb2 as authz_pb,
)
from trustwire.api.enforcer.v1 import (
    enforcer_local_service_pb2 as local_pb,
)
from trustwire.api.enforcer.v1 import (
    trust_profile_pb2,
)
from trustwire.api.identity.v1 import identity_service_pb2
from trustwire.api.policy.v1 import processing_unit_pb2 as pu_pb
from trustwire.errors import InvalidArgument
from trustwire.identity import Attestation, FiveTuple, RevocationList, TrustBundle, TrustDomain
from trustwire.policy.model import Protocol, PuType
from trustwire.wire_enums import PROTOCOL_FROM_PB, PROTOCOL_TO_PB
from trustwire_enforcer.handshake import AuthorizeAnswer
from trustwire_enforcer.state_files import StoredPu

__all__ = [
    "answer_from_pb",
    "answer_to_pb",
    "attestation_of",
    "attested_labels",
    "claimed_five_tuple",
    "local_pu_to_pb",
    "pu_to_pb",
    "registration_to_pb",
    "timestamp",
    "trust_update_from_pb",
]

# The shared domain <-> common.v1 tables (one mapping for every codec).
_PROTOCOLS: dict[Any, Protocol] = PROTOCOL_FROM_PB
_PROTOCOL_TO_PB: dict[Protocol, Any] = PROTOCOL_TO_PB
_REASON_PREFIX = "REASON_CODE_"


def timestamp(when: datetime | float) -> timestamp_pb2.Timestamp:
    message = timestamp_pb2.Timestamp()
    if isinstance(when, float):
        when = datetime.fromtimestamp(when, UTC)
    message.FromDatetime(when)
    return message


def claimed_five_tuple(envelope: bytes) -> FiveTuple | None:
    """The 5-tuple an *unverified* Trust Profile names, or None when it does not parse.

    Read only to learn which connection the profile is about (the verifier then checks the
    signed tuple equals it); nothing else is trusted before verification.
    """
    try:
        env = envelope_pb2.SignedEnvelope.FromString(envelope)
        profile = trust_profile_pb2.TrustProfile.FromString(env.payload)
        five = profile.five_tuple
        protocol = _PROTOCOLS.get(five.protocol)
        if protocol is None:
            return None
        return FiveTuple.of(
            protocol,
            five.source_ip,
            five.source_port,
            five.destination_ip,
            five.destination_port,
        )
    except (ValueError, InvalidArgument):
        return None
    except Exception:  # protobuf DecodeError and friends
        return None


def _reason_to_pb(reason: str) -> decision_pb2.ReasonCode:
    try:
        return cast(
            "decision_pb2.ReasonCode", decision_pb2.ReasonCode.Value(_REASON_PREFIX + reason)
        )
    except ValueError:
        return decision_pb2.REASON_CODE_UNSPECIFIED


def _reason_from_pb(value: int) -> str:
    try:
        name: str = decision_pb2.ReasonCode.Name(value)
    except ValueError:
        return "PEER_REJECTED"
    if value == decision_pb2.REASON_CODE_UNSPECIFIED:
        return "PEER_REJECTED"
    return name.removeprefix(_REASON_PREFIX)


def answer_to_pb(answer: AuthorizeAnswer) -> authz_pb.AuthorizeResponse:
    response = authz_pb.AuthorizeResponse(
        verdict=decision_pb2.VERDICT_ALLOW if answer.allowed else decision_pb2.VERDICT_REJECT,
        reason=_reason_to_pb(answer.reason),
        revision=answer.revision,
    )
    if answer.profile:
        response.profile.CopyFrom(envelope_pb2.SignedEnvelope.FromString(answer.profile))
    if answer.allowed and answer.encrypt:
        response.encryption.CopyFrom(
            authz_pb.EncryptionParameters(
                mode=authz_pb.ENCRYPTION_MODE_TLS13_ENFORCER_TUNNEL,
                server_spiffe_id=answer.server_spiffe_id,
            )
        )
    if answer.preauthorization_ttl:
        response.preauthorization_ttl.CopyFrom(
            duration_pb2.Duration(nanos=0, seconds=int(answer.preauthorization_ttl))
        )
    return response


def answer_from_pb(response: authz_pb.AuthorizeResponse) -> AuthorizeAnswer:
    allowed = response.verdict == decision_pb2.VERDICT_ALLOW
    encrypt = response.HasField("encryption")
    return AuthorizeAnswer(
        allowed=allowed,
        reason=_reason_from_pb(response.reason),
        encrypt=allowed and encrypt,
        profile=(
            response.profile.SerializeToString(deterministic=True)
            if response.HasField("profile")
            else b""
        ),
        server_spiffe_id=response.encryption.server_spiffe_id if encrypt else "",
        preauthorization_ttl=response.preauthorization_ttl.ToTimedelta().total_seconds(),
        revision=response.revision,
    )


def trust_update_from_pb(
    response: identity_service_pb2.WatchTrustBundleResponse,
) -> tuple[TrustBundle | None, RevocationList | None]:
    """The bundle and revocation list of one ``WatchTrustBundle`` message, as domain values."""
    bundle: TrustBundle | None = None
    revocations: RevocationList | None = None
    if response.HasField("bundle") and response.bundle.ca_certificates_der:
        bundle = TrustBundle.from_der(
            TrustDomain(response.bundle.trust_domain),
            list(response.bundle.ca_certificates_der),
            response.bundle.sequence_number,
        )
    if response.HasField("revocations") and response.revocations.trust_domain:
        listed = response.revocations
        revocations = RevocationList(
            TrustDomain(listed.trust_domain),
            serials=frozenset(RevocationList.parse_serial(r.serial) for r in listed.revocations),
            enforcer_ids=frozenset(r.enforcer_id for r in listed.revocations if r.enforcer_id),
            sequence_number=listed.sequence_number,
        )
    return bundle, revocations


_FAIL_MODES = {"closed": pu_pb.FAIL_MODE_CLOSED, "open": pu_pb.FAIL_MODE_OPEN}


_PU_TYPES = {
    "pod": workload_pb2.PROCESSING_UNIT_TYPE_POD,
    "process": workload_pb2.PROCESSING_UNIT_TYPE_PROCESS,
}


def pu_to_pb(pu: StoredPu, enforcer_id: str) -> pu_pb.ProcessingUnit:
    """A PU as a ``ProcessingUnit`` with the workload's own labels (``ListPus``, ``AddPu``);
    :func:`registration_to_pb` is what the policy service is sent."""
    return pu_pb.ProcessingUnit(
        id=pu.pu_id,
        name=pu.name,
        namespace=pu.namespace,
        labels=dict(pu.labels),
        type=_PU_TYPES.get(pu.pu_type, workload_pb2.PROCESSING_UNIT_TYPE_POD),
        ips=list(pu.ips),
        ports=[
            pu_pb.NamedPort(name=name, protocol=_PROTOCOL_TO_PB[Protocol(protocol)], number=number)
            for name, protocol, number in pu.ports
        ],
        enforcer_id=enforcer_id,
        fail_mode=_FAIL_MODES.get(pu.fail_mode, pu_pb.FAIL_MODE_CLOSED),
    )


def registration_to_pb(pu: StoredPu, enforcer_id: str) -> pu_pb.ProcessingUnit:
    """The record this enforcer registers (``RegisterPu``): own labels plus the reserved ones
    this enforcer attested beyond the record's fields (a process's ``exe-sha256`` and
    ``user``), the same its identity document carries (:func:`attestation_of`), so the policy
    service selects the PU by them as peers do on the wire."""
    message = pu_to_pb(pu, enforcer_id)
    if pu.pu_type == "process":
        if pu.exe_sha256:
            message.labels["exe-sha256"] = pu.exe_sha256
        if pu.uid >= 0:
            message.labels["user"] = str(pu.uid)
    return message


def attestation_of(pu: StoredPu, enforcer_id: str) -> Attestation:
    """What the identity service is asked to vouch for: the facts the enforcer observed."""
    if pu.pu_type == "process":
        return Attestation(
            PuType.PROCESS,
            namespace=pu.namespace,
            exe_sha256=pu.exe_sha256,
            uid=pu.uid if pu.uid >= 0 else None,
            node=enforcer_id,
        )
    return Attestation(PuType.POD, namespace=pu.namespace, node=enforcer_id)


def attested_labels(pu: StoredPu, enforcer_id: str, trust_domain: str) -> dict[str, str]:
    """The reserved labels the PU's identity document derives from its attestation (the same
    rule as ``IdentityDocument.policy_labels``), for ``trustwire pu list``."""
    att = attestation_of(pu, enforcer_id)
    labels = {"pu-type": att.pu_type.value, "namespace": att.namespace, "enforcer": enforcer_id}
    if trust_domain:
        labels["trust-domain"] = trust_domain
    if att.exe_sha256:
        labels["exe-sha256"] = att.exe_sha256
    if att.uid is not None:
        labels["user"] = str(att.uid)
    return labels


def local_pu_to_pb(pu: StoredPu, enforcer_id: str, trust_domain: str) -> local_pb.LocalPu:
    """A PU as ``ListPus``/``StartRun`` show it (the state is set by the caller)."""
    local = local_pb.LocalPu(
        pu=pu_to_pb(pu, enforcer_id),
        attested_labels=attested_labels(pu, enforcer_id, trust_domain),
        pid=pu.pid,
        cgroup_path=pu.cgroup_path,
    )
    return local


def fail_mode_from_pb(value: int) -> str:
    return "open" if value == pu_pb.FAIL_MODE_OPEN else "closed"


def protocol_from_pb(value: int, field: str) -> Protocol:
    protocol = _PROTOCOLS.get(value)
    if protocol is None:
        raise InvalidArgument(f"{field}: a protocol is required", field=field)
    return protocol
