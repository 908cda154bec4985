"""Issuing identity documents: what the identity service calls for IssueIdentityDocument."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from trustwire.errors import InvalidArgument

from . import _codec, _crypto
from ._credential import Credential
from ._document import Attestation, IdentityDocument
from ._envelope import DOCUMENT_PAYLOAD_TYPE, SignatureAlgorithm, SignedEnvelope
from ._spiffe import Role, SpiffeId, TrustDomain

__all__ = ["DEFAULT_DOCUMENT_TTL", "Clock", "DocumentIssuer", "IssuedDocument", "utc_now"]

DEFAULT_DOCUMENT_TTL = timedelta(hours=1)
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class IssuedDocument:
    """A signed document: ``envelope`` is the ``common.v1.SignedEnvelope`` wire bytes to hand
    to the enforcer (and, unchanged, into every Trust Profile); ``document`` is what they say."""

    envelope: bytes
    document: IdentityDocument


class DocumentIssuer:
    """Signs identity documents for one trust domain.

    ``credential`` is either the domain's CA (its certificate is a CA certificate; documents
    then carry no chain, and verifiers try the CAs of the domain's bundle) or an end entity
    ``spiffe://<domain>/service/identity`` certified by it (documents then carry its chain,
    ~500 bytes more). Any other signer is refused here, and verifiers refuse its documents: an
    enforcer's certificate chains to the same CA but must never mint identities.

    Authorization (may this enforcer ask for this PU?) is the service's job; this class
    enforces what every document must satisfy: reserved labels are never taken from the
    caller, and a document never outlives ``not_after`` (the enforcer's certificate) or the
    issuer's own certificate.
    """

    def __init__(
        self,
        trust_domain: TrustDomain,
        credential: Credential,
        *,
        clock: Clock = utc_now,
        ttl: timedelta = DEFAULT_DOCUMENT_TTL,
    ) -> None:
        if credential.is_ca:
            issuer_name = credential.certificate.issuer
            self._chain: tuple[bytes, ...] = (
                () if issuer_name == credential.certificate.subject else credential.chain_der
            )
        else:
            expected = SpiffeId(trust_domain, Role.SERVICE, "identity")
            if credential.spiffe_id != expected:
                raise InvalidArgument(
                    f"documents are signed by the CA or {expected}, not {credential.spiffe_id}",
                    field="credential",
                )
            self._chain = credential.chain_der
        if ttl <= timedelta(0):
            raise InvalidArgument("must be positive", field="ttl")
        self.trust_domain = trust_domain
        self._credential = credential
        self._clock = clock
        self._ttl = ttl

    def issue(
        self,
        *,
        pu_id: str,
        enforcer_id: str,
        labels: Mapping[str, str],
        attestation: Attestation,
        not_after: datetime | None = None,
        ttl: timedelta | None = None,
    ) -> IssuedDocument:
        """Sign a new document valid from now for ``ttl`` (default: the issuer's), cut at
        ``not_after`` and at the issuer certificate's expiry. ``labels`` are the workload's
        own; a reserved key raises ``InvalidArgument`` naming it."""
        now = self._clock()
        expires = now + (ttl or self._ttl)
        for limit in (not_after, self._credential.certificate.not_valid_after_utc):
            if limit is not None and limit < expires:
                expires = limit
        document = IdentityDocument(
            document_id=secrets.token_hex(16),
            pu_id=pu_id,
            trust_domain=self.trust_domain,
            enforcer_id=enforcer_id,
            labels=labels,
            attestation=attestation,
            issued_at=now,
            expires_at=expires,
        )
        return IssuedDocument(self.sign(document), document)

    def sign(self, document: IdentityDocument) -> bytes:
        """Sign a fully built document (``issue`` builds one; tests and vectors build their
        own). Returns the envelope's wire bytes."""
        if document.trust_domain != self.trust_domain:
            raise InvalidArgument(
                f"document of {document.trust_domain}, issuer of {self.trust_domain}",
                field="trust_domain",
            )
        payload = _codec.encode_document(document)
        signature = _crypto.ecdsa_sign(
            self._credential.private_key, _crypto.pae(DOCUMENT_PAYLOAD_TYPE, payload)
        )
        return _codec.encode_envelope(
            SignedEnvelope(
                payload=payload,
                payload_type=DOCUMENT_PAYLOAD_TYPE,
                signature=signature,
                algorithm=SignatureAlgorithm.ECDSA_P256_SHA256,
                signer_chain_der=self._chain,
            )
        )
