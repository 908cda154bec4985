"""The demo's workloads and connections: a tiny TCP server on every declared port inside each
namespace PU, and clients that connect from one PU to another.

Both run on ``trustwire up``'s event loop. A socket belongs for life to the network namespace
it was created in, so each is created on a thread inside the PU's namespace
(``socket_in_netns``) and then used from the loop like any other socket.

A process PU is enforced by its cgroup, so its server and its connections must be its own
process's sockets: its command (``process_agent.py``) serves the same protocol and makes the
connections ``attempt_from_agent`` asks it for.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from trustwire_enforcer.datapath.netns import socket_in_netns

from .scenario import Probe, PuSpec

__all__ = ["Outcome", "PuServers", "agent_serving", "attempt", "attempt_from_agent"]

READ_TIMEOUT_S = 3.0
CONNECT_TIMEOUT_S = 3.0


class PuServers:
    """A server on every port ``pu`` declares: reads one line, answers ``<pu> <port> ok``."""

    def __init__(self, pu: PuSpec) -> None:
        self.pu = pu
        self._servers: list[asyncio.Server] = []

    def banner(self, port: int) -> bytes:
        return f"{self.pu.key} {port} ok\n".encode()

    async def start(self) -> None:
        for port in self.pu.ports:
            sock = socket_in_netns(self.pu.netns)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("0.0.0.0", port.number))
            sock.setblocking(False)
            self._servers.append(
                await asyncio.start_server(self._handler(port.number), sock=sock, backlog=128)
            )

    def _handler(
        self, port: int
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                async with asyncio.timeout(READ_TIMEOUT_S):
                    await reader.readline()
                    writer.write(self.banner(port))
                    await writer.drain()
            except (OSError, TimeoutError):
                pass  # the client went away or the enforcer cut the connection
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

        return serve

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)
        self._servers.clear()


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the client saw."""

    allowed: bool
    detail: str  # "answered", "reset", "refused", "closed", "timeout", ...
    seconds: float


async def attempt(probe: Probe) -> Outcome:
    """Connect from the source PU to the destination's port, send one line, read the answer.
    Allowed means the destination's server answered; anything else is a rejection as the
    application sees it (the enforcer resets a rejected connection: it fails fast)."""
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    sock = await asyncio.to_thread(socket_in_netns, probe.source.netns)
    sock.setblocking(False)
    expected = _expected(probe)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S + READ_TIMEOUT_S):
            await loop.sock_connect(sock, (probe.destination.ip, probe.port))
            await loop.sock_sendall(sock, f"hello from {probe.source.key}\n".encode())
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = await loop.sock_recv(sock, 1024)
                if not chunk:
                    break
                answer += chunk
    except TimeoutError:
        return Outcome(False, "timeout", time.monotonic() - started)
    except OSError as error:
        return Outcome(False, _failure(error.errno), time.monotonic() - started)
    finally:
        sock.close()
    return _answered(answer, expected, time.monotonic() - started)


def _expected(probe: Probe) -> bytes:
    return f"{probe.destination.key} {probe.port} ok\n".encode()


def _failure(number: int | None) -> str:
    return {
        errno.ECONNRESET: "reset",
        errno.ECONNREFUSED: "refused",
        errno.EPIPE: "reset",
        errno.EHOSTUNREACH: "unreachable",
        errno.ENETUNREACH: "unreachable",
    }.get(number or 0, errno.errorcode.get(number or 0, "error").lower())


def _answered(answer: bytes, expected: bytes, elapsed: float) -> Outcome:
    if answer == expected:
        return Outcome(True, "answered", elapsed)
    return Outcome(False, "closed" if not answer else "wrong answer", elapsed)


# The agent's own bounds, plus its answer's way back.
_AGENT_TIMEOUT_S = CONNECT_TIMEOUT_S + READ_TIMEOUT_S + 2.0


async def attempt_from_agent(control: Path, probe: Probe) -> Outcome:
    """``attempt`` made by a process PU's agent (over its control socket), so the connection
    leaves from the PU's cgroup; the outcome is classified exactly as ``attempt`` does."""
    async with asyncio.timeout(_AGENT_TIMEOUT_S):
        reader, writer = await asyncio.open_unix_connection(str(control))
        try:
            writer.write(f"connect {probe.destination.ip} {probe.port}\n".encode())
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
    if not line:
        raise ConnectionError(f"the agent of {probe.source.key} gave no answer ({control})")
    result = json.loads(line)
    seconds = float(result["seconds"])
    if result["timeout"]:
        return Outcome(False, "timeout", seconds)
    if result["errno"] is not None:
        return Outcome(False, _failure(int(result["errno"])), seconds)
    return _answered(str(result["answer"]).encode(), _expected(probe), seconds)


async def agent_serving(control: Path) -> bool:
    """The agent accepts requests: its servers listen and its PU is enforced."""
    _, writer = await asyncio.open_unix_connection(str(control))
    writer.close()
    return True
