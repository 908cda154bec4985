"""The only place that performs signature operations, so they can be counted and audited.

Every public-key operation of this package goes through ``ecdsa_verify`` or
``certificate_signed_by``; the verifier counts calls (``VerifierStats.public_key_ops``) and the
tests wrap these two functions to prove which paths do no public-key work at all.

Algorithm: ECDSA on P-256 with SHA-256 only, signatures ASN.1 DER ``SEQUENCE {r, s}``. OpenSSL
rejects non-canonical DER, so a signature has exactly one accepted encoding per (r, s).
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = [
    "OpCount",
    "certificate_signed_by",
    "ecdsa_sign",
    "ecdsa_verify",
    "is_p256",
    "pae",
    "sha256",
]

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


class OpCount:
    """Public-key operations performed on someone's behalf; callers pass one down and the
    code that calls ``ecdsa_verify``/``certificate_signed_by`` increments it."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what every envelope signature covers.

    ``"DSSEv1" SP LEN(type) SP type SP LEN(payload) SP payload`` with LEN the byte length in
    ASCII decimal (no leading zeros) and ``type`` UTF-8 encoded.
    """
    type_bytes = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def is_p256(key: object) -> bool:
    return isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) and isinstance(
        key.curve, ec.SECP256R1
    )


def ecdsa_sign(private_key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return private_key.sign(data, _ECDSA_SHA256)


def ecdsa_verify(public_key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    """True iff ``signature`` is a valid DER ECDSA-SHA256 signature of ``data``. One public-key
    operation."""
    try:
        public_key.verify(signature, data, _ECDSA_SHA256)
    except InvalidSignature:
        return False
    return True


def certificate_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True iff ``issuer``'s name is ``cert``'s issuer name and its key signed ``cert``. One
    public-key operation (none when the names differ)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
