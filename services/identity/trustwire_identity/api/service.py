"""The ``IdentityService`` servicer: thin by design. Each rpc converts its request
(``convert``), calls the domain, and converts the result back. Authorization by role already
happened in the interceptor (``authorization.AUTHORIZATION``); what depends on *which*
enforcer is calling (its own renewals and documents only) is decided by the domain from the
caller's identity and certificate, which this module extracts from the TLS peer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc.aio
from cryptography import x509

from trustwire.api.identity.v1 import identity_service_pb2, identity_service_pb2_grpc
from trustwire.errors import InvalidArgument, Unauthenticated
from trustwire.identity import SpiffeId, TrustDomain
from trustwire.runtime import current_caller

from ..ca import CertificateAuthority
from ..documents import Documents
from ..enrollment import Enrollments
from ..records import EnrollmentKind
from ..revocation import Revocations, TrustFeed
from ..tokens import JoinTokens
from . import convert

__all__ = ["IdentityServicer"]

Context = grpc.aio.ServicerContext[Any, Any]
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_PEER_CERT_KEY = "x509_pem_cert"


def _caller() -> SpiffeId:
    caller = current_caller()
    if caller is None:  # only on a server without the authorization interceptor
        raise Unauthenticated("no authenticated caller", reason="NO_PEER_IDENTITY")
    return SpiffeId.parse(caller.spiffe_id)


def _peer_certificate(context: Context) -> x509.Certificate:
    """The leaf the caller presented (grpc verified it chains to our bundle)."""
    values = list(context.auth_context().get(_PEER_CERT_KEY) or [])
    if not values:
        raise Unauthenticated("no client certificate", reason="NO_PEER_IDENTITY")
    return x509.load_pem_x509_certificate(values[0])


class IdentityServicer(identity_service_pb2_grpc.IdentityServiceServicer):  # type: ignore[misc]
    def __init__(
        self,
        *,
        trust_domain: TrustDomain,
        authority: Callable[[], CertificateAuthority],
        tokens: JoinTokens,
        enrollments: Enrollments,
        revocations: Revocations,
        documents: Documents,
        feed: TrustFeed,
    ) -> None:
        self._trust_domain = trust_domain
        self._authority = authority
        self._tokens = tokens
        self._enrollments = enrollments
        self._revocations = revocations
        self._documents = documents
        self._feed = feed

    async def _bundle(self) -> Any:
        bundle, _ = convert.trust_state_to_pb(await self._feed.current(), self._trust_domain.name)
        return bundle

    async def CreateJoinToken(
        self, request: identity_service_pb2.CreateJoinTokenRequest, context: Context
    ) -> identity_service_pb2.CreateJoinTokenResponse:
        kind = convert.enrollment_kind_from_pb(request.kind)
        ttl = convert.duration_from_pb(request.ttl, "ttl")
        created = await self._tokens.create(kind, request.name, ttl=ttl, created_by=str(_caller()))
        role = "enforcer" if kind is EnrollmentKind.ENFORCER else "service"
        spiffe_id = f"spiffe://{self._trust_domain}/{role}/{request.name or '*'}"
        return identity_service_pb2.CreateJoinTokenResponse(
            token=created.token,
            token_id=created.record.token_id,
            spiffe_id=spiffe_id,
            ca_sha256=self._authority().ca_sha256,
            expires_at=convert.timestamp(created.record.expires_at),
        )

    async def Enroll(
        self, request: identity_service_pb2.EnrollRequest, context: Context
    ) -> identity_service_pb2.EnrollResponse:
        if not request.join_token:
            raise InvalidArgument("a join token is required", field="join_token")
        issued = await self._enrollments.enroll(request.join_token, request.csr_der)
        return convert.enroll_response(issued, await self._bundle())

    async def Renew(
        self, request: identity_service_pb2.RenewRequest, context: Context
    ) -> identity_service_pb2.RenewResponse:
        certificate = _peer_certificate(context)
        issued = await self._enrollments.renew(
            _caller(), certificate.serial_number, request.csr_der
        )
        return convert.renew_response(issued, await self._bundle())

    async def RevokeEnforcer(
        self, request: identity_service_pb2.RevokeEnforcerRequest, context: Context
    ) -> identity_service_pb2.RevokeEnforcerResponse:
        if not request.enforcer_id:
            raise InvalidArgument("an enforcer id is required", field="enforcer_id")
        revocation, sequence = await self._revocations.revoke(
            request.enforcer_id, reason=request.reason, revoked_by=str(_caller())
        )
        return identity_service_pb2.RevokeEnforcerResponse(
            revocation=convert.revocation_to_pb(revocation),
            revocation_list_sequence_number=sequence,
        )

    async def ListEnforcers(
        self, request: identity_service_pb2.ListEnforcersRequest, context: Context
    ) -> identity_service_pb2.ListEnforcersResponse:
        size = request.page.page_size or DEFAULT_PAGE_SIZE
        if size > MAX_PAGE_SIZE:
            raise InvalidArgument(f"at most {MAX_PAGE_SIZE}", field="page.page_size")
        records, next_after = await self._enrollments.list(
            EnrollmentKind.ENFORCER,
            include_revoked=request.include_revoked,
            start_after=request.page.page_token,
            limit=size,
        )
        response = identity_service_pb2.ListEnforcersResponse(
            enforcers=[convert.enrollment_to_pb(record) for record in records]
        )
        response.page.next_page_token = next_after
        return response

    async def GetTrustBundle(
        self, request: identity_service_pb2.GetTrustBundleRequest, context: Context
    ) -> identity_service_pb2.GetTrustBundleResponse:
        bundle, revocations = convert.trust_state_to_pb(
            await self._feed.current(), self._trust_domain.name
        )
        return identity_service_pb2.GetTrustBundleResponse(bundle=bundle, revocations=revocations)

    async def WatchTrustBundle(
        self, request: identity_service_pb2.WatchTrustBundleRequest, context: Context
    ) -> AsyncIterator[identity_service_pb2.WatchTrustBundleResponse]:
        async for state in self._feed.subscribe():
            bundle, revocations = convert.trust_state_to_pb(state, self._trust_domain.name)
            yield identity_service_pb2.WatchTrustBundleResponse(
                bundle=bundle, revocations=revocations
            )

    async def IssueIdentityDocument(
        self, request: identity_service_pb2.IssueIdentityDocumentRequest, context: Context
    ) -> identity_service_pb2.IssueIdentityDocumentResponse:
        caller = _caller()
        certificate = _peer_certificate(context)
        if not request.HasField("attestation"):
            raise InvalidArgument("an attestation is required", field="attestation")
        attestation = convert.attestation_from_pb(request.attestation)
        issued = await self._documents.issue(
            caller,
            caller_serial=certificate.serial_number,
            caller_not_after=certificate.not_valid_after_utc,
            pu_id=request.pu_id,
            labels=dict(request.labels),
            attestation=attestation,
            ttl=convert.duration_from_pb(request.ttl, "ttl"),
        )
        document = issued.document
        refresh_after = document.issued_at + (document.expires_at - document.issued_at) / 2
        return identity_service_pb2.IssueIdentityDocumentResponse(
            document=convert.envelope_from_wire(issued.envelope),
            refresh_after=convert.timestamp(refresh_after),
        )
