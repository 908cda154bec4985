"""The enforcer's local API: a Unix socket (mode 0600) for the host's tools (`trustwire pu`).

Why not gRPC: a gRPC server cannot tell who is on the other end of a Unix socket, and the local
API's authorization is exactly that (``SO_PEERCRED``: the caller's pid, uid and gid, vouched
for by the kernel). So the transport is a minimal framing of the same protobuf messages:

    request  = u32 length, then: u16 method length, method (``AddPu``...), request message
    response = u32 length, then: u8 status (0 ok, 1 error), then the response message, or the
               error as JSON {"type": "NotFound", "reason": "...", "message": "..."}

One request per connection; both directions bounded in size. The socket file is created with
mode 0600 in a 0700 directory: only its owner (root) can connect; ``SO_PEERCRED`` is checked
as well, per method (``Caller`` is given to the handler).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import trustwire.errors as errors
from trustwire.errors import PermissionDenied, TrustwireError, Unavailable

__all__ = ["Caller", "Handler", "LocalApiClient", "LocalApiServer"]

MAX_FRAME = 1024 * 1024
_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Caller:
    pid: int
    uid: int
    gid: int

    @property
    def is_root(self) -> bool:
        return self.uid == 0


Handler = Callable[[Caller, bytes], Awaitable[bytes]]


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (length,) = struct.unpack("!I", await reader.readexactly(4))
    if length > MAX_FRAME:
        raise errors.InvalidArgument(f"frame of {length} bytes exceeds {MAX_FRAME}")
    return await reader.readexactly(length)


def _frame(body: bytes) -> bytes:
    return struct.pack("!I", len(body)) + body


def _peer_credentials(sock: socket.socket) -> Caller:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return Caller(pid, uid, gid)


class LocalApiServer:
    def __init__(self, path: Path, handlers: Mapping[str, Handler]) -> None:
        self.path = path
        self._handlers = dict(handlers)
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale socket of a previous run
        # The umask makes the socket 0600 from its creation (no window with wider access).
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            caller = _peer_credentials(sock)
            async with asyncio.timeout(_TIMEOUT):
                body = await _read_frame(reader)
                (size,) = struct.unpack_from("!H", body)
                method = body[2 : 2 + size].decode()
                handler = self._handlers.get(method)
                try:
                    if handler is None:
                        raise errors.NotFound(f"unknown method {method!r}", reason="UNIMPLEMENTED")
                    response = b"\x00" + await handler(caller, body[2 + size :])
                except TrustwireError as error:
                    response = (
                        b"\x01"
                        + json.dumps(
                            {
                                "type": type(error).__name__,
                                "reason": error.reason,
                                "message": str(error),
                            }
                        ).encode()
                    )
                writer.write(_frame(response))
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, struct.error):
            pass  # the caller went away or spoke garbage: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def _error_from(payload: bytes) -> TrustwireError:
    try:
        data = json.loads(payload)
        cls = getattr(errors, str(data.get("type", "")), TrustwireError)
        if not (isinstance(cls, type) and issubclass(cls, TrustwireError)):
            cls = TrustwireError
        return cls(str(data.get("message", "")), reason=str(data.get("reason", "")) or None)
    except (ValueError, TypeError):
        return TrustwireError("malformed error from the enforcer")


class LocalApiClient:
    """Calls the local API (the CLI side)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def call(self, method: str, request: bytes) -> bytes:
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.path))
        except OSError as error:
            if isinstance(error, PermissionError):
                raise PermissionDenied(
                    f"cannot connect to {self.path}: run as root", reason="LOCAL_API_DENIED"
                ) from None
            raise Unavailable(
                f"no enforcer at {self.path}: {error.strerror}", reason="ENFORCER_UNREACHABLE"
            ) from None
        try:
            name = method.encode()
            writer.write(_frame(struct.pack("!H", len(name)) + name + request))
            await writer.drain()
            async with asyncio.timeout(_TIMEOUT):
                body = await _read_frame(reader)
        except (OSError, asyncio.IncompleteReadError) as error:
            raise Unavailable(f"enforcer closed the connection: {error}") from None
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if body[:1] == b"\x00":
            return body[1:]
        raise _error_from(body[1:])
