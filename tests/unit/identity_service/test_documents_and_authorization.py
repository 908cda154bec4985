"""Reserved labels, documents for one's own node only, the authorization table, jitter."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from trustwire.errors import InvalidArgument, PermissionDenied
from trustwire.identity import (
    Attestation,
    Credential,
    DocumentIssuer,
    PuType,
    Role,
    SpiffeId,
)
from trustwire.policy.model import RESERVED_LABELS
from trustwire.runtime import Role as CallerRole
from trustwire.runtime import assert_table_covers
from trustwire.store.memory import MemoryStore
from trustwire_identity.api.authorization import AUTHORIZATION, IDENTITY_SERVICE, method
from trustwire_identity.ca import CertificateAuthority, generate_key
from trustwire_identity.client import NodeCredential, make_csr, renewal_time
from trustwire_identity.documents import Documents
from trustwire_identity.enrollment import Enrollments
from trustwire_identity.records import EnrollmentKind, EnrollmentRecord, decode, encode
from trustwire_identity.tokens import JoinTokens

from .conftest import START, TRUST_DOMAIN, FixedClock

NODE = SpiffeId(TRUST_DOMAIN, Role.ENFORCER, "node-1")
POD = Attestation(pu_type=PuType.POD, namespace="shop", node="node-1")


async def documents_for_enrolled_node(
    store: MemoryStore, clock: FixedClock, authority: CertificateAuthority
) -> tuple[Documents, int]:
    tokens = JoinTokens(store, clock)
    enrollments = Enrollments(store, tokens, lambda: authority, TRUST_DOMAIN, clock)
    token = await tokens.create(EnrollmentKind.ENFORCER, "node-1", created_by="admin")
    issued = await enrollments.enroll(token.token, make_csr(generate_key()))
    key = generate_key()
    own = authority.active.issue(
        key.public_key(),
        SpiffeId(TRUST_DOMAIN, Role.SERVICE, "identity"),
        ttl=timedelta(hours=2),
        now=clock(),
    )
    issuer = DocumentIssuer(TRUST_DOMAIN, Credential(key, own.certificate), clock=clock)
    return Documents(enrollments, lambda: issuer), issued.issued.serial


@pytest.mark.parametrize("label", sorted(RESERVED_LABELS))
async def test_reserved_labels_are_refused_naming_the_field(
    store: MemoryStore, clock: FixedClock, authority: CertificateAuthority, label: str
) -> None:
    documents, serial = await documents_for_enrolled_node(store, clock, authority)
    with pytest.raises(InvalidArgument) as refused:
        await documents.issue(
            NODE,
            caller_serial=serial,
            caller_not_after=clock() + timedelta(hours=1),
            pu_id="web-1",
            labels={label: "x"},
            attestation=POD,
        )
    assert refused.value.field == f"labels.{label}"
    assert refused.value.reason == "RESERVED_LABEL"


async def test_documents_are_capped_by_the_caller_certificate(
    store: MemoryStore, clock: FixedClock, authority: CertificateAuthority
) -> None:
    documents, serial = await documents_for_enrolled_node(store, clock, authority)
    issued = await documents.issue(
        NODE,
        caller_serial=serial,
        caller_not_after=clock() + timedelta(minutes=10),
        pu_id="web-1",
        labels={"app": "web"},
        attestation=POD,
    )
    assert issued.document.expires_at == clock() + timedelta(minutes=10)
    assert issued.document.policy_labels["enforcer"] == "node-1"
    assert issued.document.policy_labels["namespace"] == "shop"


async def test_documents_for_another_node_are_refused(
    store: MemoryStore, clock: FixedClock, authority: CertificateAuthority
) -> None:
    documents, serial = await documents_for_enrolled_node(store, clock, authority)
    with pytest.raises(PermissionDenied) as refused:
        await documents.issue(
            NODE,
            caller_serial=serial,
            caller_not_after=clock() + timedelta(hours=1),
            pu_id="db-1",
            labels={},
            attestation=Attestation(pu_type=PuType.POD, node="node-2"),
        )
    assert refused.value.reason == "DOCUMENT_FOR_OTHER_ENFORCER"


def test_every_rpc_has_an_authorization_entry() -> None:
    assert_table_covers(AUTHORIZATION, [IDENTITY_SERVICE])


def test_enroll_is_public_and_admin_rpcs_are_admin_only() -> None:
    assert method("Enroll") in AUTHORIZATION.public
    assert AUTHORIZATION.rules[method("RevokeEnforcer")] == {CallerRole.ADMIN}
    assert AUTHORIZATION.rules[method("CreateJoinToken")] == {CallerRole.ADMIN}
    assert AUTHORIZATION.rules[method("IssueIdentityDocument")] == {CallerRole.ENFORCER}


def test_renewal_time_is_half_life_within_ten_percent(authority: CertificateAuthority) -> None:
    key = generate_key()
    issued = authority.active.issue(key.public_key(), NODE, ttl=timedelta(hours=1), now=START)
    credential = NodeCredential(key, issued.chain, (authority.active.anchor,))
    rng = random.Random(1)
    half = (credential.not_after - credential.not_before) / 2
    offsets = [renewal_time(credential, rng) - credential.not_before for _ in range(200)]
    assert all(half * 0.9 <= o <= half * 1.1 for o in offsets)
    assert max(offsets) - min(offsets) > half * 0.15  # actually spread, not constant


def test_records_round_trip() -> None:
    record = EnrollmentRecord(
        kind=EnrollmentKind.ENFORCER,
        name="node-1",
        spiffe_id=str(NODE),
        serial=2**127 + 5,
        not_after=START,
        enrolled_at=START,
        previous_serial=7,
        dns_names=("node-1",),
    )
    assert decode(EnrollmentRecord, encode(record)) == record
    assert encode(record) == encode(decode(EnrollmentRecord, encode(record)))
