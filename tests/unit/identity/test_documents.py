"""Identity documents: issuance rules, the deterministic encoding, and standalone verification."""

from __future__ import annotations

from datetime import timedelta

import pytest

from trustwire.errors import InvalidArgument
from trustwire.identity import (
    Attestation,
    Credential,
    DocumentIssuer,
    IdentityDocument,
    ProfileVerifier,
    PuType,
    ReasonCode,
    VerificationError,
    _codec,
)

from .pki import T0, TD_A, TD_B, TYPICAL_LABELS, World, fixed_key, make_leaf, typical_attestation


def issue(world: World, **overrides: object) -> bytes:
    options: dict[str, object] = {
        "pu_id": "shop/web-1",
        "enforcer_id": "node-1",
        "labels": TYPICAL_LABELS,
        "attestation": typical_attestation(),
    }
    options.update(overrides)
    return world.issuer_a.issue(**options).envelope  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "key", ["namespace", "trust-domain", "enforcer", "pu-type", "k8s:serviceaccount", "user"]
)
def test_reserved_labels_cannot_be_set_by_the_caller(world: World, key: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        issue(world, labels={key: "x"})
    assert info.value.field == f"labels.{key}"


def test_reserved_labels_are_derived_from_attestation(world: World) -> None:
    doc = world.issuer_a.issue(
        pu_id="shop/web-1",
        enforcer_id="node-1",
        labels={"app": "web"},
        attestation=typical_attestation(),
    ).document
    assert dict(doc.policy_labels) == {
        "app": "web",
        "trust-domain": "cluster-a.example",
        "enforcer": "node-1",
        "pu-type": "pod",
        "namespace": "shop",
        "image": "registry.example/shop/web:1.4.2",
        "exe-sha256": "5f" * 32,
        "k8s:serviceaccount": "web",
        "user": "1000",
    }
    process = world.issuer_a.issue(
        pu_id="cron", enforcer_id="node-1", labels={}, attestation=Attestation(PuType.PROCESS)
    ).document
    assert dict(process.policy_labels) == {
        "trust-domain": "cluster-a.example",
        "enforcer": "node-1",
        "pu-type": "process",
    }


def test_document_never_outlives_the_enforcer_certificate(world: World) -> None:
    limit = T0 + timedelta(minutes=10)
    doc = world.issuer_a.issue(
        pu_id="p",
        enforcer_id="node-1",
        labels={},
        attestation=typical_attestation(),
        not_after=limit,
    ).document
    assert doc.expires_at == limit
    assert doc.issued_at == T0


def test_encoding_is_deterministic_and_round_trips(world: World) -> None:
    doc = world.issuer_a.issue(
        pu_id="p", enforcer_id="node-1", labels=TYPICAL_LABELS, attestation=typical_attestation()
    ).document
    reordered = IdentityDocument(
        doc.document_id,
        doc.pu_id,
        doc.trust_domain,
        doc.enforcer_id,
        dict(reversed(list(doc.labels.items()))),
        doc.attestation,
        doc.issued_at,
        doc.expires_at,
    )
    assert _codec.encode_document(reordered) == _codec.encode_document(doc)
    assert _codec.decode_document(_codec.encode_document(doc)) == doc


def test_only_the_ca_or_the_identity_service_may_issue(world: World) -> None:
    with pytest.raises(InvalidArgument):
        DocumentIssuer(TD_A, world.node1)
    key = fixed_key("identity b")
    cert = make_leaf(world.ca_a, "spiffe://cluster-a.example/service/identity", key=key)
    with pytest.raises(InvalidArgument):
        DocumentIssuer(TD_B, Credential(key, cert))  # the identity service of another domain


def test_external_pus_get_no_document() -> None:
    with pytest.raises(InvalidArgument):
        Attestation(PuType.EXTERNAL)


def test_verify_document_standalone(world: World) -> None:
    verifier = ProfileVerifier(world.bundles, clock=world.clock)
    envelope = issue(world)
    assert verifier.verify_document(envelope, TD_A).pu_id == "shop/web-1"
    with pytest.raises(VerificationError) as info:
        verifier.verify_document(envelope, TD_B)  # B's bundle did not sign it
    assert info.value.code is ReasonCode.BAD_SIGNATURE


def test_document_claiming_another_domain_than_its_signer(world: World) -> None:
    # A's CA signs a document that says it is from B: A does not vouch for B's identities.
    doc = world.issuer_a.issue(
        pu_id="p", enforcer_id="node-1", labels={}, attestation=typical_attestation()
    ).document
    issuer = DocumentIssuer(TD_B, world.ca_a.credential, clock=world.clock)
    forged = issuer.sign(
        IdentityDocument(
            doc.document_id, "p", TD_B, "node-1", {}, doc.attestation, doc.issued_at, doc.expires_at
        )
    )
    verifier = ProfileVerifier(world.bundles, clock=world.clock)
    with pytest.raises(VerificationError) as info:
        verifier.verify_document(forged, TD_A)
    assert info.value.code is ReasonCode.UNKNOWN_CA


def test_malformed_documents(world: World) -> None:
    verifier = ProfileVerifier(world.bundles, clock=world.clock)
    with pytest.raises(VerificationError) as info:
        verifier.verify_document(b"\x0a\xff", TD_A)
    assert info.value.code is ReasonCode.MALFORMED_PROFILE
