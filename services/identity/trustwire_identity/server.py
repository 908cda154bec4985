"""The identity service process: assembles the domain, the store and the gRPC edge.

Two listeners on one gRPC server (same handlers, same interceptors):

- ``listen_address``: mutual TLS, client certificates required; every rpc but Enroll.
- ``enroll_address``: server-authenticated TLS, no client certificate requested; only the
  public rpcs (Enroll, health) succeed there, since every other rpc needs a peer identity the
  authorization interceptor cannot find. A separate port is needed because gRPC Python's
  server credentials either require client certificates or never request them (there is no
  "request but do not require" mode). The enrolment port presents its chain *with* the CA
  anchor, so a new node can pin that anchor by the join token's ``ca_sha256`` (kubeadm's
  discovery hash) before trusting the connection.

Both listeners' certificates are ``spiffe://<td>/service/identity`` from this service's own
CA, re-issued before they run low and picked up by gRPC on the next handshake (dynamic
server credentials), and the mTLS listener's client CA set follows CA rollover the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from datetime import datetime
from pathlib import Path

from cryptography import x509
from opentelemetry.trace import TracerProvider

from trustwire.api.identity.v1 import identity_service_pb2_grpc
from trustwire.errors import Unavailable
from trustwire.identity import Credential, DocumentIssuer, TrustDomain
from trustwire.runtime import (
    RotatingServerTLS,
    Service,
    ServiceServer,
    TLSMaterial,
    build_server,
)
from trustwire.store import KeyValueStore

from .admin import ensure_admin_credential
from .api.authorization import AUTHORIZATION, IDENTITY_SERVICE
from .api.service import IdentityServicer
from .ca import CertificateAuthority, certificates_to_pem
from .clock import Clock, system_clock
from .documents import Documents
from .enrollment import Enrollments
from .revocation import Revocations, TrustFeed
from .service_identity import OwnCertificate, RotatingCertificate
from .settings import IdentitySettings
from .tokens import JoinTokens

__all__ = ["IdentityServer"]

_log = logging.getLogger("trustwire.identity.server")
MAINTENANCE_INTERVAL_S = 60.0


def _split_names(names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    dns: list[str] = []
    ips: list[str] = []
    for name in names:
        try:
            ips.append(str(ipaddress.ip_address(name)))
        except ValueError:
            dns.append(name)
    return tuple(dns), tuple(ips)


class IdentityServer:
    """A running identity service. Build with :meth:`start`; stop with :meth:`stop`."""

    def __init__(
        self,
        settings: IdentitySettings,
        store: KeyValueStore,
        authority: CertificateAuthority,
        clock: Clock,
        *,
        owns_store: bool,
    ) -> None:
        self.settings = settings
        self.store = store
        self.trust_domain = TrustDomain(settings.trust_domain)
        self._authority = authority
        self._clock = clock
        self._owns_store = owns_store
        dns, ips = _split_names(settings.server_names)
        self.serving = RotatingCertificate(
            self.trust_domain,
            self.authority,
            clock,
            ttl=settings.certificate_ttl,
            min_remaining=settings.certificate_ttl / 2,
            dns_names=dns,
            ip_addresses=ips,
        )
        self.signing = RotatingCertificate(
            self.trust_domain,
            self.authority,
            clock,
            ttl=settings.document_ttl * 2,
            min_remaining=settings.document_ttl,
        )
        self._issuer: tuple[OwnCertificate, DocumentIssuer] | None = None
        self.tokens = JoinTokens(store, clock)
        self.enrollments = Enrollments(
            store,
            self.tokens,
            self.authority,
            self.trust_domain,
            clock,
            certificate_ttl=settings.certificate_ttl,
        )
        self.revocations = Revocations(store, clock)
        self.documents = Documents(
            self.enrollments, self._document_issuer, ttl=settings.document_ttl
        )
        self.feed = TrustFeed(self.revocations, store, self._anchors, clock)
        self._server: ServiceServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.address = ""
        self.enroll_address = ""
        self.config_path: Path | None = None

    # -- state shared with the domain ---------------------------------------------------------

    def authority(self) -> CertificateAuthority:
        return self._authority

    def _anchors(self, now: datetime) -> tuple[tuple[x509.Certificate, ...], int]:
        ca = self._authority
        return ca.anchors(now), ca.bundle_sequence(now)

    def _document_issuer(self) -> DocumentIssuer:
        own = self.signing.current()
        if self._issuer is None or self._issuer[0] is not own:
            credential = Credential(own.key, own.issued.certificate, own.issued.chain[1:])
            issuer = DocumentIssuer(
                self.trust_domain, credential, clock=self._clock, ttl=self.settings.document_ttl
            )
            self._issuer = (own, issuer)
        return self._issuer[1]

    def _bundle_pem(self) -> bytes:
        return certificates_to_pem(self._authority.anchors(self._clock()))

    def _mtls_material(self) -> TLSMaterial:
        own = self.serving.current()
        return own.chain_pem, own.key_pem, self._bundle_pem()

    def _enroll_material(self) -> TLSMaterial:
        own = self.serving.current()
        anchor = certificates_to_pem([self._authority.active.anchor])
        chain = (
            own.chain_pem
            if own.issued.chain[-1] == self._authority.active.anchor
            else (own.chain_pem + anchor)
        )
        return chain, own.key_pem, self._bundle_pem()

    def rotate_authority(self) -> bool:
        """Apply the CA rollover steps due now; True when the CA set changed (the feed then
        pushes the new bundle to every watcher)."""
        rotated = self._authority.rotated(self._clock())
        if rotated is self._authority:
            return False
        self._authority = rotated
        _log.info("CA set changed", extra={"anchors": len(rotated.anchors(self._clock()))})
        self.feed.authority_changed()
        return True

    # -- lifecycle ----------------------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        settings: IdentitySettings,
        *,
        store: KeyValueStore | None = None,
        clock: Clock = system_clock,
        tracer_provider: TracerProvider | None = None,
    ) -> IdentityServer:
        """Open (or create) the CA, connect the store, bind both listeners, start serving and
        write the admin credential and CLI config."""
        trust_domain = TrustDomain(settings.trust_domain)
        now = clock()
        if settings.ca_chain_file is not None and settings.ca_key_file is not None:
            authority = CertificateAuthority.open_loaded(
                trust_domain,
                settings.ca_chain_file,
                settings.ca_key_file,
                settings.next_ca_chain_file,
                settings.next_ca_key_file,
            )
        else:
            authority = CertificateAuthority.open_self_managed(
                trust_domain, settings.state_dir / "ca", now=now, ca_ttl=settings.ca_ttl
            ).rotated(now)
        owns_store = store is None
        if store is None:
            from trustwire.store.etcd import EtcdStore

            store = await EtcdStore.connect(list(settings.etcd_endpoints))
        server = cls(settings, store, authority, clock, owns_store=owns_store)
        try:
            await server._serve(tracer_provider)
        except BaseException:
            await server.stop()
            raise
        return server

    async def _serve(self, tracer_provider: TracerProvider | None) -> None:
        servicer = IdentityServicer(
            trust_domain=self.trust_domain,
            authority=self.authority,
            tokens=self.tokens,
            enrollments=self.enrollments,
            revocations=self.revocations,
            documents=self.documents,
            feed=self.feed,
        )
        tls = RotatingServerTLS.following(self._mtls_material)
        server = build_server(
            [
                Service.from_servicer(
                    IDENTITY_SERVICE,
                    identity_service_pb2_grpc.add_IdentityServiceServicer_to_server,
                    servicer,
                )
            ],
            address=self.settings.listen_address,
            tls=tls,
            authorization=AUTHORIZATION,
            trust_domain=self.trust_domain.name,
            tracer_provider=tracer_provider,
        )
        self._server = server
        enroll_port = server.server.add_secure_port(
            self.settings.enroll_address,
            RotatingServerTLS.following(
                self._enroll_material, require_client_auth=False
            ).credentials(),
        )
        if enroll_port == 0:
            raise Unavailable(f"cannot bind {self.settings.enroll_address}", reason="BIND_FAILED")
        self._tasks.append(asyncio.create_task(self.feed.run(), name="trust-feed"))
        await server.start()
        await asyncio.wait_for(self.feed.current(), timeout=10)
        self._tasks.append(asyncio.create_task(self._maintain(), name="ca-maintenance"))
        host = self.settings.advertise_host
        self.address = f"{host}:{server.port}"
        self.enroll_address = f"{host}:{enroll_port}"
        self.config_path = ensure_admin_credential(
            self.settings.state_dir / "admin",
            self._authority,
            self.trust_domain,
            now=self._clock(),
            ttl=self.settings.admin_ttl,
            address=self.address,
            enroll_address=self.enroll_address,
        )
        _log.info(
            "identity service ready",
            extra={
                "trust_domain": self.trust_domain.name,
                "address": self.address,
                "enroll_address": self.enroll_address,
            },
        )

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL_S)
            try:
                self.rotate_authority()
            except Exception:  # keep serving with the current CA; the next round retries
                _log.exception("CA rollover failed")
            await self.collect_garbage()

    async def collect_garbage(self) -> tuple[int, int]:
        """Delete long-expired join tokens and revocation entries (etcd must not grow with
        every enrolment forever). Failures are logged; the next round retries."""
        try:
            tokens = await self.tokens.collect_garbage()
            revocations = await self.revocations.collect_garbage()
        except Exception:  # a maintenance round must not end the loop
            _log.exception("garbage collection failed; the next round retries")
            return 0, 0
        if tokens or revocations:
            _log.info(
                "expired records deleted",
                extra={"join_tokens": tokens, "revocations": revocations},
            )
        return tokens, revocations

    async def stop(self, grace: float | None = 1.0) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        if self._owns_store:
            await self.store.close()

    async def wait_for_termination(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()
