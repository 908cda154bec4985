"""A signing credential: a private key with the certificate (and intermediates) certifying it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from trustwire.errors import InvalidArgument

from ._crypto import is_p256, sha256
from ._spiffe import SpiffeId

__all__ = ["Credential"]


@dataclass(frozen=True, slots=True, eq=False)
class Credential:
    """``private_key`` certified by ``certificate`` (an end entity with a SPIFFE ID, or an
    identity CA certificate), with ``intermediates`` up to, excluding, a bundle CA.

    Checked on creation: P-256 key, and the key is the certificate's key (signing with a key
    the certificate does not certify would only produce refusals, far from the cause). The
    private key never leaves this object except to sign.
    """

    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    certificate: x509.Certificate
    intermediates: tuple[x509.Certificate, ...] = ()
    chain_der: tuple[bytes, ...] = field(init=False, repr=False)
    spiffe_id: SpiffeId | None = field(init=False)
    is_ca: bool = field(init=False)

    def __post_init__(self) -> None:
        if not is_p256(self.private_key):
            raise InvalidArgument("signing key must be ECDSA P-256", field="private_key")
        if self.private_key.public_key() != self.certificate.public_key():
            raise InvalidArgument("private key does not match the certificate", field="certificate")
        object.__setattr__(
            self,
            "chain_der",
            tuple(
                c.public_bytes(serialization.Encoding.DER)
                for c in (self.certificate, *self.intermediates)
            ),
        )
        try:
            bc = self.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
            is_ca = bc.value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        object.__setattr__(self, "is_ca", is_ca)
        object.__setattr__(self, "spiffe_id", None if is_ca else _spiffe_id(self.certificate))

    @classmethod
    def from_pem(
        cls, key_pem: bytes, chain_pem: bytes, password: bytes | None = None
    ) -> Credential:
        """Key and chain as files hold them: the chain PEM is the certificate then its
        intermediates."""
        key = serialization.load_pem_private_key(key_pem, password)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise InvalidArgument("signing key must be ECDSA P-256", field="private_key")
        certs = x509.load_pem_x509_certificates(chain_pem)
        return cls(key, certs[0], tuple(certs[1:]))

    @classmethod
    def from_chain(
        cls, private_key: ec.EllipticCurvePrivateKey, chain: Sequence[x509.Certificate]
    ) -> Credential:
        if not chain:
            raise InvalidArgument("certificate chain is empty", field="certificate")
        return cls(private_key, chain[0], tuple(chain[1:]))

    @property
    def leaf_sha256(self) -> bytes:
        return sha256(self.chain_der[0])


def _spiffe_id(cert: x509.Certificate) -> SpiffeId:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise InvalidArgument("certificate has no URI SAN", field="certificate") from None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise InvalidArgument("certificate needs exactly one URI SAN", field="certificate")
    return SpiffeId.parse(uris[0])
