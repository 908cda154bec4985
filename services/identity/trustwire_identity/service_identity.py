"""The identity service's own certificates, issued by its own CA and reissued before they
run low: the serving certificate (mutual TLS) and the document-signing certificate.

Both are end entities ``spiffe://<td>/service/identity``. They are kept apart because their
lifetimes differ: a document must never outlive the certificate that signed it (verifiers
check the signer chain when they verify), so the signing certificate lives twice the longest
document lifetime and is replaced once less than one document lifetime remains. Every
document signed is therefore valid for its whole life. The serving certificate lives
``ttl`` and is replaced at half life; gRPC picks it up on the next handshake.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import ec

from trustwire.identity import Role, SpiffeId, TrustDomain

from .ca import (
    CertificateAuthority,
    IssuedCertificate,
    certificates_to_pem,
    generate_key,
    key_to_pem,
)
from .clock import Clock

__all__ = ["OwnCertificate", "RotatingCertificate"]


@dataclass(frozen=True, slots=True)
class OwnCertificate:
    key: ec.EllipticCurvePrivateKey = field(repr=False)
    issued: IssuedCertificate

    @property
    def chain_pem(self) -> bytes:
        return certificates_to_pem(self.issued.chain)

    @property
    def key_pem(self) -> bytes:
        return key_to_pem(self.key)


class RotatingCertificate:
    """A certificate of this service that :meth:`current` reissues when less than
    ``min_remaining`` of it is left (or when the CA that signed it is no longer active).

    Thread-safe: gRPC calls the serving-certificate fetcher from its own threads.
    """

    def __init__(
        self,
        trust_domain: TrustDomain,
        authority: Callable[[], CertificateAuthority],
        clock: Clock,
        *,
        ttl: timedelta,
        min_remaining: timedelta,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
    ) -> None:
        if min_remaining >= ttl:
            raise ValueError("min_remaining must be shorter than ttl")
        self._spiffe_id = SpiffeId(trust_domain, Role.SERVICE, "identity")
        self._authority = authority
        self._clock = clock
        self._ttl = ttl
        self._min_remaining = min_remaining
        self._dns_names = tuple(dns_names)
        self._ip_addresses = tuple(ip_addresses)
        self._lock = threading.Lock()
        self._current: OwnCertificate | None = None

    def current(self) -> OwnCertificate:
        with self._lock:
            now = self._clock()
            ca = self._authority()
            held = self._current
            if held is None or self._due(held, ca, now):
                held = self._issue(ca, now)
                self._current = held
            return held

    def _due(self, held: OwnCertificate, ca: CertificateAuthority, now: datetime) -> bool:
        signed_by_active = held.issued.certificate.issuer == ca.active.certificate.subject
        return not signed_by_active or held.issued.not_after - now < self._min_remaining

    def _issue(self, ca: CertificateAuthority, now: datetime) -> OwnCertificate:
        key = generate_key()
        issued = ca.active.issue(
            key.public_key(),
            self._spiffe_id,
            ttl=self._ttl,
            now=now,
            dns_names=self._dns_names,
            ip_addresses=self._ip_addresses,
        )
        return OwnCertificate(key, issued)
