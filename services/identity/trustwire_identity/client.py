"""The async client of the identity service, for enforcers and Trustwire services.

What it does and promises:

- **Enrolment** (:func:`enroll`): generates an ECDSA P-256 key locally (it never leaves the
  process), sends only a CSR and the join token, over server-authenticated TLS to the
  enrolment port. The server is trusted either by a CA bundle the caller already has, or by
  pinning: the anchor whose SHA-256 equals the token's ``ca_sha256`` is taken from the chain the
  server presents, and only then used to verify the TLS connection the token travels on.
- **Persistence** (:class:`CredentialFiles`): key, certificate chain and bundle are written
  0600 into a state directory, and loaded on restart while the certificate is still valid, so a
  restart needs no new token.
- **Rotation** (:class:`CredentialRotator`): renews over mutual TLS with the current
  certificate at half its life ±10 % jitter (so a fleet enrolled at once does not renew at
  once), retrying failures with bounded exponential backoff until the certificate expires.
  Clock, sleep and randomness are injected: tests drive it without waiting.
- **Bundle watch** (:meth:`IdentityClient.watch_trust_bundle`): follows ``WatchTrustBundle``
  forever, reconnecting with bounded exponential backoff and jitter; yields only states newer
  than the last one yielded.

Errors are ``trustwire.errors`` classes (the runtime's channel translates gRPC statuses).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
import ssl
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc.aio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.protobuf import duration_pb2

from trustwire.api.identity.v1 import identity_service_pb2, identity_service_pb2_grpc
from trustwire.errors import FailedPrecondition, TrustwireError, Unauthenticated, Unavailable
from trustwire.identity import Attestation
from trustwire.runtime import ClientTLS, create_channel

from .api import convert
from .ca import certificates_to_pem, generate_key, key_to_pem
from .clock import Clock, system_clock
from .private_files import read_private, write_private

__all__ = [
    "CredentialFiles",
    "CredentialRotator",
    "IdentityClient",
    "NodeCredential",
    "Sleep",
    "enroll",
    "fetch_pinned_anchor",
    "make_csr",
    "renewal_time",
]

Sleep = Callable[[float], Awaitable[None]]
RENEW_JITTER = 0.10
CALL_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class NodeCredential:
    """A private key, the certificate chain certifying it (leaf first) and the trust bundle."""

    key: ec.EllipticCurvePrivateKey = field(repr=False)
    chain: tuple[x509.Certificate, ...]
    bundle: tuple[x509.Certificate, ...]

    @property
    def certificate(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def spiffe_id(self) -> str:
        san = self.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
        return uris[0] if uris else ""

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    def client_tls(self, server_name: str | None = None) -> ClientTLS:
        return ClientTLS(
            ca_bundle=certificates_to_pem(self.bundle),
            certificate_chain=certificates_to_pem(self.chain),
            private_key=key_to_pem(self.key),
            server_name=server_name,
        )


def make_csr(
    key: ec.EllipticCurvePrivateKey, name: str = "", dns_names: Sequence[str] = ()
) -> bytes:
    """DER CSR for ``key``; the common name requests ``name`` (needed with node-less tokens)."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)] if name else [])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(dns) for dns in dns_names]), critical=False
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _certificates(ders: Sequence[bytes]) -> tuple[x509.Certificate, ...]:
    return tuple(x509.load_der_x509_certificate(der) for der in ders)


def renewal_time(credential: NodeCredential, rng: random.Random) -> datetime:
    """Half the certificate's life after ``notBefore``, moved by up to ±10 % of that half."""
    half = (credential.not_after - credential.not_before) / 2
    return credential.not_before + half * (1 + rng.uniform(-RENEW_JITTER, RENEW_JITTER))


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def fetch_pinned_anchor(enroll_address: str, ca_sha256: str, *, timeout: float = 5.0) -> bytes:
    """The PEM of the certificate with SHA-256 ``ca_sha256`` from the chain the server at
    ``enroll_address`` presents; ``Unauthenticated`` (``CA_PIN_MISMATCH``) when absent.

    The handshake is unverified on purpose (we do not trust anything yet); nothing is sent
    over it, and the result is trusted only because its hash matches the pin.
    """
    host, port = _host_port(enroll_address)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    wanted = ca_sha256.lower().removeprefix("sha256:")
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            # SSLSocket.get_unverified_chain() is public from Python 3.13; 3.11 has it on the
            # underlying _ssl object.
            sslobj: Any = getattr(tls, "_sslobj", None)
            chain = list(sslobj.get_unverified_chain() or []) if sslobj is not None else []
    except OSError as error:
        raise Unavailable(
            f"cannot reach {enroll_address}: {error}", reason="ENROLL_UNREACHABLE"
        ) from None
    for cert in chain:
        der: bytes = cert.public_bytes(2)  # _ssl.ENCODING_DER
        if hashlib.sha256(der).hexdigest() == wanted:
            return ssl.DER_cert_to_PEM_cert(der).encode()
    raise Unauthenticated(
        f"{enroll_address} presented no CA with SHA-256 {wanted}", reason="CA_PIN_MISMATCH"
    )


async def enroll(
    enroll_address: str,
    token: str,
    *,
    name: str = "",
    ca_bundle_pem: bytes | None = None,
    ca_sha256: str | None = None,
    server_name: str | None = None,
    dns_names: Sequence[str] = (),
) -> NodeCredential:
    """Redeem ``token`` for a certificate (see the module docstring). Exactly one of
    ``ca_bundle_pem`` and ``ca_sha256`` says how to trust the server."""
    if (ca_bundle_pem is None) == (ca_sha256 is None):
        raise ValueError("give exactly one of ca_bundle_pem and ca_sha256")
    if ca_bundle_pem is None:
        assert ca_sha256 is not None
        ca_bundle_pem = await asyncio.to_thread(fetch_pinned_anchor, enroll_address, ca_sha256)
    key = generate_key()
    request = identity_service_pb2.EnrollRequest(
        join_token=token, csr_der=make_csr(key, name, dns_names)
    )
    tls = ClientTLS(ca_bundle=ca_bundle_pem, server_name=server_name)
    async with create_channel(enroll_address, tls) as channel:
        stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
        response = await stub.Enroll(request, timeout=CALL_TIMEOUT_S)
    return NodeCredential(
        key,
        _certificates(response.certificate_chain_der),
        _certificates(response.bundle.ca_certificates_der),
    )


class CredentialFiles:
    """``key.pem``, ``chain.pem`` and ``bundle.pem`` in ``directory``, all 0600."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, credential: NodeCredential) -> None:
        # Key last: a crash in between leaves a chain that does not match the old key, which
        # load() detects, rather than a new key with an old chain silently in use.
        write_private(self.directory / "chain.pem", certificates_to_pem(credential.chain))
        write_private(self.directory / "bundle.pem", certificates_to_pem(credential.bundle))
        write_private(self.directory / "key.pem", key_to_pem(credential.key))

    def load(self, now: datetime) -> NodeCredential | None:
        """The persisted credential if present, consistent and unexpired at ``now``."""
        try:
            key_pem = read_private(self.directory / "key.pem")
            chain = x509.load_pem_x509_certificates((self.directory / "chain.pem").read_bytes())
            bundle = x509.load_pem_x509_certificates((self.directory / "bundle.pem").read_bytes())
        except FileNotFoundError:
            return None
        key = serialization.load_pem_private_key(key_pem, password=None)
        if (
            not isinstance(key, ec.EllipticCurvePrivateKey)
            or key.public_key() != chain[0].public_key()
        ):
            return None
        credential = NodeCredential(key, tuple(chain), tuple(bundle))
        return credential if credential.not_after > now else None


class IdentityClient:
    """Mutual-TLS calls to the identity service as the holder of ``credential``.

    ``server_name`` overrides the host name the server's certificate is checked against.
    After :meth:`renew` the client uses the new credential for every later call.
    """

    def __init__(
        self,
        address: str,
        credential: NodeCredential,
        *,
        server_name: str | None = None,
        tracer_provider: Any = None,
    ) -> None:
        self.address = address
        self._server_name = server_name
        self._tracer_provider = tracer_provider
        self._credential = credential
        self._channel = self._open(credential)

    def _open(self, credential: NodeCredential) -> grpc.aio.Channel:
        return create_channel(
            self.address,
            credential.client_tls(self._server_name),
            tracer_provider=self._tracer_provider,
        )

    @property
    def credential(self) -> NodeCredential:
        return self._credential

    @property
    def stub(self) -> Any:
        return identity_service_pb2_grpc.IdentityServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close(None)

    async def __aenter__(self) -> IdentityClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def renew(self) -> NodeCredential:
        """A new key and certificate for the same identity; switches to them."""
        key = generate_key()
        response = await self.stub.Renew(
            identity_service_pb2.RenewRequest(csr_der=make_csr(key)), timeout=CALL_TIMEOUT_S
        )
        renewed = NodeCredential(
            key,
            _certificates(response.certificate_chain_der),
            _certificates(response.bundle.ca_certificates_der),
        )
        old = self._channel
        self._credential = renewed
        self._channel = self._open(renewed)
        await old.close(None)
        return renewed

    async def issue_document(
        self,
        pu_id: str,
        attestation: Attestation,
        labels: Mapping[str, str] | None = None,
        ttl: timedelta | None = None,
    ) -> identity_service_pb2.IssueIdentityDocumentResponse:
        request = identity_service_pb2.IssueIdentityDocumentRequest(
            pu_id=pu_id,
            labels=dict(labels or {}),
            attestation=convert.attestation_to_pb(attestation),
        )
        if ttl is not None:
            request.ttl.CopyFrom(duration_pb2.Duration(seconds=int(ttl.total_seconds())))
        response: identity_service_pb2.IssueIdentityDocumentResponse = (
            await self.stub.IssueIdentityDocument(request, timeout=CALL_TIMEOUT_S)
        )
        return response

    async def get_trust_bundle(self) -> identity_service_pb2.GetTrustBundleResponse:
        response: identity_service_pb2.GetTrustBundleResponse = await self.stub.GetTrustBundle(
            identity_service_pb2.GetTrustBundleRequest(), timeout=CALL_TIMEOUT_S
        )
        return response

    async def watch_trust_bundle(
        self,
        *,
        sleep: Sleep = asyncio.sleep,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        rng: random.Random | None = None,
    ) -> AsyncGenerator[identity_service_pb2.WatchTrustBundleResponse, None]:
        """Every new trust state, forever; reconnects on failure with backoff (doubling from
        ``initial_backoff`` to ``max_backoff``, full jitter, reset after a received message)."""
        rng = rng or random.Random()  # noqa: S311 (jitter, not a secret)
        known = (0, 0)
        backoff = initial_backoff
        while True:
            request = identity_service_pb2.WatchTrustBundleRequest(
                known_bundle_sequence_number=known[0],
                known_revocation_list_sequence_number=known[1],
            )
            try:
                async for response in self.stub.WatchTrustBundle(request):
                    backoff = initial_backoff
                    version = (
                        response.bundle.sequence_number,
                        response.revocations.sequence_number,
                    )
                    if (
                        version[0] < known[0]
                        or version[1] < known[1]
                        or (version == known and known != (0, 0))
                    ):
                        continue  # stale or already seen (a replica behind another)
                    known = version
                    yield response
            except (Unavailable, TrustwireError) as error:
                if isinstance(error, FailedPrecondition | Unauthenticated):
                    raise
            await sleep(rng.uniform(0, backoff))
            backoff = min(backoff * 2, max_backoff)


class CredentialRotator:
    """Keeps a credential fresh: renews at :func:`renewal_time`, persists, retries.

    Run :meth:`run` as a task. ``clock``, ``sleep`` and ``rng`` are injected so tests can step
    time; ``on_renewed`` is called with every new credential (e.g. to reload a TLS server).
    """

    def __init__(
        self,
        client: IdentityClient,
        files: CredentialFiles | None,
        *,
        clock: Clock = system_clock,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        max_backoff: float = 60.0,
        on_renewed: Callable[[NodeCredential], None] | None = None,
    ) -> None:
        self._client = client
        self._files = files
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not a secret)
        self._max_backoff = max_backoff
        self._on_renewed = on_renewed
        self.next_renewal = renewal_time(client.credential, self._rng)

    async def run(self) -> None:
        backoff = 1.0
        while True:
            wait = (self.next_renewal - self._clock()).total_seconds()
            if wait > 0:
                await self._sleep(wait)
                continue  # re-check: the injected clock decides whether it is time
            try:
                credential = await self._client.renew()
            except TrustwireError:
                if self._clock() >= self._client.credential.not_after:
                    raise  # expired: only a new join token helps now
                await self._sleep(min(backoff, self._max_backoff))
                backoff = min(backoff * 2, self._max_backoff)
                continue
            backoff = 1.0
            if self._files is not None:
                self._files.save(credential)
            if self._on_renewed is not None:
                self._on_renewed(credential)
            self.next_renewal = renewal_time(credential, self._rng)
