"""One trace across services: client -> A -> B, exported over real OTLP/gRPC.

Everything is real: an in-test OTLP collector (a grpc.aio TraceService server recording what it
receives), two services built with ``build_server``, A calling B through ``create_channel``, and
the stock OTLP gRPC exporter of each service pointing at the collector. The three parties run
in one process with three TracerProviders, which is why the runtime takes providers explicitly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import grpc.aio
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from trustwire.runtime import Service, Telemetry, build_server, configure_telemetry, create_channel

WAIT = 10.0  # bound on every wait for a condition
KIND = trace_pb2.Span.SpanKind


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    span: trace_pb2.Span


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """Records every span exported to it, with the ``service.name`` of its resource."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._changed = asyncio.Condition()

    async def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        async with self._changed:
            for resource_spans in request.resource_spans:
                attributes = {
                    a.key: a.value.string_value for a in resource_spans.resource.attributes
                }
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(ReceivedSpan(attributes.get("service.name", ""), span))
            self._changed.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse()

    async def wait_for(self, count: int) -> list[ReceivedSpan]:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.spans) >= count), WAIT)
        return list(self.spans)


@pytest.fixture
async def collector() -> AsyncIterator[tuple[Collector, str]]:
    recorder = Collector()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(recorder, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield recorder, f"127.0.0.1:{port}"
    await server.stop(None)


def b_service() -> Service:
    async def hello(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return b"hello " + request

    return Service.from_handlers("test.v1.B", {"Hello": grpc.unary_unary_rpc_method_handler(hello)})


def a_service(channel_to_b: list[grpc.aio.Channel]) -> Service:
    async def greet(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        reply: bytes = await channel_to_b[0].unary_unary("/test.v1.B/Hello", None, None)(
            request, timeout=WAIT
        )
        return reply + b"!"

    return Service.from_handlers("test.v1.A", {"Greet": grpc.unary_unary_rpc_method_handler(greet)})


async def flush_and_shutdown(*telemetries: Telemetry) -> None:
    # The OTLP exporter blocks its thread while exporting, and the collector needs this event
    # loop to answer: flush from a worker thread.
    for telemetry in telemetries:
        assert await asyncio.to_thread(telemetry.force_flush, int(WAIT * 1000))
        await asyncio.to_thread(telemetry.shutdown)


async def test_one_trace_across_client_a_and_b(collector: tuple[Collector, str]) -> None:
    recorder, endpoint = collector
    # Three ways to point at the collector, all real OTLP/gRPC exporters:
    client = configure_telemetry(
        "test-client", OTLPSpanExporter(endpoint=endpoint, insecure=True), set_global=False
    )
    a = configure_telemetry("service-a", endpoint=f"http://{endpoint}", set_global=False)
    b = configure_telemetry(
        "service-b", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{endpoint}"}, set_global=False
    )

    channel_to_b: list[grpc.aio.Channel] = []
    server_b = build_server([b_service()], tracer_provider=b.tracer_provider)
    server_a = build_server([a_service(channel_to_b)], tracer_provider=a.tracer_provider)
    async with server_b, server_a:
        channel_to_b.append(create_channel(server_b.address, tracer_provider=a.tracer_provider))
        async with create_channel(server_a.address, tracer_provider=client.tracer_provider) as ch:
            with client.tracer("test").start_as_current_span("client-operation"):
                reply = await ch.unary_unary("/test.v1.A/Greet", None, None)(b"world", timeout=WAIT)
        await channel_to_b[0].close(None)
    assert reply == b"hello world!"
    await flush_and_shutdown(client, a, b)

    spans = await recorder.wait_for(5)
    assert len(spans) == 5, [(s.service, s.span.name) for s in spans]
    assert len({s.span.trace_id for s in spans}) == 1

    def only(service: str, kind: int) -> trace_pb2.Span:
        [match] = [s.span for s in spans if s.service == service and s.span.kind == kind]
        return match

    operation = only("test-client", KIND.SPAN_KIND_INTERNAL)
    client_call = only("test-client", KIND.SPAN_KIND_CLIENT)
    a_server = only("service-a", KIND.SPAN_KIND_SERVER)
    a_call = only("service-a", KIND.SPAN_KIND_CLIENT)
    b_server = only("service-b", KIND.SPAN_KIND_SERVER)

    assert operation.parent_span_id == b""
    assert client_call.parent_span_id == operation.span_id
    assert a_server.parent_span_id == client_call.span_id
    assert a_call.parent_span_id == a_server.span_id
    assert b_server.parent_span_id == a_call.span_id

    assert a_server.name == "/test.v1.A/Greet"
    assert b_server.name == "/test.v1.B/Hello"
    assert "Greet" in client_call.name
    assert "Hello" in a_call.name
