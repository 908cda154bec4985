"""Channel sessions: the handshake (happy path and every refusal with its reason code), sealed
profiles (integrity of every byte, replay, cross-session, reflection, expiry, revocation), and
the equivalence of signed and sealed verification. Clocks are injected; nothing sleeps."""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustwire.api.common.v1 import envelope_pb2
from trustwire.api.enforcer.v1 import authorization_service_pb2 as pb
from trustwire.api.enforcer.v1 import trust_profile_pb2
from trustwire.errors import FailedPrecondition, InvalidArgument
from trustwire.identity import (
    BundleSet,
    Credential,
    FiveTuple,
    IssuedDocument,
    ProfileSigner,
    ProfileVerifier,
    ReasonCode,
    RevocationList,
    Session,
    SessionManager,
    SessionRole,
    TraceContext,
    TrustBundle,
    TrustDomain,
    VerificationError,
    _codec,
    _crypto,
    _session,
)

from .conftest import TYPICAL_TUPLE, typical_profile
from .pki import (
    T0,
    TD_A,
    FakeClock,
    World,
    enforcer_credential,
    fixed_key,
    make_ca,
    make_leaf,
    typical_attestation,
)
from .test_tampering import flipped

TD_C = TrustDomain("cluster-c.example")


@dataclass
class Pair:
    """Two enforcers of domain A, node-1 (initiator, ``a``) and node-2 (responder, ``b``),
    each with its own verifier and session manager, sharing the world's clock."""

    world: World
    verifier_a: ProfileVerifier
    verifier_b: ProfileVerifier
    manager_a: SessionManager
    manager_b: SessionManager
    signer_a: ProfileSigner
    signer_b: ProfileSigner

    def establish(self) -> tuple[Session, Session]:
        state, request = self.manager_a.initiate(expected_peer=self.world.node2.spiffe_id)
        response = self.manager_b.respond(request, peer_chain=self.world.node1.chain_der)
        session_a, confirm = self.manager_a.complete(
            state, response, peer_chain=self.world.node2.chain_der
        )
        session_b = self.manager_b.confirm(confirm, peer_chain=self.world.node1.chain_der)
        return session_a, session_b


@pytest.fixture
def pair(world: World) -> Pair:
    va = ProfileVerifier(world.bundles, clock=world.clock)
    vb = ProfileVerifier(world.bundles, clock=world.clock)
    return Pair(
        world,
        va,
        vb,
        SessionManager(world.node1, va),
        SessionManager(world.node2, vb),
        ProfileSigner(world.node1, clock=world.clock),
        ProfileSigner(world.node2, clock=world.clock),
    )


@pytest.fixture
def document_b(world: World) -> IssuedDocument:
    """A document of a PU node-2 serves (for its answers)."""
    return world.issuer_a.issue(
        pu_id="shop/db-0",
        enforcer_id="node-2",
        labels={"app": "db"},
        attestation=typical_attestation(),
    )


def sealed(
    signer: ProfileSigner, document: IssuedDocument, session: Session, **kw: object
) -> bytes:
    options: dict[str, object] = {
        "destination_service": "db.shop.svc:5432",
        "behaviour_score": 0.12,
        "reputation_score": 0.93,
        "trace_context": TraceContext("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    }
    options.update(kw)
    return signer.seal(document.envelope, TYPICAL_TUPLE, session, **options).envelope  # type: ignore[arg-type]


def refused(code: ReasonCode, call: object, *args: object, **kwargs: object) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    assert info.value.code is code, str(info.value)
    return info.value


def reencoded(message: object, **changes: object) -> bytes:
    """A handshake message (wire bytes in, wire bytes out) with fields replaced."""
    assert isinstance(message, bytes)
    for kind in (pb.OpenSessionResponse,):
        msg = kind.FromString(message)
        for name, value in changes.items():
            field = getattr(msg, name)
            if hasattr(field, "CopyFrom"):
                field.CopyFrom(value)
            else:
                setattr(msg, name, value)
        return msg.SerializeToString(deterministic=True)
    raise AssertionError  # pragma: no cover


# --- establishment ----------------------------------------------------------------------------


def test_handshake_establishes_one_session_on_both_sides(pair: Pair) -> None:
    session_a, session_b = pair.establish()
    assert session_a.session_id == session_b.session_id
    assert len(session_a.session_id) == 16
    assert (session_a.role, session_b.role) == (SessionRole.INITIATOR, SessionRole.RESPONDER)
    assert session_a.peer == pair.world.node2.spiffe_id
    assert session_b.peer == pair.world.node1.spiffe_id
    assert session_a.local == session_b.peer
    # The window: from the responder's clock (whole seconds) to the earliest of 1 h and both
    # certificates' expiry (both expire at T0 + 1 h here).
    assert session_a.not_before == session_b.not_before == T0
    assert session_a.not_after == session_b.not_after == T0 + timedelta(hours=1)
    assert pair.verifier_a.session(session_a.session_id) is session_a
    assert pair.verifier_b.session(session_b.session_id) is session_b
    assert pair.manager_b.pending_count == 0
    # Directional keys: what A seals, B expects, and not the reverse.
    payload = b"any payload"
    assert session_a.seal_tag(payload) == session_b.expected_tag(payload)
    assert session_b.seal_tag(payload) == session_a.expected_tag(payload)
    assert session_a.seal_tag(payload) != session_b.seal_tag(payload)


def test_session_is_capped_by_the_earliest_certificate_and_the_lifetime(world: World) -> None:
    short = enforcer_credential(
        world.ca_a, "node-3", not_after=T0 + timedelta(minutes=20, seconds=30, microseconds=7)
    )
    va = ProfileVerifier(world.bundles, clock=world.clock)
    vb = ProfileVerifier(world.bundles, clock=world.clock)
    manager_a = SessionManager(short, va)
    manager_b = SessionManager(world.node2, vb, lifetime=timedelta(hours=1))
    state, request = manager_a.initiate()
    response = manager_b.respond(request, peer_chain=short.chain_der)
    session, _ = manager_a.complete(state, response, peer_chain=world.node2.chain_der)
    assert session.not_after == T0 + timedelta(minutes=20, seconds=30)  # rounded down
    manager_b = SessionManager(world.node2, vb, lifetime=timedelta(minutes=5))
    state, request = manager_a.initiate()
    session, _ = manager_a.complete(
        state,
        manager_b.respond(request, peer_chain=short.chain_der),
        peer_chain=world.node2.chain_der,
    )
    assert session.not_after == T0 + timedelta(minutes=5)


def test_sealed_profiles_cost_no_public_key_operation(
    pair: Pair,
    document: IssuedDocument,
    document_b: IssuedDocument,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session_a, session_b = pair.establish()
    calls: list[str] = []

    def counting(name: str, real: Callable[..., object]) -> Callable[..., object]:
        def wrapper(*args: object) -> object:
            calls.append(name)
            return real(*args)

        return wrapper

    monkeypatch.setattr(_crypto, "ecdsa_verify", counting("verify", _crypto.ecdsa_verify))
    monkeypatch.setattr(
        _crypto, "certificate_signed_by", counting("cert", _crypto.certificate_signed_by)
    )
    monkeypatch.setattr(_crypto, "ecdsa_sign", counting("sign", _crypto.ecdsa_sign))
    before = pair.verifier_b.stats.public_key_ops
    first = pair.verifier_b.verify(
        sealed(pair.signer_a, document, session_a),
        TYPICAL_TUPLE,
        peer_chain=pair.world.node1.chain_der,
    )
    assert calls == ["verify"]  # the document, once
    for _ in range(10):
        request = pair.verifier_b.verify(
            sealed(pair.signer_a, document, session_a),
            TYPICAL_TUPLE,
            peer_chain=pair.world.node1.chain_der,
        )
        answer = sealed(pair.signer_b, document_b, session_b, peer_nonce=request.nonce)
        pair.verifier_a.verify(
            answer,
            TYPICAL_TUPLE,
            peer_chain=pair.world.node2.chain_der,
            expected_peer_nonce=request.nonce,
        )
    assert calls == ["verify", "verify"]  # plus node-2's document at A, once
    assert pair.verifier_b.stats.public_key_ops - before == 1
    assert pair.verifier_b.stats.sealed_verified == 11
    assert first.sealed
    assert first.session_id == session_a.session_id
    assert str(first.signer) == "spiffe://cluster-a.example/enforcer/node-1"
    assert first.labels["app"] == "web"
    assert first.profile.reputation_score == pytest.approx(0.93)


# --- handshake refusals -----------------------------------------------------------------------


def test_tampered_transcript_elements_are_refused(pair: Pair) -> None:
    state, request = pair.manager_a.initiate()
    response = pair.manager_b.respond(request, peer_chain=pair.world.node1.chain_der)
    msg = pb.OpenSessionResponse.FromString(response)
    other = X25519PrivateKey.generate().public_key().public_bytes_raw()
    changed_end = msg.not_after.__class__(seconds=msg.not_after.seconds - 60)
    for change in (
        {"ephemeral_public_key": other},
        {"random": bytes(16)},
        {"not_after": changed_end},
    ):
        state, request = pair.manager_a.initiate()
        response = pair.manager_b.respond(request, peer_chain=pair.world.node1.chain_der)
        refused(
            ReasonCode.BAD_SIGNATURE,
            pair.manager_a.complete,
            state,
            reencoded(response, **change),
            peer_chain=pair.world.node2.chain_der,
        )


def test_every_single_byte_change_of_the_response_is_refused(pair: Pair) -> None:
    _, request = pair.manager_a.initiate()
    length = len(pair.manager_b.respond(request, peer_chain=pair.world.node1.chain_der))
    accepted = []
    for position in range(length):
        state, request = pair.manager_a.initiate()
        response = pair.manager_b.respond(request, peer_chain=pair.world.node1.chain_der)
        if position >= len(response):  # DER signatures vary in length by a byte or two
            continue
        try:
            pair.manager_a.complete(
                state, flipped(response, position), peer_chain=pair.world.node2.chain_der
            )
        except VerificationError:
            continue
        accepted.append(position)
    assert accepted == []
    assert pair.verifier_a.sessions == ()


def test_every_single_byte_change_of_the_confirmation_is_refused(pair: Pair) -> None:
    accepted = []
    position = 0
    while True:
        state, request = pair.manager_a.initiate()
        response = pair.manager_b.respond(request, peer_chain=pair.world.node1.chain_der)
        _, confirm = pair.manager_a.complete(state, response, peer_chain=pair.world.node2.chain_der)
        if position >= len(confirm):  # DER signatures vary in length by a byte or two
            break
        try:
            pair.manager_b.confirm(
                flipped(confirm, position), peer_chain=pair.world.node1.chain_der
            )
        except VerificationError:
            pass
        else:
            accepted.append(position)
        position += 1
    assert accepted == []
    assert pair.verifier_b.sessions == ()


def test_a_signature_of_the_other_role_is_refused(pair: Pair) -> None:
    # The responder's signature covers the same transcript under another context: replaying it
    # as the initiator's confirmation must fail.
    state, request = pair.manager_a.initiate()
    response = pair.manager_b.respond(request, peer_chain=pair.world.node1.chain_der)
    _, confirm = pair.manager_a.complete(state, response, peer_chain=pair.world.node2.chain_der)
    forged = pb.ConfirmSessionRequest(
        session_id=pb.ConfirmSessionRequest.FromString(confirm).session_id,
        signature=pb.OpenSessionResponse.FromString(response).signature,
    ).SerializeToString()
    refused(
        ReasonCode.BAD_SIGNATURE,
        pair.manager_b.confirm,
        forged,
        peer_chain=pair.world.node1.chain_der,
    )


def test_foreign_ca_and_unknown_ca_are_refused(pair: Pair, world: World) -> None:
    foreign = enforcer_credential(make_ca(TD_C), "node-c")
    foreign_verifier = ProfileVerifier(BundleSet.of(make_ca(TD_C).bundle), clock=world.clock)
    foreign_manager = SessionManager(foreign, foreign_verifier)
    _, request = foreign_manager.initiate()
    refused(
        ReasonCode.FOREIGN_TRUST_DOMAIN,
        pair.manager_b.respond,
        request,
        peer_chain=foreign.chain_der,
    )
    # Claims to be an enforcer of A, certified by B's CA.
    forged_a = _claiming(world, "spiffe://cluster-a.example/enforcer/node-1")
    impostor_verifier = ProfileVerifier(BundleSet.of(_a_by_b_bundle(world)), clock=world.clock)
    _, request = SessionManager(forged_a, impostor_verifier).initiate()
    refused(ReasonCode.UNKNOWN_CA, pair.manager_b.respond, request, peer_chain=forged_a.chain_der)


def _claiming(world: World, spiffe_id: str) -> Credential:
    key = fixed_key("impostor of A")
    return Credential(key, make_leaf(world.ca_b, spiffe_id, key=key))


def _a_by_b_bundle(world: World) -> TrustBundle:
    # The impostor's own verifier trusts B's CA for domain A (a misconfigured or hostile
    # peer); the honest responder does not.
    return TrustBundle(TD_A, (world.ca_b.cert,))


def test_revoked_and_expired_enforcers_are_refused(pair: Pair, world: World) -> None:
    _, request = pair.manager_a.initiate()
    pair.verifier_b.update_revocations(
        RevocationList(TD_A, enforcer_ids=frozenset({"node-1"}), sequence_number=1)
    )
    refused(ReasonCode.REVOKED, pair.manager_b.respond, request, peer_chain=world.node1.chain_der)
    # An initiator whose own credential is revoked in its own verifier does not even start.
    pair.verifier_a.update_revocations(
        RevocationList(
            TD_A, serials=frozenset({world.node1.certificate.serial_number}), sequence_number=1
        )
    )
    refused(ReasonCode.REVOKED, pair.manager_a.initiate)
    expired = enforcer_credential(
        world.ca_a,
        "node-5",
        not_before=T0 - timedelta(hours=2),
        not_after=T0 - timedelta(seconds=1),
    )
    _, request = SessionManager(
        expired, ProfileVerifier(world.bundles, clock=FakeClock(T0 - timedelta(hours=1)))
    ).initiate()
    refused(ReasonCode.EXPIRED, pair.manager_b.respond, request, peer_chain=expired.chain_der)


def test_revocation_between_open_and_confirm_is_refused(pair: Pair, world: World) -> None:
    state, request = pair.manager_a.initiate()
    response = pair.manager_b.respond(request, peer_chain=world.node1.chain_der)
    _, confirm = pair.manager_a.complete(state, response, peer_chain=world.node2.chain_der)
    pair.verifier_b.update_revocations(
        RevocationList(TD_A, enforcer_ids=frozenset({"node-1"}), sequence_number=1)
    )
    refused(ReasonCode.REVOKED, pair.manager_b.confirm, confirm, peer_chain=world.node1.chain_der)
    assert pair.verifier_b.sessions == ()


def test_the_wrong_responder_or_channel_is_refused(pair: Pair, world: World) -> None:
    state, request = pair.manager_a.initiate(expected_peer=world.node_b.spiffe_id)
    response = pair.manager_b.respond(request, peer_chain=world.node1.chain_der)
    refused(
        ReasonCode.CERTIFICATE_INVALID,
        pair.manager_a.complete,
        state,
        response,
        peer_chain=world.node2.chain_der,
    )
    # An inline chain naming node-1 on node-2's channel.
    inline = SessionManager(world.node1, pair.verifier_a, inline_chain=True)
    _, request = inline.initiate()
    refused(
        ReasonCode.CERTIFICATE_INVALID,
        pair.manager_b.respond,
        request,
        peer_chain=world.node2.chain_der,
    )
    # The confirmation must come from the initiator's channel.
    state, request = pair.manager_a.initiate()
    response = pair.manager_b.respond(request, peer_chain=world.node1.chain_der)
    _, confirm = pair.manager_a.complete(state, response, peer_chain=world.node2.chain_der)
    third = enforcer_credential(world.ca_a, "node-3")
    refused(
        ReasonCode.CERTIFICATE_INVALID, pair.manager_b.confirm, confirm, peer_chain=third.chain_der
    )


def test_no_session_with_oneself(pair: Pair, world: World) -> None:
    _, request = pair.manager_a.initiate()
    refused(
        ReasonCode.CERTIFICATE_INVALID,
        SessionManager(world.node1, pair.verifier_b).respond,
        request,
        peer_chain=world.node1.chain_der,
    )


def test_malformed_handshake_messages_are_refused(pair: Pair, world: World) -> None:
    _, request = pair.manager_a.initiate()
    msg = pb.OpenSessionRequest.FromString(request)
    for change in (
        {"protocol": "trustwire-session-v0"},
        {"random": bytes(15)},
        {"ephemeral_public_key": bytes(31)},
        # A low-order X25519 point: the shared secret would be all zero.
        {"ephemeral_public_key": bytes(32)},
    ):
        bad = pb.OpenSessionRequest()
        bad.CopyFrom(msg)
        for name, value in change.items():
            setattr(bad, name, value)
        refused(
            ReasonCode.MALFORMED_PROFILE,
            pair.manager_b.respond,
            bad.SerializeToString(),
            peer_chain=world.node1.chain_der,
        )
    refused(
        ReasonCode.MALFORMED_PROFILE,
        pair.manager_b.respond,
        b"\xff\xff",
        peer_chain=world.node1.chain_der,
    )
    refused(ReasonCode.MALFORMED_PROFILE, pair.manager_b.respond, request)  # no chain at all


def test_handshake_timing_is_enforced(pair: Pair, world: World) -> None:
    # Confirmation after the handshake timeout.
    state, request = pair.manager_a.initiate()
    response = pair.manager_b.respond(request, peer_chain=world.node1.chain_der)
    _, confirm = pair.manager_a.complete(state, response, peer_chain=world.node2.chain_der)
    world.clock.advance(31)
    refused(ReasonCode.EXPIRED, pair.manager_b.confirm, confirm, peer_chain=world.node1.chain_der)
    # A confirmation is accepted once: the pending state is consumed.
    state, request = pair.manager_a.initiate()
    response = pair.manager_b.respond(request, peer_chain=world.node1.chain_der)
    _, confirm = pair.manager_a.complete(state, response, peer_chain=world.node2.chain_der)
    pair.manager_b.confirm(confirm, peer_chain=world.node1.chain_der)
    refused(ReasonCode.EXPIRED, pair.manager_b.confirm, confirm, peer_chain=world.node1.chain_der)
    # A response completed after the timeout, or twice.
    state, request = pair.manager_a.initiate()
    response = pair.manager_b.respond(request, peer_chain=world.node1.chain_der)
    world.clock.advance(31)
    refused(
        ReasonCode.EXPIRED,
        pair.manager_a.complete,
        state,
        response,
        peer_chain=world.node2.chain_der,
    )
    refused(
        ReasonCode.REPLAYED,
        pair.manager_a.complete,
        state,
        response,
        peer_chain=world.node2.chain_der,
    )


def test_responder_clock_far_off_and_too_long_windows_are_refused(pair: Pair, world: World) -> None:
    ahead = FakeClock(T0 + timedelta(seconds=60))
    responder = SessionManager(world.node2, ProfileVerifier(world.bundles, clock=ahead))
    state, request = pair.manager_a.initiate()
    response = responder.respond(request, peer_chain=world.node1.chain_der)
    refused(
        ReasonCode.CLOCK_SKEW,
        pair.manager_a.complete,
        state,
        response,
        peer_chain=world.node2.chain_der,
    )
    # The initiator allows 10 minutes; the responder offers an hour.
    initiator = SessionManager(world.node1, pair.verifier_a, lifetime=timedelta(minutes=10))
    state, request = initiator.initiate()
    response = pair.manager_b.respond(request, peer_chain=world.node1.chain_der)
    refused(
        ReasonCode.MALFORMED_PROFILE,
        initiator.complete,
        state,
        response,
        peer_chain=world.node2.chain_der,
    )


def test_pending_handshakes_are_bounded(world: World) -> None:
    verifier = ProfileVerifier(world.bundles, clock=world.clock)
    responder = SessionManager(world.node2, verifier, max_pending=2)
    initiator = SessionManager(world.node1, ProfileVerifier(world.bundles, clock=world.clock))
    states = []
    for _ in range(3):
        state, request = initiator.initiate()
        states.append((state, responder.respond(request, peer_chain=world.node1.chain_der)))
    assert responder.pending_count == 2
    _, confirm = initiator.complete(*states[0], peer_chain=world.node2.chain_der)
    refused(ReasonCode.EXPIRED, responder.confirm, confirm, peer_chain=world.node1.chain_der)
    _, confirm = initiator.complete(*states[2], peer_chain=world.node2.chain_der)
    responder.confirm(confirm, peer_chain=world.node1.chain_der)


# --- sealed profiles --------------------------------------------------------------------------


def test_every_single_byte_change_of_a_sealed_profile_is_refused(
    pair: Pair, document: IssuedDocument
) -> None:
    session_a, _ = pair.establish()
    # Warm the document cache and the channel identity with another profile.
    pair.verifier_b.verify(
        sealed(pair.signer_a, document, session_a),
        TYPICAL_TUPLE,
        peer_chain=pair.world.node1.chain_der,
    )
    target = sealed(pair.signer_a, document, session_a)
    accepted = []
    for position in range(len(target)):
        try:
            pair.verifier_b.verify(
                flipped(target, position), TYPICAL_TUPLE, peer_chain=pair.world.node1.chain_der
            )
        except VerificationError:
            continue
        accepted.append(position)
    assert accepted == []
    # No failed attempt consumed the nonce.
    pair.verifier_b.verify(target, TYPICAL_TUPLE, peer_chain=pair.world.node1.chain_der)


def test_a_sealed_profile_is_accepted_once(pair: Pair, document: IssuedDocument) -> None:
    session_a, _ = pair.establish()
    envelope = sealed(pair.signer_a, document, session_a)
    pair.verifier_b.verify(envelope, TYPICAL_TUPLE, peer_chain=pair.world.node1.chain_der)
    pair.world.clock.advance(29)
    refused(
        ReasonCode.REPLAYED,
        pair.verifier_b.verify,
        envelope,
        TYPICAL_TUPLE,
        peer_chain=pair.world.node1.chain_der,
    )
    pair.world.clock.advance(2)
    refused(
        ReasonCode.CLOCK_SKEW,
        pair.verifier_b.verify,
        envelope,
        TYPICAL_TUPLE,
        peer_chain=pair.world.node1.chain_der,
    )


def _with_session_id(envelope: bytes, session_id: bytes) -> bytes:
    msg = envelope_pb2.SignedEnvelope.FromString(envelope)
    msg.session_id = session_id
    return msg.SerializeToString(deterministic=True)


def test_a_profile_sealed_for_one_session_is_refused_on_another(
    pair: Pair, document: IssuedDocument
) -> None:
    session_1, _ = pair.establish()
    session_2, _ = pair.establish()
    envelope = sealed(pair.signer_a, document, session_1)
    moved = _with_session_id(envelope, session_2.session_id)
    refused(
        ReasonCode.BAD_SIGNATURE,
        pair.verifier_b.verify,
        moved,
        TYPICAL_TUPLE,
        peer_chain=pair.world.node1.chain_der,
    )
    # A verifier that never held session 1 (another enforcer, or after a restart).
    other = ProfileVerifier(pair.world.bundles, clock=pair.world.clock)
    error = refused(
        ReasonCode.UNKNOWN_SESSION,
        other.verify,
        envelope,
        TYPICAL_TUPLE,
        peer_chain=pair.world.node1.chain_der,
    )
    assert error.metadata["session"] == "unknown"
    # The genuine one still verifies on its own session.
    pair.verifier_b.verify(envelope, TYPICAL_TUPLE, peer_chain=pair.world.node1.chain_der)


def test_reflection_is_refused(pair: Pair, document: IssuedDocument) -> None:
    session_a, session_b = pair.establish()
    # B's sealing key is the B->A direction; a profile it sealed (or that anyone captured
    # from B) presented back to B as if A sent it fails the tag, whatever it claims.
    reflected = sealed(pair.signer_b, document, session_b)
    refused(
        ReasonCode.BAD_SIGNATURE,
        pair.verifier_b.verify,
        reflected,
        TYPICAL_TUPLE,
        peer_chain=pair.world.node1.chain_der,
    )
    # And A's own request reflected back to A.
    own = sealed(pair.signer_a, document, session_a)
    refused(
        ReasonCode.BAD_SIGNATURE,
        pair.verifier_a.verify,
        own,
        TYPICAL_TUPLE,
        peer_chain=pair.world.node2.chain_der,
    )


def test_expired_session_is_refused_and_dropped(pair: Pair, document: IssuedDocument) -> None:
    session_a, session_b = pair.establish()
    envelope = sealed(pair.signer_a, document, session_a)
    pair.world.clock.now = session_b.not_after
    error = refused(
        ReasonCode.EXPIRED,
        pair.verifier_b.verify,
        envelope,
        TYPICAL_TUPLE,
        peer_chain=pair.world.node1.chain_der,
    )
    assert error.metadata["session"] == "expired"
    assert pair.verifier_b.session(session_b.session_id) is None
    assert session_b.closed
    with pytest.raises(FailedPrecondition) as info:
        sealed(pair.signer_a, document, session_a)
    assert info.value.reason == "SESSION_UNUSABLE"


def test_revocation_drops_the_sessions_of_the_revoked_enforcer(
    pair: Pair, document: IssuedDocument, world: World
) -> None:
    session_a, session_b = pair.establish()
    envelope = sealed(pair.signer_a, document, session_a)
    # An unrelated revocation keeps the session.
    pair.verifier_b.update_revocations(
        RevocationList(TD_A, enforcer_ids=frozenset({"node-7"}), sequence_number=1)
    )
    assert pair.verifier_b.session(session_b.session_id) is session_b
    pair.verifier_b.update_revocations(
        RevocationList(TD_A, enforcer_ids=frozenset({"node-7", "node-1"}), sequence_number=2)
    )
    assert pair.verifier_b.sessions == ()
    assert session_b.closed
    refused(
        ReasonCode.UNKNOWN_SESSION,  # dropped: the sender re-sends signed and meets REVOKED
        pair.verifier_b.verify,
        envelope,
        TYPICAL_TUPLE,
        peer_chain=world.node1.chain_der,
    )
    # The revoked enforcer's own side drops it too once it learns (local chain revoked), by
    # serial this time.
    pair.verifier_a.update_revocations(
        RevocationList(
            TD_A, serials=frozenset({world.node1.certificate.serial_number}), sequence_number=2
        )
    )
    assert pair.verifier_a.sessions == ()
    assert session_a.closed
    # And it cannot open a new one.
    _, request = SessionManager(
        world.node1, ProfileVerifier(world.bundles, clock=world.clock)
    ).initiate()
    refused(ReasonCode.REVOKED, pair.manager_b.respond, request, peer_chain=world.node1.chain_der)


def test_a_bundle_change_drops_sessions_it_invalidates(pair: Pair, world: World) -> None:
    _, session_b = pair.establish()
    pair.verifier_b.update_bundles(world.bundles)  # same CAs: kept
    assert pair.verifier_b.session(session_b.session_id) is session_b
    pair.verifier_b.update_bundles(
        BundleSet.of(make_ca(TD_A, label="new").bundle, world.ca_b.bundle)
    )
    assert pair.verifier_b.sessions == ()
    pair.verifier_b.update_bundles(world.bundles)  # restoring does not resurrect
    assert pair.verifier_b.sessions == ()


def test_sealed_profile_on_another_channel_is_refused(
    pair: Pair, document: IssuedDocument, world: World
) -> None:
    session_a, _ = pair.establish()
    envelope = sealed(pair.signer_a, document, session_a)
    third = enforcer_credential(world.ca_a, "node-3")
    refused(
        ReasonCode.CERTIFICATE_INVALID,
        pair.verifier_b.verify,
        envelope,
        TYPICAL_TUPLE,
        peer_chain=third.chain_der,
    )
    # Without a channel chain the session alone authenticates it.
    pair.verifier_b.verify(envelope, TYPICAL_TUPLE)


def test_mixed_mode_envelopes_are_malformed(
    pair: Pair, document: IssuedDocument, signer: ProfileSigner
) -> None:
    session_a, _ = pair.establish()
    signed = typical_profile(signer, document)
    refused(
        ReasonCode.MALFORMED_PROFILE,
        pair.verifier_b.verify,
        _with_session_id(signed, session_a.session_id),
        TYPICAL_TUPLE,
        peer_chain=pair.world.node1.chain_der,
    )
    msg = envelope_pb2.SignedEnvelope.FromString(sealed(pair.signer_a, document, session_a))
    msg.signer_chain_der.extend(pair.world.node1.chain_der)
    refused(
        ReasonCode.MALFORMED_PROFILE,
        pair.verifier_b.verify,
        msg.SerializeToString(),
        TYPICAL_TUPLE,
        peer_chain=pair.world.node1.chain_der,
    )
    refused(
        ReasonCode.MALFORMED_PROFILE,
        pair.verifier_b.verify,
        _with_session_id(sealed(pair.signer_a, document, session_a), b"short"),
        TYPICAL_TUPLE,
    )


def test_common_checks_apply_to_sealed_profiles(
    pair: Pair, document: IssuedDocument, document_b: IssuedDocument, world: World
) -> None:
    session_a, _ = pair.establish()
    chain = world.node1.chain_der
    # A document of another enforcer's PU, sealed by node-1.
    refused(
        ReasonCode.DOCUMENT_ENFORCER_MISMATCH,
        pair.verifier_b.verify,
        sealed(pair.signer_a, document_b, session_a),
        TYPICAL_TUPLE,
        peer_chain=chain,
    )
    refused(
        ReasonCode.ADDRESS_MISMATCH,
        pair.verifier_b.verify,
        sealed(pair.signer_a, document, session_a),
        FiveTuple.of("TCP", "10.1.2.3", 43512, "10.1.7.9", 5433),
        peer_chain=chain,
    )
    refused(
        ReasonCode.REPLAYED,
        pair.verifier_b.verify,
        sealed(pair.signer_a, document, session_a, peer_nonce=b"n" * 16),
        TYPICAL_TUPLE,
        peer_chain=chain,
    )
    early = pair.signer_a.seal_profile(
        replace(
            _codec.decode_profile(
                envelope_pb2.SignedEnvelope.FromString(
                    sealed(pair.signer_a, document, session_a)
                ).payload
            ),
            timestamp=T0 - timedelta(seconds=31),
        ),
        session_a,
    )
    refused(ReasonCode.CLOCK_SKEW, pair.verifier_b.verify, early, TYPICAL_TUPLE, peer_chain=chain)


def test_sessions_per_peer_are_bounded(pair: Pair) -> None:
    sessions = [pair.establish()[1] for _ in range(5)]
    held = pair.verifier_b.sessions
    assert len(held) == 4
    assert sessions[0] not in held
    assert sessions[0].closed


def test_a_signer_refuses_a_session_of_another_enforcer(
    pair: Pair, document: IssuedDocument
) -> None:
    _, session_b = pair.establish()
    with pytest.raises(InvalidArgument):
        sealed(pair.signer_a, document, session_b)


# --- equivalence of the two modes -------------------------------------------------------------

_SCORES = st.one_of(st.none(), st.floats(min_value=0.0, max_value=1.0))
_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    destination_service=_TEXT,
    behaviour=_SCORES,
    reputation=_SCORES,
    traceparent=st.text(max_size=55),
    tracestate=st.text(max_size=60),
    ipv6=st.booleans(),
    ports=st.tuples(st.integers(1, 65535), st.integers(1, 65535)),
    protocol=st.sampled_from(["TCP", "UDP", "SCTP"]),
    answer=st.booleans(),
)
def test_signed_and_sealed_verification_return_the_same_content(
    pair: Pair,
    document: IssuedDocument,
    destination_service: str,
    behaviour: float | None,
    reputation: float | None,
    traceparent: str,
    tracestate: str,
    ipv6: bool,
    ports: tuple[int, int],
    protocol: str,
    answer: bool,
) -> None:
    if not pair.verifier_b.sessions:
        pair.establish()
    session_a = next(s for s in pair.verifier_a.sessions)
    five_tuple = (
        FiveTuple.of(protocol, "fd00::1", ports[0], "fd00:0::2", ports[1])
        if ipv6
        else FiveTuple.of(protocol, "10.0.0.1", ports[0], "10.0.0.2", ports[1])
    )
    peer_nonce = b"q" * 16 if answer else b""
    options = {
        "destination_service": destination_service,
        "behaviour_score": behaviour,
        "reputation_score": reputation,
        "trace_context": TraceContext(traceparent, tracestate),
        "peer_nonce": peer_nonce,
    }
    signed = pair.signer_a.sign(document.envelope, five_tuple, **options)  # type: ignore[arg-type]
    # The same profile (same nonce and all), sealed: verified by a separate verifier so the
    # nonce is fresh for both.
    sealed_envelope = pair.signer_a.seal_profile(signed.profile, session_a)
    expected = peer_nonce or None
    via_signature = ProfileVerifier(pair.world.bundles, clock=pair.world.clock).verify(
        signed.envelope,
        five_tuple,
        peer_chain=pair.world.node1.chain_der,
        expected_peer_nonce=expected,
    )
    via_session = pair.verifier_b.verify(
        sealed_envelope,
        five_tuple,
        peer_chain=pair.world.node1.chain_der,
        expected_peer_nonce=expected,
    )
    assert via_session == via_signature
    assert via_session.profile == signed.profile
    assert via_session.document == via_signature.document
    assert via_session.signer == via_signature.signer
    assert dict(via_session.labels) == dict(via_signature.labels)
    assert via_session.nonce == via_signature.nonce == signed.profile.nonce
    assert via_session.sealed
    assert not via_signature.sealed
    if behaviour is not None:
        assert via_session.profile.behaviour_score is not None
        assert math.isclose(via_session.profile.behaviour_score, behaviour)


# --- the fast path's field checks agree with the dataclasses ----------------------------------


def test_fast_field_checks_agree_with_the_dataclasses_on_every_byte_flip(
    signer: ProfileSigner, document: IssuedDocument
) -> None:
    payload = envelope_pb2.SignedEnvelope.FromString(typical_profile(signer, document)).payload
    disagreements = []
    for position in range(len(payload)):
        for mask in (0x01, 0x80, 0xFF):
            data = payload[:position] + bytes([payload[position] ^ mask]) + payload[position + 1 :]
            try:
                slow = _codec.decode_profile(data)
                slow_ok: object = slow
            except VerificationError as exc:
                slow_ok = exc.code
            try:
                msg, _ = _codec.parse_profile_message(data)
                fast_ok: object = _codec.profile_from_message(msg)
            except VerificationError as exc:
                fast_ok = exc.code
            if (slow_ok is ReasonCode.MALFORMED_PROFILE) != (
                fast_ok is ReasonCode.MALFORMED_PROFILE
            ):
                disagreements.append((position, mask))
            elif slow_ok is not ReasonCode.MALFORMED_PROFILE:
                assert slow_ok == fast_ok
    assert disagreements == []


@pytest.mark.parametrize(
    "change",
    [
        {"nonce": b"x" * 15},
        {"nonce": b"x" * 65},
        {"peer_nonce": b"x" * 3},
        {"behaviour_score": float("nan")},
        {"reputation_score": 1.5},
        {"behaviour_score": -0.0001},
        {"destination_service": "d" * 254},
    ],
)
def test_fast_field_checks_refuse_out_of_range_values(
    signer: ProfileSigner, document: IssuedDocument, change: dict[str, object]
) -> None:
    payload = envelope_pb2.SignedEnvelope.FromString(typical_profile(signer, document)).payload
    msg = trust_profile_pb2.TrustProfile.FromString(payload)
    for name, value in change.items():
        setattr(msg, name, value)
    refused(ReasonCode.MALFORMED_PROFILE, _codec.parse_profile_message, msg.SerializeToString())
    refused(ReasonCode.MALFORMED_PROFILE, _codec.decode_profile, msg.SerializeToString())


def test_fast_field_checks_refuse_missing_and_invalid_five_tuples(
    signer: ProfileSigner, document: IssuedDocument
) -> None:
    payload = envelope_pb2.SignedEnvelope.FromString(typical_profile(signer, document)).payload
    for mutate in (
        lambda m: m.ClearField("five_tuple"),
        lambda m: m.ClearField("timestamp"),
        lambda m: m.ClearField("identity_document"),
        lambda m: setattr(m.five_tuple, "source_port", 0),
        lambda m: setattr(m.five_tuple, "destination_port", 70000),
        lambda m: setattr(m.five_tuple, "source_ip", "::1"),
        lambda m: setattr(m.five_tuple, "destination_ip", "not an address"),
        lambda m: setattr(m.five_tuple, "protocol", 99),
        lambda m: setattr(m.trace_context, "traceparent", "t" * 56),
        lambda m: setattr(m.timestamp, "nanos", -1),
    ):
        msg = trust_profile_pb2.TrustProfile.FromString(payload)
        mutate(msg)
        refused(ReasonCode.MALFORMED_PROFILE, _codec.parse_profile_message, msg.SerializeToString())


# --- primitives -------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    key=st.binary(min_size=0, max_size=64),
    prefix=st.binary(max_size=20),
    payload=st.binary(max_size=2000),
)
def test_precomputed_hmac_is_hmac_sha256(key: bytes, prefix: bytes, payload: bytes) -> None:
    expected = hmac.digest(
        key, prefix + _crypto.pae("trustwire.api.enforcer.v1.TrustProfile", payload), "sha256"
    )
    assert _session._KeyedHmac(key, prefix).tag(payload) == expected
    assert _session.sealed_mac_input(prefix, payload) == prefix + _crypto.pae(
        "trustwire.api.enforcer.v1.TrustProfile", payload
    )


def test_bench_runs_and_measures_what_it_claims() -> None:
    from bench.trust_profile import render, run

    report = run(24, 0.05)
    assert report.ok, render(report)
    assert report.sealed_cached_public_key_ops == 0.0
    assert report.sealed_cold_public_key_ops == 1.0
    assert report.profile_bytes_sealed < report.profile_bytes_reference
