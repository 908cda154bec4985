"""The one module that touches protobuf: frozen dataclasses <-> deterministic wire bytes.

Encoding is protobuf deterministic serialization (``SerializeToString(deterministic=True)``):
fields in field-number order, proto3 defaults omitted, map entries sorted by key with both key
and value always written. docs/trust-profile.md specifies it byte for byte.

Decoding never trusts input: any parse failure or invalid field becomes
``VerificationError(MALFORMED_PROFILE)`` naming the field. Unknown fields are ignored (proto
forward compatibility); inside a signed payload they are covered by the signature anyway.
"""

from __future__ import annotations

import functools
import ipaddress
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from google.protobuf import timestamp_pb2
from google.protobuf.message import DecodeError

from trustwire.api.common.v1 import envelope_pb2
from trustwire.api.enforcer.v1 import trust_profile_pb2
from trustwire.api.identity.v1 import identity_document_pb2
from trustwire.errors import InvalidArgument
from trustwire.policy.model import Protocol, PuType
from trustwire.wire_enums import PROTOCOL_FROM_PB, PROTOCOL_TO_PB, PU_TYPE_TO_PB

from ._document import Attestation, IdentityDocument
from ._envelope import SignatureAlgorithm, SignedEnvelope
from ._profile import (
    MAX_DESTINATION_SERVICE,
    MAX_NONCE_BYTES,
    MAX_TRACEPARENT,
    MAX_TRACESTATE,
    NONCE_BYTES,
    FiveTuple,
    TraceContext,
    TrustProfile,
)
from ._reasons import ReasonCode, VerificationError
from ._spiffe import TrustDomain

__all__ = [
    "PROTOCOL_TO_WIRE",
    "ProfileFacts",
    "check_profile_message",
    "decode_document",
    "decode_envelope",
    "decode_profile",
    "document_envelope_bytes",
    "encode_document",
    "encode_envelope",
    "encode_profile",
    "ip_address",
    "parse_envelope_message",
    "parse_profile_message",
    "profile_from_message",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Timestamp range the proto allows (0001-01-01 .. 9999-12-31), which datetime also covers.
_MIN_SECONDS = -62135596800
_MAX_SECONDS = 253402300799

# Identity documents exist for workloads an enforcer attests: pods and processes (external
# networks have none), hence a subset of the shared table.
_PU_TYPE_TO_WIRE = {t: PU_TYPE_TO_PB[t] for t in (PuType.POD, PuType.PROCESS)}
_PU_TYPE_FROM_WIRE = {v: k for k, v in _PU_TYPE_TO_WIRE.items()}
_PROTOCOL_TO_WIRE = PROTOCOL_TO_PB
_PROTOCOL_FROM_WIRE = PROTOCOL_FROM_PB
PROTOCOL_TO_WIRE: dict[Protocol, int] = {k: int(v) for k, v in _PROTOCOL_TO_WIRE.items()}
_ALGORITHM_TO_WIRE = {
    SignatureAlgorithm.UNSPECIFIED: envelope_pb2.SIGNATURE_ALGORITHM_UNSPECIFIED,
    SignatureAlgorithm.ECDSA_P256_SHA256: envelope_pb2.SIGNATURE_ALGORITHM_ECDSA_P256_SHA256,
    SignatureAlgorithm.HMAC_SHA256_SESSION: envelope_pb2.SIGNATURE_ALGORITHM_HMAC_SHA256_SESSION,
}
_ALGORITHM_FROM_WIRE = {int(v): k for k, v in _ALGORITHM_TO_WIRE.items()}


# --- envelope ---------------------------------------------------------------------------------


def encode_envelope(envelope: SignedEnvelope) -> bytes:
    return _envelope_message(envelope).SerializeToString(deterministic=True)


def decode_envelope(data: bytes, where: str = "envelope") -> SignedEnvelope:
    msg = _parse(envelope_pb2.SignedEnvelope, data, where)
    return _envelope_from_message(msg)


def _envelope_message(envelope: SignedEnvelope) -> envelope_pb2.SignedEnvelope:
    return envelope_pb2.SignedEnvelope(
        payload=envelope.payload,
        payload_type=envelope.payload_type,
        signature=envelope.signature,
        algorithm=_ALGORITHM_TO_WIRE[envelope.algorithm],
        signer_chain_der=envelope.signer_chain_der,
        session_id=envelope.session_id,
    )


def _envelope_from_message(msg: envelope_pb2.SignedEnvelope) -> SignedEnvelope:
    # An algorithm this code does not know is as good as none: the verifier refuses
    # UNSPECIFIED with BAD_SIGNATURE.
    algorithm = _ALGORITHM_FROM_WIRE.get(msg.algorithm, SignatureAlgorithm.UNSPECIFIED)
    chain = msg.signer_chain_der
    return SignedEnvelope(
        payload=msg.payload,
        payload_type=msg.payload_type,
        signature=msg.signature,
        algorithm=algorithm,
        signer_chain_der=tuple(chain) if chain else (),
        session_id=msg.session_id,
    )


# --- identity document ------------------------------------------------------------------------


def encode_document(doc: IdentityDocument) -> bytes:
    att = doc.attestation
    msg = identity_document_pb2.IdentityDocument(
        document_id=doc.document_id,
        pu_id=doc.pu_id,
        trust_domain=doc.trust_domain.name,
        enforcer_id=doc.enforcer_id,
        spiffe_id=str(doc.spiffe_id),
        labels=dict(doc.labels),
        attestation=identity_document_pb2.Attestation(
            pu_type=_PU_TYPE_TO_WIRE[att.pu_type],
            namespace=att.namespace,
            exe_sha256=att.exe_sha256,
            uid=att.uid,
            image=att.image,
            image_digest=att.image_digest,
            service_account=att.service_account,
            node=att.node,
        ),
    )
    _set_timestamp(msg.issued_at, doc.issued_at)
    _set_timestamp(msg.expires_at, doc.expires_at)
    return msg.SerializeToString(deterministic=True)


def decode_document(data: bytes) -> IdentityDocument:
    msg = _parse(identity_document_pb2.IdentityDocument, data, "identity_document")
    for name in ("attestation", "issued_at", "expires_at"):
        if not msg.HasField(name):
            raise _malformed(f"identity_document.{name} is missing")
    att = msg.attestation
    pu_type = _PU_TYPE_FROM_WIRE.get(att.pu_type)
    if pu_type is None:
        raise _malformed(f"identity_document.attestation.pu_type {att.pu_type} is not a PU type")
    try:
        doc = IdentityDocument(
            document_id=msg.document_id,
            pu_id=msg.pu_id,
            trust_domain=TrustDomain(msg.trust_domain),
            enforcer_id=msg.enforcer_id,
            labels=dict(msg.labels),
            attestation=Attestation(
                pu_type=pu_type,
                namespace=att.namespace,
                exe_sha256=att.exe_sha256,
                uid=att.uid if att.HasField("uid") else None,
                image=att.image,
                image_digest=att.image_digest,
                service_account=att.service_account,
                node=att.node,
            ),
            issued_at=_datetime(msg.issued_at, "identity_document.issued_at"),
            expires_at=_datetime(msg.expires_at, "identity_document.expires_at"),
        )
    except InvalidArgument as exc:
        raise _malformed(f"identity_document.{exc.field}: {exc.message}") from None
    if msg.spiffe_id != str(doc.spiffe_id):
        raise _malformed(f"identity_document.spiffe_id is not {doc.spiffe_id}")
    return doc


# --- trust profile ----------------------------------------------------------------------------


def encode_profile(profile: TrustProfile) -> bytes:
    ft = profile.five_tuple
    msg = trust_profile_pb2.TrustProfile(
        identity_document=_envelope_message(profile.identity_document),
        five_tuple=trust_profile_pb2.FiveTuple(
            protocol=_PROTOCOL_TO_WIRE[ft.protocol],
            source_ip=str(ft.source_ip),
            source_port=ft.source_port,
            destination_ip=str(ft.destination_ip),
            destination_port=ft.destination_port,
        ),
        destination_service=profile.destination_service,
        nonce=profile.nonce,
        behaviour_score=profile.behaviour_score,
        reputation_score=profile.reputation_score,
        peer_nonce=profile.peer_nonce,
    )
    _set_timestamp(msg.timestamp, profile.timestamp)
    trace = profile.trace_context
    if trace.traceparent or trace.tracestate:
        msg.trace_context.traceparent = trace.traceparent
        msg.trace_context.tracestate = trace.tracestate
    return msg.SerializeToString(deterministic=True)


def decode_profile(data: bytes) -> TrustProfile:
    return profile_from_message(_parse(trust_profile_pb2.TrustProfile, data, "trust_profile"))


def profile_from_message(msg: trust_profile_pb2.TrustProfile) -> TrustProfile:
    """The frozen dataclass of a parsed profile, every field rule checked (MALFORMED)."""
    for name in ("identity_document", "five_tuple", "timestamp"):
        if not msg.HasField(name):
            raise _malformed(f"trust_profile.{name} is missing")
    ft = msg.five_tuple
    protocol = _PROTOCOL_FROM_WIRE.get(ft.protocol)
    if protocol is None:
        raise _malformed(f"trust_profile.five_tuple.protocol {ft.protocol} is not a protocol")
    try:
        five_tuple = FiveTuple(
            protocol,
            _ip_address(ft.source_ip),
            ft.source_port,
            _ip_address(ft.destination_ip),
            ft.destination_port,
        )
    except ValueError as exc:  # InvalidArgument is not a ValueError; handled below
        raise _malformed(f"trust_profile.five_tuple: {exc}") from None
    except InvalidArgument as exc:
        raise _malformed(f"trust_profile.{exc.field}: {exc.message}") from None
    try:
        return TrustProfile(
            identity_document=_envelope_from_message(msg.identity_document),
            five_tuple=five_tuple,
            nonce=msg.nonce,
            timestamp=_datetime(msg.timestamp, "trust_profile.timestamp"),
            destination_service=msg.destination_service,
            behaviour_score=msg.behaviour_score if msg.HasField("behaviour_score") else None,
            reputation_score=msg.reputation_score if msg.HasField("reputation_score") else None,
            trace_context=TraceContext(msg.trace_context.traceparent, msg.trace_context.tracestate),
            peer_nonce=msg.peer_nonce,
        )
    except InvalidArgument as exc:
        raise _malformed(f"trust_profile.{exc.field}: {exc.message}") from None


# --- the verifier's hot path: parsed messages, checked in place --------------------------------
#
# Building the frozen dataclasses above costs tens of microseconds in CPython, more than the
# whole cached verification budget. The verifier instead checks the parsed (C, upb) messages
# directly with ``check_profile_message``, which enforces exactly the rules the dataclasses do
# (a unit test runs both on mutated payloads and requires the same verdict), and builds the
# dataclass only when someone asks for it (``VerifiedProfile.profile``).


def parse_envelope_message(data: bytes, where: str = "envelope") -> envelope_pb2.SignedEnvelope:
    return _parse(envelope_pb2.SignedEnvelope, data, where)


def parse_profile_message(data: bytes) -> tuple[trust_profile_pb2.TrustProfile, ProfileFacts]:
    """Parse a profile payload and check every field rule of ``TrustProfile`` (MALFORMED)."""
    try:
        msg = _PROFILE_FROM_STRING(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise _malformed(f"trust_profile does not parse as protobuf ({exc})") from None
    return msg, check_profile_message(msg)


_PROFILE_FROM_STRING = trust_profile_pb2.TrustProfile.FromString


# What the verifier reads after the checks, read once: timestamp (integer microseconds since
# the epoch, sub-microsecond nanos dropped as ``_datetime`` does), protocol (wire number),
# source address, source port, destination address, destination port, nonce, peer nonce.
ProfileFacts = tuple[
    int,
    int,
    ipaddress.IPv4Address | ipaddress.IPv6Address,
    int,
    ipaddress.IPv4Address | ipaddress.IPv6Address,
    int,
    bytes,
    bytes,
]


def check_profile_message(msg: trust_profile_pb2.TrustProfile) -> ProfileFacts:
    """The field rules of ``profile_from_message`` (and of the dataclasses it builds), on the
    message itself; returns the facts the verifier needs. Raises MALFORMED_PROFILE; when it
    passes, ``profile_from_message`` cannot fail. On any defect it defers to
    ``profile_from_message`` for the precise message."""
    ft = msg.five_tuple
    protocol = ft.protocol
    source_port = ft.source_port
    destination_port = ft.destination_port
    ts = msg.timestamp
    seconds = ts.seconds
    nanos = ts.nanos
    nonce = msg.nonce
    peer_nonce = msg.peer_nonce
    trace = msg.trace_context
    try:
        source = _ip_address(ft.source_ip)
        destination = _ip_address(ft.destination_ip)
    except ValueError:
        source = destination = None  # type: ignore[assignment]
    # An unset five_tuple reads protocol 0 (not a protocol), so only the two presence checks
    # whose absence would otherwise look valid are made explicitly. Unset optional scores read
    # 0.0, which is valid, so their presence needs no check either.
    if (
        protocol not in _PROTOCOL_FROM_WIRE
        or source is None
        or destination is None
        or source.version != destination.version
        or not 1 <= source_port <= 65535
        or not 1 <= destination_port <= 65535
        or not NONCE_BYTES <= len(nonce) <= MAX_NONCE_BYTES
        or (peer_nonce and not NONCE_BYTES <= len(peer_nonce) <= MAX_NONCE_BYTES)
        or not _MIN_SECONDS <= seconds <= _MAX_SECONDS
        or not 0 <= nanos < 1_000_000_000
        or len(msg.destination_service) > MAX_DESTINATION_SERVICE
        or len(trace.traceparent) > MAX_TRACEPARENT
        or len(trace.tracestate) > MAX_TRACESTATE
        or not _score_ok(msg.behaviour_score)
        or not _score_ok(msg.reputation_score)
        or not msg.HasField("timestamp")
        or not msg.HasField("identity_document")
    ):
        profile_from_message(msg)  # raises with the precise message
        raise _malformed("trust_profile is invalid")  # pragma: no cover
    return (
        seconds * 1_000_000 + nanos // 1000,
        protocol,
        source,
        source_port,
        destination,
        destination_port,
        nonce,
        peer_nonce,
    )


def _score_ok(score: float) -> bool:
    return 0.0 <= score <= 1.0  # False for NaN; infinities are out of range anyway


def document_envelope_bytes(payload: bytes, msg: trust_profile_pb2.TrustProfile) -> bytes:
    """The identity document envelope's bytes as received inside a profile ``payload``: the
    first field-1 element when the payload starts with it (every deterministic encoder puts it
    first), else the parsed sub-message re-serialized.

    The verifier keys its document cache by these bytes and, on a miss, verifies exactly these
    bytes (parsing them on their own). So even a payload that repeats field 1 (which protobuf
    merges) is sound: the document used is the one these bytes encode, and it verified."""
    if len(payload) > 2 and payload[0] == 0x0A:
        length = 0
        shift = 0
        index = 1
        while index < len(payload) and index <= 4:
            byte = payload[index]
            length |= (byte & 0x7F) << shift
            index += 1
            if not byte & 0x80:
                end = index + length
                if end <= len(payload):
                    return payload[index:end]
                break
            shift += 7
    return msg.identity_document.SerializeToString(deterministic=True)


def ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Memoized ``ipaddress.ip_address`` (raises ValueError)."""
    return _ip_address(text)


# --- helpers ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16_384)
def _ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``ipaddress.ip_address``, memoized: parsing costs microseconds in pure Python, and the
    same peer addresses recur on every connection. Raises ValueError (not cached)."""
    return ipaddress.ip_address(text)


_M = TypeVar(
    "_M",
    envelope_pb2.SignedEnvelope,
    identity_document_pb2.IdentityDocument,
    trust_profile_pb2.TrustProfile,
)


def _parse(kind: type[_M], data: bytes, where: str) -> _M:
    try:
        return kind.FromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise _malformed(f"{where} does not parse as protobuf ({exc})") from None


def _set_timestamp(target: timestamp_pb2.Timestamp, when: datetime) -> None:
    delta = when - _EPOCH
    target.seconds = delta.days * 86400 + delta.seconds
    target.nanos = delta.microseconds * 1000


def _datetime(ts: timestamp_pb2.Timestamp, where: str) -> datetime:
    """Microsecond precision (what datetime holds); sub-microsecond nanos are dropped, which
    never matters to verification: signatures cover the received bytes, not this value."""
    seconds = ts.seconds
    nanos = ts.nanos
    if not (_MIN_SECONDS <= seconds <= _MAX_SECONDS and 0 <= nanos < 1_000_000_000):
        raise _malformed(f"{where} is out of range")
    return _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)


def _malformed(message: str) -> VerificationError:
    return VerificationError(ReasonCode.MALFORMED_PROFILE, message)
