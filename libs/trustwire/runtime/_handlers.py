"""Wrapping the behaviour of an aio ``RpcMethodHandler`` (shared by the server interceptors).

A grpc.aio server interceptor only sees ``HandlerCallDetails`` (method and metadata); to act
on the servicer context (peer certificate, ``abort``) or on exceptions a handler raises, it
must return a copy of the handler whose behaviour is wrapped. This module is that copy.

Contract: behaviours are aio behaviours (coroutine functions, or async-generator functions for
response streams). A response-streaming behaviour is always wrapped as an async generator,
whichever style it has: an async generator is re-yielded; a coroutine that streams with
``context.write`` (such as the aio health ``Watch``) is awaited and the wrapper yields
nothing, which grpc.aio accepts. So whatever wraps *us* may iterate the result (the
OpenTelemetry server interceptor does, and breaks on ``context.write`` handlers it wraps
directly).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, cast

import grpc
import grpc.aio

if TYPE_CHECKING:
    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
else:
    Context: TypeAlias = grpc.aio.ServicerContext

__all__ = ["Context", "Guard", "guard_handler"]

# An aio behaviour: ``(request or request iterator, context)`` to a coroutine (unary response,
# or streaming through ``context.write``) or to an async iterator of responses.
Behavior: TypeAlias = Callable[[Any, Context], Any]


class Guard(Protocol):
    """What a server interceptor does around one call.

    ``before`` runs before the handler (it may raise to refuse the call); ``on_error`` gets
    every exception from the handler or from ``before`` except ``asyncio.CancelledError`` and
    must raise (re-raise, translate, or abort the call).
    """

    async def before(self, context: Context) -> None: ...

    async def on_error(self, error: Exception, context: Context) -> None: ...


def _behavior_of(handler: grpc.RpcMethodHandler[Any, Any]) -> tuple[Behavior, Any]:
    """The behaviour of ``handler`` and the ``grpc.*_rpc_method_handler`` factory for its kind."""
    if handler.request_streaming and handler.response_streaming:
        return cast(Behavior, handler.stream_stream), grpc.stream_stream_rpc_method_handler
    if handler.request_streaming:
        return cast(Behavior, handler.stream_unary), grpc.stream_unary_rpc_method_handler
    if handler.response_streaming:
        return cast(Behavior, handler.unary_stream), grpc.unary_stream_rpc_method_handler
    return cast(Behavior, handler.unary_unary), grpc.unary_unary_rpc_method_handler


def guard_handler(
    handler: grpc.RpcMethodHandler[Any, Any] | None, guard: Guard
) -> grpc.RpcMethodHandler[Any, Any] | None:
    """A copy of ``handler`` whose behaviour runs inside ``guard``; ``None`` stays ``None``."""
    if handler is None:
        return None
    behavior, factory = _behavior_of(handler)

    wrapped: Behavior
    if handler.response_streaming:

        async def stream_wrapper(request: Any, context: Context) -> AsyncIterator[Any]:
            try:
                await guard.before(context)
                result = behavior(request, context)
                if inspect.isawaitable(result):
                    await result  # streams through context.write; returns nothing
                else:
                    async for response in result:
                        yield response
            except Exception as error:
                await guard.on_error(error, context)
                raise  # on_error must raise; this keeps the contract if it does not

        wrapped = stream_wrapper
    else:

        async def call_wrapper(request: Any, context: Context) -> Any:
            try:
                await guard.before(context)
                result = behavior(request, context)
                return await result if inspect.isawaitable(result) else result
            except Exception as error:
                await guard.on_error(error, context)
                raise

        wrapped = call_wrapper

    return cast(
        "grpc.RpcMethodHandler[Any, Any]",
        factory(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        ),
    )
