"""Certificate path validation for Trustwire's own PKI profile, split into a cacheable part and
a per-use part.

``verify_chain`` does the time-independent work (parsing, profile checks, every signature of
the path to a bundle CA); its result, ``VerifiedChain``, is what the verifier caches by chain
digest. ``check_validity`` and ``check_revocation`` are cheap and run on every use, so a cached
chain still expires and is still revoked on time.

The profile is deliberately narrower than RFC 5280 (we issue every certificate it accepts):
- keys ECDSA P-256, certificates signed with ecdsa-with-SHA256, X.509 v3;
- at most ``MAX_INTERMEDIATES`` intermediates; a CA (basic constraints ``cA``, key usage
  ``keyCertSign``) issues every certificate of the path, ``pathLenConstraint`` honoured;
- an end-entity certificate has ``cA`` false, key usage ``digitalSignature`` and neither
  ``keyCertSign`` nor ``cRLSign``, extended key usage with both clientAuth and serverAuth
  (what enrolment issues), and exactly one URI SAN that is a valid Trustwire SPIFFE ID;
- a critical extension other than basic constraints, key usage, extended key usage and subject
  alternative name fails the certificate (RFC 5280: unknown critical extensions must).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, SignatureAlgorithmOID

from trustwire.errors import InvalidArgument

from . import _crypto
from ._bundle import BundleSet, RevocationList, TrustBundle
from ._reasons import ReasonCode, VerificationError
from ._spiffe import Role, SpiffeId, TrustDomain

__all__ = [
    "MAX_CERTIFICATE_BYTES",
    "MAX_INTERMEDIATES",
    "VerifiedChain",
    "chain_digest",
    "check_revocation",
    "check_validity",
    "end_entity_spiffe_id",
    "load_certificate",
    "verify_by_bundle_ca",
    "verify_chain",
]

MAX_INTERMEDIATES = 3
MAX_CERTIFICATE_BYTES = 4096

_E = TypeVar("_E", bound=x509.ExtensionType)

_KNOWN_CRITICAL = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    }
)


@dataclass(frozen=True, slots=True)
class VerifiedChain:
    """A signer chain whose signatures and profile were verified up to a bundle CA.

    ``spiffe_id`` is the end entity's ID, or None when the signer is a CA certificate (an
    identity CA signing documents itself). ``not_before``/``not_after`` are the intersection of
    every certificate's validity, the bundle CA included. ``serials`` are the path's serials
    without the bundle CA (a root is removed from the bundle, not revoked).
    """

    trust_domain: TrustDomain
    spiffe_id: SpiffeId | None
    public_key: ec.EllipticCurvePublicKey
    serials: tuple[int, ...]
    not_before: datetime
    not_after: datetime
    leaf_sha256: bytes


def chain_digest(ders: Sequence[bytes]) -> bytes:
    """Cache key of a chain: SHA-256 over each DER certificate, each prefixed by its length as
    4 bytes big-endian (unambiguous: no two chains share an encoding)."""
    return _crypto.sha256(b"".join(len(d).to_bytes(4, "big") + d for d in ders))


def load_certificate(der: bytes, where: str) -> x509.Certificate:
    if len(der) > MAX_CERTIFICATE_BYTES:
        raise VerificationError(
            ReasonCode.MALFORMED_PROFILE, f"{where}: certificate larger than 4 KiB"
        )
    try:
        with warnings.catch_warnings():
            # A deprecation (e.g. a non-positive serial number) is refused now rather than
            # when a future cryptography release starts refusing it.
            warnings.simplefilter("error", CryptographyDeprecationWarning)
            cert = x509.load_der_x509_certificate(der)
            # Fields decode lazily; decode every field used later now, so that a malformed
            # certificate fails here, as MALFORMED, and nowhere else.
            _ = (cert.issuer, cert.subject, cert.serial_number, cert.signature_algorithm_oid)
            _ = (cert.not_valid_before_utc, cert.not_valid_after_utc, cert.extensions)
            cert.public_key()
            signature = cert.signature
    except (
        ValueError,
        x509.InvalidVersion,
        UnsupportedAlgorithm,
        CryptographyDeprecationWarning,
    ) as exc:
        raise VerificationError(
            ReasonCode.MALFORMED_PROFILE, f"{where}: not a decodable X.509 certificate ({exc})"
        ) from None
    # The parser tolerates a non-zero "unused bits" count in the signature BIT STRING and
    # ignores it, which would let one certificate have several encodings. DER (RFC 5280
    # 4.1.1.3) requires zero; an ECDSA P-256 signature is at most 72 bytes, so the element is
    # exactly 03 <len+1> 00 <signature> at the end of the certificate.
    if not der.endswith(bytes([0x03, len(signature) + 1, 0x00]) + signature):
        raise VerificationError(
            ReasonCode.MALFORMED_PROFILE, f"{where}: signature is not a DER BIT STRING"
        )
    return cert


def end_entity_spiffe_id(cert: x509.Certificate, where: str) -> SpiffeId:
    """The one SPIFFE ID of an end-entity certificate, after checking it is fit to sign: the
    profile rules above. Raises CERTIFICATE_INVALID."""
    _check_common(cert, where)
    bc = _extension(cert, x509.BasicConstraints)
    if bc is not None and bc.ca:
        raise _invalid(where, "is a CA certificate, not an end entity")
    ku = _extension(cert, x509.KeyUsage)
    if ku is None or not ku.digital_signature:
        raise _invalid(where, "key usage lacks digitalSignature")
    if ku.key_cert_sign or ku.crl_sign:
        raise _invalid(where, "end entity with keyCertSign or cRLSign")
    eku = _extension(cert, x509.ExtendedKeyUsage)
    if eku is None or not {
        ExtendedKeyUsageOID.CLIENT_AUTH,
        ExtendedKeyUsageOID.SERVER_AUTH,
    } <= set(eku):
        raise _invalid(where, "extended key usage lacks clientAuth and serverAuth")
    san = _extension(cert, x509.SubjectAlternativeName)
    uris = san.get_values_for_type(x509.UniformResourceIdentifier) if san else []
    if len(uris) != 1:
        raise _invalid(where, f"has {len(uris)} URI SANs, needs exactly one SPIFFE ID")
    try:
        return SpiffeId.parse(uris[0])
    except InvalidArgument as exc:
        raise _invalid(where, f"URI SAN: {exc}") from None


def verify_chain(
    ders: Sequence[bytes],
    trust_domain: TrustDomain | None,
    bundles: BundleSet,
    ops: _crypto.OpCount,
    *,
    allow_ca_signer: bool = False,
) -> VerifiedChain:
    """Verify ``ders`` (signer first, then intermediates, no bundle CA) up to a CA of
    ``trust_domain``'s bundle. Time-independent: validity and revocation are checked by the
    caller on every use.

    ``trust_domain`` None means the domain the end entity's own SPIFFE ID claims (a profile
    signer); otherwise the end entity's SPIFFE ID must be in ``trust_domain``
    (CERTIFICATE_INVALID). With ``allow_ca_signer`` the signer may instead be a CA certificate
    (documents signed by an intermediate identity CA); its ``spiffe_id`` is then None.

    Raises FOREIGN_TRUST_DOMAIN (no bundle for the domain), MALFORMED_PROFILE (undecodable),
    CERTIFICATE_INVALID (profile rules), UNKNOWN_CA (no valid path to a bundle CA).
    """
    if not ders:
        raise VerificationError(ReasonCode.MALFORMED_PROFILE, "signer chain is empty")
    if len(ders) > 1 + MAX_INTERMEDIATES:
        raise _invalid("signer chain", f"longer than {1 + MAX_INTERMEDIATES} certificates")
    certs = [load_certificate(der, f"signer_chain_der[{i}]") for i, der in enumerate(ders)]
    leaf = certs[0]
    spiffe_id: SpiffeId | None
    bc = _extension(leaf, x509.BasicConstraints)
    if allow_ca_signer and trust_domain is not None and bc is not None and bc.ca:
        _check_ca(leaf, "signer_chain_der[0]", below=0)
        spiffe_id = None
    else:
        spiffe_id = end_entity_spiffe_id(leaf, "signer_chain_der[0]")
        if trust_domain is None:
            trust_domain = spiffe_id.trust_domain
        elif spiffe_id.trust_domain != trust_domain:
            raise _invalid("signer_chain_der[0]", f"SPIFFE ID {spiffe_id} is not in {trust_domain}")
    bundle = bundles.get(trust_domain)
    if bundle is None:
        raise VerificationError(
            ReasonCode.FOREIGN_TRUST_DOMAIN,
            f"no trust bundle for trust domain {trust_domain}",
            metadata={"trust_domain": trust_domain.name},
        )
    for index in range(1, len(certs)):
        _check_ca(certs[index], f"signer_chain_der[{index}]", below=index - 1)
    for index in range(len(certs) - 1):
        ops.count += 1
        if not _crypto.certificate_signed_by(certs[index], certs[index + 1]):
            raise VerificationError(
                ReasonCode.UNKNOWN_CA,
                f"signer_chain_der[{index}] is not signed by signer_chain_der[{index + 1}]",
            )
    root = _anchor(certs[-1], bundle, ops, below=len(certs) - 1)
    path = [*certs, root]
    return VerifiedChain(
        trust_domain=trust_domain,
        spiffe_id=spiffe_id,
        public_key=_p256_key(leaf),
        serials=tuple(c.serial_number for c in certs),
        not_before=max(c.not_valid_before_utc for c in path),
        not_after=min(c.not_valid_after_utc for c in path),
        leaf_sha256=_crypto.sha256(ders[0]),
    )


def check_validity(chain: VerifiedChain, now: datetime, leeway: timedelta) -> None:
    """EXPIRED at or after the earliest ``notAfter`` (no leeway: expiry is never extended);
    NOT_YET_VALID more than ``leeway`` before the latest ``notBefore`` (issuer clocks differ)."""
    if now >= chain.not_after:
        raise VerificationError(
            ReasonCode.EXPIRED,
            f"a certificate of the chain expired at {chain.not_after.isoformat()}",
        )
    if now + leeway < chain.not_before:
        raise VerificationError(
            ReasonCode.NOT_YET_VALID,
            f"a certificate of the chain is valid only from {chain.not_before.isoformat()}",
        )


def check_revocation(chain: VerifiedChain, revocations: RevocationList | None) -> None:
    if revocations is None:
        return
    for serial in chain.serials:
        if serial in revocations.serials:
            raise VerificationError(
                ReasonCode.REVOKED,
                f"certificate serial {serial:x} is revoked in {chain.trust_domain}",
                metadata={"serial": f"{serial:x}"},
            )
    spiffe_id = chain.spiffe_id
    if (
        spiffe_id is not None
        and spiffe_id.role is Role.ENFORCER
        and spiffe_id.name in revocations.enforcer_ids
    ):
        raise VerificationError(
            ReasonCode.REVOKED,
            f"enforcer {spiffe_id.name} is revoked in {chain.trust_domain}",
            metadata={"enforcer_id": spiffe_id.name},
        )


def verify_by_bundle_ca(
    bundle: TrustBundle, signature: bytes, data: bytes, ops: _crypto.OpCount
) -> VerifiedChain | None:
    """The bundle CA whose key made ``signature`` over ``data`` (as a one-certificate
    ``VerifiedChain`` without serials or SPIFFE ID), or None. One public-key operation per CA
    tried: one normally, two during a rollover."""
    for cert in bundle.ca_certificates:
        key = _p256_key(cert)
        ops.count += 1
        if _crypto.ecdsa_verify(key, signature, data):
            return VerifiedChain(
                trust_domain=bundle.trust_domain,
                spiffe_id=None,
                public_key=key,
                serials=(),
                not_before=cert.not_valid_before_utc,
                not_after=cert.not_valid_after_utc,
                leaf_sha256=_crypto.sha256(cert.public_bytes(serialization.Encoding.DER)),
            )
    return None


def _anchor(
    top: x509.Certificate, bundle: TrustBundle, ops: _crypto.OpCount, below: int
) -> x509.Certificate:
    for candidate in bundle.issuers_of(top):
        if not _path_length_allows(candidate, below):
            continue
        ops.count += 1
        if _crypto.certificate_signed_by(top, candidate):
            return candidate
    raise VerificationError(
        ReasonCode.UNKNOWN_CA,
        f"the chain does not verify to any CA of the {bundle.trust_domain} bundle",
        metadata={"trust_domain": bundle.trust_domain.name},
    )


def _check_common(cert: x509.Certificate, where: str) -> None:
    if cert.version is not x509.Version.v3:
        raise _invalid(where, "is not X.509 v3")
    if cert.signature_algorithm_oid != SignatureAlgorithmOID.ECDSA_WITH_SHA256:
        raise _invalid(where, "is not signed with ecdsa-with-SHA256")
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise _invalid(where, "has an undecodable or unsupported key") from None
    if not _crypto.is_p256(key):
        raise _invalid(where, "key is not ECDSA P-256")
    try:
        extensions = cert.extensions
    except ValueError as exc:
        raise _invalid(where, f"undecodable extension ({exc})") from None
    for ext in extensions:
        if ext.critical and ext.oid not in _KNOWN_CRITICAL:
            raise _invalid(where, f"unknown critical extension {ext.oid.dotted_string}")


def _check_ca(cert: x509.Certificate, where: str, below: int) -> None:
    """``cert`` may issue certificates, with ``below`` intermediates under it in the path."""
    _check_common(cert, where)
    bc = _extension(cert, x509.BasicConstraints)
    if bc is None or not bc.ca:
        raise _invalid(where, "issues a certificate but is not a CA")
    ku = _extension(cert, x509.KeyUsage)
    if ku is None or not ku.key_cert_sign:
        raise _invalid(where, "issues a certificate but key usage lacks keyCertSign")
    if not _path_length_allows(cert, below):
        raise _invalid(where, "path length constraint exceeded")


def _path_length_allows(ca: x509.Certificate, below: int) -> bool:
    bc = _extension(ca, x509.BasicConstraints)
    return bc is not None and (bc.path_length is None or below <= bc.path_length)


def _extension(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _p256_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not _crypto.is_p256(key):
        raise _invalid("certificate", "key is not ECDSA P-256")
    return key


def _invalid(where: str, problem: str) -> VerificationError:
    return VerificationError(ReasonCode.CERTIFICATE_INVALID, f"{where} {problem}")
