"""Tracing setup: one TracerProvider per service, exporting OTLP/gRPC when configured.

Why explicit providers: OpenTelemetry lets the *global* provider be set once per process, but
tests (and ``trustwire up``) run several services in one process, each of which must report
its own ``service.name``. So :func:`configure_telemetry` returns a handle holding the
service's provider, and the server builder and :func:`create_channel` take that provider
explicitly. It is also made the global provider (for domain-code spans) unless one is set
already: only the first service in a process gets that.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

__all__ = ["OTLP_ENDPOINT_ENV", "Telemetry", "configure_telemetry"]

_log = logging.getLogger("trustwire.runtime.telemetry")

OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"


@dataclass(frozen=True)
class Telemetry:
    """A configured service's tracing: pass ``tracer_provider`` to servers and channels."""

    service_name: str
    tracer_provider: TracerProvider

    def tracer(self, name: str) -> trace.Tracer:
        return self.tracer_provider.get_tracer(name)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every finished span now; ``False`` if that did not finish in time.

        Blocks the calling thread; from async code use ``await asyncio.to_thread(t.force_flush)``
        (the exporter may need the event loop, e.g. when the collector runs in-process).
        """
        return self.tracer_provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush and stop exporting (blocking, as :meth:`force_flush`). Idempotent."""
        self.tracer_provider.shutdown()


def configure_telemetry(
    service_name: str,
    exporter: SpanExporter | None = None,
    *,
    span_processor: SpanProcessor | None = None,
    endpoint: str | None = None,
    resource_attributes: Mapping[str, str] | None = None,
    set_global: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Telemetry:
    """A TracerProvider whose resource names ``service_name``, with where its spans go:

    - ``span_processor``: used as given (tests: ``SimpleSpanProcessor(InMemorySpanExporter())``);
    - ``exporter``: batched through a ``BatchSpanProcessor``;
    - neither: OTLP/gRPC to ``endpoint`` or else ``$OTEL_EXPORTER_OTLP_ENDPOINT``
      (``http://host:4317`` for plaintext, ``https://`` for TLS); no export when both are unset.

    ``set_global`` (default) also installs the provider as the process-global one if none is
    set yet, so spans from ``trace.get_tracer(__name__)`` in domain code are exported under
    this service. Tests pass ``set_global=False`` to keep processes free of global state.
    """
    env = os.environ if environ is None else environ
    attributes: dict[str, str] = dict(resource_attributes or {})
    attributes[SERVICE_NAME] = service_name
    provider = TracerProvider(resource=Resource.create(attributes))
    if span_processor is not None:
        provider.add_span_processor(span_processor)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    if span_processor is None and exporter is None:
        target = endpoint or env.get(OTLP_ENDPOINT_ENV, "")
        if target:
            # Imported lazily: it pulls in the exporter's own gRPC machinery.
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter,
            )

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=target)))
        else:
            _log.debug("no %s: spans are not exported", OTLP_ENDPOINT_ENV)
    if set_global:
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(provider)
        else:
            _log.info("global tracer provider already set; %s uses its own", service_name)
    return Telemetry(service_name, provider)
