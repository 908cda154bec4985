"""Service-specific status details (``register_error_detail``): packed after ErrorInfo within
the trailer budget, unpacked into the client's error, and never able to lose the error itself.
A combined DocumentError crosses even without a codec. Real gRPC over loopback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import grpc
import grpc.aio
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from trustwire.errors import DocumentError, NotFound, TrustwireError
from trustwire.runtime import (
    MAX_STATUS_BYTES,
    ServiceServer,
    build_server,
    create_channel,
    register_error_detail,
)
from trustwire.runtime import _errors as runtime_errors

from .runtime_testkit import echo_service, method

DebugInfo = error_details_pb2.DebugInfo


def problems(count: int) -> DocumentError:
    return DocumentError.combine(
        [
            DocumentError(
                f"problem number {i} " + "x" * 60,
                source="in.yaml",
                index=i,
                field="spec.action",
                kind="Tier",
                name=f"t{i}",
            )
            for i in range(1, count + 1)
        ]
    )


ERRORS: dict[bytes, TrustwireError] = {
    b"three": problems(3),
    b"many": problems(500),
    b"notfound": NotFound("nothing here"),
}


class ListingCodec:
    """Lists a DocumentError's problem texts in a DebugInfo, as many as fit."""

    message_type = DebugInfo

    def __init__(self) -> None:
        self.rooms: list[int] = []
        self.ignore_budget = False
        self.fail_encode = False
        self.fail_decode = False

    def encode(self, error: TrustwireError, max_bytes: int) -> Message | None:
        self.rooms.append(max_bytes)
        if self.fail_encode:
            raise RuntimeError("encoder bug")
        if not isinstance(error, DocumentError):
            return None
        detail = DebugInfo(detail="listing")
        for problem in error.errors:
            detail.stack_entries.append(problem.problem)
            if detail.ByteSize() > max_bytes and not self.ignore_budget:
                del detail.stack_entries[-1]
                break
        return cast(Message, detail)

    def decode(self, error: TrustwireError, detail: Message) -> TrustwireError:
        if self.fail_decode:
            raise RuntimeError("decoder bug")
        assert isinstance(detail, DebugInfo)
        assert isinstance(error, DocumentError)
        listed = DocumentError.combine(
            [
                DocumentError(text, source=error.source, index=i + 1)
                for i, text in enumerate(detail.stack_entries)
            ]
        )
        listed.message = error.message
        listed.metadata = dict(error.metadata)
        return listed


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    # The registry is per process; other tests' codecs (the policy service's) stay out.
    monkeypatch.setattr(runtime_errors, "_DETAIL_CODECS", {})


@pytest.fixture
def codec() -> Iterator[ListingCodec]:
    codec = ListingCodec()
    unregister = register_error_detail(codec)
    yield codec
    unregister()


@pytest.fixture
async def server() -> AsyncIterator[ServiceServer]:
    async with build_server([echo_service(ERRORS.get)]) as running:
        yield running


@pytest.fixture
async def channel(server: ServiceServer) -> AsyncIterator[grpc.aio.Channel]:
    async with create_channel(server.address) as ch:
        yield ch


@pytest.fixture
async def raw_channel(server: ServiceServer) -> AsyncIterator[grpc.aio.Channel]:
    async with create_channel(server.address, translate_errors=False) as ch:
        yield ch


async def call(channel: grpc.aio.Channel, key: bytes) -> Any:
    return await channel.unary_unary(method("Echo"), None, None)(key, timeout=5)


def status_of(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    trailers: Any = error.trailing_metadata()
    [details] = [v for k, v in trailers if k == "grpc-status-details-bin"]
    return status_pb2.Status.FromString(details)


async def test_detail_is_packed_after_the_standard_ones_and_unpacked(
    codec: ListingCodec, channel: grpc.aio.Channel, raw_channel: grpc.aio.Channel
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raw:
        await call(raw_channel, b"three")
    status = status_of(raw.value)
    assert [d.TypeName() for d in status.details] == [
        "google.rpc.ErrorInfo",
        "google.rpc.BadRequest",
        "google.rpc.DebugInfo",
    ]
    detail = DebugInfo()
    assert status.details[2].Unpack(detail)
    assert [e.split(" ")[2] for e in detail.stack_entries] == ["1", "2", "3"]

    with pytest.raises(DocumentError) as raised:
        await call(channel, b"three")
    sent = ERRORS[b"three"]
    assert isinstance(sent, DocumentError)
    assert [p.problem for p in raised.value.errors] == [p.problem for p in sent.errors]
    assert raised.value.message == sent.message
    assert isinstance(raised.value.__cause__, grpc.aio.AioRpcError)


async def test_detail_gets_what_the_trailer_budget_leaves(
    codec: ListingCodec, raw_channel: grpc.aio.Channel, channel: grpc.aio.Channel
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raw:
        await call(raw_channel, b"many")
    status = status_of(raw.value)
    assert 0 < codec.rooms[-1] < MAX_STATUS_BYTES
    assert status.ByteSize() <= MAX_STATUS_BYTES
    detail = DebugInfo()
    assert status.details[2].Unpack(detail)
    assert 10 < len(detail.stack_entries) < 500
    # The client gets the error, not RESOURCE_EXHAUSTED for oversize trailers.
    with pytest.raises(DocumentError) as raised:
        await call(channel, b"many")
    assert raised.value.metadata["problems"] == "500"


async def test_a_detail_over_budget_is_dropped_and_the_error_still_crosses(
    codec: ListingCodec,
    raw_channel: grpc.aio.Channel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    codec.ignore_budget = True
    with (
        caplog.at_level(logging.WARNING, logger="trustwire.runtime.errors"),
        pytest.raises(grpc.aio.AioRpcError) as raw,
    ):
        await call(raw_channel, b"many")
    assert raw.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [d.TypeName() for d in status_of(raw.value).details] == [
        "google.rpc.ErrorInfo",
        "google.rpc.BadRequest",
    ]
    assert "dropped" in caplog.text


async def test_no_detail_for_errors_the_codec_does_not_describe(
    codec: ListingCodec, raw_channel: grpc.aio.Channel
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raw:
        await call(raw_channel, b"notfound")
    assert [d.TypeName() for d in status_of(raw.value).details] == ["google.rpc.ErrorInfo"]


async def test_failing_codecs_never_lose_the_error(
    codec: ListingCodec, channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    codec.fail_encode = True
    with (
        caplog.at_level(logging.ERROR, logger="trustwire.runtime.errors"),
        pytest.raises(DocumentError) as raised,
    ):
        await call(channel, b"three")
    assert raised.value.message == ERRORS[b"three"].message
    assert "failed to encode" in caplog.text
    codec.fail_encode, codec.fail_decode = False, True
    with (
        caplog.at_level(logging.ERROR, logger="trustwire.runtime.errors"),
        pytest.raises(DocumentError) as raised,
    ):
        await call(channel, b"three")
    assert raised.value.message == ERRORS[b"three"].message
    assert "failed to decode" in caplog.text


async def test_unregistering_removes_the_codec(
    codec: ListingCodec, raw_channel: grpc.aio.Channel
) -> None:
    unregister = register_error_detail(codec)  # the same codec again: idempotent
    unregister()
    with pytest.raises(grpc.aio.AioRpcError) as raw:
        await call(raw_channel, b"three")
    assert codec.rooms == []
    assert "google.rpc.DebugInfo" not in [d.TypeName() for d in status_of(raw.value).details]


async def test_a_combined_document_error_crosses_without_a_codec(
    channel: grpc.aio.Channel,
) -> None:
    with pytest.raises(DocumentError) as raised:
        await call(channel, b"three")
    sent = ERRORS[b"three"]
    assert isinstance(sent, DocumentError)
    got = raised.value
    assert got.message == sent.message
    assert got.message.startswith("3 problems in 3 documents; the first: in.yaml: document 1")
    assert (got.reason, got.metadata) == ("INVALID_DOCUMENT", sent.metadata)
    assert got.metadata["problems"] == "3"
    assert (got.source, got.index, got.field) == ("in.yaml", 1, "spec.action")
