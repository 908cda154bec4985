"""The trust domain's certificate authority.

Two ways to get a CA (decided by settings):

- **self-managed** (no CA files configured): on first start a self-signed ECDSA P-256 root is
  generated into ``<state_dir>/ca/``; it signs leaves directly. Rollover is automatic: at half
  the active root's life the next root is generated and *pre-published* (it appears in the
  bundle but signs nothing), at five sixths it becomes active and the old root stays in the
  bundle, retired, until it expires. Verifiers therefore hold the next root long before any
  certificate chains to it, and the old one for as long as anything chained to it can be
  valid (leaves never outlive their issuer: their expiry is capped by it).
- **loaded** (``ca_chain_file`` + ``ca_key_file``): an intermediate under an organisation's
  root. The chain file lists the signing CA first, then its issuers; its last certificate is
  the trust anchor that goes into the bundle (the organisation root when present). An
  optional next chain + key is pre-published the same way; the operator activates it by
  swapping the files and restarting.

The CA key is read only through :mod:`private_files` (0600, refused otherwise) and is never
written anywhere else: not to etcd, not to logs, not to any response.

Issued leaves follow the profile every Trustwire verifier checks (``trustwire.identity``): one
``spiffe://`` URI SAN, basic constraints ``cA=false``, key usage ``digitalSignature`` only,
extended key usage clientAuth + serverAuth, random 128-bit serial, optional DNS/IP SANs (gRPC
clients check a server's certificate against the host name they dial).
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trustwire.errors import FailedPrecondition, InvalidArgument
from trustwire.identity import SpiffeId, TrustDomain

from .private_files import read_private, write_private

__all__ = [
    "BACKDATE",
    "CertificateAuthority",
    "IssuedCertificate",
    "SigningCA",
    "certificate_sha256",
    "certificates_to_pem",
    "generate_key",
    "key_to_pem",
    "serial_hex",
]

BACKDATE = timedelta(seconds=30)
"""``notBefore`` is set this far in the past, so a verifier whose clock lags by up to the
handshake's allowed skew (30 s) does not see a fresh certificate as not yet valid."""

SERIAL_BITS = 128
PREPARE_AT = 1 / 2  # of the active root's life: generate and pre-publish the next root
ACTIVATE_AT = 5 / 6  # of the active root's life: the next root starts signing


def generate_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_to_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def certificates_to_pem(certificates: Sequence[x509.Certificate]) -> bytes:
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certificates)


def certificate_sha256(certificate: x509.Certificate) -> str:
    """Lower-case hex SHA-256 of the DER encoding (what a join token's ``ca_sha256`` pins)."""
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def serial_hex(serial: int) -> str:
    """The API's spelling of a serial: lower-case hex without leading zeros."""
    return format(serial, "x")


def random_serial() -> int:
    """A uniformly random, positive 128-bit serial (RFC 5280 allows up to 20 octets)."""
    while True:
        serial = secrets.randbits(SERIAL_BITS)
        if serial:
            return serial


def _is_p256(key: object) -> bool:
    return isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) and isinstance(
        key.curve, ec.SECP256R1
    )


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A leaf and what to send with it: ``chain`` is the leaf, then intermediates (no anchor)."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]

    @property
    def serial(self) -> int:
        return self.certificate.serial_number

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc


@dataclass(frozen=True, slots=True)
class SigningCA:
    """One CA that can sign: its certificate and key, the intermediates between it and the
    trust anchor (it included when it is not the anchor), and the anchor."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey = field(repr=False)
    intermediates: tuple[x509.Certificate, ...]
    anchor: x509.Certificate

    @classmethod
    def from_chain(
        cls, chain: Sequence[x509.Certificate], key: ec.EllipticCurvePrivateKey
    ) -> SigningCA:
        """From a chain file's certificates (signing CA first, anchor last) and its key."""
        if not chain:
            raise InvalidArgument("CA chain file has no certificate", field="ca_chain_file")
        signer = chain[0]
        if not _is_p256(key) or not _is_p256(signer.public_key()):
            raise InvalidArgument("CA key must be ECDSA P-256", field="ca_key_file")
        if signer.public_key() != key.public_key():
            raise InvalidArgument(
                "CA key does not match the first certificate of the chain file",
                field="ca_key_file",
            )
        basic = signer.extensions.get_extension_for_class(x509.BasicConstraints).value
        if not basic.ca:
            raise InvalidArgument(
                "first certificate of the CA chain file is not a CA", field="ca_chain_file"
            )
        anchor = chain[-1]
        intermediates = tuple(chain[:-1]) if len(chain) > 1 else ()
        return cls(signer, key, intermediates, anchor)

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        # The signer can sign nothing that outlives any certificate above it.
        above = (self.certificate, *self.intermediates, self.anchor)
        return min(cert.not_valid_after_utc for cert in above)

    def issue(
        self,
        public_key: ec.EllipticCurvePublicKey,
        spiffe_id: SpiffeId,
        *,
        ttl: timedelta,
        now: datetime,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
    ) -> IssuedCertificate:
        """Sign a leaf for ``public_key`` naming ``spiffe_id`` (see the module docstring).

        Expiry is ``now + ttl`` capped at the CA's own expiry; ``FailedPrecondition``
        (``CA_EXPIRED``) when the CA cannot issue at ``now``.
        """
        if not _is_p256(public_key):
            raise InvalidArgument(
                "key must be ECDSA P-256", field="csr_der", reason="CSR_KEY_ALGORITHM"
            )
        not_after = min(now + ttl, self.not_after)
        if not_after <= now:
            raise FailedPrecondition("the CA has expired", reason="CA_EXPIRED")
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(str(spiffe_id))]
        names.extend(x509.DNSName(name) for name in dns_names)
        names.extend(x509.IPAddress(ipaddress.ip_address(address)) for address in ip_addresses)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Trustwire")]))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(random_serial())
            .not_valid_before(max(now - BACKDATE, self.not_before))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_LEAF_KEY_USAGE, critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        certificate = builder.sign(self.key, hashes.SHA256())
        return IssuedCertificate(certificate, (certificate, *self.intermediates))


_LEAF_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)

_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def create_root(trust_domain: TrustDomain, *, now: datetime, ttl: timedelta) -> SigningCA:
    """A new self-signed ECDSA P-256 root for ``trust_domain`` that signs leaves directly."""
    key = generate_key()
    serial = random_serial()
    # A distinct subject per generation, so during rollover verifiers and people can tell
    # the roots apart by name (chain building matches issuer names first).
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Trustwire"),
            x509.NameAttribute(
                NameOID.COMMON_NAME, f"Trustwire CA {trust_domain} {serial_hex(serial)[:8]}"
            ),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + ttl)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return SigningCA(certificate, key, (), certificate)


def load_signing_ca(chain_file: Path, key_file: Path) -> SigningCA:
    """A CA from PEM files; the key file must be 0600 (``KEY_FILE_PERMISSIONS`` otherwise)."""
    key_pem = read_private(key_file)
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
        chain = x509.load_pem_x509_certificates(chain_file.read_bytes())
    except ValueError as error:
        raise InvalidArgument(
            f"cannot load CA from {chain_file} and {key_file}: {error}",
            field="ca_chain_file",
            reason="CA_FILES_INVALID",
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidArgument("CA key must be ECDSA P-256", field="ca_key_file")
    return SigningCA.from_chain(chain, key)


def _write_ca(directory: Path, name: str, ca: SigningCA) -> None:
    write_private(directory / f"{name}.key", key_to_pem(ca.key))
    # Self-managed CAs are always roots: the chain file is the certificate alone.
    write_private(directory / f"{name}.crt", certificates_to_pem([ca.certificate]))


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """The CA set of one trust domain: ``active`` signs; ``next`` is pre-published; ``retired``
    anchors stay in the bundle until they expire. Immutable: rollover returns a new value."""

    trust_domain: TrustDomain
    active: SigningCA
    next: SigningCA | None = None
    retired: tuple[x509.Certificate, ...] = ()
    directory: Path | None = None
    """Where a self-managed CA persists itself; ``None`` for a loaded CA (never rewritten)."""
    ca_ttl: timedelta = timedelta(days=365)

    @classmethod
    def open_self_managed(
        cls, trust_domain: TrustDomain, directory: Path, *, now: datetime, ca_ttl: timedelta
    ) -> CertificateAuthority:
        """Load the CA persisted in ``directory``, creating a root on first start."""
        active_key = directory / "active.key"
        if not active_key.exists():
            root = create_root(trust_domain, now=now, ttl=ca_ttl)
            ca = cls(trust_domain, root, directory=directory, ca_ttl=ca_ttl)
            ca.persist()
            return ca
        active = load_signing_ca(directory / "active.crt", active_key)
        next_ca = None
        if (directory / "next.key").exists():
            next_ca = load_signing_ca(directory / "next.crt", directory / "next.key")
        retired: tuple[x509.Certificate, ...] = ()
        if (directory / "retired.crt").exists():
            pem = (directory / "retired.crt").read_bytes()
            retired = tuple(x509.load_pem_x509_certificates(pem)) if pem.strip() else ()
        return cls(trust_domain, active, next_ca, retired, directory, ca_ttl)

    @classmethod
    def open_loaded(
        cls,
        trust_domain: TrustDomain,
        chain_file: Path,
        key_file: Path,
        next_chain_file: Path | None = None,
        next_key_file: Path | None = None,
    ) -> CertificateAuthority:
        active = load_signing_ca(chain_file, key_file)
        next_ca = None
        if next_chain_file is not None and next_key_file is not None:
            next_ca = load_signing_ca(next_chain_file, next_key_file)
        return cls(trust_domain, active, next_ca)

    def persist(self) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_ca(self.directory, "active", self.active)
        if self.next is not None:
            _write_ca(self.directory, "next", self.next)
        else:
            for name in ("next.key", "next.crt"):
                (self.directory / name).unlink(missing_ok=True)
        write_private(self.directory / "retired.crt", certificates_to_pem(self.retired))

    def rotated(self, now: datetime) -> CertificateAuthority:
        """This CA after the self-managed rollover steps due at ``now`` (itself when none is).

        The caller persists nothing: a changed value is already written to ``directory``.
        """
        if self.directory is None:
            return self
        current = self
        life = current.active.not_after - current.active.not_before
        if current.next is None and now >= current.active.not_before + life * PREPARE_AT:
            prepared = create_root(self.trust_domain, now=now, ttl=self.ca_ttl)
            current = replace(current, next=prepared)
        if current.next is not None and now >= current.active.not_before + life * ACTIVATE_AT:
            current = replace(
                current,
                active=current.next,
                next=None,
                retired=(*current.retired, current.active.anchor),
            )
        if current is not self:
            current.persist()
        return current

    def anchors(self, now: datetime) -> tuple[x509.Certificate, ...]:
        """The bundle: active, next and retired anchors not yet expired at ``now``."""
        candidates = [self.active.anchor]
        if self.next is not None:
            candidates.append(self.next.anchor)
        candidates.extend(self.retired)
        seen: set[bytes] = set()
        anchors: list[x509.Certificate] = []
        for cert in candidates:
            fingerprint = cert.fingerprint(hashes.SHA256())
            if fingerprint in seen or cert.not_valid_after_utc <= now:
                continue
            seen.add(fingerprint)
            anchors.append(cert)
        return tuple(anchors)

    def bundle_sequence(self, now: datetime) -> int:
        """The bundle's version at ``now``: the Unix time of its last change (an anchor added,
        or a retired one expired). Deterministic from the CA files, so every replica sharing
        them reports the same number, and it only grows."""
        moments = [cert.not_valid_before_utc for cert in self.anchors(now)]
        moments.extend(
            cert.not_valid_after_utc for cert in self.retired if cert.not_valid_after_utc <= now
        )
        return int(max(moments).timestamp()) if moments else 0

    @property
    def ca_sha256(self) -> str:
        """What a join token pins: the SHA-256 of the active anchor."""
        return certificate_sha256(self.active.anchor)
