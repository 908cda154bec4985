"""Building, starting and stopping a Trustwire gRPC server.

Every server gets, in this order of interceptors (outermost first):

1. OpenTelemetry server spans (``aio_server_interceptor``) for every method except
   ``grpc.health.v1.Health``: the instrumentation iterates response-streaming handlers as
   async generators, which breaks the aio health servicer's ``Watch`` (it streams through
   ``context.write``) whenever it wraps it directly, and probes would drown real traces;
2. :class:`~._errors.ErrorInterceptor`: ``TrustwireError`` to status + ``google.rpc.Status``;
3. :class:`~._authorization.AuthorizationInterceptor`, when a table is given.

Outer interceptors see what inner ones do: the span records the status the error interceptor
chose, and authorization refusals are mapped like any other error.

Plus the gRPC health service (overall ``""`` and every hosted service ``SERVING`` once started,
all ``NOT_SERVING`` on stop) and server reflection listing the hosted services.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar, cast

import grpc
import grpc.aio
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor as _untyped_server_interceptor
from opentelemetry.instrumentation.grpc import filters
from opentelemetry.trace import TracerProvider

from trustwire.errors import Unavailable
from trustwire.runtime._authorization import AuthorizationInterceptor, AuthorizationTable
from trustwire.runtime._errors import ErrorInterceptor
from trustwire.runtime._metrics import MetricsRegistry
from trustwire.runtime._rpc_metrics import RpcMetricsInterceptor
from trustwire.runtime._transport import DEFAULT_TRANSPORT, TransportOptions

__all__ = [
    "HEALTH_SERVICE",
    "RotatingServerTLS",
    "ServerTLS",
    "Service",
    "ServiceServer",
    "TLSFiles",
    "TLSMaterial",
    "build_server",
]

_log = logging.getLogger("trustwire.runtime.server")

HEALTH_SERVICE: Final = "grpc.health.v1.Health"
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

_Servicer = TypeVar("_Servicer")

# The instrumentation package is untyped; this is the signature it has.
_aio_server_interceptor = cast(Callable[..., Any], _untyped_server_interceptor)


@dataclass(frozen=True)
class ServerTLS:
    """Mutual TLS for a server: its certificate chain and key, and the CA clients must chain to.

    Client certificates are always required: Trustwire has no anonymous TLS callers.
    """

    certificate_chain: bytes
    private_key: bytes = field(repr=False)
    client_ca: bytes

    @classmethod
    def from_files(cls, certificate_chain: Path, private_key: Path, client_ca: Path) -> ServerTLS:
        return cls(certificate_chain.read_bytes(), private_key.read_bytes(), client_ca.read_bytes())

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.private_key, self.certificate_chain)],
            root_certificates=self.client_ca,
            require_client_auth=True,
        )


TLSMaterial: TypeAlias = tuple[bytes, bytes, bytes]
"""A server's TLS material: certificate chain PEM, private key PEM, client CA bundle PEM."""


@dataclass(frozen=True)
class RotatingServerTLS(ServerTLS):
    """``ServerTLS`` that follows ``source``: gRPC asks for the material on every new TLS
    handshake and switches to a changed one without a restart (existing connections keep
    theirs). Servers whose certificates are renewed while they run use it: a static
    certificate would be presented until it expires and every caller then fails.

    ``source`` must be cheap (it runs on each handshake) and must not raise; the fields
    inherited from ``ServerTLS`` hold the material at construction.
    """

    source: Callable[[], TLSMaterial] | None = field(default=None, repr=False, compare=False)
    require_client_auth: bool = True

    @classmethod
    def following(
        cls, source: Callable[[], TLSMaterial], *, require_client_auth: bool = True
    ) -> RotatingServerTLS:
        chain, key, client_ca = source()
        return cls(chain, key, client_ca, source=source, require_client_auth=require_client_auth)

    @classmethod
    def from_files(
        cls, certificate_chain: Path, private_key: Path, client_ca: Path
    ) -> RotatingServerTLS:
        """Material re-read when a file's modification time or size changes (a certificate
        manager rewriting them). A half-written set that does not load keeps the previous
        material: gRPC is handed a new configuration only when all three files read."""
        return cls.following(TLSFiles(certificate_chain, private_key, client_ca))

    def credentials(self) -> grpc.ServerCredentials:
        source = self.source
        if source is None:
            return super().credentials()
        last: list[TLSMaterial] = [(self.certificate_chain, self.private_key, self.client_ca)]

        def configuration(material: TLSMaterial) -> grpc.ServerCertificateConfiguration:
            chain, key, client_ca = material
            return grpc.ssl_server_certificate_configuration(
                [(key, chain)], root_certificates=client_ca
            )

        # gRPC's contract: return None to keep the current configuration (the stubs omit it).
        def fetch() -> grpc.ServerCertificateConfiguration:
            try:
                current = source()
            except Exception:  # never fail a handshake because a source hiccuped
                _log.exception("TLS material source failed; keeping the current material")
                return None  # type: ignore[return-value]
            if current == last[0]:
                return None  # type: ignore[return-value]
            last[0] = current
            _log.info("server TLS material changed; new connections use it")
            return configuration(current)

        return grpc.dynamic_ssl_server_credentials(
            configuration(last[0]),
            fetch,
            require_client_authentication=self.require_client_auth,
        )


class TLSFiles:
    """TLS material (chain, key, CA bundle) from three files, re-read only when one of them
    changed on disk (a ``stat`` per call) and only taken when consistent: a set caught between
    two renames of a rewrite keeps the previous material. Returns the same tuple object until
    the material changes, so callers can tell a change by identity. For servers
    (:meth:`RotatingServerTLS.from_files`) and clients that follow renewed files alike."""

    def __init__(self, certificate_chain: Path, private_key: Path, client_ca: Path) -> None:
        self._paths = (certificate_chain, private_key, client_ca)
        self._stamp: tuple[tuple[int, int], ...] | None = None
        self._material: TLSMaterial | None = None

    def __call__(self) -> TLSMaterial:
        try:
            stamp = tuple((st.st_mtime_ns, st.st_size) for st in map(Path.stat, self._paths))
        except OSError:
            stamp = None
        if self._material is not None and (stamp is None or stamp == self._stamp):
            return self._material
        chain, key, client_ca = (path.read_bytes() for path in self._paths)
        if self._material is not None and not _consistent(chain, key, client_ca):
            # Caught between two renames of a rewrite (new chain, old key): keep what worked;
            # the next handshake reads again.
            return self._material
        if self._material != (chain, key, client_ca):  # a touch alone is no change
            self._material = (chain, key, client_ca)
        self._stamp = stamp
        return self._material


def _consistent(chain: bytes, key: bytes, client_ca: bytes) -> bool:
    """All three present, and the key is the leaf certificate's."""
    if not (chain and key and client_ca):
        return False
    try:
        leaf = x509.load_pem_x509_certificate(chain)
        private = serialization.load_pem_private_key(key, password=None)
    except ValueError:
        return False
    return bool(private.public_key() == leaf.public_key())


@dataclass(frozen=True)
class Service:
    """One gRPC service to host: its full name and how to add its handlers to a server."""

    name: str
    """Full service name, e.g. ``trustwire.api.policy.v1.PolicyService``."""
    register: Callable[[grpc.aio.Server], None]

    @classmethod
    def from_servicer(
        cls,
        descriptor: ServiceDescriptor,
        add_to_server: Callable[[_Servicer, Any], None],
        servicer: _Servicer,
    ) -> Service:
        """From generated code: descriptor, ``add_XServicer_to_server`` and the servicer."""
        return cls(descriptor.full_name, lambda server: add_to_server(servicer, server))

    @classmethod
    def from_handlers(
        cls, name: str, handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> Service:
        """From method handlers (``grpc.*_rpc_method_handler``) keyed by method name."""
        generic = grpc.method_handlers_generic_handler(name, dict(handlers))
        return cls(name, lambda server: server.add_generic_rpc_handlers([generic]))


if TYPE_CHECKING:
    _ServingStatus: TypeAlias = health_pb2.HealthCheckResponse.ServingStatus.ValueType

    class _AioHealthServicer:
        """What we use of ``grpc_health.v1.health.aio.HealthServicer`` (its stubs lack ``aio``)."""

        _server_status: MutableMapping[str, _ServingStatus]

        async def set(self, service: str, status: _ServingStatus) -> None: ...

        async def enter_graceful_shutdown(self) -> None: ...

else:
    _AioHealthServicer = health.aio.HealthServicer


class _HealthServicer(_AioHealthServicer):
    """The aio health servicer plus ``List`` (newer in the proto than in grpcio's servicer)."""

    async def List(
        self, request: health_pb2.HealthListRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthListResponse:
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in self._server_status.items()
            }
        )


class ServiceServer:
    """A built server: bound (``port`` is known) but not started until :meth:`start`.

    Use as ``async with build_server(...) as server:`` to start and gracefully stop it.
    """

    def __init__(
        self,
        server: grpc.aio.Server,
        health_servicer: _HealthServicer,
        services: Sequence[str],
        address: str,
        port: int,
    ) -> None:
        self.server = server
        self.port = port
        self.address = address
        self.services = tuple(services)
        self._health = health_servicer

    async def start(self) -> None:
        """Start serving; marks the overall health and every hosted service ``SERVING``."""
        await self.server.start()
        await self._health.set("", _SERVING)
        for name in self.services:
            await self._health.set(name, _SERVING)
        _log.info("serving", extra={"address": self.address, "services": list(self.services)})

    async def set_serving(self, service: str, serving: bool) -> None:
        """Report ``service`` (``""`` for overall) as serving or not, e.g. while etcd is down."""
        await self._health.set(service, _SERVING if serving else _NOT_SERVING)

    async def stop(self, grace: float | None = 5.0) -> None:
        """Graceful stop: every health status turns ``NOT_SERVING`` (watchers are told) and stays
        so; new calls are refused; calls in flight get ``grace`` seconds before cancellation."""
        await self._health.enter_graceful_shutdown()
        await self.server.stop(grace)
        _log.info("stopped", extra={"address": self.address})

    async def wait_for_termination(self) -> None:
        """Return once the server has stopped (by :meth:`stop` or a signal handler calling it)."""
        await self.server.wait_for_termination()

    async def __aenter__(self) -> ServiceServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


def build_server(
    services: Sequence[Service],
    *,
    address: str = "127.0.0.1:0",
    tls: ServerTLS | None = None,
    authorization: AuthorizationTable | None = None,
    trust_domain: str | None = None,
    tracer_provider: TracerProvider | None = None,
    transport: TransportOptions = DEFAULT_TRANSPORT,
    reflection_enabled: bool = True,
    metrics: MetricsRegistry | None = None,
) -> ServiceServer:
    """Build and bind a server hosting ``services`` (see the module docstring for what it adds).

    ``address``: ``host:port``; port ``0`` picks a free one (read ``ServiceServer.port``).
    ``tls``: mutual TLS; ``None`` serves plaintext (tests, Unix sockets, a mesh sidecar).
    ``authorization``: the default-deny table; ``None`` means no authorization at all, which
    only tests and local-only servers should use. ``trust_domain`` refuses foreign callers.
    ``tracer_provider``: spans go to this provider (``None``: the global one); explicit
    providers let several services share a process, each with its own ``service.name``.
    ``metrics``: per-RPC calls by code and durations go to this registry (outermost, so the
    code is the final one; health checks left out).
    Raises ``Unavailable`` (reason ``BIND_FAILED``) if the address cannot be bound.
    Must be called with a running event loop (grpc.aio binds the server to it).
    """
    interceptors: list[Any] = [] if metrics is None else [RpcMetricsInterceptor(metrics)]
    interceptors += [
        _aio_server_interceptor(
            tracer_provider=tracer_provider,
            filter_=filters.negate(filters.service_name(HEALTH_SERVICE)),
        ),
        ErrorInterceptor(),
    ]
    if authorization is not None:
        interceptors.append(AuthorizationInterceptor(authorization, trust_domain=trust_domain))
    elif tls is not None:
        _log.warning("mutual TLS server without an authorization table: every caller is allowed")

    server = grpc.aio.server(interceptors=interceptors, options=transport.server_options())
    names = [service.name for service in services]
    for service in services:
        service.register(server)
    health_servicer = _HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if reflection_enabled:
        reflection.enable_server_reflection(
            [*names, HEALTH_SERVICE, reflection.SERVICE_NAME], server
        )

    try:
        if tls is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, tls.credentials())
    except RuntimeError as error:  # grpc raises RuntimeError("Failed to bind to address ...")
        raise Unavailable(
            f"cannot bind {address}: {error}", reason="BIND_FAILED", metadata={"address": address}
        ) from error
    if port == 0:
        raise Unavailable(
            f"cannot bind {address}", reason="BIND_FAILED", metadata={"address": address}
        )
    host = address.rpartition(":")[0]
    return ServiceServer(server, health_servicer, names, f"{host}:{port}", port)
