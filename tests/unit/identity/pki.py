"""A tiny deterministic PKI for tests and test vectors: fixed keys, serials and validity.

Keys derive from a label (SHA-256 of it, reduced into the P-256 scalar range), so the same
label always gives the same key in every run and every language. Certificates are signed with
deterministic ECDSA (RFC 6979), so a certificate built twice is byte-identical; nothing in the
library relies on that (verifiers accept any valid signature), the test vectors do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trustwire.identity import (
    Attestation,
    BundleSet,
    Credential,
    DocumentIssuer,
    PuType,
    TrustBundle,
    TrustDomain,
)

# The fixed "now" of tests and vectors.
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

TD_A = TrustDomain("cluster-a.example")
TD_B = TrustDomain("cluster-b.example")


def fixed_key(label: str) -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(hashlib.sha256(label.encode()).digest(), "big") % (_P256_ORDER - 1)
    return ec.derive_private_key(scalar + 1, ec.SECP256R1())


def key_scalar_hex(key: ec.EllipticCurvePrivateKey) -> str:
    return f"{key.private_numbers().private_value:064x}"


class FakeClock:
    """An injected clock: tests move it, never sleep."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Ca:
    trust_domain: TrustDomain
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    _next_serial: list[int] = field(default_factory=lambda: [0x1000])

    def serial(self) -> int:
        self._next_serial[0] += 1
        return self._next_serial[0]

    @property
    def credential(self) -> Credential:
        return Credential(self.key, self.cert)

    @property
    def bundle(self) -> TrustBundle:
        return TrustBundle(self.trust_domain, (self.cert,))


def make_ca(
    trust_domain: TrustDomain,
    *,
    label: str | None = None,
    serial: int = 1,
    not_before: datetime = T0 - timedelta(days=30),
    not_after: datetime = T0 + timedelta(days=365),
    common_name: str | None = None,
) -> Ca:
    key = fixed_key(label or f"ca {trust_domain}")
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common_name or f"Trustwire CA {trust_domain}")]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"spiffe://{trust_domain}")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256(), ecdsa_deterministic=True)
    )
    return Ca(trust_domain, key, cert)


def make_leaf(
    ca: Ca,
    spiffe_id: str,
    *,
    key: ec.EllipticCurvePrivateKey,
    serial: int | None = None,
    not_before: datetime = T0 - timedelta(minutes=10),
    not_after: datetime = T0 + timedelta(hours=1),
    digital_signature: bool = True,
    eku: tuple[x509.ObjectIdentifier, ...] = (
        ExtendedKeyUsageOID.CLIENT_AUTH,
        ExtendedKeyUsageOID.SERVER_AUTH,
    ),
    uris: tuple[str, ...] | None = None,
    ca_flag: bool = False,
) -> x509.Certificate:
    """An end-entity certificate as enrolment issues it (the defaults), or a deliberately
    defective one (the keyword arguments)."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else ca.serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca_flag, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=digital_signature,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca_flag,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(u) for u in (uris or (spiffe_id,))]
            ),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), False
        )
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    return builder.sign(ca.key, hashes.SHA256(), ecdsa_deterministic=True)


def enforcer_credential(
    ca: Ca, node: str, *, label: str | None = None, **leaf_options: object
) -> Credential:
    key = fixed_key(label or f"enforcer {ca.trust_domain} {node}")
    cert = make_leaf(ca, f"spiffe://{ca.trust_domain}/enforcer/{node}", key=key, **leaf_options)  # type: ignore[arg-type]
    return Credential(key, cert)


def typical_attestation() -> Attestation:
    return Attestation(
        pu_type=PuType.POD,
        namespace="shop",
        exe_sha256="5f" * 32,
        uid=1000,
        image="registry.example/shop/web:1.4.2",
        image_digest="sha256:" + "c3" * 32,
        service_account="web",
        node="node-1",
    )


TYPICAL_LABELS = {
    "app": "web",
    "tier": "frontend",
    "version": "1.4.2",
    "team": "payments",
    "env": "prod",
}


@dataclass
class World:
    """Two trust domains, A (two enforcers and an identity issuer) and B (one enforcer)."""

    clock: FakeClock
    ca_a: Ca
    ca_b: Ca
    node1: Credential
    node2: Credential
    node_b: Credential
    issuer_a: DocumentIssuer
    issuer_b: DocumentIssuer

    @property
    def bundles(self) -> BundleSet:
        return BundleSet.of(self.ca_a.bundle, self.ca_b.bundle)


def make_world() -> World:
    clock = FakeClock()
    ca_a = make_ca(TD_A)
    ca_b = make_ca(TD_B)
    return World(
        clock=clock,
        ca_a=ca_a,
        ca_b=ca_b,
        node1=enforcer_credential(ca_a, "node-1"),
        node2=enforcer_credential(ca_a, "node-2"),
        node_b=enforcer_credential(ca_b, "node-9"),
        issuer_a=DocumentIssuer(TD_A, ca_a.credential, clock=clock),
        issuer_b=DocumentIssuer(TD_B, ca_b.credential, clock=clock),
    )
