"""Protobuf <-> enforcer domain values, in one place."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from google.protobuf import duration_pb2, timestamp_pb2

from trustwire.api.common.v1 import decision_pb2, envelope_pb2, network_pb2, workload_pb2
from trustwire.api.enforcer.v1 import (
    authorization_service_pb2 as authz_pb,
)
from trustwire.api.enforcer.v1 import (
    trust_profile_pb2,
)
from trustwire.api.identity.v1 import identity_service_pb2
from trustwire.api.policy.v1 import processing_unit_pb2 as pu_pb
from trustwire.errors import InvalidArgument
from trustwire.identity import FiveTuple, RevocationList, TrustBundle, TrustDomain
from trustwire.policy.model import Protocol
from trustwire_enforcer.handshake import AuthorizeAnswer
from trustwire_enforcer.state_files import StoredPu

__all__ = [
    "answer_from_pb",
    "answer_to_pb",
    "claimed_five_tuple",
    "pu_to_pb",
    "timestamp",
    "trust_update_from_pb",
]

_PROTOCOLS: dict[int, Protocol] = {
    network_pb2.PROTOCOL_TCP: Protocol.TCP,
    network_pb2.PROTOCOL_UDP: Protocol.UDP,
    network_pb2.PROTOCOL_SCTP: Protocol.SCTP,
}
_PROTOCOL_TO_PB: dict[Protocol, network_pb2.Protocol] = {
    Protocol.TCP: network_pb2.PROTOCOL_TCP,
    Protocol.UDP: network_pb2.PROTOCOL_UDP,
    Protocol.SCTP: network_pb2.PROTOCOL_SCTP,
}
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


def pu_to_pb(pu: StoredPu, enforcer_id: str) -> pu_pb.ProcessingUnit:
    """The record this enforcer registers for a PU (``RegisterPu``)."""
    return pu_pb.ProcessingUnit(
        id=pu.pu_id,
        name=pu.name,
        namespace=pu.namespace,
        labels=dict(pu.labels),
        type=workload_pb2.PROCESSING_UNIT_TYPE_POD,
        ips=list(pu.ips),
        ports=[
            pu_pb.NamedPort(name=name, protocol=_PROTOCOL_TO_PB[Protocol(protocol)], number=number)
            for name, protocol, number in pu.ports
        ],
        enforcer_id=enforcer_id,
        fail_mode=_FAIL_MODES.get(pu.fail_mode, pu_pb.FAIL_MODE_CLOSED),
    )


def fail_mode_from_pb(value: int) -> str:
    return "open" if value == pu_pb.FAIL_MODE_OPEN else "closed"


def protocol_from_pb(value: int, field: str) -> Protocol:
    protocol = _PROTOCOLS.get(value)
    if protocol is None:
        raise InvalidArgument(f"{field}: a protocol is required", field=field)
    return protocol
