"""Moving bytes of an allowed or encrypted connection, and the registry of live relays.

One thread per relayed connection runs :func:`pump`, which serves both directions with
non-blocking sockets and ``poll``. Why threads and not the event loop: ``splice``, ``send``,
``recv`` and OpenSSL's record processing all release the GIL, so relays of different connections
(and the two enforcers of a benchmark in one process) run in parallel on several cores, and the
event loop stays free for accepting and deciding. Why one thread for both directions: an
``ssl.SSLSocket`` must not be read and written from two threads at once (OpenSSL objects are not
thread-safe), and a single poll loop cannot deadlock on two blocked writes.

* plain to plain: ``os.splice`` through a pipe per direction (socket -> pipe -> socket); the
  payload never enters userspace. Falls back to ``recv_into``/``send`` when ``splice`` is missing
  or the kernel refuses it for these fds.
* with TLS on one side: a reusable buffer per direction; OpenSSL encrypts/decrypts in place.

Half-close: when one side sends FIN, the relay sends FIN to the other side after delivering the
remaining bytes (``shutdown(SHUT_WR)``) and keeps relaying the other direction. For TLS this is a
TCP FIN without ``close_notify`` (see tls.py for why), which the receiving relay treats as end of
stream. A reset or error on either side resets the other side (``SO_LINGER`` 0), so applications
see an abort as an abort, never as a clean end.
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

__all__ = ["PumpResult", "Relay", "RelayRegistry", "pump", "reset_socket"]

_F_SETPIPE_SZ = 1031
_PIPE_SIZE = 1 << 20
_COPY_BUFFER = 256 * 1024
_STEP_BUDGET = 32  # operations per direction before yielding to poll (fairness)
_LINGER_ZERO = struct.pack("ii", 1, 0)
_SPLICE = getattr(os, "splice", None)
_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
_IN = select.POLLIN
_OUT = select.POLLOUT


def reset_socket(sock: socket.socket) -> None:
    """Close so that the peer gets a TCP RST (``SO_LINGER`` 0), not a FIN: the application
    sees ``ECONNRESET``/``ECONNREFUSED`` immediately and cannot mistake it for a clean end."""
    with contextlib.suppress(OSError):
        socket.socket.setsockopt(sock, socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    socket.socket.close(sock)  # never an SSL close: no close_notify before a reset


class _Flow:
    """One direction (src -> dst). ``wait`` says what it needs before it can progress."""

    def __init__(self, src: socket.socket, dst: socket.socket, count: Callable[[int], None]):
        self.src, self.dst, self.count = src, dst, count
        self.src_fd, self.dst_fd = src.fileno(), dst.fileno()
        self.pending = 0
        self.eof = False
        self.finished = False
        self.wait: tuple[int, int] | None = None
        self.pipe: tuple[int, int] | None = None
        plain = not isinstance(src, ssl.SSLSocket) and not isinstance(dst, ssl.SSLSocket)
        if plain and _SPLICE is not None:
            r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            try:
                import fcntl

                fcntl.fcntl(w, _F_SETPIPE_SZ, _PIPE_SIZE)
            except OSError:
                pass  # the default 64 KiB pipe still works, with more syscalls
            self.pipe = (r, w)
        self.buf = bytearray(0 if self.pipe else _COPY_BUFFER)
        self.view = memoryview(self.buf)
        self.offset = 0

    def close(self) -> None:
        self.view.release()
        if self.pipe:
            os.close(self.pipe[0])
            os.close(self.pipe[1])
            self.pipe = None

    def _fallback_to_copy(self) -> None:
        if self.pipe:
            os.close(self.pipe[0])
            os.close(self.pipe[1])
            self.pipe = None
        self.view.release()
        self.buf = bytearray(_COPY_BUFFER)
        self.view = memoryview(self.buf)

    def _fill(self) -> int | None:
        """Read into the pipe/buffer. None: would block (``wait`` set). 0: end of stream."""
        try:
            if self.pipe is not None and _SPLICE is not None:
                try:
                    return int(_SPLICE(self.src_fd, self.pipe[1], _PIPE_SIZE, flags=_SPLICE_FLAGS))
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
                    self._fallback_to_copy()
            self.offset = 0
            return self.src.recv_into(self.buf)
        except (BlockingIOError, ssl.SSLWantReadError):
            self.wait = (self.src_fd, _IN)
        except ssl.SSLWantWriteError:
            self.wait = (self.src_fd, _OUT)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return 0
        return None

    def _drain(self) -> bool:
        """Write pending bytes. False: would block (``wait`` set)."""
        try:
            if self.pipe is not None and _SPLICE is not None:
                n = int(_SPLICE(self.pipe[0], self.dst_fd, self.pending, flags=_SPLICE_FLAGS))
            else:
                n = self.dst.send(self.view[self.offset : self.offset + self.pending])
                self.offset += n
        except BlockingIOError:
            self.wait = (self.dst_fd, _OUT)
            return False
        except ssl.SSLWantWriteError:
            self.wait = (self.dst_fd, _OUT)
            return False
        except ssl.SSLWantReadError:
            self.wait = (self.dst_fd, _IN)
            return False
        self.pending -= n
        self.count(n)
        return True

    def step(self) -> None:
        """Progress without blocking. Leaves ``wait`` None if it used its budget and is still
        runnable (the caller polls with timeout 0 then)."""
        self.wait = None
        for _ in range(_STEP_BUDGET):
            if self.pending == 0 and not self.eof:
                n = self._fill()
                if n is None:
                    return
                if n == 0:
                    self.eof = True
                else:
                    self.pending = n
            if self.pending:
                if not self._drain():
                    return
                continue
            if self.eof and not self.finished:
                try:
                    # Base-class shutdown: SSLSocket.shutdown would also drop the TLS state we
                    # still need to read the other direction.
                    socket.socket.shutdown(self.dst, socket.SHUT_WR)
                except OSError as exc:
                    if exc.errno != errno.ENOTCONN:
                        raise
                self.finished = True
            return


@dataclass(frozen=True, slots=True)
class PumpResult:
    outcome: Outcome
    detail: str


def pump(
    pu_side: socket.socket,
    peer_side: socket.socket,
    wake_fd: int,
    count_from_pu: Callable[[int], None],
    count_to_pu: Callable[[int], None],
) -> PumpResult:
    """Relay until both directions end, either side fails, or ``wake_fd`` (an eventfd) becomes
    readable (abort). Closes both sockets in every case: normally after FIN both ways, with a
    reset on error or abort."""
    for sock in (pu_side, peer_side):
        sock.setblocking(False)
    flows = (_Flow(pu_side, peer_side, count_from_pu), _Flow(peer_side, pu_side, count_to_pu))
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
            for fd, ev in poller.poll(0 if runnable else None):
                if fd == wake_fd:
                    result = PumpResult(Outcome.ABORTED, "")
                    break
                if ev & (select.POLLERR | select.POLLNVAL) and not ev & (_IN | _OUT):
                    # Let the next read/write surface the socket error as an exception.
                    pass
    except (OSError, ssl.SSLError) as exc:
        result = PumpResult(Outcome.RESET, f"{type(exc).__name__}: {exc}")
    finally:
        for flow in flows:
            flow.close()
        if result is not None and result.outcome is Outcome.CLOSED:
            socket.socket.close(pu_side)
            socket.socket.close(peer_side)
        else:
            reset_socket(pu_side)
            reset_socket(peer_side)
    return result


_relay_ids = itertools.count(1)


@dataclass(eq=False)
class Relay:
    """A live relayed connection. Counters are written by its pump thread only; reading them
    from another thread gives a recent value (ints are replaced atomically under the GIL)."""

    connection: InterceptedConnection
    verdict: Verdict
    started: float = field(default_factory=time.monotonic)
    bytes_from_pu: int = 0
    bytes_to_pu: int = 0
    abort_reason: str = ""
    id: int = field(default_factory=lambda: next(_relay_ids))
    wake_fd: int = field(default_factory=lambda: os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK))
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
            os.eventfd_write(self.wake_fd, 1)

    def release(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
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
