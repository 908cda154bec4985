"""Relays of ``encrypt`` connections on threads, and the registry of live relays.

One thread per encrypted connection runs :func:`pump`, which serves both directions with
non-blocking sockets and ``poll``. Why a thread and not the event loop: TLS costs CPU per byte
(OpenSSL releases the GIL while it works), which on the loop would stall every other connection
and on threads runs in parallel on several cores. Why one thread for both directions: an OpenSSL
object must not be used from two threads at once, and a single poll loop cannot deadlock on two
blocked writes. Plain (``allow``) relays run on the event loop instead (loop_relay.py).

The TLS side is a :class:`~trustwire_enforcer.datapath.tls.TlsChannel` (memory BIOs, many
records per syscall); the plain side is the socket, read and written 256 KiB at a time.

Half-close: when one side sends FIN, the relay sends FIN to the other side after delivering the
remaining bytes and keeps relaying the other direction. For TLS this is a TCP FIN without
``close_notify`` (see tls.py for why), which the receiving relay treats as end of stream. A
reset or error on either side resets the other side (``SO_LINGER`` 0), so applications see an
abort as an abort, never as a clean end.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from trustwire_enforcer.datapath.connection import InterceptedConnection, Outcome, Verdict
from trustwire_enforcer.datapath.tls import TlsChannel

__all__ = ["PumpResult", "Relay", "RelayRegistry", "pump", "reset_socket"]

_COPY_BUFFER = 256 * 1024
_STEP_BUDGET = 32  # operations per direction before yielding to poll (fairness)
_LINGER_ZERO = struct.pack("ii", 1, 0)
_IN = select.POLLIN
_OUT = select.POLLOUT


def reset_socket(sock: socket.socket) -> None:
    """Close so that the peer gets a TCP RST (``SO_LINGER`` 0), not a FIN: the application
    sees ``ECONNRESET``/``ECONNREFUSED`` immediately and cannot mistake it for a clean end."""
    with contextlib.suppress(OSError):
        socket.socket.setsockopt(sock, socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    socket.socket.close(sock)  # never an SSL close: no close_notify before a reset


class _PlainEnd:
    """A plain socket with the same non-blocking interface as ``TlsChannel``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def read_into(self, view: memoryview) -> int | None:
        try:
            return self.sock.recv_into(view)
        except BlockingIOError:
            return None

    def write(self, view: memoryview) -> int | None:
        try:
            return self.sock.send(view)
        except BlockingIOError:
            return None

    def finish_write(self) -> bool:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:
                raise
        return True


_End = _PlainEnd | TlsChannel


class _Flow:
    """One direction (src -> dst) through a 256 KiB buffer. ``wait`` says what it needs
    before it can progress."""

    def __init__(self, src: _End, dst: _End, count: Callable[[int], None]) -> None:
        self.src, self.dst, self.count = src, dst, count
        self.src_fd, self.dst_fd = src.fileno(), dst.fileno()
        self.buf = bytearray(_COPY_BUFFER)
        self.view = memoryview(self.buf)
        self.offset = 0
        self.pending = 0
        self.eof = False
        self.finished = False
        self.wait: tuple[int, int] | None = None

    def close(self) -> None:
        self.view.release()

    def step(self) -> None:
        """Progress without blocking. Leaves ``wait`` None if it used its budget and is still
        runnable (the caller polls with timeout 0 then)."""
        self.wait = None
        for _ in range(_STEP_BUDGET):
            if self.pending == 0 and not self.eof:
                n = self.src.read_into(self.view)
                if n is None:
                    self.wait = (self.src_fd, _IN)
                    return
                if n == 0:
                    self.eof = True
                else:
                    self.pending, self.offset = n, 0
            if self.pending:
                m = self.dst.write(self.view[self.offset : self.offset + self.pending])
                if m is None:
                    self.wait = (self.dst_fd, _OUT)
                    return
                self.offset += m
                self.pending -= m
                self.count(m)
                continue
            if self.eof and not self.finished:
                if not self.dst.finish_write():
                    self.wait = (self.dst_fd, _OUT)
                    return
                self.finished = True
            return


@dataclass(frozen=True, slots=True)
class PumpResult:
    outcome: Outcome
    detail: str


def pump(
    pu_side: socket.socket | TlsChannel,
    peer_side: socket.socket | TlsChannel,
    wake_fd: int,
    count_from_pu: Callable[[int], None],
    count_to_pu: Callable[[int], None],
) -> PumpResult:
    """Relay until both directions end, either side fails, or ``wake_fd`` (an eventfd) becomes
    readable (abort). Closes both sockets in every case: normally after FIN both ways, with a
    reset on error or abort."""
    ends: list[_End] = []
    for side in (pu_side, peer_side):
        if isinstance(side, TlsChannel):
            ends.append(side)
        else:
            side.setblocking(False)
            ends.append(_PlainEnd(side))
    flows = (_Flow(ends[0], ends[1], count_from_pu), _Flow(ends[1], ends[0], count_to_pu))
    poller = select.poll()
    poller.register(wake_fd, _IN)
    registered: dict[int, int] = {}
    result: PumpResult | None = None
    try:
        while result is None:
            runnable = False
            for flow in flows:
                if not flow.finished:
                    flow.step()
                    runnable = runnable or (flow.wait is None and not flow.finished)
            if all(flow.finished for flow in flows):
                result = PumpResult(Outcome.CLOSED, "")
                break
            wanted: dict[int, int] = {}
            for flow in flows:
                if flow.wait is not None and not flow.finished:
                    fd, ev = flow.wait
                    wanted[fd] = wanted.get(fd, 0) | ev
            for fd in registered.keys() - wanted.keys():
                poller.unregister(fd)
            for fd, ev in wanted.items():
                if registered.get(fd) != ev:
                    poller.register(fd, ev)
            registered = wanted
            for fd, _ in poller.poll(0 if runnable else None):
                # Errors (POLLERR/POLLHUP) surface as exceptions on the next read/write.
                if fd == wake_fd:
                    result = PumpResult(Outcome.ABORTED, "")
                    break
    except (OSError, ssl.SSLError) as exc:
        result = PumpResult(Outcome.RESET, f"{type(exc).__name__}: {exc}")
    finally:
        for flow in flows:
            flow.close()
        socks = [end.sock for end in ends]
        if result is not None and result.outcome is Outcome.CLOSED:
            for sock in socks:
                sock.close()
        else:
            for sock in socks:
                reset_socket(sock)
    return result


_relay_ids = itertools.count(1)


@dataclass(eq=False)
class Relay:
    """A live relayed connection. Counters are written by its pump (thread or loop) only;
    reading them from another thread gives a recent value (ints are replaced atomically under
    the GIL).

    How :meth:`abort` reaches the pump: a thread pump polls ``wake_fd`` (an eventfd); a loop
    pump (plain relays, loop_relay.py) sets ``on_abort`` instead and is created with
    ``wake_fd=-1``, which saves two syscalls per connection."""

    connection: InterceptedConnection
    verdict: Verdict
    started: float = field(default_factory=time.monotonic)
    bytes_from_pu: int = 0
    bytes_to_pu: int = 0
    abort_reason: str = ""
    id: int = field(default_factory=lambda: next(_relay_ids))
    wake_fd: int = field(default_factory=lambda: os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK))
    on_abort: Callable[[], None] | None = None
    _closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_from_pu(self, n: int) -> None:
        self.bytes_from_pu += n

    def add_to_pu(self, n: int) -> None:
        self.bytes_to_pu += n

    def abort(self, reason: str) -> None:
        """Thread-safe: wake the pump, which resets both sides and ends."""
        with self._lock:
            if self._closed:
                return
            self.abort_reason = self.abort_reason or reason
            if self.on_abort is not None:
                self.on_abort()  # must not call back into this relay synchronously (lock held)
            elif self.wake_fd >= 0:
                os.eventfd_write(self.wake_fd, 1)

    def use_wake_fd(self) -> bool:
        """Switch abort delivery from ``on_abort`` to a new ``wake_fd`` (a loop relay moving to
        a thread). False if the relay is already aborting or released: it stays where it is and
        the pending abort reaches it there."""
        with self._lock:
            if self._closed or self.abort_reason:
                return False
            if self.wake_fd < 0:
                self.wake_fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            self.on_abort = None
            return True

    def release(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                if self.wake_fd >= 0:
                    os.close(self.wake_fd)


class RelayRegistry:
    """Every live relay of a datapath. ``close_where`` is how a new policy revision closes the
    established connections it now denies (the daemon re-decides each relay's connection under
    the new revision in the predicate)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, Relay] = {}

    def add(self, relay: Relay) -> None:
        with self._lock:
            self._live[relay.id] = relay

    def discard(self, relay: Relay) -> None:
        with self._lock:
            self._live.pop(relay.id, None)

    def __len__(self) -> int:
        return len(self._live)

    def __iter__(self) -> Iterator[Relay]:
        return iter(self.snapshot())

    def snapshot(self) -> list[Relay]:
        with self._lock:
            return list(self._live.values())

    def close_where(self, predicate: Callable[[Relay], bool], reason: str) -> int:
        """Abort (reset both sides of) every live relay the predicate selects; return how many.
        Returns at once; each relay's report (outcome ``aborted``, ``detail`` = reason) follows
        when its thread has closed the sockets."""
        chosen = [relay for relay in self.snapshot() if predicate(relay)]
        for relay in chosen:
            relay.abort(reason)
        return len(chosen)
