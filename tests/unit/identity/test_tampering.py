"""Integrity: changing any single byte of a signed profile (or of the document inside it)
makes verification fail. Every byte position is tested, on a warm verifier, so a cache can
never mask a change."""

from __future__ import annotations

import pytest

from trustwire.identity import (
    IssuedDocument,
    ProfileSigner,
    ProfileVerifier,
    VerificationError,
)

from .conftest import TYPICAL_TUPLE, typical_profile
from .pki import World


def flipped(data: bytes, position: int) -> bytes:
    # XOR with 0x01 changes the byte to a value it did not have, and keeps varint
    # continuation bits intact half the time, so the flips reach deep into the structure
    # rather than all failing at the first parse.
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


@pytest.mark.parametrize("inline", [False, True], ids=["channel-reference", "inline-chain"])
def test_every_single_byte_change_of_a_profile_is_refused(
    world: World,
    signer: ProfileSigner,
    document: IssuedDocument,
    verifier: ProfileVerifier,
    inline: bool,
) -> None:
    # Warm every cache with another profile of the same document and chain.
    warm = typical_profile(signer, document, inline_chain=inline)
    verifier.verify(warm, TYPICAL_TUPLE, peer_chain=world.node1.chain_der)
    target = typical_profile(signer, document, inline_chain=inline)
    accepted = []
    for position in range(len(target)):
        try:
            verifier.verify(
                flipped(target, position),
                TYPICAL_TUPLE,
                peer_chain=None if inline else world.node1.chain_der,
            )
        except VerificationError:
            continue
        accepted.append(position)
    assert accepted == []
    # The untouched profile still verifies: no failed attempt consumed its nonce.
    verifier.verify(target, TYPICAL_TUPLE, peer_chain=None if inline else world.node1.chain_der)


def test_every_single_byte_change_of_the_document_is_refused(
    world: World, signer: ProfileSigner, document: IssuedDocument, verifier: ProfileVerifier
) -> None:
    # The enforcer re-signs the profile around the changed document (as a compromised or
    # buggy enforcer could): the document's own signature must catch it.
    verifier.verify(
        signer.sign(document.envelope, TYPICAL_TUPLE).envelope,
        TYPICAL_TUPLE,
        peer_chain=world.node1.chain_der,
    )
    accepted = []
    for position in range(len(document.envelope)):
        changed = flipped(document.envelope, position)
        try:
            envelope = signer.sign(changed, TYPICAL_TUPLE).envelope
        except VerificationError:
            continue  # the change broke the envelope's encoding: refused at the signer
        try:
            verifier.verify(envelope, TYPICAL_TUPLE, peer_chain=world.node1.chain_der)
        except VerificationError:
            continue
        accepted.append(position)
    assert accepted == []
