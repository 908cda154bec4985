"""The demo's process PU: the command ``trustwire up`` starts with ``trustwire run``.

    python3 -I process_agent.py --name shop/backup --port 9090 [--port ...] --control SOCKET

Run as a script (standard library only: it starts fast, and the executable the enforcer
attests is just the interpreter). It serves every ``--port`` like the namespace PUs' servers
(read one line, answer ``<name> <port> ok``) and makes the demo's outgoing connections on
request, so they come from a socket of its cgroup: the enforcer intercepts exactly those.

Requests come over a Unix socket (``--control``), which the enforcer's TCP rules do not touch:
one line ``connect IP PORT`` per connection, answered with one JSON line ``{"answer": ...,
"errno": ..., "timeout": ..., "seconds": ...}``. The control socket appears only once the
servers listen, and the command only runs once its PU is enforced (``trustwire run``), so a
connectable control socket means a served PU. SIGTERM (forwarded by ``trustwire run`` on
``trustwire down``) ends it with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import time

READ_TIMEOUT_S = 3.0
CONNECT_TIMEOUT_S = 3.0


async def _serve_port(name: str, port: int) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                await reader.readline()
                writer.write(f"{name} {port} ok\n".encode())
                await writer.drain()
        except (OSError, TimeoutError):
            pass  # the client went away or the enforcer cut the connection
        finally:
            writer.close()

    return await asyncio.start_server(handle, "0.0.0.0", port, reuse_address=True, backlog=128)


async def connect(name: str, ip: str, port: int) -> dict[str, object]:
    """One connection as the demo's clients make it: send a line, read the answer line."""
    started = time.monotonic()
    result: dict[str, object] = {"answer": "", "errno": None, "timeout": False}
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S + READ_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(ip, port)
            try:
                writer.write(f"hello from {name}\n".encode())
                await writer.drain()
                result["answer"] = (await reader.readline()).decode(errors="replace")
            finally:
                writer.close()
    except TimeoutError:
        result["timeout"] = True
    except OSError as error:
        result["errno"] = error.errno
    result["seconds"] = time.monotonic() - started
    return result


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, action="append", default=[])
    parser.add_argument("--control", required=True)
    args = parser.parse_args()
    servers = [await _serve_port(args.name, port) for port in args.port]

    async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            verb, ip, port = (await reader.readline()).decode().split()
            if verb != "connect":
                raise ValueError(verb)
            result = await connect(args.name, ip, int(port))
            writer.write((json.dumps(result) + "\n").encode())
            await writer.drain()
        except (OSError, ValueError):
            pass  # a malformed request or a vanished caller: it gets no answer
        finally:
            writer.close()

    with contextlib.suppress(FileNotFoundError):
        os.unlink(args.control)  # a socket file left by an earlier run
    servers.append(await asyncio.start_unix_server(control, path=args.control))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    print(f"{args.name}: serving {args.port}, requests on {args.control}", flush=True)
    await stop.wait()
    for server in servers:
        server.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(args.control)
    print(f"{args.name}: stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
