"""Network namespaces from the enforcer's side: run code, create sockets, list addresses.

A Linux network namespace is a property of a *thread* (``setns`` changes only the calling
thread), and a socket belongs for life to the namespace of the thread that created it. So the
enforcer, which runs in the host namespace, creates every socket of a PU (listeners, upstream and
local-delivery sockets) on a thread that has entered the PU's namespace, then uses those sockets
from any thread: ``bind``/``connect``/``accept`` act in the socket's namespace.

Python 3.11 has no ``os.setns`` (3.12 adds it), so ``setns(2)`` is called through ``ctypes``.
The main thread never changes namespace.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import ctypes.util
import json
import os
import queue
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from trustwire_enforcer.datapath.errors import NetnsError

__all__ = [
    "InterfaceAddress",
    "NetnsWorker",
    "enter_netns",
    "list_addresses",
    "netns_path",
    "open_netns",
    "run_command_in_netns",
    "run_in_netns",
    "socket_in_netns",
]

_T = TypeVar("_T")

CLONE_NEWNET = 0x40000000
_NAMED_NETNS_DIR = Path("/run/netns")
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def netns_path(netns: str | os.PathLike[str]) -> Path:
    """``netns`` is a name under /run/netns (as ``ip netns`` makes) or a path such as
    ``/proc/<pid>/ns/net``; both name the same kind of object."""
    text = os.fspath(netns)
    return Path(text) if "/" in text else _NAMED_NETNS_DIR / text


def open_netns(netns: str | os.PathLike[str]) -> int:
    """An O_RDONLY fd on the namespace. Holding it keeps the namespace alive even if it is
    unmounted, so callers that keep one must close it when the PU goes away."""
    path = netns_path(netns)
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NetnsError(f"cannot open network namespace {path}: {exc.strerror}") from exc


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetnsError(f"setns(CLONE_NEWNET) failed: {os.strerror(err)}")


def enter_netns(fd: int) -> None:
    """Move the *calling thread* into the namespace ``fd``. Only for threads the caller owns
    and discards afterwards (a per-connection relay thread); never on the main thread or a pool
    thread that other code will reuse."""
    _setns(fd)


def run_in_netns(netns: str | os.PathLike[str] | int, fn: Callable[[], _T]) -> _T:
    """Run ``fn`` on a fresh thread that has entered ``netns`` (name, path or open fd) and
    return its result (or raise its exception). For one-off work; per-connection work goes
    through a long-lived :class:`NetnsWorker` to avoid a thread start each time."""
    result: list[_T] = []
    error: list[BaseException] = []

    def body() -> None:
        try:
            if isinstance(netns, int):
                _setns(netns)
            else:
                fd = open_netns(netns)
                try:
                    _setns(fd)
                finally:
                    os.close(fd)
            result.append(fn())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=body, name="netns-call", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def socket_in_netns(
    netns: str | os.PathLike[str] | int,
    family: int = socket.AF_INET,
    type: int = socket.SOCK_STREAM,
    proto: int = 0,
) -> socket.socket:
    """A socket that lives in ``netns``; usable from any thread afterwards."""
    return run_in_netns(netns, lambda: socket.socket(family, type, proto))


def run_command_in_netns(
    netns: str | os.PathLike[str] | int,
    argv: list[str],
    *,
    input: str | None = None,
    timeout: float = 10.0,
) -> subprocess.CompletedProcess[str]:
    """Run a command inside ``netns``: a child forked by a thread inherits that thread's
    namespaces, so no ``ip netns exec``/``nsenter`` is needed (and paths work as well as
    names). Does not raise on a non-zero exit; callers decide."""
    return run_in_netns(
        netns,
        lambda: subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        ),
    )


@dataclass(frozen=True, slots=True)
class InterfaceAddress:
    interface: str
    family: str  # "inet" | "inet6"
    address: str
    prefix_length: int
    up: bool


def list_addresses(netns: str | os.PathLike[str] | int) -> list[InterfaceAddress]:
    """Every address of every interface in ``netns`` (from ``ip -j addr``)."""
    done = run_command_in_netns(netns, ["ip", "-j", "addr", "show"])
    if done.returncode != 0:
        raise NetnsError(f"ip addr failed: {done.stderr.strip()}")
    out: list[InterfaceAddress] = []
    for link in json.loads(done.stdout or "[]"):
        up = "UP" in link.get("flags", [])
        for info in link.get("addr_info", []):
            out.append(
                InterfaceAddress(
                    interface=str(link["ifname"]),
                    family=str(info["family"]),
                    address=str(info["local"]),
                    prefix_length=int(info["prefixlen"]),
                    up=up,
                )
            )
    return out


class NetnsWorker:
    """One long-lived thread inside a network namespace that runs submitted callables.

    The enforcer keeps one per PU so that creating the per-connection upstream socket costs a
    queue hand-off (tens of microseconds) rather than a thread start. Holds an fd on the
    namespace until :meth:`close`.
    """

    def __init__(self, netns: str | os.PathLike[str] | int, name: str = "netns-worker") -> None:
        self._fd = netns if isinstance(netns, int) else open_netns(netns)
        self._owns_fd = not isinstance(netns, int)
        self._queue: queue.SimpleQueue[
            tuple[Callable[[], object], concurrent.futures.Future[object]] | None
        ] = queue.SimpleQueue()
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name=name, daemon=True)
        self._thread.start()
        try:
            ready.result(timeout=5)
        except BaseException:
            self._close_fd()
            raise

    @property
    def netns_fd(self) -> int:
        return self._fd

    def _run(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            _setns(self._fd)
        except BaseException as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        while (item := self._queue.get()) is not None:
            fn, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

    def submit(self, fn: Callable[[], _T]) -> concurrent.futures.Future[_T]:
        fut: concurrent.futures.Future[_T] = concurrent.futures.Future()
        self._queue.put((fn, fut))  # type: ignore[arg-type]
        return fut

    def call(self, fn: Callable[[], _T], timeout: float = 5.0) -> _T:
        return self.submit(fn).result(timeout=timeout)

    async def run(self, fn: Callable[[], _T]) -> _T:
        return await asyncio.wrap_future(self.submit(fn))

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM) -> socket.socket:
        return self.call(lambda: socket.socket(family, type))

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=5)
        self._close_fd()

    def _close_fd(self) -> None:
        if self._owns_fd and self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
