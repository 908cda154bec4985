"""Trust Profile verification: the happy paths and every refusal, each with its reason code."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from trustwire.errors import PermissionDenied
from trustwire.identity import (
    BundleSet,
    Credential,
    DocumentIssuer,
    FiveTuple,
    IssuedDocument,
    ProfileSigner,
    ProfileVerifier,
    ReasonCode,
    RevocationList,
    SignatureAlgorithm,
    TrustBundle,
    VerificationError,
    _codec,
)
from trustwire.identity._envelope import DOCUMENT_PAYLOAD_TYPE, SignedEnvelope

from .conftest import TYPICAL_TUPLE, raw_document, raw_profile, typical_profile
from .pki import (
    T0,
    TD_A,
    TD_B,
    World,
    enforcer_credential,
    fixed_key,
    make_ca,
    make_leaf,
    typical_attestation,
)


def refused(code: ReasonCode, verifier: ProfileVerifier, envelope: bytes, **kwargs: object) -> None:
    observed = kwargs.pop("observed", TYPICAL_TUPLE)
    with pytest.raises(VerificationError) as info:
        verifier.verify(envelope, observed, **kwargs)  # type: ignore[arg-type]
    assert info.value.code is code, str(info.value)
    assert info.value.reason == code.value
    assert isinstance(info.value, PermissionDenied)


# --- happy paths ------------------------------------------------------------------------------


def test_profile_by_channel_reference_verifies(
    world: World, signer: ProfileSigner, document: IssuedDocument, verifier: ProfileVerifier
) -> None:
    envelope = typical_profile(signer, document)
    verified = verifier.verify(envelope, TYPICAL_TUPLE, peer_chain=world.node1.chain_der)
    assert str(verified.signer) == "spiffe://cluster-a.example/enforcer/node-1"
    assert verified.pu_id == "shop/web-7d4b9c8f5-x2x9q"
    assert verified.trust_domain == TD_A
    assert verified.labels["app"] == "web"
    assert verified.labels["namespace"] == "shop"
    assert verified.labels["enforcer"] == "node-1"
    assert verified.labels["trust-domain"] == "cluster-a.example"
    assert verified.labels["user"] == "1000"
    assert verified.profile.reputation_score == pytest.approx(0.93)
    assert verified.profile.destination_service == "db.shop.svc:5432"
    assert verified.profile.trace_context.traceparent.startswith("00-4bf92f")


def test_profile_with_inline_chain_verifies_without_channel(
    signer: ProfileSigner, document: IssuedDocument, verifier: ProfileVerifier
) -> None:
    envelope = typical_profile(signer, document, inline_chain=True)
    assert verifier.verify(envelope, TYPICAL_TUPLE).document == document.document


def test_typical_profile_fits_in_one_kib(signer: ProfileSigner, document: IssuedDocument) -> None:
    assert len(typical_profile(signer, document)) <= 1024


def test_answer_profile_is_bound_to_the_request(
    world: World, document: IssuedDocument, verifier: ProfileVerifier
) -> None:
    request = ProfileSigner(world.node1, clock=world.clock).sign(document.envelope, TYPICAL_TUPLE)
    answer = ProfileSigner(world.node1, clock=world.clock).sign(
        document.envelope, TYPICAL_TUPLE, peer_nonce=request.profile.nonce
    )
    verified = verifier.verify(
        answer.envelope,
        TYPICAL_TUPLE,
        peer_chain=world.node1.chain_der,
        expected_peer_nonce=request.profile.nonce,
    )
    assert verified.profile.peer_nonce == request.profile.nonce


def test_answer_bound_to_another_request_is_replayed(
    world: World, signer: ProfileSigner, document: IssuedDocument, verifier: ProfileVerifier
) -> None:
    answer = signer.sign(document.envelope, TYPICAL_TUPLE, peer_nonce=b"\x01" * 16)
    refused(
        ReasonCode.REPLAYED,
        verifier,
        answer.envelope,
        peer_chain=world.node1.chain_der,
        expected_peer_nonce=b"\x02" * 16,
    )
    # An answer is never accepted where a request is expected (reflection).
    refused(ReasonCode.REPLAYED, verifier, answer.envelope, peer_chain=world.node1.chain_der)


def test_federated_domain_profile_verifies_against_its_own_bundle(
    world: World, verifier: ProfileVerifier
) -> None:
    doc_b = world.issuer_b.issue(
        pu_id="api", enforcer_id="node-9", labels={}, attestation=typical_attestation()
    )
    envelope = ProfileSigner(world.node_b, clock=world.clock).sign(doc_b.envelope, TYPICAL_TUPLE)
    verified = verifier.verify(envelope.envelope, TYPICAL_TUPLE, peer_chain=world.node_b.chain_der)
    assert verified.trust_domain == TD_B


def test_ca_rollover_bundle_accepts_both_cas(world: World, document: IssuedDocument) -> None:
    next_ca = make_ca(TD_A, label="next ca", serial=2, common_name="Trustwire CA next")
    rolled = BundleSet.of(TrustBundle(TD_A, (world.ca_a.cert, next_ca.cert)))
    verifier = ProfileVerifier(rolled, clock=world.clock)
    new_node = enforcer_credential(next_ca, "node-1", label="node-1 next")
    new_doc = DocumentIssuer(TD_A, next_ca.credential, clock=world.clock).issue(
        pu_id="p", enforcer_id="node-1", labels={}, attestation=typical_attestation()
    )
    for cred, doc in ((world.node1, document), (new_node, new_doc)):
        env = ProfileSigner(cred, clock=world.clock).sign(doc.envelope, TYPICAL_TUPLE)
        verifier.verify(env.envelope, TYPICAL_TUPLE, peer_chain=cred.chain_der)


def test_document_signed_by_identity_service_certificate(world: World) -> None:
    key = fixed_key("identity service a")
    cert = make_leaf(world.ca_a, "spiffe://cluster-a.example/service/identity", key=key)
    issuer = DocumentIssuer(TD_A, Credential(key, cert), clock=world.clock)
    doc = issuer.issue(
        pu_id="p", enforcer_id="node-1", labels={}, attestation=typical_attestation()
    )
    assert _codec.decode_envelope(doc.envelope).signer_chain_der  # the chain travels
    verifier = ProfileVerifier(world.bundles, clock=world.clock)
    env = ProfileSigner(world.node1, clock=world.clock).sign(doc.envelope, TYPICAL_TUPLE)
    verifier.verify(env.envelope, TYPICAL_TUPLE, peer_chain=world.node1.chain_der)


# --- refusals, one reason code each -----------------------------------------------------------


def test_replay_is_refused(
    world: World, signer: ProfileSigner, document: IssuedDocument, verifier: ProfileVerifier
) -> None:
    envelope = typical_profile(signer, document)
    verifier.verify(envelope, TYPICAL_TUPLE, peer_chain=world.node1.chain_der)
    world.clock.advance(29)
    refused(ReasonCode.REPLAYED, verifier, envelope, peer_chain=world.node1.chain_der)
    # The same profile through the other path (inline chain) is still a replay.
    inline = _codec.decode_envelope(envelope)
    reencoded = _codec.encode_envelope(
        SignedEnvelope(
            inline.payload,
            inline.payload_type,
            inline.signature,
            inline.algorithm,
            world.node1.chain_der,
        )
    )
    refused(ReasonCode.REPLAYED, verifier, reencoded)
    # Once the window has passed, the timestamp refuses it: never accepted twice.
    world.clock.advance(2)
    refused(ReasonCode.CLOCK_SKEW, verifier, envelope, peer_chain=world.node1.chain_der)


@pytest.mark.parametrize("seconds", [31, -31, 600, -600])
def test_clock_skew_beyond_the_window_is_refused(
    world: World,
    signer: ProfileSigner,
    document: IssuedDocument,
    verifier: ProfileVerifier,
    seconds: int,
) -> None:
    envelope = typical_profile(signer, document)
    world.clock.advance(seconds)
    refused(ReasonCode.CLOCK_SKEW, verifier, envelope, peer_chain=world.node1.chain_der)


@pytest.mark.parametrize("seconds", [30, -30])
def test_clock_skew_at_the_window_edge_is_accepted(
    world: World,
    signer: ProfileSigner,
    document: IssuedDocument,
    verifier: ProfileVerifier,
    seconds: int,
) -> None:
    envelope = typical_profile(signer, document)
    world.clock.advance(seconds)
    verifier.verify(envelope, TYPICAL_TUPLE, peer_chain=world.node1.chain_der)


def test_expired_document_is_refused(
    world: World, signer: ProfileSigner, verifier: ProfileVerifier
) -> None:
    short = world.issuer_a.issue(
        pu_id="p",
        enforcer_id="node-1",
        labels={},
        attestation=typical_attestation(),
        ttl=timedelta(minutes=5),
    )
    world.clock.advance(5 * 60)
    refused(
        ReasonCode.EXPIRED,
        verifier,
        signer.sign(short.envelope, TYPICAL_TUPLE).envelope,
        peer_chain=world.node1.chain_der,
    )


def test_document_from_the_future_is_refused(
    world: World, signer: ProfileSigner, verifier: ProfileVerifier
) -> None:
    world.clock.advance(120)
    future = world.issuer_a.issue(
        pu_id="p", enforcer_id="node-1", labels={}, attestation=typical_attestation()
    )
    world.clock.advance(-120)
    refused(
        ReasonCode.NOT_YET_VALID,
        verifier,
        signer.sign(future.envelope, TYPICAL_TUPLE).envelope,
        peer_chain=world.node1.chain_der,
    )


def test_expired_enforcer_certificate_is_refused(
    world: World, document: IssuedDocument, verifier: ProfileVerifier
) -> None:
    expired = enforcer_credential(
        world.ca_a,
        "node-1",
        not_before=T0 - timedelta(hours=2),
        not_after=T0 - timedelta(seconds=1),
    )
    envelope = ProfileSigner(expired, clock=world.clock).sign(document.envelope, TYPICAL_TUPLE)
    refused(ReasonCode.EXPIRED, verifier, envelope.envelope, peer_chain=expired.chain_der)


def test_not_yet_valid_enforcer_certificate_is_refused(
    world: World, document: IssuedDocument, verifier: ProfileVerifier
) -> None:
    early = enforcer_credential(
        world.ca_a,
        "node-1",
        not_before=T0 + timedelta(minutes=5),
        not_after=T0 + timedelta(hours=1),
    )
    envelope = ProfileSigner(early, clock=world.clock).sign(document.envelope, TYPICAL_TUPLE)
    refused(ReasonCode.NOT_YET_VALID, verifier, envelope.envelope, peer_chain=early.chain_der)


def test_revoked_enforcer_is_refused_by_id_and_by_serial(
    world: World, signer: ProfileSigner, document: IssuedDocument
) -> None:
    by_id = ProfileVerifier(
        world.bundles, [RevocationList(TD_A, enforcer_ids=frozenset({"node-1"}))], clock=world.clock
    )
    refused(
        ReasonCode.REVOKED,
        by_id,
        typical_profile(signer, document),
        peer_chain=world.node1.chain_der,
    )
    serial = world.node1.certificate.serial_number
    by_serial = ProfileVerifier(
        world.bundles, [RevocationList(TD_A, serials=frozenset({serial}))], clock=world.clock
    )
    refused(
        ReasonCode.REVOKED,
        by_serial,
        typical_profile(signer, document),
        peer_chain=world.node1.chain_der,
    )


def test_revocation_takes_effect_on_a_warm_verifier(
    world: World, signer: ProfileSigner, document: IssuedDocument, verifier: ProfileVerifier
) -> None:
    verifier.verify(
        typical_profile(signer, document), TYPICAL_TUPLE, peer_chain=world.node1.chain_der
    )
    assert verifier.update_revocations(
        RevocationList(TD_A, enforcer_ids=frozenset({"node-1"}), sequence_number=1)
    )
    refused(
        ReasonCode.REVOKED,
        verifier,
        typical_profile(signer, document),
        peer_chain=world.node1.chain_der,
    )
    # A stale list (lower sequence) does not undo it.
    assert not verifier.update_revocations(RevocationList(TD_A, sequence_number=0))
    refused(
        ReasonCode.REVOKED,
        verifier,
        typical_profile(signer, document),
        peer_chain=world.node1.chain_der,
    )


def test_foreign_ca_not_in_any_bundle_is_refused(world: World, document: IssuedDocument) -> None:
    # Only domain A is trusted: a profile from domain B's enforcer is from a foreign domain.
    verifier = ProfileVerifier(BundleSet.of(world.ca_a.bundle), clock=world.clock)
    doc_b = world.issuer_b.issue(
        pu_id="api", enforcer_id="node-9", labels={}, attestation=typical_attestation()
    )
    envelope = ProfileSigner(world.node_b, clock=world.clock).sign(doc_b.envelope, TYPICAL_TUPLE)
    refused(
        ReasonCode.FOREIGN_TRUST_DOMAIN,
        verifier,
        envelope.envelope,
        peer_chain=world.node_b.chain_der,
    )


def test_certificate_from_domain_b_claiming_domain_a_is_refused(
    world: World, document: IssuedDocument, verifier: ProfileVerifier
) -> None:
    # B's CA (trusted, but only for B) certifies a key as spiffe://cluster-a.example/...
    impostor_cert = make_leaf(
        world.ca_b, "spiffe://cluster-a.example/enforcer/node-1", key=fixed_key("impostor")
    )
    impostor = Credential(fixed_key("impostor"), impostor_cert)
    envelope = ProfileSigner(impostor, clock=world.clock).sign(document.envelope, TYPICAL_TUPLE)
    refused(ReasonCode.UNKNOWN_CA, verifier, envelope.envelope, peer_chain=impostor.chain_der)


def test_rogue_ca_with_the_same_name_is_refused(
    world: World, document: IssuedDocument, verifier: ProfileVerifier
) -> None:
    rogue = make_ca(TD_A, label="rogue")  # same subject name as A's CA, another key
    cred = enforcer_credential(rogue, "node-1", label="rogue node")
    envelope = ProfileSigner(cred, clock=world.clock).sign(document.envelope, TYPICAL_TUPLE)
    refused(ReasonCode.UNKNOWN_CA, verifier, envelope.envelope, peer_chain=cred.chain_der)


def test_document_of_another_enforcer_is_refused(
    world: World, document: IssuedDocument, verifier: ProfileVerifier
) -> None:
    # node-2 presents node-1's PU document (valid, same domain) as its own.
    envelope = ProfileSigner(world.node2, clock=world.clock).sign(document.envelope, TYPICAL_TUPLE)
    refused(
        ReasonCode.DOCUMENT_ENFORCER_MISMATCH,
        verifier,
        envelope.envelope,
        peer_chain=world.node2.chain_der,
    )


def test_document_of_another_domain_is_refused(world: World, verifier: ProfileVerifier) -> None:
    # B's enforcer node-9 presents a document of A (even one naming node-9): A's CA does not
    # vouch for B's PUs and the document does not chain to B's bundle.
    doc_a = world.issuer_a.issue(
        pu_id="p", enforcer_id="node-9", labels={}, attestation=typical_attestation()
    )
    envelope = ProfileSigner(world.node_b, clock=world.clock).sign(doc_a.envelope, TYPICAL_TUPLE)
    refused(
        ReasonCode.BAD_SIGNATURE, verifier, envelope.envelope, peer_chain=world.node_b.chain_der
    )


@pytest.mark.parametrize(
    "observed",
    [
        FiveTuple.of("UDP", "10.1.2.3", 43512, "10.1.7.9", 5432),
        FiveTuple.of("TCP", "10.1.2.4", 43512, "10.1.7.9", 5432),
        FiveTuple.of("TCP", "10.1.2.3", 43513, "10.1.7.9", 5432),
        FiveTuple.of("TCP", "10.1.2.3", 43512, "10.1.7.8", 5432),
        FiveTuple.of("TCP", "10.1.2.3", 43512, "10.1.7.9", 5433),
    ],
)
def test_address_mismatch_is_refused(
    world: World,
    signer: ProfileSigner,
    document: IssuedDocument,
    verifier: ProfileVerifier,
    observed: FiveTuple,
) -> None:
    refused(
        ReasonCode.ADDRESS_MISMATCH,
        verifier,
        typical_profile(signer, document),
        peer_chain=world.node1.chain_der,
        observed=observed,
    )


def test_document_passed_as_profile_is_wrong_payload_type(
    world: World, document: IssuedDocument, verifier: ProfileVerifier
) -> None:
    refused(
        ReasonCode.WRONG_PAYLOAD_TYPE, verifier, document.envelope, peer_chain=world.node1.chain_der
    )


def test_profile_signed_as_document_type_is_refused(
    world: World, signer: ProfileSigner, document: IssuedDocument, verifier: ProfileVerifier
) -> None:
    # Relabel the payload type: PAE binds it, so even a matching type string would not verify.
    env = _codec.decode_envelope(typical_profile(signer, document))
    relabelled = _codec.encode_envelope(
        SignedEnvelope(env.payload, DOCUMENT_PAYLOAD_TYPE, env.signature, env.algorithm)
    )
    refused(ReasonCode.WRONG_PAYLOAD_TYPE, verifier, relabelled, peer_chain=world.node1.chain_der)


def test_garbage_is_malformed(world: World, verifier: ProfileVerifier) -> None:
    refused(
        ReasonCode.MALFORMED_PROFILE, verifier, b"\xff\xff\xff", peer_chain=world.node1.chain_der
    )
    refused(ReasonCode.MALFORMED_PROFILE, verifier, b"\x00" * 9000)


def test_no_chain_and_no_channel_certificate_is_malformed(
    signer: ProfileSigner, document: IssuedDocument, verifier: ProfileVerifier
) -> None:
    refused(ReasonCode.MALFORMED_PROFILE, verifier, typical_profile(signer, document))


def test_channel_reference_to_another_enforcer_does_not_verify(
    world: World, signer: ProfileSigner, document: IssuedDocument, verifier: ProfileVerifier
) -> None:
    # node-1's profile arrives on node-2's channel: node-2's key did not sign it.
    refused(
        ReasonCode.BAD_SIGNATURE,
        verifier,
        typical_profile(signer, document),
        peer_chain=world.node2.chain_der,
    )


def test_inline_signer_must_be_the_channel_peer(
    world: World, signer: ProfileSigner, document: IssuedDocument, verifier: ProfileVerifier
) -> None:
    refused(
        ReasonCode.CERTIFICATE_INVALID,
        verifier,
        typical_profile(signer, document, inline_chain=True),
        peer_chain=world.node2.chain_der,
    )


@pytest.mark.parametrize(
    "defect",
    [
        {"digital_signature": False},
        {"eku": (ExtendedKeyUsageOID.CLIENT_AUTH,)},
        {"eku": ()},
        {
            "uris": (
                "spiffe://cluster-a.example/enforcer/node-1",
                "spiffe://cluster-a.example/enforcer/x",
            )
        },
        {"uris": ("https://cluster-a.example/enforcer/node-1",)},
        {"ca_flag": True},
    ],
    ids=["no-digital-signature", "eku-client-only", "no-eku", "two-uris", "not-spiffe", "ca"],
)
def test_unfit_enforcer_certificate_is_refused(
    world: World, document: IssuedDocument, verifier: ProfileVerifier, defect: dict[str, object]
) -> None:
    key = fixed_key("defective node-1")
    cert = make_leaf(
        world.ca_a,
        "spiffe://cluster-a.example/enforcer/node-1",
        key=key,
        **defect,  # type: ignore[arg-type]
    )
    chain = (cert_der(cert),)
    envelope = raw_profile(key, chain, document.envelope, when=world.clock())
    refused(ReasonCode.CERTIFICATE_INVALID, verifier, envelope, peer_chain=chain)


def test_service_certificate_cannot_sign_profiles(
    world: World, document: IssuedDocument, verifier: ProfileVerifier
) -> None:
    key = fixed_key("policy service")
    chain = (cert_der(make_leaf(world.ca_a, "spiffe://cluster-a.example/service/policy", key=key)),)
    envelope = raw_profile(key, chain, document.envelope, when=world.clock())
    refused(ReasonCode.CERTIFICATE_INVALID, verifier, envelope, peer_chain=chain)


def test_enforcer_cannot_mint_identity_documents(
    world: World, signer: ProfileSigner, document: IssuedDocument, verifier: ProfileVerifier
) -> None:
    # node-1's certificate chains to A's CA; a document it signs itself must still be refused.
    forged = raw_document(world.node1.private_key, world.node1.chain_der, document.document)
    refused(
        ReasonCode.CERTIFICATE_INVALID,
        verifier,
        signer.sign(forged, TYPICAL_TUPLE).envelope,
        peer_chain=world.node1.chain_der,
    )
    # Without the chain, no CA of the bundle made the signature.
    unchained = raw_document(world.node1.private_key, (), document.document)
    refused(
        ReasonCode.BAD_SIGNATURE,
        verifier,
        signer.sign(unchained, TYPICAL_TUPLE).envelope,
        peer_chain=world.node1.chain_der,
    )


def test_unspecified_algorithm_is_bad_signature(
    world: World, signer: ProfileSigner, document: IssuedDocument, verifier: ProfileVerifier
) -> None:
    env = _codec.decode_envelope(typical_profile(signer, document))
    unsigned = _codec.encode_envelope(
        SignedEnvelope(env.payload, env.payload_type, env.signature, SignatureAlgorithm.UNSPECIFIED)
    )
    refused(ReasonCode.BAD_SIGNATURE, verifier, unsigned, peer_chain=world.node1.chain_der)


def cert_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)
