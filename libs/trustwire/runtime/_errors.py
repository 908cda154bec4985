"""The error edge: ``trustwire.errors`` to gRPC status and back.

Server side, :class:`ErrorInterceptor` turns a :class:`~trustwire.errors.TrustwireError` raised
by a handler into ``context.abort(code, message)`` with a ``google.rpc.Status`` in the
``grpc-status-details-bin`` trailer. That Status carries:

- ``google.rpc.ErrorInfo{reason, domain="trustwire.io", metadata}``: always;
- ``google.rpc.BadRequest{field_violations=[{field, description}]}``: for ``InvalidArgument``
  (and ``DocumentError``) with a non-empty ``field``;
- whatever registered :class:`ErrorDetailCodec` s add (for example the policy service's
  ``ApplyErrors``, listing every problem of a ``DocumentError``), within
  :data:`MAX_STATUS_BYTES`.

Any other exception becomes ``INTERNAL`` with the fixed message ``"internal error"`` and reason
``INTERNAL``; the traceback is logged server-side (logger ``trustwire.runtime.errors``) and
never sent to the client.

Client side, :func:`error_from_rpc` rebuilds the same ``TrustwireError`` subclass, message,
reason, metadata and field from an ``AioRpcError``, then lets each registered codec whose detail
is present refine it; :func:`translating_interceptors` does it for every unary-response and
unary-request-streaming call on a channel.

Service-specific details are hooks (:func:`register_error_detail`), not entries here: this
module serves every service and depends on no service's API, and a detail such as
``policy.v1.ApplyErrors`` is part of one service's contract. The service registers its codec
at its edge (servicer and client), both directions in one object so they cannot drift.

The mapping (one place; :data:`STATUS_BY_ERROR`)::

    TrustwireError       INTERNAL            (base; also any unexpected exception)
    InvalidArgument      INVALID_ARGUMENT    + BadRequest.FieldViolation(field)
    DocumentError        INVALID_ARGUMENT    recognised by client via ErrorInfo.metadata["source"]
    NotFound             NOT_FOUND
    AlreadyExists        ALREADY_EXISTS
    Conflict             ABORTED
    FailedPrecondition   FAILED_PRECONDITION
    Unauthenticated      UNAUTHENTICATED
    PermissionDenied     PERMISSION_DENIED
    ResourceExhausted    RESOURCE_EXHAUSTED
    Unavailable          UNAVAILABLE

Subclasses defined elsewhere map like their nearest listed ancestor. A status code outside the
table (``DEADLINE_EXCEEDED``, ``UNIMPLEMENTED``, ``CANCELLED``...) comes back to the client as a
plain ``TrustwireError`` whose reason is the code's name; a status without Trustwire details
(from transport or a foreign server) gets the class for its code and the code's name as reason.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

import grpc
import grpc.aio
from google.protobuf.message import Message
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
from trustwire.runtime._handlers import Context, guard_handler

__all__ = [
    "ERROR_DOMAIN",
    "MAX_STATUS_BYTES",
    "STATUS_BY_ERROR",
    "STATUS_DETAILS_KEY",
    "ErrorDetailCodec",
    "ErrorInterceptor",
    "error_from_rpc",
    "register_error_detail",
    "status_code_for",
    "translating_interceptors",
]

_log = logging.getLogger("trustwire.runtime.errors")

ERROR_DOMAIN: Final = "trustwire.io"
"""``ErrorInfo.domain`` of every error a Trustwire service sends."""

STATUS_DETAILS_KEY: Final = "grpc-status-details-bin"
"""The trailer gRPC defines for a serialized ``google.rpc.Status``."""

INTERNAL_MESSAGE: Final = "internal error"

MAX_STATUS_BYTES: Final = 6 * 1024
"""Bound on the serialized ``google.rpc.Status``. It travels in the trailers, and a gRPC client
refuses trailers over its metadata limit (8 KiB by default, ``grpc.max_metadata_size``) with
RESOURCE_EXHAUSTED instead of the error; the rest of the 8 KiB is left to ``grpc-message`` and
the other headers. Registered details get what the standard ones leave of it."""

STATUS_BY_ERROR: Final[Mapping[type[TrustwireError], grpc.StatusCode]] = {
    TrustwireError: grpc.StatusCode.INTERNAL,
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    DocumentError: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    Conflict: grpc.StatusCode.ABORTED,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}

# The reverse direction. DocumentError is absent: it shares INVALID_ARGUMENT and is told apart
# by its metadata (see _rebuild).
_ERROR_BY_STATUS: Final[Mapping[grpc.StatusCode, type[TrustwireError]]] = {
    code: cls for cls, code in STATUS_BY_ERROR.items() if cls is not DocumentError
}


def status_code_for(error: TrustwireError) -> grpc.StatusCode:
    """The status code of ``error``: that of its nearest ancestor in :data:`STATUS_BY_ERROR`."""
    for cls in type(error).__mro__:
        code = STATUS_BY_ERROR.get(cast(type[TrustwireError], cls))
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL  # unreachable: TrustwireError itself is in the table


def _code_number(code: grpc.StatusCode) -> int:
    # grpc.StatusCode values are (int, str) tuples; the stubs leave them untyped.
    return cast(tuple[int, str], code.value)[0]


class ErrorDetailCodec(Protocol):
    """A status detail of one service's API, both ways (see the module docstring).

    ``encode`` returns the detail for an error, or ``None`` when it has none; the serialized
    detail must fit in ``max_bytes`` (the codec knows what it can leave out; a detail that does
    not fit is dropped). ``decode`` returns the error refined by the received detail, keeping
    the server's message, reason and metadata. A failing codec is logged and skipped: the
    error itself always crosses.
    """

    @property
    def message_type(self) -> type[Message]: ...

    def encode(self, error: TrustwireError, max_bytes: int) -> Message | None: ...

    def decode(self, error: TrustwireError, detail: Message) -> TrustwireError: ...


# By full message name (what ``Any.TypeName()`` gives on the way back).
_DETAIL_CODECS: dict[str, ErrorDetailCodec] = {}


def register_error_detail(codec: ErrorDetailCodec) -> Callable[[], None]:
    """Add ``codec`` for this process (idempotent: one codec per message type, the last wins).

    Returns a function that removes it again (for tests)."""
    name = codec.message_type.DESCRIPTOR.full_name
    _DETAIL_CODECS[name] = codec

    def unregister() -> None:
        if _DETAIL_CODECS.get(name) is codec:
            del _DETAIL_CODECS[name]

    return unregister


def status_for(error: TrustwireError) -> status_pb2.Status:
    """The ``google.rpc.Status`` describing ``error`` (code, message, ErrorInfo, BadRequest and
    the details of registered codecs)."""
    code = status_code_for(error)
    status = status_pb2.Status(code=_code_number(code), message=error.message)
    info = error_details_pb2.ErrorInfo(
        reason=error.reason, domain=ERROR_DOMAIN, metadata=dict(error.metadata)
    )
    status.details.add().Pack(info)
    if isinstance(error, InvalidArgument) and error.field:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=error.field, description=error.message
                )
            ]
        )
        status.details.add().Pack(bad_request)
    for codec in list(_DETAIL_CODECS.values()):
        # An Any adds the type URL and a few bytes of framing to the detail itself.
        type_url = f"type.googleapis.com/{codec.message_type.DESCRIPTOR.full_name}"
        room = MAX_STATUS_BYTES - status.ByteSize() - len(type_url) - 16
        if room <= 0:
            break
        try:
            detail = codec.encode(error, room)
        except Exception:
            _log.exception("error detail codec %s failed to encode", type(codec).__name__)
            continue
        if detail is None:
            continue
        if detail.ByteSize() > room:
            _log.warning(
                "error detail %s dropped: %d bytes, room for %d",
                codec.message_type.DESCRIPTOR.full_name,
                detail.ByteSize(),
                room,
            )
            continue
        status.details.add().Pack(detail)
    return status


async def abort_with(context: Context, error: TrustwireError) -> None:
    """Abort the call with the status of ``error`` (raises, as ``context.abort`` does)."""
    status = status_for(error)
    await context.abort(
        status_code_for(error),
        error.message,
        trailing_metadata=((STATUS_DETAILS_KEY, status.SerializeToString()),),
    )


class _ErrorGuard:
    """Per-call guard that maps exceptions to statuses (see the module docstring)."""

    __slots__ = ("_method",)

    def __init__(self, method: str) -> None:
        self._method = method

    async def before(self, context: Context) -> None:
        return None

    async def on_error(self, error: Exception, context: Context) -> None:
        if isinstance(error, grpc.aio.AbortError):
            raise error  # the handler (or an inner guard) already chose a status
        if isinstance(error, TrustwireError):
            _log.debug(
                "rpc failed",
                extra={"rpc_method": self._method, "reason": error.reason, "error": error.message},
            )
            await abort_with(context, error)
            raise error  # unreachable: abort raises
        _log.error(
            "unhandled exception in %s",
            self._method,
            exc_info=error,
            extra={"rpc_method": self._method},
        )
        await abort_with(context, TrustwireError(INTERNAL_MESSAGE))
        raise error


if TYPE_CHECKING:
    _ServerInterceptorBase = grpc.aio.ServerInterceptor[Any, Any]
    _UnaryUnaryBase = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
    _UnaryStreamBase = grpc.aio.UnaryStreamClientInterceptor[Any, Any]
else:
    _ServerInterceptorBase = grpc.aio.ServerInterceptor
    _UnaryUnaryBase = grpc.aio.UnaryUnaryClientInterceptor
    _UnaryStreamBase = grpc.aio.UnaryStreamClientInterceptor


class ErrorInterceptor(_ServerInterceptorBase):
    """aio server interceptor mapping exceptions from handlers to gRPC statuses.

    Works for all four call kinds; for response streams an error after some responses aborts
    the stream with the mapped status.
    """

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        guarded = guard_handler(handler, _ErrorGuard(handler_call_details.method))
        # ``None`` (unknown method) must pass through so gRPC answers UNIMPLEMENTED.
        return cast("grpc.RpcMethodHandler[Any, Any]", guarded)


# ---------------------------------------------------------------------------------------------
# Client side


class _StatusCarrier(Protocol):
    """What ``grpc.aio.AioRpcError`` provides (its stubs omit ``trailing_metadata``)."""

    def code(self) -> grpc.StatusCode: ...

    def details(self) -> str | None: ...

    def trailing_metadata(self) -> Any: ...


def _details_from(trailing_metadata: Any) -> status_pb2.Status | None:
    if not trailing_metadata:
        return None
    for key, value in trailing_metadata:
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except Exception:  # a malformed trailer is treated as absent
                _log.debug("malformed %s trailer ignored", STATUS_DETAILS_KEY)
                return None
    return None


def error_from_rpc(error: grpc.aio.AioRpcError) -> TrustwireError:
    """The ``TrustwireError`` a failed call stands for (see the module docstring)."""
    carrier = cast(_StatusCarrier, error)
    code = carrier.code()
    message = carrier.details() or ""
    status = _details_from(carrier.trailing_metadata())
    info: error_details_pb2.ErrorInfo | None = None
    field = ""
    refinements: list[tuple[ErrorDetailCodec, Any]] = []
    if status is not None and status.code == _code_number(code):
        message = status.message or message
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                if bad_request.field_violations:
                    field = bad_request.field_violations[0].field
            elif (codec := _DETAIL_CODECS.get(detail.TypeName())) is not None:
                refinements.append((codec, detail))
    reason = info.reason if info is not None and info.reason else code.name
    metadata = dict(info.metadata) if info is not None else {}
    rebuilt = _rebuild(code, message, reason, metadata, field)
    for codec, packed in refinements:
        try:
            detail_message = codec.message_type()
            packed.Unpack(detail_message)
            rebuilt = codec.decode(rebuilt, detail_message)
        except Exception:
            _log.exception("error detail codec %s failed to decode", type(codec).__name__)
    return rebuilt


def _rebuild(
    code: grpc.StatusCode, message: str, reason: str, metadata: dict[str, str], field: str
) -> TrustwireError:
    cls = _ERROR_BY_STATUS.get(code, TrustwireError)
    rebuilt: TrustwireError
    if cls is InvalidArgument and "source" in metadata:
        document = metadata.get("document", "")
        rebuilt = DocumentError(
            message,
            source=metadata["source"],
            index=int(document) if document.isdigit() else None,
            field=field,
            reason=reason,
        )
    elif cls is InvalidArgument:
        rebuilt = InvalidArgument(message, field=field, reason=reason, metadata=metadata)
    else:
        rebuilt = cls(message, reason=reason, metadata=metadata)
    # Constructors derive message and metadata; the server's values are the truth.
    rebuilt.message = message
    rebuilt.args = (message,)
    rebuilt.metadata = dict(metadata)
    return rebuilt


class _UnaryUnaryTranslator(_UnaryUnaryBase):
    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        call = await continuation(client_call_details, request)
        try:
            return await call
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error) from error


class _UnaryStreamTranslator(_UnaryStreamBase):
    async def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> AsyncIterable[Any]:
        call = await continuation(client_call_details, request)

        async def responses() -> AsyncIterator[Any]:
            try:
                async for response in call:
                    yield response
            except grpc.aio.AioRpcError as error:
                raise error_from_rpc(error) from error

        return responses()


def translating_interceptors() -> list[Any]:
    """aio client interceptors that raise ``TrustwireError`` instead of ``AioRpcError``.

    Covers unary-unary and unary-stream calls (awaiting the call or iterating the stream
    raises the translated error). Client-streaming calls are left alone: wrap them with
    :func:`error_from_rpc` where they are awaited.
    """
    return [_UnaryUnaryTranslator(), _UnaryStreamTranslator()]
