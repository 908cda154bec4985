"""Revocation (refusals, the bundle watch, restarts), identity documents and the
authorization table, against the real service and etcd."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from trustwire.api.common.v1 import workload_pb2
from trustwire.api.identity.v1 import (
    enrollment_pb2,
    identity_document_pb2,
    identity_service_pb2,
)
from trustwire.errors import InvalidArgument, NotFound, PermissionDenied
from trustwire.identity import Attestation, PuType
from trustwire_identity.client import IdentityClient, NodeCredential, enroll
from trustwire_identity.server import IdentityServer

from .identity_testkit import (
    TRUST_DOMAIN,
    MovableClock,
    PrefixedStore,
    admin_call,
    create_token,
    settings_for,
)

pytestmark = pytest.mark.etcd

WAIT = 10.0
POD = Attestation(pu_type=PuType.POD, namespace="shop", service_account="web", node="node-1")


async def enrolled(identity: IdentityServer, node: str) -> NodeCredential:
    created = await create_token(identity, node)
    return await enroll(identity.enroll_address, created.token, ca_sha256=created.ca_sha256)


async def revoke(
    identity: IdentityServer, node: str
) -> identity_service_pb2.RevokeEnforcerResponse:
    response: identity_service_pb2.RevokeEnforcerResponse = await admin_call(
        identity,
        "RevokeEnforcer",
        identity_service_pb2.RevokeEnforcerRequest(enforcer_id=node, reason="stolen"),
    )
    return response


async def test_a_revoked_enforcer_cannot_renew_or_get_documents_and_is_streamed(
    identity: IdentityServer,
) -> None:
    credential = await enrolled(identity, "node-1")
    async with IdentityClient(identity.address, credential) as client:
        watch = client.watch_trust_bundle()
        first = await asyncio.wait_for(anext(watch), WAIT)
        assert list(first.revocations.revocations) == []

        revoked = await revoke(identity, "node-1")

        update = await asyncio.wait_for(anext(watch), WAIT)
        await watch.aclose()
        serials = [r.serial for r in update.revocations.revocations]
        assert serials == [format(credential.certificate.serial_number, "x")]
        assert update.revocations.sequence_number == revoked.revocation_list_sequence_number
        assert update.revocations.sequence_number > first.revocations.sequence_number
        with pytest.raises(PermissionDenied) as renewal:
            await client.renew()
        with pytest.raises(PermissionDenied) as document:
            await client.issue_document("web-1", POD)
    assert renewal.value.reason == document.value.reason == "ENROLLMENT_REVOKED"


async def test_revoking_is_idempotent_and_unknown_enforcers_are_not_found(
    identity: IdentityServer,
) -> None:
    await enrolled(identity, "node-1")
    first = await revoke(identity, "node-1")
    again = await revoke(identity, "node-1")
    assert again.revocation.serial == first.revocation.serial
    assert again.revocation_list_sequence_number == first.revocation_list_sequence_number
    with pytest.raises(NotFound):
        await revoke(identity, "never-enrolled")


async def test_revocations_survive_a_restart(
    identity: IdentityServer, store: PrefixedStore, clock: MovableClock, state_dir: Path
) -> None:
    credential = await enrolled(identity, "node-1")
    await revoke(identity, "node-1")
    await identity.stop()

    restarted = await IdentityServer.start(settings_for(state_dir), store=store, clock=clock)
    try:
        bundle = await admin_call(
            restarted, "GetTrustBundle", identity_service_pb2.GetTrustBundleRequest()
        )
        assert [r.enforcer_id for r in bundle.revocations.revocations] == ["node-1"]
        # The same CA, loaded from the state directory, still trusts the old certificate...
        assert restarted.authority().active.anchor == identity.authority().active.anchor
        async with IdentityClient(restarted.address, credential) as client:
            # ...but refuses to renew it.
            with pytest.raises(PermissionDenied):
                await client.renew()
    finally:
        await restarted.stop()


async def test_documents_name_the_calling_enforcer_only(identity: IdentityServer) -> None:
    credential = await enrolled(identity, "node-1")
    async with IdentityClient(identity.address, credential) as client:
        issued = await client.issue_document("web-1", POD, labels={"app": "web"})
        with pytest.raises(PermissionDenied) as other_node:
            await client.issue_document(
                "db-1", Attestation(pu_type=PuType.POD, namespace="shop", node="node-2")
            )
        with pytest.raises(InvalidArgument) as reserved:
            await client.issue_document("web-2", POD, labels={"namespace": "kube-system"})

    document = identity_document_pb2.IdentityDocument.FromString(issued.document.payload)
    assert document.enforcer_id == "node-1"
    assert document.trust_domain == TRUST_DOMAIN
    assert document.pu_id == "web-1"
    assert dict(document.labels)["app"] == "web"
    assert document.attestation.namespace == "shop"
    assert issued.document.signer_chain_der  # signed by service/identity, chain attached
    assert other_node.value.reason == "DOCUMENT_FOR_OTHER_ENFORCER"
    assert reserved.value.field == "labels.namespace"


async def test_an_enforcer_may_not_call_admin_rpcs(identity: IdentityServer) -> None:
    credential = await enrolled(identity, "node-1")
    async with IdentityClient(identity.address, credential) as client:
        with pytest.raises(PermissionDenied) as refused:
            await client.stub.RevokeEnforcer(
                identity_service_pb2.RevokeEnforcerRequest(enforcer_id="node-1"), timeout=5
            )
        with pytest.raises(PermissionDenied):
            await client.stub.CreateJoinToken(
                identity_service_pb2.CreateJoinTokenRequest(
                    kind=enrollment_pb2.ENROLLMENT_KIND_ENFORCER, name="x"
                ),
                timeout=5,
            )
    assert refused.value.reason == "ROLE_NOT_ALLOWED"


async def test_documents_are_not_issued_to_admins(identity: IdentityServer) -> None:
    with pytest.raises(PermissionDenied) as refused:
        await admin_call(
            identity,
            "IssueIdentityDocument",
            identity_service_pb2.IssueIdentityDocumentRequest(
                pu_id="x",
                attestation=identity_document_pb2.Attestation(
                    pu_type=workload_pb2.PROCESSING_UNIT_TYPE_POD
                ),
            ),
        )
    assert refused.value.reason == "ROLE_NOT_ALLOWED"
