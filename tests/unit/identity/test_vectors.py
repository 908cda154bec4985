"""The checked-in test vectors (tests/vectors/trust_profile) agree with this implementation, and
the generator reproduces them byte for byte."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from trustwire.api.enforcer.v1 import authorization_service_pb2 as pb
from trustwire.identity import (
    DOCUMENT_PAYLOAD_TYPE,
    PROFILE_PAYLOAD_TYPE,
    BundleSet,
    Credential,
    FiveTuple,
    ProfileVerifier,
    RevocationList,
    Session,
    SessionManager,
    SignatureAlgorithm,
    TrustBundle,
    TrustDomain,
    VerificationError,
    _codec,
    _crypto,
    _session,
)

from .pki import FakeClock

VECTORS_DIR = Path(__file__).resolve().parents[2] / "vectors" / "trust_profile"
VECTORS: dict[str, Any] = json.loads((VECTORS_DIR / "vectors.json").read_text())


def cert(name: str) -> x509.Certificate:
    return x509.load_der_x509_certificate(base64.b64decode(VECTORS["certificates"][name]))


def der(name: str) -> bytes:
    return base64.b64decode(VECTORS["certificates"][name])


def test_format_and_coverage() -> None:
    assert VECTORS["format"] == "trustwire-trust-profile-vectors/v1"
    expected = {step["expect"] for v in VECTORS["vectors"] for step in v["steps"]}
    assert expected >= {
        "OK",
        "BAD_SIGNATURE",
        "MALFORMED_PROFILE",
        "EXPIRED",
        "NOT_YET_VALID",
        "REVOKED",
        "REPLAYED",
        "CLOCK_SKEW",
        "FOREIGN_TRUST_DOMAIN",
        "UNKNOWN_CA",
        "ADDRESS_MISMATCH",
        "DOCUMENT_ENFORCER_MISMATCH",
        "WRONG_PAYLOAD_TYPE",
        "CERTIFICATE_INVALID",
    }


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_vector(vector: dict[str, Any]) -> None:
    bundles = BundleSet.of(
        *(
            TrustBundle(TrustDomain(td), tuple(cert(name) for name in names))
            for td, names in VECTORS["bundles"].items()
        )
    )
    revocations = [
        RevocationList(
            TrustDomain(td),
            serials=frozenset(RevocationList.parse_serial(s) for s in spec["serials"]),
            enforcer_ids=frozenset(spec["enforcer_ids"]),
        )
        for td, spec in vector.get("revocations", {}).items()
    ]
    clock = FakeClock()
    verifier = ProfileVerifier(bundles, revocations, clock=clock)
    for step in vector["steps"]:
        clock.now = datetime.fromisoformat(step["now"])
        observed = FiveTuple.of(**step["observed"])
        peer_nonce = step["expected_peer_nonce_hex"]
        try:
            verifier.verify(
                bytes.fromhex(step["envelope_hex"]),
                observed,
                peer_chain=tuple(der(name) for name in step["peer_chain"]) or None,
                expected_peer_nonce=None if peer_nonce is None else bytes.fromhex(peer_nonce),
            )
            outcome = "OK"
        except VerificationError as exc:
            outcome = exc.code.value
        assert outcome == step["expect"], vector["description"]


@pytest.mark.parametrize(
    ("section", "payload_type", "signer"),
    [
        ("reference_document", DOCUMENT_PAYLOAD_TYPE, "ca-a"),
        ("reference_profile", PROFILE_PAYLOAD_TYPE, "node-1"),
    ],
)
def test_reference_bytes(section: str, payload_type: str, signer: str) -> None:
    ref = VECTORS[section]
    envelope = _codec.decode_envelope(bytes.fromhex(ref["envelope_hex"]))
    payload = bytes.fromhex(ref["payload_hex"])
    assert envelope.payload == payload
    assert envelope.payload_type == payload_type
    pae = bytes.fromhex(ref["pae_hex"])
    assert pae == _crypto.pae(payload_type, payload)
    assert pae.startswith(
        b"DSSEv1 %d %b %d " % (len(payload_type), payload_type.encode(), len(payload))
    )
    # The signature verifies under the signer's published public key (not re-created).
    key = serialization.load_der_public_key(
        base64.b64decode(VECTORS["keys"][signer]["public_key_spki_b64"])
    )
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert _crypto.ecdsa_verify(key, bytes.fromhex(ref["signature_hex"]), pae)
    assert cert(signer).public_key() == key


def test_encoding_is_reproduced_from_the_fields() -> None:
    # Decoding and re-encoding the reference payloads gives the same bytes: the encoding is
    # deterministic and this implementation produces exactly what the spec describes.
    doc_payload = bytes.fromhex(VECTORS["reference_document"]["payload_hex"])
    document = _codec.decode_document(doc_payload)
    assert _codec.encode_document(document) == doc_payload
    fields = VECTORS["reference_document"]["fields"]
    assert document.document_id == fields["document_id"]
    assert dict(document.labels) == fields["labels"]
    assert dict(document.policy_labels) == VECTORS["reference_document"]["policy_labels"]
    profile_payload = bytes.fromhex(VECTORS["reference_profile"]["payload_hex"])
    assert _codec.encode_profile(_codec.decode_profile(profile_payload)) == profile_payload


def test_reference_profile_is_within_one_kib() -> None:
    assert VECTORS["reference_profile"]["envelope_bytes"] <= 1024


def test_generator_reproduces_the_files() -> None:
    spec = importlib.util.spec_from_file_location(
        "trust_profile_vectors", VECTORS_DIR / "generate.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, content in module.build().items():
        assert (VECTORS_DIR / name).read_bytes() == content, f"{name} is stale: run generate.py"


# --- channel sessions -------------------------------------------------------------------------

SESSION: dict[str, Any] = VECTORS["session"]


def _bundles() -> BundleSet:
    return BundleSet.of(
        *(
            TrustBundle(TrustDomain(td), tuple(cert(name) for name in names))
            for td, names in VECTORS["bundles"].items()
        )
    )


def _enforcer_credential(name: str) -> Credential:
    scalar = int(VECTORS["keys"][name]["private_scalar_hex"], 16)
    return Credential(ec.derive_private_key(scalar, ec.SECP256R1()), cert(name))


def _ephemeral(side: str) -> tuple[X25519PrivateKey, bytes]:
    return (
        X25519PrivateKey.from_private_bytes(bytes.fromhex(SESSION[side]["ephemeral_private_hex"])),
        bytes.fromhex(SESSION[side]["random_hex"]),
    )


def test_session_key_schedule_from_the_primitives() -> None:
    hexed = {k: bytes.fromhex(v) for k, v in SESSION.items() if k.endswith("_hex")}
    transcript = _session.encode_transcript(
        initiator=SESSION["initiator"]["spiffe_id"],
        responder=SESSION["responder"]["spiffe_id"],
        initiator_ephemeral=bytes.fromhex(SESSION["initiator"]["ephemeral_public_hex"]),
        responder_ephemeral=bytes.fromhex(SESSION["responder"]["ephemeral_public_hex"]),
        initiator_random=bytes.fromhex(SESSION["initiator"]["random_hex"]),
        responder_random=bytes.fromhex(SESSION["responder"]["random_hex"]),
        not_before=SESSION["not_before_unix"],
        not_after=SESSION["not_after_unix"],
    )
    assert transcript == hexed["transcript_hex"]
    # The transcript starts with the length-prefixed protocol label.
    assert transcript.startswith(b"\x00\x14trustwire-session-v1\x00\x2aspiffe:")
    assert hashlib.sha256(transcript).digest() == hexed["transcript_sha256_hex"]
    private_i, _ = _ephemeral("initiator")
    shared = private_i.exchange(
        X25519PublicKey.from_public_bytes(
            bytes.fromhex(SESSION["responder"]["ephemeral_public_hex"])
        )
    )
    assert shared == hexed["shared_secret_hex"]
    keys = _session.derive_session_keys(shared, transcript)
    assert keys.session_id == hexed["session_id_hex"]
    assert keys.initiator_key == hexed["initiator_key_hex"]
    assert keys.responder_key == hexed["responder_key_hex"]
    # HKDF spelled out (RFC 5869), so the labels in the JSON are exactly what is used.
    prk = hmac.new(hashlib.sha256(transcript).digest(), shared, "sha256").digest()
    for name, out in (
        ("session_id", keys.session_id),
        ("initiator_key", keys.initiator_key),
        ("responder_key", keys.responder_key),
    ):
        spec = SESSION["kdf"][name]
        okm = hmac.new(prk, spec["info"].encode() + b"\x01", "sha256").digest()[: spec["length"]]
        assert okm == out
    # Signatures verify under the enforcers' published keys, each over its own context.
    for role, signer in (("responder", "node-2"), ("initiator", "node-1")):
        signed = hexed[f"{role}_signed_hex"]
        assert signed == _session.signed_transcript(_session.SessionRole(role), transcript)
        assert signed.startswith(f"trustwire-session-v1 {role} signature\x00".encode())
        key = cert(signer).public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert _crypto.ecdsa_verify(key, hexed[f"{role}_signature_hex"], signed)
    # The sealed reference profile: tag = HMAC(initiator key, session_id || PAE).
    sealed = SESSION["sealed_profile"]
    payload = bytes.fromhex(sealed["payload_hex"])
    mac_input = bytes.fromhex(sealed["mac_input_hex"])
    assert mac_input == keys.session_id + _crypto.pae(PROFILE_PAYLOAD_TYPE, payload)
    assert hmac.new(keys.initiator_key, mac_input, "sha256").digest() == bytes.fromhex(
        sealed["tag_hex"]
    )
    envelope = _codec.decode_envelope(bytes.fromhex(sealed["envelope_hex"]))
    assert envelope.algorithm is SignatureAlgorithm.HMAC_SHA256_SESSION
    assert envelope.session_id == keys.session_id
    assert envelope.signature == bytes.fromhex(sealed["tag_hex"])
    assert envelope.signer_chain_der == ()
    assert sealed["envelope_bytes"] <= 1024


def _handshake_at_t0() -> tuple[ProfileVerifier, Session, Session]:
    """``SessionManager`` on both sides with the vectors' ephemeral inputs, fed the vectors'
    messages: it must produce the same messages (up to randomized ECDSA) and accept them."""
    clock = FakeClock(datetime.fromisoformat(VECTORS["clock"]))
    node1, node2 = _enforcer_credential("node-1"), _enforcer_credential("node-2")
    verifier_1 = ProfileVerifier(_bundles(), clock=clock)
    verifier_2 = ProfileVerifier(_bundles(), clock=clock)
    initiator = SessionManager(node1, verifier_1)
    responder = SessionManager(node2, verifier_2)
    state, request = initiator.initiate(ephemeral=_ephemeral("initiator"))
    assert request.hex() == SESSION["open_session_request_hex"]
    response = responder.respond(
        request, peer_chain=node1.chain_der, ephemeral=_ephemeral("responder")
    )
    ours = pb.OpenSessionResponse.FromString(response)
    theirs = pb.OpenSessionResponse.FromString(bytes.fromhex(SESSION["open_session_response_hex"]))
    ours.signature = theirs.signature  # ours is randomized ECDSA; everything else must match
    assert ours == theirs
    session_1, confirm = initiator.complete(
        state, bytes.fromhex(SESSION["open_session_response_hex"]), peer_chain=node2.chain_der
    )
    assert pb.ConfirmSessionRequest.FromString(confirm).session_id == theirs.session_id
    session_2 = responder.confirm(
        bytes.fromhex(SESSION["confirm_session_request_hex"]), peer_chain=node1.chain_der
    )
    return verifier_2, session_1, session_2


def test_session_manager_reproduces_the_handshake() -> None:
    _, session_1, session_2 = _handshake_at_t0()
    session_id = bytes.fromhex(SESSION["session_id_hex"])
    assert session_1.session_id == session_2.session_id == session_id
    assert session_1.not_after.isoformat().replace("+00:00", "Z") == SESSION["not_after"]
    sealed = SESSION["sealed_profile"]
    payload = bytes.fromhex(sealed["payload_hex"])
    assert session_1.seal_tag(payload).hex() == sealed["tag_hex"]
    assert session_2.expected_tag(payload).hex() == sealed["tag_hex"]


@pytest.mark.parametrize("vector", VECTORS["session_vectors"], ids=lambda v: v["name"])
def test_session_vector(vector: dict[str, Any]) -> None:
    verifier, _, _ = _handshake_at_t0()
    clock = verifier.clock
    assert isinstance(clock, FakeClock)
    for step in vector["steps"]:
        clock.now = datetime.fromisoformat(step["now"])
        peer_nonce = step["expected_peer_nonce_hex"]
        try:
            verifier.verify(
                bytes.fromhex(step["envelope_hex"]),
                FiveTuple.of(**step["observed"]),
                peer_chain=tuple(der(name) for name in step["peer_chain"]) or None,
                expected_peer_nonce=None if peer_nonce is None else bytes.fromhex(peer_nonce),
            )
            outcome = "OK"
        except VerificationError as exc:
            outcome = exc.code.value
        assert outcome == step["expect"], vector["description"]
