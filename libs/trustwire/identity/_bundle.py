"""Roots of trust and revocations, one trust domain at a time.

A ``TrustBundle`` is the set of CA certificates of one trust domain (several during CA
rollover). A ``BundleSet`` holds the bundles a verifier trusts, keyed by trust domain: a
credential claiming domain A is chained only to A's bundle, never to B's, so a federated
domain's CA can never vouch for a local identity (bundles of different domains never mix).
A ``RevocationList`` names revoked certificates (by serial) and revoked enforcers (by id) of
one domain.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from cryptography import x509

from trustwire.errors import InvalidArgument

from ._crypto import is_p256
from ._spiffe import TrustDomain

__all__ = ["BundleSet", "RevocationList", "TrustBundle"]


@dataclass(frozen=True, slots=True, eq=False)
class TrustBundle:
    """The CA certificates of ``trust_domain``. Every certificate must be a CA (basic
    constraints ``cA``, key usage ``keyCertSign``) with a P-256 key; the bundle is checked on
    creation so a verifier never holds a root it would misuse."""

    trust_domain: TrustDomain
    ca_certificates: tuple[x509.Certificate, ...]
    # Monotonic version from the identity service; a holder ignores lower numbers.
    sequence_number: int = 0
    _by_subject: Mapping[x509.Name, tuple[x509.Certificate, ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not self.ca_certificates:
            raise InvalidArgument(
                f"bundle of {self.trust_domain} has no CA certificate",
                field="ca_certificates_der",
            )
        by_subject: dict[x509.Name, list[x509.Certificate]] = {}
        for index, cert in enumerate(self.ca_certificates):
            problem = _ca_problem(cert)
            if problem:
                raise InvalidArgument(
                    f"bundle of {self.trust_domain}: certificate {index}: {problem}",
                    field=f"ca_certificates_der[{index}]",
                )
            by_subject.setdefault(cert.subject, []).append(cert)
        object.__setattr__(
            self, "_by_subject", {name: tuple(certs) for name, certs in by_subject.items()}
        )

    @classmethod
    def from_der(
        cls, trust_domain: TrustDomain, ders: Iterable[bytes], sequence_number: int = 0
    ) -> TrustBundle:
        certs = []
        for index, der in enumerate(ders):
            try:
                certs.append(x509.load_der_x509_certificate(der))
            except ValueError as exc:
                raise InvalidArgument(
                    f"bundle of {trust_domain}: certificate {index} is not DER X.509: {exc}",
                    field=f"ca_certificates_der[{index}]",
                ) from None
        return cls(trust_domain, tuple(certs), sequence_number)

    @classmethod
    def from_pem(
        cls, trust_domain: TrustDomain, pem: bytes, sequence_number: int = 0
    ) -> TrustBundle:
        try:
            certs = x509.load_pem_x509_certificates(pem)
        except ValueError as exc:
            raise InvalidArgument(
                f"bundle of {trust_domain}: not PEM certificates: {exc}",
                field="ca_certificates_der",
            ) from None
        return cls(trust_domain, tuple(certs), sequence_number)

    def issuers_of(self, cert: x509.Certificate) -> tuple[x509.Certificate, ...]:
        """The CA certificates whose subject is ``cert``'s issuer (candidates, not verified)."""
        return self._by_subject.get(cert.issuer, ())


def _ca_problem(cert: x509.Certificate) -> str:
    if not is_p256(cert.public_key()):
        return "key is not ECDSA P-256"
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return "missing basic constraints or key usage"
    if not bc.ca:
        return "not a CA (basic constraints cA is false)"
    if not ku.key_cert_sign:
        return "key usage lacks keyCertSign"
    return ""


@dataclass(frozen=True, slots=True)
class BundleSet:
    """The bundles a verifier trusts, at most one per trust domain. Immutable: build a new one
    (``replace``) and hand it to ``ProfileVerifier.update_bundles``."""

    bundles: Mapping[TrustDomain, TrustBundle] = field(default_factory=dict)

    @classmethod
    def of(cls, *bundles: TrustBundle) -> BundleSet:
        by_domain: dict[TrustDomain, TrustBundle] = {}
        for bundle in bundles:
            if bundle.trust_domain in by_domain:
                raise InvalidArgument(
                    f"two bundles for trust domain {bundle.trust_domain}; bundles of one "
                    "domain are one TrustBundle with several CA certificates",
                    field="bundles",
                )
            by_domain[bundle.trust_domain] = bundle
        return cls(by_domain)

    def get(self, trust_domain: TrustDomain) -> TrustBundle | None:
        return self.bundles.get(trust_domain)

    def replace(self, bundle: TrustBundle) -> BundleSet:
        """This set with ``bundle`` as its domain's bundle (added or replacing). A bundle with
        a lower sequence number than the one held is ignored (it is stale)."""
        held = self.bundles.get(bundle.trust_domain)
        if held is not None and bundle.sequence_number < held.sequence_number:
            return self
        return BundleSet({**self.bundles, bundle.trust_domain: bundle})

    def __iter__(self) -> Iterator[TrustBundle]:
        return iter(self.bundles.values())

    def __len__(self) -> int:
        return len(self.bundles)


@dataclass(frozen=True, slots=True)
class RevocationList:
    """Revoked credentials of one trust domain: certificate serials (any certificate of a
    chain, leaf or intermediate) and enforcer ids (every certificate naming
    ``spiffe://<domain>/enforcer/<id>``, whatever its serial, so a renewal cannot escape it)."""

    trust_domain: TrustDomain
    serials: frozenset[int] = frozenset()
    enforcer_ids: frozenset[str] = frozenset()
    sequence_number: int = 0

    @staticmethod
    def parse_serial(text: str) -> int:
        """A serial as the API writes it: lower-case hex without leading zeros."""
        if not text or text != text.lower() or (len(text) > 1 and text[0] == "0"):
            raise InvalidArgument(
                f"serial {text!r} is not lower-case hex without leading zeros", field="serial"
            )
        try:
            return int(text, 16)
        except ValueError:
            raise InvalidArgument(f"serial {text!r} is not hex", field="serial") from None
