"""Per-RPC metrics for every Trustwire server: calls by method and status code, and their
duration (the gRPC server metrics operators expect, like grpc-prometheus').

Recorded when the call is done (``ServicerContext.add_done_callback``), so the code is the
final one whatever ended the call: a return, an error mapped by the error interceptor, an
authorization refusal, a cancellation. The health service is left out (probes would drown the
rest). Label values are method names and status code names: bounded sets.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import grpc
import grpc.aio

from trustwire.runtime._handlers import Context, guard_handler
from trustwire.runtime._metrics import Counter, Histogram, MetricsRegistry

__all__ = ["RpcMetricsInterceptor"]

_HEALTH_PREFIX = "/grpc.health.v1.Health/"
# Seconds: a cached decision (~100 us) up to a long WatchPolicy stream (minutes).
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0)

if TYPE_CHECKING:
    _ServerInterceptorBase = grpc.aio.ServerInterceptor[Any, Any]
else:
    _ServerInterceptorBase = grpc.aio.ServerInterceptor


class RpcMetricsInterceptor(_ServerInterceptorBase):
    """Adds ``trustwire_rpc_requests_total{service,method,code}`` and
    ``trustwire_rpc_duration_seconds{service,method}`` to ``registry``."""

    def __init__(self, registry: MetricsRegistry) -> None:
        self.requests: Counter = registry.counter(
            "trustwire_rpc_requests_total",
            "gRPC calls served, by service, method and final status code.",
            labels=("service", "method", "code"),
        )
        self.duration: Histogram = registry.histogram(
            "trustwire_rpc_duration_seconds",
            "Duration of served gRPC calls (streams: until they end), by service and method.",
            labels=("service", "method"),
            buckets=_BUCKETS,
        )

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(_HEALTH_PREFIX):
            return handler  # unknown methods: gRPC answers UNIMPLEMENTED itself
        service, _, name = method.lstrip("/").rpartition("/")
        guarded = guard_handler(handler, _Timing(self, service, name))
        return cast("grpc.RpcMethodHandler[Any, Any]", guarded)


class _Timing:
    """Starts the clock when the call's behaviour starts; records when the call is done."""

    __slots__ = ("_method", "_metrics", "_service")

    def __init__(self, metrics: RpcMetricsInterceptor, service: str, method: str) -> None:
        self._metrics = metrics
        self._service = service
        self._method = method

    async def before(self, context: Context) -> None:
        started = time.monotonic()
        metrics, service, method = self._metrics, self._service, self._method

        def done(call: Any) -> None:
            code = context.code()
            # ``code()`` is None (or an int 0) when the handler returned normally.
            name = code.name if isinstance(code, grpc.StatusCode) else _code_name(code)
            metrics.requests.labels(service, method, name).inc()
            metrics.duration.labels(service, method).observe(time.monotonic() - started)

        context.add_done_callback(done)  # type: ignore[arg-type]  # the stubs want a class; any callable works

    async def on_error(self, error: Exception, context: Context) -> None:
        raise error  # recorded by the done callback with the code the error became


def _code_name(code: object) -> str:
    if code is None:
        return grpc.StatusCode.OK.name
    if isinstance(code, int):
        for status in grpc.StatusCode:
            if status.value[0] == code:
                return status.name
    return str(code)
