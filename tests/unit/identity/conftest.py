from __future__ import annotations

import secrets
from datetime import datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from trustwire.identity import (
    DOCUMENT_PAYLOAD_TYPE,
    PROFILE_PAYLOAD_TYPE,
    FiveTuple,
    IdentityDocument,
    IssuedDocument,
    ProfileSigner,
    ProfileVerifier,
    SignatureAlgorithm,
    SignedEnvelope,
    TraceContext,
    TrustProfile,
    _codec,
    _crypto,
)

from .pki import TYPICAL_LABELS, World, make_world, typical_attestation

TYPICAL_TUPLE = FiveTuple.of("TCP", "10.1.2.3", 43512, "10.1.7.9", 5432)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def world() -> World:
    return make_world()


@pytest.fixture
def document(world: World) -> IssuedDocument:
    return world.issuer_a.issue(
        pu_id="shop/web-7d4b9c8f5-x2x9q",
        enforcer_id="node-1",
        labels=TYPICAL_LABELS,
        attestation=typical_attestation(),
    )


@pytest.fixture
def signer(world: World) -> ProfileSigner:
    return ProfileSigner(world.node1, clock=world.clock)


@pytest.fixture
def verifier(world: World) -> ProfileVerifier:
    return ProfileVerifier(world.bundles, clock=world.clock)


def typical_profile(signer: ProfileSigner, document: IssuedDocument, **kwargs: object) -> bytes:
    options: dict[str, object] = {
        "destination_service": "db.shop.svc:5432",
        "behaviour_score": 0.12,
        "reputation_score": 0.93,
        "trace_context": TraceContext(TRACEPARENT),
    }
    options.update(kwargs)
    return signer.sign(document.envelope, TYPICAL_TUPLE, **options).envelope  # type: ignore[arg-type]


def raw_profile(
    key: ec.EllipticCurvePrivateKey,
    chain_der: tuple[bytes, ...],
    document_envelope: bytes,
    *,
    when: datetime,
    five_tuple: FiveTuple = TYPICAL_TUPLE,
    inline: bool = False,
) -> bytes:
    """A profile signed by any key, bypassing ProfileSigner's own checks (to test that the
    verifier refuses what an honest signer would never produce)."""
    profile = TrustProfile(
        identity_document=_codec.decode_envelope(document_envelope),
        five_tuple=five_tuple,
        nonce=secrets.token_bytes(16),
        timestamp=when,
    )
    payload = _codec.encode_profile(profile)
    return _codec.encode_envelope(
        SignedEnvelope(
            payload,
            PROFILE_PAYLOAD_TYPE,
            _crypto.ecdsa_sign(key, _crypto.pae(PROFILE_PAYLOAD_TYPE, payload)),
            SignatureAlgorithm.ECDSA_P256_SHA256,
            chain_der if inline else (),
        )
    )


def raw_document(
    key: ec.EllipticCurvePrivateKey, chain_der: tuple[bytes, ...], document: IdentityDocument
) -> bytes:
    payload = _codec.encode_document(document)
    return _codec.encode_envelope(
        SignedEnvelope(
            payload,
            DOCUMENT_PAYLOAD_TYPE,
            _crypto.ecdsa_sign(key, _crypto.pae(DOCUMENT_PAYLOAD_TYPE, payload)),
            SignatureAlgorithm.ECDSA_P256_SHA256,
            chain_der,
        )
    )
