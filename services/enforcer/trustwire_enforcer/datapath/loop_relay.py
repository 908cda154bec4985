"""Plain (``allow``) relays on the asyncio event loop: non-blocking ``splice`` driven by
``add_reader``/``add_writer``.

Why on the loop and not on a relay thread: on small VMs waking a parked thread costs ~0.2 ms,
and a thread relay pays several such hand-offs per connection (loop -> relay thread at setup,
relay thread -> loop for the report, on both enforcers), which dominated connection-setup
latency and capped new connections/s. On the loop, accept, decide, connect and the first bytes of
a connection all happen in the same thread that is already awake. ``splice`` keeps the payload
in the kernel, so each wake-up moves up to a pipe's worth (1 MiB) for a handful of Python lines:
the loop stays cheap per byte. TLS relays stay on threads (relay.py): OpenSSL's per-record work
is CPU that would otherwise stall every other connection on the loop.

Bulk flows leave the loop: once a relay has moved ``promote_after`` bytes (1 MiB: more than
request/response connections usually move) it is handed to a relay-pool thread
(:func:`drive_on_thread`), with its pipes and their pending bytes, and continues there. One
thread wake-up per bulk connection is noise, while a bulk flow on the loop would take a core's
worth of softirq and ``splice`` work away from every connection being set up, and could not use
a second core. The same :class:`_Flow` code runs in both places.

Semantics match relay.py's ``pump``: half-close forwarded (FIN after the last byte), a reset or
error on either side resets both, ``abort`` resets both. Both sockets must be non-blocking.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import select
import socket
from collections.abc import Callable

from trustwire_enforcer.datapath.connection import Outcome
from trustwire_enforcer.datapath.relay import reset_socket

__all__ = ["PROMOTE_AFTER", "Flows", "LoopRelay", "PipePool", "drive_on_thread"]

_F_SETPIPE_SZ = 1031
_PIPE_SIZE = 1 << 20
_COPY_BUFFER = 256 * 1024
# Operations per direction per wake-up before yielding to other connections on the loop. The
# registration stays armed (epoll is level-triggered), so an unfinished flow is simply called
# again on the next loop iteration.
_STEP_BUDGET = 8
# A read shorter than this most likely emptied the socket: wait for readiness instead of
# trying again at once (an EAGAIN splice per message is measurable at 1,000s of connections/s;
# epoll reports the fd in the same loop iteration if more has already arrived).
_SHORT_READ = 64 * 1024
_SPLICE = getattr(os, "splice", None)
# NONBLOCK covers the pipe end; the socket end is non-blocking by its own O_NONBLOCK.
_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)

PROMOTE_AFTER = 1 << 20

_READ, _WRITE = 1, 2


class PipePool:
    """Reusable 1 MiB pipes. Creating one costs three syscalls (``pipe2``, ``F_SETPIPE_SZ``)
    and closing two more, per direction per connection; a pipe that ended empty is as good as
    new, so it is kept. Pipes that may hold stray bytes (error, abort) are closed instead.
    Used from the loop thread only."""

    def __init__(self, keep: int = 256) -> None:
        self._keep = keep
        self._free: list[tuple[int, int]] = []
        self._closed = False

    def take(self) -> tuple[int, int]:
        if self._free:
            return self._free.pop()
        r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        # Not fatal: the default 64 KiB pipe works, with more wake-ups per MiB.
        with contextlib.suppress(OSError):
            import fcntl

            fcntl.fcntl(w, _F_SETPIPE_SZ, _PIPE_SIZE)
        return r, w

    def give(self, pipe: tuple[int, int], clean: bool) -> None:
        if clean and not self._closed and len(self._free) < self._keep:
            self._free.append(pipe)
        else:
            os.close(pipe[0])
            os.close(pipe[1])

    def close(self) -> None:
        """Close the idle pipes; pipes given back later (relays outliving the datapath's
        grace period) are closed on return."""
        self._closed = True
        while self._free:
            r, w = self._free.pop()
            os.close(r)
            os.close(w)


class _Flow:
    """One direction src -> dst. ``want`` is what it waits for: _READ on src, _WRITE on dst,
    or 0 (finished). ``armed`` is what is registered on the loop for it right now."""

    __slots__ = (
        "armed",
        "buf",
        "count",
        "dst",
        "dst_fd",
        "eof",
        "finished",
        "moved",
        "offset",
        "pending",
        "pipe",
        "src",
        "src_fd",
        "view",
        "want",
    )

    def __init__(
        self,
        src: socket.socket,
        dst: socket.socket,
        pipe: tuple[int, int] | None,
        count: Callable[[int], None],
    ) -> None:
        self.src, self.dst = src, dst
        self.src_fd, self.dst_fd = src.fileno(), dst.fileno()
        self.pipe = pipe
        self.count = count
        self.moved = 0
        self.pending = 0
        self.eof = False
        self.finished = False
        self.want = 0
        self.armed = 0
        self.buf: bytearray | None = None if pipe is not None else bytearray(_COPY_BUFFER)
        self.view = memoryview(self.buf) if self.buf is not None else None
        self.offset = 0

    def _to_copy_mode(self) -> tuple[int, int] | None:
        """splice refused these fds (EINVAL): copy through userspace from now on. Returns the
        pipe, which is empty (nothing was moved yet) so the caller can recycle it."""
        pipe, self.pipe = self.pipe, None
        self.buf = bytearray(_COPY_BUFFER)
        self.view = memoryview(self.buf)
        return pipe

    def _fill(self) -> int | None:
        """Read into the pipe/buffer. None: would block. 0: end of stream."""
        try:
            if self.pipe is not None and _SPLICE is not None:
                return int(_SPLICE(self.src_fd, self.pipe[1], _PIPE_SIZE, flags=_SPLICE_FLAGS))
            assert self.buf is not None
            self.offset = 0
            return self.src.recv_into(self.buf)
        except BlockingIOError:
            return None

    def _drain(self) -> int | None:
        """Write pending bytes. None: would block."""
        try:
            if self.pipe is not None and _SPLICE is not None:
                return int(_SPLICE(self.pipe[0], self.dst_fd, self.pending, flags=_SPLICE_FLAGS))
            assert self.view is not None
            n = self.dst.send(self.view[self.offset : self.offset + self.pending])
            self.offset += n
            return n
        except BlockingIOError:
            return None

    def run(self) -> None:
        """Progress without blocking; sets ``want``. Raises OSError on a socket error."""
        for _ in range(_STEP_BUDGET):
            short = False
            if self.pending == 0 and not self.eof:
                n = self._fill()
                if n is None:
                    self.want = _READ
                    return
                if n == 0:
                    self.eof = True
                else:
                    self.pending = n
                    short = n < _SHORT_READ
            if self.pending:
                m = self._drain()
                if m is None:
                    self.want = _WRITE
                    return
                self.pending -= m
                self.moved += m
                self.count(m)
                if short and self.pending == 0:
                    self.want = _READ
                    return
                continue
            # eof and everything delivered: forward the FIN, keep the other direction going.
            try:
                self.dst.shutdown(socket.SHUT_WR)
            except OSError as exc:
                if exc.errno != errno.ENOTCONN:
                    raise
            self.finished = True
            self.want = 0
            return
        self.want = _WRITE if self.pending else _READ  # budget used; still runnable


Flows = tuple[_Flow, _Flow]  # both directions of one relay, as handed from loop to thread


def _close_flows(
    flows: Flows,
    pu_side: socket.socket,
    peer_side: socket.socket,
    clean: bool,
    pipes: PipePool | None,
) -> None:
    """Release the pipes (back to ``pipes`` when empty and ``clean``, else closed) and close
    both sockets: a FIN when ``clean``, a reset otherwise."""
    for flow in flows:
        if flow.pipe is not None:
            if pipes is not None:
                pipes.give(flow.pipe, clean=clean and flow.pending == 0)
            else:
                os.close(flow.pipe[0])
                os.close(flow.pipe[1])
            flow.pipe = None
        if flow.view is not None:
            flow.view.release()
            flow.view = None
    for sock in (pu_side, peer_side):
        if clean:
            sock.close()
        else:
            reset_socket(sock)


def _run_flow(flow: _Flow, pipes: PipePool | None) -> None:
    """``flow.run`` with the copy fallback: if splice refuses these fds (EINVAL) before any
    byte went through it, the same bytes go through a buffer instead."""
    try:
        flow.run()
    except OSError as exc:
        if exc.errno != errno.EINVAL or flow.pipe is None or flow.pending:
            raise
        pipe = flow._to_copy_mode()
        if pipe is not None:
            if pipes is not None:
                pipes.give(pipe, clean=True)
            else:
                os.close(pipe[0])
                os.close(pipe[1])
        flow.run()


class LoopRelay:
    """Relays between two connected, non-blocking sockets on ``loop`` until both directions end
    (outcome CLOSED), either side fails (RESET, both sides reset) or :meth:`abort` (ABORTED,
    both sides reset). Closes both sockets in every case and then calls ``done(outcome,
    detail)`` once, on the loop. Construct and use on the loop thread only.

    ``promote``, when given, is offered the relay once it has moved ``promote_after`` bytes:
    if it returns True it has taken the relay over (see :meth:`detach`; it then owns the
    sockets, the pipes and the ``done`` duty) and this object does nothing more."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        pu_side: socket.socket,
        peer_side: socket.socket,
        pipes: PipePool,
        count_from_pu: Callable[[int], None],
        count_to_pu: Callable[[int], None],
        done: Callable[[Outcome, str], None],
        promote: Callable[[LoopRelay], bool] | None = None,
        promote_after: int = PROMOTE_AFTER,
    ) -> None:
        self._loop = loop
        self.pu_side, self.peer_side = pu_side, peer_side
        self._pipes = pipes
        self._done = done
        self._ended = False
        self._promote = promote
        self._promote_after = promote_after
        use_splice = _SPLICE is not None
        self.flows = (
            _Flow(pu_side, peer_side, pipes.take() if use_splice else None, count_from_pu),
            _Flow(peer_side, pu_side, pipes.take() if use_splice else None, count_to_pu),
        )

    def start(self, first: socket.socket) -> None:
        """``first``: the side that opened the connection. Its direction is stepped at once:
        by the time the onward connect completes it has usually sent its first bytes. The
        other direction almost never has data yet, so it only waits for readiness (a splice
        that would fail with EAGAIN is a syscall per connection for nothing); if it does have
        data (a server-first protocol), epoll reports it in the next iteration."""
        for flow in self.flows:
            if flow.src is first:
                self._step(flow)
                if self._ended:
                    return
            else:
                flow.want = _READ
                self._arm(flow)

    def abort(self, detail: str) -> None:
        self._finish(Outcome.ABORTED, detail)

    def detach(self) -> Flows:
        """Stop driving from the loop and hand the flows (sockets, pipes, pending bytes) to the
        caller."""
        self._ended = True
        for flow in self.flows:
            self._disarm(flow)
        return self.flows

    def _step(self, flow: _Flow) -> None:
        if self._ended:
            return
        try:
            _run_flow(flow, self._pipes)
        except OSError as exc:
            self._finish(Outcome.RESET, f"{type(exc).__name__}: {exc}")
            return
        one, other = self.flows
        if one.finished and other.finished:
            self._finish(Outcome.CLOSED, "")
            return
        if self._promote is not None and one.moved + other.moved >= self._promote_after:
            promote, self._promote = self._promote, None
            if promote(self):
                return
        self._arm(flow)

    def _arm(self, flow: _Flow) -> None:
        if flow.armed == flow.want:
            return
        self._disarm(flow)
        if flow.want == _READ:
            self._loop.add_reader(flow.src_fd, self._step, flow)
        elif flow.want == _WRITE:
            self._loop.add_writer(flow.dst_fd, self._step, flow)
        flow.armed = flow.want

    def _disarm(self, flow: _Flow) -> None:
        if flow.armed == _READ:
            self._loop.remove_reader(flow.src_fd)
        elif flow.armed == _WRITE:
            self._loop.remove_writer(flow.dst_fd)
        flow.armed = 0

    def _finish(self, outcome: Outcome, detail: str) -> None:
        if self._ended:
            return
        self._ended = True
        for flow in self.flows:
            self._disarm(flow)  # before close: the fd number may be reused at once
        clean = outcome is Outcome.CLOSED
        _close_flows(self.flows, self.pu_side, self.peer_side, clean, self._pipes)
        self._done(outcome, detail)


def drive_on_thread(
    flows: Flows,
    pu_side: socket.socket,
    peer_side: socket.socket,
    wake_fd: int,
) -> tuple[Outcome, str]:
    """Continue a detached relay on the calling (relay-pool) thread with ``poll`` until both
    directions end, one fails, or ``wake_fd`` (an eventfd) becomes readable (abort). Closes the
    sockets and the pipes in every case. splice releases the GIL, so relays on different
    threads use different cores."""
    poller = select.poll()
    poller.register(wake_fd, select.POLLIN)
    registered: dict[int, int] = {}
    outcome, detail = Outcome.CLOSED, ""
    try:
        while True:
            for flow in flows:
                if not flow.finished:
                    _run_flow(flow, None)
            if all(flow.finished for flow in flows):
                break
            wanted: dict[int, int] = {}
            for flow in flows:
                if flow.want == _READ:
                    wanted[flow.src_fd] = wanted.get(flow.src_fd, 0) | select.POLLIN
                elif flow.want == _WRITE:
                    wanted[flow.dst_fd] = wanted.get(flow.dst_fd, 0) | select.POLLOUT
            for fd in registered.keys() - wanted.keys():
                poller.unregister(fd)
            for fd, ev in wanted.items():
                if registered.get(fd) != ev:
                    poller.register(fd, ev)
            registered = wanted
            # Level-triggered: a flow that stopped on its budget is reported ready at once.
            if any(fd == wake_fd for fd, _ in poller.poll()):
                outcome = Outcome.ABORTED
                break
    except OSError as exc:
        outcome, detail = Outcome.RESET, f"{type(exc).__name__}: {exc}"
    _close_flows(flows, pu_side, peer_side, outcome is Outcome.CLOSED, None)
    return outcome, detail
