"""Client channels to Trustwire services."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import grpc
import grpc.aio
from opentelemetry.instrumentation.grpc import (
    aio_client_interceptors as _untyped_client_interceptors,
)
from opentelemetry.trace import TracerProvider

from trustwire.runtime._errors import translating_interceptors
from trustwire.runtime._transport import DEFAULT_TRANSPORT, TransportOptions

__all__ = ["ClientTLS", "create_channel"]

# The instrumentation package is untyped; this is the signature it has.
_aio_client_interceptors = cast(Callable[..., list[Any]], _untyped_client_interceptors)


@dataclass(frozen=True)
class ClientTLS:
    """Mutual TLS for a client: the CA bundle servers must chain to, and this client's identity.

    ``certificate_chain`` and ``private_key`` go together; leave both ``None`` for server-only
    TLS (a Trustwire server will then refuse the handshake). The server certificate is checked
    against the target host name by gRPC (its DNS or IP SANs), or against ``server_name``
    when set (use it when dialling an IP or a name the certificate does not carry).
    """

    ca_bundle: bytes
    certificate_chain: bytes | None = None
    private_key: bytes | None = field(default=None, repr=False)
    server_name: str | None = None

    @classmethod
    def from_files(
        cls,
        ca_bundle: Path,
        certificate_chain: Path | None = None,
        private_key: Path | None = None,
        server_name: str | None = None,
    ) -> ClientTLS:
        return cls(
            ca_bundle.read_bytes(),
            certificate_chain.read_bytes() if certificate_chain else None,
            private_key.read_bytes() if private_key else None,
            server_name,
        )

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("certificate_chain and private_key must be given together")
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_bundle,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )


def create_channel(
    target: str,
    tls: ClientTLS | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    transport: TransportOptions = DEFAULT_TRANSPORT,
    translate_errors: bool = True,
    interceptors: Sequence[Any] = (),
) -> grpc.aio.Channel:
    """An aio channel to ``target`` (``host:port``), plaintext when ``tls`` is ``None``.

    Every call gets an OpenTelemetry client span from ``tracer_provider`` (``None``: the global
    provider) and carries the current trace context in its metadata. With ``translate_errors``
    (default) unary-response and server-streaming calls raise ``TrustwireError`` subclasses
    instead of ``grpc.aio.AioRpcError`` (see ``error_from_rpc``), so callers need no grpc
    import. ``interceptors`` run innermost, after tracing. Close the channel when done
    (``await channel.close()`` or ``async with``).
    """
    chain: list[Any] = []
    if translate_errors:
        # Outermost, so the client span (inside) still records the raw gRPC status.
        chain.extend(translating_interceptors())
    chain.extend(_aio_client_interceptors(tracer_provider=tracer_provider))
    chain.extend(interceptors)
    options: list[tuple[str, Any]] = list(transport.client_options())
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=chain)
    if tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    return grpc.aio.secure_channel(target, tls.credentials(), options=options, interceptors=chain)
