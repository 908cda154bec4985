"""A throwaway trust domain for datapath tests and the datapath benchmark: an ECDSA P-256 CA
and enforcer certificates with SPIFFE URI SANs, shaped like the identity service's."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trustwire_enforcer.datapath import TlsConfig


@dataclass(frozen=True)
class Credential:
    chain_pem: bytes
    key_pem: bytes
    bundle_pem: bytes
    spiffe_id: str

    def tls(self) -> TlsConfig:
        return TlsConfig.from_pem(self.chain_pem, self.key_pem, self.bundle_pem)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class ThrowawayCa:
    """An ECDSA P-256 CA for one test session, issuing enforcer certificates with SPIFFE URI
    SANs (``spiffe://td/enforcer/<node>``), like the identity service does."""

    def __init__(self, name: str = "td") -> None:
        self.trust_domain = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.bundle_pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def enforcer(self, node: str) -> Credential:
        key = ec.generate_private_key(ec.SECP256R1())
        spiffe = f"spiffe://{self.trust_domain}/enforcer/{node}"
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe)]), critical=True
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return Credential(
            cert.public_bytes(serialization.Encoding.PEM), _pem_key(key), self.bundle_pem, spiffe
        )
