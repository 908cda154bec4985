"""The runtime every Trustwire service uses: the gRPC edge and process setup.

This package is the only place that knows gRPC; domain code raises ``trustwire.errors`` and
works on plain values (``Caller``, settings dataclasses).

Serving::

    telemetry = configure_telemetry("policy")
    policy = DESCRIPTOR.services_by_name["PolicyService"]
    server = build_server(
        [Service.from_servicer(policy, add_PolicyServiceServicer_to_server, impl)],
        address="0.0.0.0:8443",
        tls=ServerTLS.from_files(...),
        authorization=AUTHORIZATION,
        trust_domain="cluster-a.example",
        tracer_provider=telemetry.tracer_provider,
    )
    async with server:
        await server.wait_for_termination()

Calling::

    tls = ClientTLS.from_files(...)
    async with create_channel("policy:8443", tls, tracer_provider=...) as channel:
        ...  # failures raise TrustwireError subclasses

Metrics (Prometheus text format, ``GET /metrics``)::

    registry = MetricsRegistry()
    served = registry.counter("trustwire_x_total", "What it counts.", labels=("verdict",))
    served.labels("allow").inc()
    metrics = MetricsServer(registry, "127.0.0.1:9464")
    await metrics.start()

Decisions and reasons: ``docs/decisions/0002-runtime.md``.
"""

from trustwire.runtime._authorization import (
    HEALTH_METHODS,
    REFLECTION_METHODS,
    AuthorizationInterceptor,
    AuthorizationTable,
    assert_table_covers,
    authorization_table,
    caller_from_auth_context,
    current_caller,
    methods_of,
)
from trustwire.runtime._caller import Caller, Role, parse_spiffe_id
from trustwire.runtime._channel import ClientTLS, create_channel
from trustwire.runtime._errors import (
    ERROR_DOMAIN,
    MAX_STATUS_BYTES,
    STATUS_BY_ERROR,
    ErrorDetailCodec,
    ErrorInterceptor,
    error_from_rpc,
    register_error_detail,
    status_code_for,
    translating_interceptors,
)
from trustwire.runtime._logs import JsonFormatter, configure_logging
from trustwire.runtime._metrics import (
    Counter,
    Gauge,
    Histogram,
    MetricsRegistry,
    MetricsServer,
)
from trustwire.runtime._server import (
    HEALTH_SERVICE,
    RotatingServerTLS,
    ServerTLS,
    Service,
    ServiceServer,
    TLSFiles,
    TLSMaterial,
    build_server,
)
from trustwire.runtime._settings import load_settings
from trustwire.runtime._telemetry import Telemetry, configure_telemetry
from trustwire.runtime._transport import TransportOptions

__all__ = [
    "ERROR_DOMAIN",
    "HEALTH_METHODS",
    "HEALTH_SERVICE",
    "MAX_STATUS_BYTES",
    "REFLECTION_METHODS",
    "STATUS_BY_ERROR",
    "AuthorizationInterceptor",
    "AuthorizationTable",
    "Caller",
    "ClientTLS",
    "Counter",
    "ErrorDetailCodec",
    "ErrorInterceptor",
    "Gauge",
    "Histogram",
    "JsonFormatter",
    "MetricsRegistry",
    "MetricsServer",
    "Role",
    "RotatingServerTLS",
    "ServerTLS",
    "Service",
    "ServiceServer",
    "TLSFiles",
    "TLSMaterial",
    "Telemetry",
    "TransportOptions",
    "assert_table_covers",
    "authorization_table",
    "build_server",
    "caller_from_auth_context",
    "configure_logging",
    "configure_telemetry",
    "create_channel",
    "current_caller",
    "error_from_rpc",
    "load_settings",
    "methods_of",
    "parse_spiffe_id",
    "register_error_detail",
    "status_code_for",
    "translating_interceptors",
]
