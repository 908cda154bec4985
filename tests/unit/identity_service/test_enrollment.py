"""CSR validation and what an enrolment may and may not take from the request."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from trustwire.errors import InvalidArgument, PermissionDenied
from trustwire.store.memory import MemoryStore
from trustwire_identity.ca import CertificateAuthority
from trustwire_identity.client import make_csr
from trustwire_identity.enrollment import Enrollments, parse_csr
from trustwire_identity.records import EnrollmentKind
from trustwire_identity.revocation import Revocations
from trustwire_identity.tokens import JoinTokens

from .conftest import TRUST_DOMAIN, FixedClock


def csr_with(key: object, *, name: str = "", uri: str = "") -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)] if name else [])
    )
    if uri:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)  # type: ignore[arg-type]


def test_valid_csr() -> None:
    request = parse_csr(make_csr(ec.generate_private_key(ec.SECP256R1()), "node-1"))
    assert request.requested_name == "node-1"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: b"", "CSR_MALFORMED"),
        (lambda: b"\x30\x03\x02\x01\x00", "CSR_MALFORMED"),
        (lambda: b"x" * 5000, "CSR_MALFORMED"),
        (lambda: csr_with(ec.generate_private_key(ec.SECP384R1())), "CSR_KEY_ALGORITHM"),
        (lambda: csr_with(rsa.generate_private_key(65537, 2048)), "CSR_KEY_ALGORITHM"),
    ],
    ids=["empty", "garbage", "oversize", "p384", "rsa"],
)
def test_invalid_csrs_are_refused_naming_the_field(make: object, reason: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        parse_csr(make())  # type: ignore[operator]
    assert refused.value.field == "csr_der"
    assert refused.value.reason == reason


def test_a_csr_whose_signature_does_not_verify_is_refused() -> None:
    der = bytearray(make_csr(ec.generate_private_key(ec.SECP256R1()), "node-1"))
    der[-10] ^= 0x01  # inside the signature's integers
    with pytest.raises(InvalidArgument) as refused:
        parse_csr(bytes(der))
    assert refused.value.reason in ("CSR_BAD_SIGNATURE", "CSR_MALFORMED")


def enrollments(
    store: MemoryStore, clock: FixedClock, authority: CertificateAuthority
) -> Enrollments:
    return Enrollments(
        store, JoinTokens(store, clock), lambda: authority, TRUST_DOMAIN, clock, timedelta(hours=1)
    )


async def test_the_spiffe_id_comes_from_the_token_never_from_csr_sans(
    store: MemoryStore, clock: FixedClock, authority: CertificateAuthority
) -> None:
    service = enrollments(store, clock, authority)
    token = await JoinTokens(store, clock).create(
        EnrollmentKind.ENFORCER, "node-1", created_by="admin"
    )
    csr = csr_with(
        ec.generate_private_key(ec.SECP256R1()),
        uri="spiffe://cluster-a.example/admin/admin",
    )
    issued = await service.enroll(token.token, csr)
    san = issued.issued.certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster-a.example/enforcer/node-1"
    ]


async def test_a_nodeless_token_takes_the_name_from_the_csr_and_spends_on_bad_csrs(
    store: MemoryStore, clock: FixedClock, authority: CertificateAuthority
) -> None:
    service = enrollments(store, clock, authority)
    tokens = JoinTokens(store, clock)
    token = await tokens.create(EnrollmentKind.ENFORCER, "", created_by="admin")
    issued = await service.enroll(
        token.token, make_csr(ec.generate_private_key(ec.SECP256R1()), "node-9")
    )
    assert str(issued.spiffe_id) == "spiffe://cluster-a.example/enforcer/node-9"

    spent = await tokens.create(EnrollmentKind.ENFORCER, "node-2", created_by="admin")
    with pytest.raises(InvalidArgument):
        await service.enroll(spent.token, b"not a csr")
    with pytest.raises(Exception, match="already used"):
        await tokens.peek(spent.token)


async def test_an_enforcer_may_only_ask_for_its_own_name_as_dns_san(
    store: MemoryStore, clock: FixedClock, authority: CertificateAuthority
) -> None:
    service = enrollments(store, clock, authority)
    token = await JoinTokens(store, clock).create(
        EnrollmentKind.ENFORCER, "node-1", created_by="admin"
    )
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(InvalidArgument) as refused:
        await service.enroll(token.token, make_csr(key, dns_names=["identity.example"]))
    assert refused.value.reason == "CSR_SAN_NOT_ALLOWED"


async def test_a_nodeless_token_cannot_resurrect_a_revoked_enforcer(
    store: MemoryStore, clock: FixedClock, authority: CertificateAuthority
) -> None:
    service = enrollments(store, clock, authority)
    tokens = JoinTokens(store, clock)
    first = await tokens.create(EnrollmentKind.ENFORCER, "node-1", created_by="admin")
    await service.enroll(first.token, make_csr(ec.generate_private_key(ec.SECP256R1())))
    await Revocations(store, clock).revoke("node-1", reason="", revoked_by="admin")

    anyone = await tokens.create(EnrollmentKind.ENFORCER, "", created_by="admin")
    with pytest.raises(PermissionDenied) as refused:
        await service.enroll(
            anyone.token, make_csr(ec.generate_private_key(ec.SECP256R1()), "node-1")
        )
    assert refused.value.reason == "ENROLLMENT_REVOKED"
    named = await tokens.create(EnrollmentKind.ENFORCER, "node-1", created_by="admin")
    again = await service.enroll(named.token, make_csr(ec.generate_private_key(ec.SECP256R1())))
    assert str(again.spiffe_id).endswith("/enforcer/node-1")
