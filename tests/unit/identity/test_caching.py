"""Cost rules: public-key work happens once per chain and once per document; everything that
depends on time or revocation is still checked on every call. Public-key operations are
counted by wrapping the two functions that perform them (independently of the verifier's own
counters, which are checked to agree)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from trustwire.errors import ResourceExhausted
from trustwire.identity import (
    BundleSet,
    IssuedDocument,
    ProfileSigner,
    ProfileVerifier,
    ReasonCode,
    RevocationList,
    VerificationError,
    _crypto,
)
from trustwire.identity._replay import ReplayCache

from .conftest import TYPICAL_TUPLE, typical_profile
from .pki import T0, TD_A, World, make_ca, typical_attestation


@dataclass
class Ops:
    ecdsa: int = 0
    certificates: int = 0

    @property
    def total(self) -> int:
        return self.ecdsa + self.certificates


@pytest.fixture
def ops(monkeypatch: pytest.MonkeyPatch) -> Ops:
    counted = Ops()
    ecdsa_verify = _crypto.ecdsa_verify
    signed_by = _crypto.certificate_signed_by

    def counting_ecdsa(*args: object) -> bool:
        counted.ecdsa += 1
        return ecdsa_verify(*args)  # type: ignore[arg-type]

    def counting_signed_by(*args: object) -> bool:
        counted.certificates += 1
        return signed_by(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(_crypto, "ecdsa_verify", counting_ecdsa)
    monkeypatch.setattr(_crypto, "certificate_signed_by", counting_signed_by)
    return counted


def test_second_profile_costs_exactly_one_public_key_operation(
    world: World,
    signer: ProfileSigner,
    document: IssuedDocument,
    verifier: ProfileVerifier,
    ops: Ops,
) -> None:
    first = typical_profile(signer, document)
    verifier.verify(first, TYPICAL_TUPLE, peer_chain=world.node1.chain_der)
    # Cold: enforcer certificate by the CA, document by the CA, the profile itself.
    assert (ops.certificates, ops.ecdsa) == (1, 2)
    assert verifier.stats.public_key_ops == 3
    for _ in range(5):
        verifier.verify(
            typical_profile(signer, document), TYPICAL_TUPLE, peer_chain=world.node1.chain_der
        )
    # Warm: only each profile's own signature.
    assert (ops.certificates, ops.ecdsa) == (1, 7)
    assert verifier.stats.public_key_ops == 8
    assert verifier.stats.document_cache_hits == 5
    assert verifier.stats.chain_cache_hits == 5


def test_cached_document_still_expires(
    world: World, signer: ProfileSigner, verifier: ProfileVerifier, ops: Ops
) -> None:
    doc = world.issuer_a.issue(
        pu_id="p",
        enforcer_id="node-1",
        labels={},
        attestation=typical_attestation(),
        ttl=timedelta(minutes=2),
    )
    verifier.verify(
        signer.sign(doc.envelope, TYPICAL_TUPLE).envelope,
        TYPICAL_TUPLE,
        peer_chain=world.node1.chain_der,
    )
    world.clock.advance(120)
    with pytest.raises(VerificationError) as info:
        verifier.verify(
            signer.sign(doc.envelope, TYPICAL_TUPLE).envelope,
            TYPICAL_TUPLE,
            peer_chain=world.node1.chain_der,
        )
    assert info.value.code is ReasonCode.EXPIRED
    assert verifier.stats.document_cache_hits == 1  # refused from the cache, not re-verified


def test_cached_chain_still_expires(
    world: World, signer: ProfileSigner, document: IssuedDocument, verifier: ProfileVerifier
) -> None:
    verifier.verify(
        typical_profile(signer, document), TYPICAL_TUPLE, peer_chain=world.node1.chain_der
    )
    world.clock.now = world.node1.certificate.not_valid_after_utc
    with pytest.raises(VerificationError) as info:
        verifier.verify(
            typical_profile(signer, document), TYPICAL_TUPLE, peer_chain=world.node1.chain_der
        )
    assert info.value.code is ReasonCode.EXPIRED
    assert verifier.stats.chain_cache_hits == 1


def test_bundle_change_empties_the_caches(
    world: World,
    signer: ProfileSigner,
    document: IssuedDocument,
    verifier: ProfileVerifier,
    ops: Ops,
) -> None:
    verifier.verify(
        typical_profile(signer, document), TYPICAL_TUPLE, peer_chain=world.node1.chain_der
    )
    # A's CA is replaced by another: what it verified must not be trusted from the cache.
    verifier.update_bundles(BundleSet.of(make_ca(TD_A, label="replacement").bundle))
    with pytest.raises(VerificationError) as info:
        verifier.verify(
            typical_profile(signer, document), TYPICAL_TUPLE, peer_chain=world.node1.chain_der
        )
    assert info.value.code is ReasonCode.UNKNOWN_CA
    # Restoring the bundle verifies the chain and the document again (cold).
    verifier.update_bundles(world.bundles)
    before = ops.total
    verifier.verify(
        typical_profile(signer, document), TYPICAL_TUPLE, peer_chain=world.node1.chain_der
    )
    assert ops.total - before == 3


def test_revocation_change_empties_the_caches(
    world: World,
    signer: ProfileSigner,
    document: IssuedDocument,
    verifier: ProfileVerifier,
    ops: Ops,
) -> None:
    verifier.verify(
        typical_profile(signer, document), TYPICAL_TUPLE, peer_chain=world.node1.chain_der
    )
    verifier.update_revocations(
        RevocationList(TD_A, serials=frozenset({0xDEAD}), sequence_number=1)
    )
    before = ops.total
    verifier.verify(
        typical_profile(signer, document), TYPICAL_TUPLE, peer_chain=world.node1.chain_der
    )
    assert ops.total - before == 3


def test_caches_are_bounded(world: World, signer: ProfileSigner) -> None:
    verifier = ProfileVerifier(world.bundles, clock=world.clock, document_cache_size=2)
    for index in range(5):
        doc = world.issuer_a.issue(
            pu_id=f"p{index}", enforcer_id="node-1", labels={}, attestation=typical_attestation()
        )
        verifier.verify(
            signer.sign(doc.envelope, TYPICAL_TUPLE).envelope,
            TYPICAL_TUPLE,
            peer_chain=world.node1.chain_der,
        )
    assert len(verifier._documents) == 2


# --- replay cache -----------------------------------------------------------------------------


def test_replay_cache_forgets_a_nonce_only_after_its_window() -> None:
    cache = ReplayCache(capacity=10)
    forget_after = T0 + timedelta(seconds=30)
    cache.admit("a", b"n" * 16, forget_after, T0)
    with pytest.raises(VerificationError):
        cache.admit("a", b"n" * 16, forget_after, forget_after)  # still inside: remembered
    cache.admit("a", b"n" * 16, forget_after, forget_after + timedelta(microseconds=1))
    assert len(cache) == 1


def test_replay_cache_keys_by_signer() -> None:
    cache = ReplayCache(capacity=10)
    cache.admit("spiffe://a/enforcer/x", b"n" * 16, T0 + timedelta(seconds=30), T0)
    cache.admit("spiffe://a/enforcer/y", b"n" * 16, T0 + timedelta(seconds=30), T0)
    assert len(cache) == 2


def test_full_replay_cache_refuses_instead_of_forgetting(
    world: World, signer: ProfileSigner, document: IssuedDocument
) -> None:
    verifier = ProfileVerifier(world.bundles, clock=world.clock, replay_capacity=3)
    accepted = [typical_profile(signer, document) for _ in range(3)]
    for envelope in accepted:
        verifier.verify(envelope, TYPICAL_TUPLE, peer_chain=world.node1.chain_der)
    with pytest.raises(ResourceExhausted) as info:
        verifier.verify(
            typical_profile(signer, document), TYPICAL_TUPLE, peer_chain=world.node1.chain_der
        )
    assert info.value.reason == "REPLAY_CACHE_FULL"
    # Nothing was forgotten: every accepted profile is still a replay.
    for envelope in accepted:
        with pytest.raises(VerificationError) as replay:
            verifier.verify(envelope, TYPICAL_TUPLE, peer_chain=world.node1.chain_der)
        assert replay.value.code is ReasonCode.REPLAYED
    # After the window, expired nonces make room again.
    world.clock.advance(31)
    verifier.verify(
        typical_profile(signer, document), TYPICAL_TUPLE, peer_chain=world.node1.chain_der
    )
    assert verifier.replay_cache_size == 1
