"""Workload identity and Trust Profiles: the domain library of identity and enforcers.

Domain code: no gRPC, no etcd; values are frozen dataclasses and wire formats are bytes (the
deterministic protobuf encoding lives in one private codec). docs/trust-profile.md is the
format specification; tests/vectors/trust_profile holds test vectors for other languages.

Identity service (issues)::

    issuer = DocumentIssuer(TrustDomain("cluster-a.example"), ca_credential)
    issued = issuer.issue(pu_id="shop/web-1", enforcer_id="node-1", labels={"app": "web"},
                          attestation=Attestation(PuType.POD, namespace="shop"),
                          not_after=enforcer_cert.not_valid_after_utc)
    issued.envelope   # SignedEnvelope bytes for IssueIdentityDocumentResponse.document

Source enforcer (signs, per connection)::

    signer = ProfileSigner(enforcer_credential)
    signed = signer.sign(issued.envelope, FiveTuple.of("TCP", "10.0.0.1", 40000,
                                                       "10.0.0.2", 5432))

Destination enforcer (verifies, per connection)::

    verifier = ProfileVerifier(BundleSet.of(bundle_a, bundle_b), [revocations_a])
    verified = verifier.verify(signed.envelope, observed_five_tuple, peer_chain=channel_chain)
    verified.labels, verified.profile.reputation_score, verified.signer

Channel sessions (no public-key operation per connection once established)::

    sessions = SessionManager(enforcer_credential, verifier)
    # initiator (source enforcer), over AuthorizationService:
    state, open_request = sessions.initiate(expected_peer=destination_enforcer_id)
    session, confirm_request = sessions.complete(state, open_response, peer_chain=server_chain)
    # responder (destination enforcer):
    open_response = sessions.respond(open_request, peer_chain=client_chain)
    session = sessions.confirm(confirm_request, peer_chain=client_chain)
    # then, per connection, on either side:
    sealed = signer.seal(issued.envelope, five_tuple, session)
    verified = verifier.verify(sealed.envelope, observed, peer_chain=channel_chain)

Every refusal is a ``VerificationError`` (a ``trustwire.errors.PermissionDenied``) whose
``code`` is a ``ReasonCode``.
"""

from trustwire.policy.model import Protocol, PuType

from ._bundle import BundleSet, RevocationList, TrustBundle
from ._credential import Credential
from ._document import Attestation, IdentityDocument
from ._envelope import (
    DOCUMENT_PAYLOAD_TYPE,
    PROFILE_PAYLOAD_TYPE,
    SignatureAlgorithm,
    SignedEnvelope,
)
from ._issuer import DEFAULT_DOCUMENT_TTL, Clock, DocumentIssuer, IssuedDocument, utc_now
from ._profile import FiveTuple, TraceContext, TrustProfile
from ._reasons import ReasonCode, VerificationError
from ._replay import DEFAULT_REPLAY_CAPACITY
from ._session import (
    DEFAULT_SESSION_LIFETIME,
    SESSION_PROTOCOL,
    InitiatorHandshake,
    Session,
    SessionKeys,
    SessionManager,
    SessionRole,
)
from ._signer import ProfileSigner, SignedProfile
from ._spiffe import Role, SpiffeId, TrustDomain
from ._verifier import (
    DEFAULT_MAX_SKEW,
    MAX_ENVELOPE_BYTES,
    ProfileVerifier,
    VerifiedProfile,
    VerifierStats,
)

__all__ = [
    "DEFAULT_DOCUMENT_TTL",
    "DEFAULT_MAX_SKEW",
    "DEFAULT_REPLAY_CAPACITY",
    "DEFAULT_SESSION_LIFETIME",
    "DOCUMENT_PAYLOAD_TYPE",
    "MAX_ENVELOPE_BYTES",
    "PROFILE_PAYLOAD_TYPE",
    "SESSION_PROTOCOL",
    "Attestation",
    "BundleSet",
    "Clock",
    "Credential",
    "DocumentIssuer",
    "FiveTuple",
    "IdentityDocument",
    "InitiatorHandshake",
    "IssuedDocument",
    "ProfileSigner",
    "ProfileVerifier",
    "Protocol",
    "PuType",
    "ReasonCode",
    "RevocationList",
    "Role",
    "Session",
    "SessionKeys",
    "SessionManager",
    "SessionRole",
    "SignatureAlgorithm",
    "SignedEnvelope",
    "SignedProfile",
    "SpiffeId",
    "TraceContext",
    "TrustBundle",
    "TrustDomain",
    "TrustProfile",
    "VerificationError",
    "VerifiedProfile",
    "VerifierStats",
    "utc_now",
]
