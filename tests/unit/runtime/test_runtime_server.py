"""The server builder: health, reflection, graceful stop, binding, tracing of real calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from trustwire.errors import NotFound, TrustwireError, Unavailable
from trustwire.runtime import (
    HEALTH_SERVICE,
    ServiceServer,
    TransportOptions,
    build_server,
    configure_telemetry,
    create_channel,
)

from .runtime_testkit import SERVICE, echo_service, method

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
WAIT = 5.0  # bound on every wait for a condition


@pytest.fixture
async def server() -> AsyncIterator[ServiceServer]:
    async with build_server([echo_service()]) as running:
        yield running


async def check(channel: grpc.aio.Channel, service: str) -> int:
    response = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=WAIT
    )
    return int(response.status)


async def test_binds_a_free_loopback_port(server: ServiceServer) -> None:
    assert server.port > 0
    assert server.address == f"127.0.0.1:{server.port}"
    async with create_channel(server.address) as channel:
        assert await channel.unary_unary(method("Echo"), None, None)(b"hi", timeout=WAIT) == b"hi"


async def test_health_serving_per_service_and_overall(server: ServiceServer) -> None:
    async with create_channel(server.address) as channel:
        assert await check(channel, "") == SERVING
        assert await check(channel, SERVICE) == SERVING
        with pytest.raises(NotFound):
            await check(channel, "no.such.Service")
        listed = await health_pb2_grpc.HealthStub(channel).List(
            health_pb2.HealthListRequest(), timeout=WAIT
        )
        assert {name: r.status for name, r in listed.statuses.items()} == {
            "": SERVING,
            SERVICE: SERVING,
        }
        await server.set_serving(SERVICE, False)
        assert await check(channel, SERVICE) == NOT_SERVING
        assert await check(channel, "") == SERVING


async def test_graceful_stop_reports_not_serving_to_watchers() -> None:
    running = build_server([echo_service()])
    await running.start()
    async with create_channel(running.address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=SERVICE), timeout=WAIT
        )
        first = await asyncio.wait_for(watch.read(), WAIT)
        assert first.status == SERVING
        stopping = asyncio.create_task(running.stop(grace=WAIT))
        second = await asyncio.wait_for(watch.read(), WAIT)
        assert second.status == NOT_SERVING
        watch.cancel()
        await asyncio.wait_for(stopping, WAIT)
    await asyncio.wait_for(running.wait_for_termination(), WAIT)


async def test_reflection_lists_the_services(server: ServiceServer) -> None:
    async with create_channel(server.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=WAIT
        )
        [response] = [r async for r in responses]
    names = {s.name for s in response.list_services_response.service}
    assert names == {SERVICE, HEALTH_SERVICE, "grpc.reflection.v1alpha.ServerReflection"}


async def test_reflection_can_be_disabled() -> None:
    running = build_server([echo_service()], reflection_enabled=False)
    async with running, create_channel(running.address, translate_errors=False) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=WAIT
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call.read()
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_port_in_use_fails_loudly(server: ServiceServer) -> None:
    with pytest.raises(Unavailable) as raised:
        build_server([echo_service()], address=server.address)
    assert raised.value.reason == "BIND_FAILED"


async def test_message_size_limit_is_applied() -> None:
    small = TransportOptions(max_message_bytes=1024)
    running = build_server([echo_service()], transport=small)
    async with running, create_channel(running.address, translate_errors=False) as channel:
        assert await channel.unary_unary(method("Echo"), None, None)(b"x" * 512, timeout=WAIT)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await channel.unary_unary(method("Echo"), None, None)(b"x" * 4096, timeout=WAIT)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def drain(responses: AsyncIterable[bytes], into: list[bytes]) -> None:
    async for response in responses:
        into.append(response)


def _raiser(request: bytes) -> BaseException | None:
    if request == b"missing":
        return NotFound("gone")
    if request == b"crash":
        return RuntimeError("boom")
    return None


async def test_rpcs_are_traced_and_health_is_not() -> None:
    exporter = InMemorySpanExporter()
    telemetry = configure_telemetry(
        "echo", span_processor=SimpleSpanProcessor(exporter), set_global=False
    )
    built = build_server([echo_service(_raiser)], tracer_provider=telemetry.tracer_provider)
    async with built as running, create_channel(running.address) as channel:
        # Health through the whole interceptor chain, Watch included (the reason it is excluded
        # from instrumentation: wrapped, its context.write-style stream would break).
        await check(channel, "")
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=WAIT
        )
        assert (await asyncio.wait_for(watch.read(), WAIT)).status == SERVING
        watch.cancel()
        echo = channel.unary_unary(method("Echo"), None, None)
        await echo(b"ok", timeout=WAIT)
        with pytest.raises(NotFound):
            await echo(b"missing", timeout=WAIT)
        with pytest.raises(TrustwireError):
            await echo(b"crash", timeout=WAIT)
        count = channel.unary_stream(method("Count"), None, None)
        assert [r async for r in count(b"", timeout=WAIT)] == [b"0", b"1"]
        # A context.write-style stream survives the instrumentation (our guards re-shape it)...
        write = channel.unary_stream(method("Write"), None, None)
        assert [r async for r in write(b"", timeout=WAIT)] == [b"0", b"1"]
        # ...and its errors are mapped like any other.
        received: list[bytes] = []
        with pytest.raises(NotFound):
            await drain(write(b"missing", timeout=WAIT), received)
        assert received == [b"0"]
    telemetry.shutdown()

    spans = exporter.get_finished_spans()
    assert all(s.kind is SpanKind.SERVER for s in spans)
    assert all(s.resource.attributes["service.name"] == "echo" for s in spans)
    assert sorted(s.name for s in spans) == [
        method("Count"),
        *[method("Echo")] * 3,
        *[method("Write")] * 2,
    ]
    codes = sorted(
        int(str((s.attributes or {})["rpc.grpc.status_code"]))
        for s in spans
        if s.name == method("Echo")
    )
    assert codes == [0, 5, 13]  # OK, NOT_FOUND, INTERNAL: the status the error edge chose
    # Semantic conventions: on a server span only server faults (INTERNAL...) are errors.
    [failed] = [s for s in spans if s.status.status_code is StatusCode.ERROR]
    assert (failed.attributes or {})["rpc.grpc.status_code"] == 13
