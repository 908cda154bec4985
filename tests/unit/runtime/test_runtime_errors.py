"""Errors at the edge: every TrustwireError crosses a real gRPC call and comes back intact."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from typing import Any

import grpc
import grpc.aio
import pytest
from google.rpc import error_details_pb2, status_pb2

from trustwire.errors import (
    AlreadyExists,
    Conflict,
    DocumentError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    TrustwireError,
    Unauthenticated,
    Unavailable,
)
from trustwire.runtime import (
    ERROR_DOMAIN,
    STATUS_BY_ERROR,
    ServiceServer,
    build_server,
    create_channel,
    error_from_rpc,
)

from .runtime_testkit import echo_service, method

ERRORS: dict[bytes, TrustwireError] = {
    b"base": TrustwireError("base failure", metadata={"k": "v"}),
    b"invalid": InvalidArgument(
        "port out of range", field="spec.ports[0].port", metadata={"max": "65535"}
    ),
    b"invalid-nofield": InvalidArgument("bad request", reason="BAD_SHAPE"),
    b"document": DocumentError(
        "must be positive", source="web.yaml", index=2, field="spec.priority", what="Policy web"
    ),
    b"notfound": NotFound("no policy shop/web", reason="POLICY_NOT_FOUND", metadata={"n": "web"}),
    b"exists": AlreadyExists("policy shop/web exists"),
    b"conflict": Conflict("revision moved", metadata={"revision": "42"}),
    b"precondition": FailedPrecondition("compacted", reason="REVISION_COMPACTED"),
    b"unauthenticated": Unauthenticated("bad token"),
    b"denied": PermissionDenied("viewer may not write"),
    b"exhausted": ResourceExhausted("too big", metadata={"limit": "16MiB"}),
    b"unavailable": Unavailable("etcd down", reason="ETCD_UNAVAILABLE"),
}


def raiser(request: bytes) -> BaseException | None:
    if request == b"crash":
        return RuntimeError("password=hunter2 leaked in a traceback")
    return ERRORS.get(request)


@pytest.fixture
async def server() -> AsyncIterator[ServiceServer]:
    async with build_server([echo_service(raiser)]) as running:
        yield running


@pytest.fixture
async def channel(server: ServiceServer) -> AsyncIterator[grpc.aio.Channel]:
    async with create_channel(server.address) as ch:
        yield ch


@pytest.fixture
async def raw_channel(server: ServiceServer) -> AsyncIterator[grpc.aio.Channel]:
    async with create_channel(server.address, translate_errors=False) as ch:
        yield ch


async def drain(responses: AsyncIterable[bytes], into: list[bytes]) -> None:
    async for response in responses:
        into.append(response)


def assert_same(received: TrustwireError, sent: TrustwireError) -> None:
    assert type(received) is type(sent)
    assert received.message == sent.message == str(received)
    assert received.reason == sent.reason
    assert received.metadata == sent.metadata
    if isinstance(sent, InvalidArgument):
        assert isinstance(received, InvalidArgument)
        assert received.field == sent.field
    if isinstance(sent, DocumentError):
        assert isinstance(received, DocumentError)
        assert (received.source, received.index) == (sent.source, sent.index)


def test_every_error_class_is_in_the_table() -> None:
    classes = {type(error) for error in ERRORS.values()}
    assert classes == set(STATUS_BY_ERROR)


@pytest.mark.parametrize("key", list(ERRORS))
async def test_unary_round_trip(channel: grpc.aio.Channel, key: bytes) -> None:
    with pytest.raises(TrustwireError) as raised:
        await channel.unary_unary(method("Echo"), None, None)(key, timeout=5)
    assert_same(raised.value, ERRORS[key])
    assert isinstance(raised.value.__cause__, grpc.aio.AioRpcError)


@pytest.mark.parametrize("key", list(ERRORS))
async def test_status_on_the_wire(raw_channel: grpc.aio.Channel, key: bytes) -> None:
    sent = ERRORS[key]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await raw_channel.unary_unary(method("Echo"), None, None)(key, timeout=5)
    rpc_error = raised.value
    assert rpc_error.code() == STATUS_BY_ERROR[type(sent)]
    assert rpc_error.details() == sent.message
    trailers: Any = rpc_error.trailing_metadata()  # stubs: sync tuple type; aio: Metadata
    [details] = [v for k, v in trailers if k == "grpc-status-details-bin"]
    status = status_pb2.Status.FromString(details)
    assert status.code == rpc_error.code().value[0]
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        sent.reason,
        ERROR_DOMAIN,
        sent.metadata,
    )
    if isinstance(sent, InvalidArgument) and sent.field:
        bad_request = error_details_pb2.BadRequest()
        assert status.details[1].Unpack(bad_request)
        assert [v.field for v in bad_request.field_violations] == [sent.field]
    else:
        assert len(status.details) == 1
    assert_same(error_from_rpc(rpc_error), sent)


async def test_unexpected_exception_is_internal_and_does_not_leak(
    channel: grpc.aio.Channel, raw_channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="trustwire.runtime.errors"):
        with pytest.raises(TrustwireError) as raised:
            await channel.unary_unary(method("Echo"), None, None)(b"crash", timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as raw:
            await raw_channel.unary_unary(method("Echo"), None, None)(b"crash", timeout=5)
    assert type(raised.value) is TrustwireError
    assert (raised.value.reason, raised.value.message) == ("INTERNAL", "internal error")
    assert raw.value.code() == grpc.StatusCode.INTERNAL
    leaked = repr(raw.value.trailing_metadata()) + str(raw.value.details())
    assert "hunter2" not in leaked
    assert "RuntimeError" not in leaked
    # ...but the server log has the whole story.
    [record, _] = [r for r in caplog.records if r.name == "trustwire.runtime.errors"]
    assert record.exc_info is not None
    assert "hunter2" in str(record.exc_info[1])
    assert record.__dict__["rpc_method"] == method("Echo")


async def test_server_stream_error_after_first_response(channel: grpc.aio.Channel) -> None:
    received: list[bytes] = []
    with pytest.raises(NotFound) as raised:
        await drain(
            channel.unary_stream(method("Count"), None, None)(b"notfound", timeout=5), received
        )
    assert received == [b"0"]
    assert_same(raised.value, ERRORS[b"notfound"])


async def test_server_stream_success(channel: grpc.aio.Channel) -> None:
    responses = [
        r async for r in channel.unary_stream(method("Count"), None, None)(b"ok", timeout=5)
    ]
    assert responses == [b"0", b"1"]


async def test_client_stream_error(raw_channel: grpc.aio.Channel) -> None:
    def requests() -> Iterator[bytes]:
        yield b"fine"
        yield b"conflict"

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await raw_channel.stream_unary(method("Collect"), None, None)(requests(), timeout=5)
    assert_same(error_from_rpc(raised.value), ERRORS[b"conflict"])


async def test_bidi_stream_error(raw_channel: grpc.aio.Channel) -> None:
    call = raw_channel.stream_stream(method("Chat"), None, None)(
        iter([b"hello", b"exhausted"]), timeout=5
    )
    received: list[bytes] = []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await drain(call, received)
    assert received == [b"hello"]
    assert_same(error_from_rpc(raised.value), ERRORS[b"exhausted"])


async def test_handler_abort_passes_through(channel: grpc.aio.Channel) -> None:
    with pytest.raises(FailedPrecondition) as raised:
        await channel.unary_unary(method("Abort"), None, None)(b"", timeout=5)
    # A plain abort has no Trustwire details: the reason is the status code's name.
    assert raised.value.reason == "FAILED_PRECONDITION"
    assert raised.value.message == "handler aborted"


async def test_unknown_method_is_unimplemented(channel: grpc.aio.Channel) -> None:
    with pytest.raises(TrustwireError) as raised:
        await channel.unary_unary(method("Nope"), None, None)(b"", timeout=5)
    assert type(raised.value) is TrustwireError
    assert raised.value.reason == "UNIMPLEMENTED"


async def test_transport_failure_is_unavailable() -> None:
    # A server that stopped: nothing listens on its port any more.
    async with build_server([echo_service()]) as stopped:
        address = stopped.address
    async with create_channel(address) as channel:
        with pytest.raises(Unavailable) as raised:
            await channel.unary_unary(method("Echo"), None, None)(b"", timeout=5)
    assert raised.value.reason == "UNAVAILABLE"
