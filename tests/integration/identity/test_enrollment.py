"""Enrolment, token refusals, renewal and concurrency against the real service and etcd."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from trustwire.api.identity.v1 import identity_service_pb2, identity_service_pb2_grpc
from trustwire.errors import PermissionDenied, TrustwireError, Unauthenticated
from trustwire.runtime import ClientTLS, create_channel
from trustwire_identity.ca import certificates_to_pem
from trustwire_identity.client import IdentityClient, enroll
from trustwire_identity.records import EnrollmentKind
from trustwire_identity.server import IdentityServer

from .identity_testkit import TRUST_DOMAIN, MovableClock, create_token

pytestmark = pytest.mark.etcd


async def test_enrol_with_a_pinned_ca_yields_a_spiffe_certificate(identity: IdentityServer) -> None:
    token = await create_token(identity, "node-1")

    credential = await enroll(identity.enroll_address, token.token, ca_sha256=token.ca_sha256)

    cert = credential.certificate
    assert credential.spiffe_id == f"spiffe://{TRUST_DOMAIN}/enforcer/node-1"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert credential.bundle[0] == identity.authority().active.anchor
    cert.verify_directly_issued_by(credential.bundle[0])
    record = await identity.enrollments.list()
    assert [r.name for r in record[0]] == ["node-1"]


@pytest.mark.parametrize("case", ["reused", "expired", "unknown", "wrong-node"])
async def test_bad_tokens_are_refused_with_their_reason(
    identity: IdentityServer, clock: MovableClock, case: str
) -> None:
    created = await create_token(identity, "node-1", ttl_s=600)
    token, name = created.token, ""
    if case == "reused":
        await enroll(identity.enroll_address, token, ca_sha256=created.ca_sha256)
    elif case == "expired":
        clock.advance(timedelta(minutes=11))
    elif case == "unknown":
        token = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    else:
        name = "node-2"

    with pytest.raises(Unauthenticated) as refused:
        await enroll(identity.enroll_address, token, name=name, ca_sha256=created.ca_sha256)

    expected = {
        "reused": "TOKEN_USED",
        "expired": "TOKEN_EXPIRED",
        "unknown": "TOKEN_UNKNOWN",
        "wrong-node": "TOKEN_WRONG_NODE",
    }[case]
    assert refused.value.reason == expected


async def test_two_concurrent_enrolments_with_one_token_yield_exactly_one_certificate(
    identity: IdentityServer,
) -> None:
    created = await create_token(identity, "node-1")

    results = await asyncio.gather(
        *(
            enroll(identity.enroll_address, created.token, ca_sha256=created.ca_sha256)
            for _ in range(2)
        ),
        return_exceptions=True,
    )

    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert isinstance(losers[0], Unauthenticated)
    assert losers[0].reason == "TOKEN_USED"
    record = await identity.enrollments.get(EnrollmentKind.ENFORCER, "node-1")
    assert record is not None
    assert record.serial == winners[0].certificate.serial_number


async def test_renew_over_mtls_keeps_the_identity_and_refuses_superseded_certificates(
    identity: IdentityServer,
) -> None:
    created = await create_token(identity, "node-1")
    first = await enroll(identity.enroll_address, created.token, ca_sha256=created.ca_sha256)

    async with IdentityClient(identity.address, first) as client:
        second = await client.renew()
        third = await client.renew()
    assert second.spiffe_id == third.spiffe_id == first.spiffe_id
    assert len({c.certificate.serial_number for c in (first, second, third)}) == 3

    async with IdentityClient(identity.address, first) as stale:
        with pytest.raises(PermissionDenied) as refused:
            await stale.renew()
    assert refused.value.reason == "CERTIFICATE_SUPERSEDED"


async def test_renew_is_not_served_without_a_client_certificate(identity: IdentityServer) -> None:
    tls = ClientTLS(certificates_to_pem([identity.authority().active.anchor]))
    async with create_channel(identity.enroll_address, tls) as channel:
        stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
        with pytest.raises(TrustwireError) as refused:
            await stub.Renew(identity_service_pb2.RenewRequest(csr_der=b"x"), timeout=5)
    assert refused.value.reason == "NO_PEER_IDENTITY"
