"""Test kit for the runtime tests: a throwaway CA, certificates, and a tiny raw-bytes service.

The service speaks raw bytes (handlers without serializers), so no proto is needed; real gRPC
over real loopback sockets throughout.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import grpc
import grpc.aio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trustwire.runtime import ClientTLS, ServerTLS, Service, current_caller

TRUST_DOMAIN = "td.example"
SERVICE = "test.v1.Echo"


def method(name: str) -> str:
    return f"/{SERVICE}/{name}"


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class CertifiedKey:
    certificate: bytes
    private_key: bytes


@dataclass(frozen=True)
class ThrowawayCA:
    """A throwaway ECDSA P-256 CA issuing leaf certificates with the given URI SANs."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls) -> ThrowawayCA:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trustwire test ca")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, uris: Sequence[str], *, server: bool = False) -> CertifiedKey:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
        if server:
            sans += [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return CertifiedKey(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))

    def server_tls(self) -> ServerTLS:
        leaf = self.issue([f"spiffe://{TRUST_DOMAIN}/service/echo"], server=True)
        return ServerTLS(leaf.certificate, leaf.private_key, self.pem)

    def client_tls(self, *uris: str) -> ClientTLS:
        if not uris:
            return ClientTLS(self.pem)
        leaf = self.issue(uris)
        return ClientTLS(self.pem, leaf.certificate, leaf.private_key)


# --- the tiny service ---------------------------------------------------------------------

Raiser = Callable[[bytes], BaseException | None]


async def _echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


async def _whoami(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    caller = current_caller()
    return caller.spiffe_id.encode() if caller else b"nobody"


def echo_service(raiser: Raiser = lambda _: None, *, extra: Sequence[str] = ()) -> Service:
    """``test.v1.Echo`` with:

    - ``Echo`` (unary): returns the request, or raises ``raiser(request)`` when not ``None``;
    - ``Whoami`` (unary): the current caller's SPIFFE ID or ``nobody``;
    - ``Count`` (server stream): yields ``b"0"``, then raises ``raiser(request)`` if any, else
      yields ``b"1"``;
    - ``Collect`` (client stream) and ``Chat`` (bidi): join / echo requests, raising
      ``raiser(first request)`` after reading it, when not ``None``;
    - ``Write`` (server stream): as ``Count``, but streaming through ``context.write``;
    - ``Abort`` (unary): aborts with ``FAILED_PRECONDITION`` itself;
    - each name in ``extra``: an echo method (for authorization tables that leave it out).
    """

    async def echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        error = raiser(request)
        if error is not None:
            raise error
        return request

    async def count(
        request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        yield b"0"
        error = raiser(request)
        if error is not None:
            raise error
        yield b"1"

    async def collect(
        requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> bytes:
        seen = []
        async for request in requests:
            error = raiser(request)
            if error is not None:
                raise error
            seen.append(request)
        return b",".join(seen)

    async def chat(
        requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        async for request in requests:
            error = raiser(request)
            if error is not None:
                raise error
            yield request

    async def write(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> None:
        await context.write(b"0")
        error = raiser(request)
        if error is not None:
            raise error
        await context.write(b"1")

    async def abort(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "handler aborted")

    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Whoami": grpc.unary_unary_rpc_method_handler(_whoami),
        "Count": grpc.unary_stream_rpc_method_handler(count),
        "Collect": grpc.stream_unary_rpc_method_handler(collect),
        "Chat": grpc.stream_stream_rpc_method_handler(chat),
        "Write": grpc.unary_stream_rpc_method_handler(write),
        "Abort": grpc.unary_unary_rpc_method_handler(abort),
    }
    for name in extra:
        handlers[name] = grpc.unary_unary_rpc_method_handler(_echo)
    return Service.from_handlers(SERVICE, handlers)
