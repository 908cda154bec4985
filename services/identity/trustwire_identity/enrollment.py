"""Enrolment (join token + CSR → certificate) and renewal (current certificate + CSR).

Contracts:

- The private key never reaches the service: callers send a PKCS#10 CSR for an ECDSA P-256 key
  they generated. The CSR must parse, be at most 4 KiB and carry a valid self-signature (proof
  of possession of the key).
- The SPIFFE ID of the issued certificate comes from the join token, never from the CSR's
  SANs. The CSR's subject common name is read only as the *requested* name (as a kubelet's CSR
  names its node): it must equal the token's name when the token names one, and supplies the
  name when the token does not (a node-less token).
- DNS/IP SANs: an enforcer may request a DNS SAN equal to its node name only; a service
  (enrolled with an admin-created service token) may request any DNS names and IP addresses it
  serves on. Renewals reuse the enrolment's SANs, so renewing never widens a certificate.
- The token is consumed before the CSR's SANs are checked (the API's contract: a token is
  spent even when the request is then refused), but not when it names another node.
- Renewal needs the caller's current certificate (authenticated by mutual TLS): its serial
  must be the enrollment's newest certificate or the one that newest was renewed from, and the
  enrollment must not be revoked. The record update is a compare-and-swap, so a revocation
  racing a renewal is never overwritten: the renewal re-reads, sees it, and is refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from trustwire.errors import Conflict, InvalidArgument, PermissionDenied
from trustwire.identity import Role, SpiffeId, TrustDomain
from trustwire.store import Compare, KeyValueStore, Put

from .ca import CertificateAuthority, IssuedCertificate
from .clock import Clock
from .names import check_name
from .records import (
    ENFORCERS,
    SERVICES,
    EnrollmentKind,
    EnrollmentRecord,
    decode,
    encode,
    enrollment_key,
)
from .tokens import JoinTokens

__all__ = [
    "DEFAULT_CERTIFICATE_TTL",
    "MAX_CSR_BYTES",
    "CertificateRequest",
    "Enrollments",
    "IssuedCredential",
    "parse_csr",
]

DEFAULT_CERTIFICATE_TTL = timedelta(hours=1)
MAX_CSR_BYTES = 4096
_RENEW_ATTEMPTS = 3
_ROLE = {EnrollmentKind.ENFORCER: Role.ENFORCER, EnrollmentKind.SERVICE: Role.SERVICE}
_KIND = {Role.ENFORCER: EnrollmentKind.ENFORCER, Role.SERVICE: EnrollmentKind.SERVICE}


@dataclass(frozen=True, slots=True)
class CertificateRequest:
    """What a validated CSR asks for. Only the key is taken as is."""

    public_key: ec.EllipticCurvePublicKey
    requested_name: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]


def _bad_csr(message: str, reason: str) -> InvalidArgument:
    return InvalidArgument(message, field="csr_der", reason=reason)


def parse_csr(der: bytes) -> CertificateRequest:
    """Validate a DER PKCS#10 request (see the module docstring); ``InvalidArgument`` naming
    ``csr_der`` with reason ``CSR_MALFORMED``, ``CSR_BAD_SIGNATURE`` or ``CSR_KEY_ALGORITHM``."""
    if not der:
        raise _bad_csr("a CSR is required", "CSR_MALFORMED")
    if len(der) > MAX_CSR_BYTES:
        raise _bad_csr(f"CSR larger than {MAX_CSR_BYTES} bytes", "CSR_MALFORMED")
    try:
        csr = x509.load_der_x509_csr(der)
        public_key = csr.public_key()
    except (ValueError, TypeError) as error:
        raise _bad_csr(f"not a DER PKCS#10 CSR: {error}", "CSR_MALFORMED") from None
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        raise _bad_csr("the CSR's key must be ECDSA P-256", "CSR_KEY_ALGORITHM")
    if not csr.is_signature_valid:
        raise _bad_csr("the CSR's self-signature does not verify", "CSR_BAD_SIGNATURE")
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    requested = names[0].value if names else ""
    if not isinstance(requested, str):
        raise _bad_csr("the CSR's common name is not text", "CSR_MALFORMED")
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        pass
    except ValueError as error:
        raise _bad_csr(f"unreadable extensions: {error}", "CSR_MALFORMED") from None
    return CertificateRequest(public_key, requested, dns, ips)


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    """The result of Enroll and Renew."""

    spiffe_id: SpiffeId
    issued: IssuedCertificate
    renew_after: datetime


class Enrollments:
    """Enrolment, renewal and the records of enrolled enforcers and services.

    ``authority`` returns the current CA (it changes at rollover); ``certificate_ttl`` is the
    lifetime of issued certificates (capped by the CA's expiry).
    """

    def __init__(
        self,
        store: KeyValueStore,
        tokens: JoinTokens,
        authority: Callable[[], CertificateAuthority],
        trust_domain: TrustDomain,
        clock: Clock,
        certificate_ttl: timedelta = DEFAULT_CERTIFICATE_TTL,
    ) -> None:
        self._store = store
        self._tokens = tokens
        self._authority = authority
        self._trust_domain = trust_domain
        self._clock = clock
        self._ttl = certificate_ttl

    async def enroll(self, token: str, csr_der: bytes) -> IssuedCredential:
        """Redeem ``token`` and certify the CSR's key (see the module docstring)."""
        # Parse first only to learn the requested name; a CSR error is raised after the
        # token is spent, as the API promises.
        try:
            request: CertificateRequest | None = parse_csr(csr_der)
            csr_error: InvalidArgument | None = None
        except InvalidArgument as error:
            request, csr_error = None, error
        requested = request.requested_name if request is not None else ""
        token_record = await self._tokens.peek(token)
        name = token_record.name or requested
        spiffe_id: SpiffeId | None = None
        if name and request is not None:
            check_name(name, "csr_der")
            spiffe_id = SpiffeId(self._trust_domain, _ROLE[token_record.kind], name)
        key = enrollment_key(token_record.kind, name) if name else ""
        existing = await self._store.get(key) if key else None
        # A node-less token must not resurrect a revoked identity: only a token that an admin
        # made for this very name may re-enrol it.
        if (
            existing is not None
            and not token_record.name
            and decode(EnrollmentRecord, existing.value).revoked
        ):
            raise PermissionDenied(
                f"{name} is revoked; re-enrolling it needs a token created for it",
                reason="ENROLLMENT_REVOKED",
                metadata={"name": name},
            )
        consumed = await self._tokens.redeem(
            token, name=requested, spiffe_id_for=str(spiffe_id) if spiffe_id else ""
        )
        if csr_error is not None:
            raise csr_error
        assert request is not None  # parse_csr either returned or set csr_error
        if not name:
            raise _bad_csr(
                "the join token names no node: the CSR's common name must name it",
                "CSR_NAME_MISSING",
            )
        assert spiffe_id is not None
        dns_names, ip_addresses = self._allowed_sans(consumed.kind, name, request)
        now = self._clock()
        issued = self._authority().active.issue(
            request.public_key,
            spiffe_id,
            ttl=self._ttl,
            now=now,
            dns_names=dns_names,
            ip_addresses=ip_addresses,
        )
        record = EnrollmentRecord(
            kind=consumed.kind,
            name=name,
            spiffe_id=str(spiffe_id),
            serial=issued.serial,
            not_after=issued.not_after,
            enrolled_at=now,
            dns_names=dns_names,
            ip_addresses=ip_addresses,
        )
        await self._store.txn([], [Put(key, encode(record))])
        return IssuedCredential(spiffe_id, issued, _halfway(now, issued.not_after))

    def _allowed_sans(
        self, kind: EnrollmentKind, name: str, request: CertificateRequest
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if kind is EnrollmentKind.SERVICE:
            for address in request.ip_addresses:
                ipaddress.ip_address(address)  # already parsed by cryptography
            for dns in request.dns_names:
                _check_dns_san(dns)
            return request.dns_names, request.ip_addresses
        for dns in request.dns_names:
            if dns != name:
                raise _bad_csr(
                    f"an enforcer may only request its node name {name!r} as DNS SAN, not {dns!r}",
                    "CSR_SAN_NOT_ALLOWED",
                )
        if request.ip_addresses:
            raise _bad_csr("an enforcer may not request IP SANs", "CSR_SAN_NOT_ALLOWED")
        return request.dns_names, ()

    async def renew(self, caller: SpiffeId, caller_serial: int, csr_der: bytes) -> IssuedCredential:
        """A new certificate for ``caller``, who proved possession of the certificate with
        ``caller_serial`` (see the module docstring for what is refused)."""
        kind = _KIND.get(caller.role)
        if kind is None or caller.trust_domain != self._trust_domain:
            raise PermissionDenied(f"{caller} cannot renew", reason="ROLE_NOT_ALLOWED")
        request = parse_csr(csr_der)
        key = enrollment_key(kind, caller.name)
        for _ in range(_RENEW_ATTEMPTS):
            entry = await self._store.get(key)
            if entry is None:
                raise PermissionDenied(f"{caller} is not enrolled", reason="NOT_ENROLLED")
            record = decode(EnrollmentRecord, entry.value)
            check_usable(record, caller_serial)
            now = self._clock()
            issued = self._authority().active.issue(
                request.public_key,
                caller,
                ttl=self._ttl,
                now=now,
                dns_names=record.dns_names,
                ip_addresses=record.ip_addresses,
            )
            renewed = replace(
                record,
                serial=issued.serial,
                previous_serial=caller_serial,
                not_after=issued.not_after,
                renewed_at=now,
            )
            result = await self._store.txn(
                [Compare(key, entry.mod_revision)], [Put(key, encode(renewed))]
            )
            if result.succeeded:
                return IssuedCredential(caller, issued, _halfway(now, issued.not_after))
        raise Conflict(f"{caller} changed concurrently; retry", reason="CONCURRENT_UPDATE")

    async def get(self, kind: EnrollmentKind, name: str) -> EnrollmentRecord | None:
        entry = await self._store.get(enrollment_key(kind, name))
        return decode(EnrollmentRecord, entry.value) if entry is not None else None

    async def list(
        self,
        kind: EnrollmentKind = EnrollmentKind.ENFORCER,
        *,
        include_revoked: bool = False,
        start_after: str = "",
        limit: int = 0,
    ) -> tuple[tuple[EnrollmentRecord, ...], str]:
        """Records ordered by name after ``start_after``; returns them and the name to continue
        after (empty when there are no more)."""
        prefix = ENFORCERS if kind is EnrollmentKind.ENFORCER else SERVICES
        found: list[EnrollmentRecord] = []
        cursor = prefix + start_after if start_after else ""
        while True:
            page = await self._store.list(prefix, start_after=cursor, limit=max(limit, 100))
            for entry in page.entries:
                record = decode(EnrollmentRecord, entry.value)
                cursor = entry.key
                if record.revoked and not include_revoked:
                    continue
                found.append(record)
                if limit and len(found) == limit:
                    more = page.more or entry is not page.entries[-1]
                    return tuple(found), record.name if more else ""
            if not page.more:
                return tuple(found), ""


def check_usable(record: EnrollmentRecord, serial: int) -> None:
    """Refuse a revoked enrollment, or a certificate older than the last renewal's source."""
    if record.revoked:
        raise PermissionDenied(
            f"{record.spiffe_id} is revoked",
            reason="ENROLLMENT_REVOKED",
            metadata={"spiffe_id": record.spiffe_id},
        )
    if serial not in (record.serial, record.previous_serial):
        raise PermissionDenied(
            f"certificate {serial:x} of {record.spiffe_id} was superseded by a renewal",
            reason="CERTIFICATE_SUPERSEDED",
            metadata={"spiffe_id": record.spiffe_id},
        )


def _check_dns_san(name: str) -> None:
    labels = name.split(".")
    if (
        not name
        or len(name) > 253
        or any(
            not label or len(label) > 63 or not all(c.isalnum() or c == "-" for c in label)
            for label in labels
        )
    ):
        raise _bad_csr(f"invalid DNS SAN {name[:80]!r}", "CSR_SAN_NOT_ALLOWED")


def _halfway(now: datetime, not_after: datetime) -> datetime:
    return now + (not_after - now) / 2
