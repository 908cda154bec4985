"""Proxy-mode datapath: per-PU listeners inside the PU's namespace, the decision seam, relays.

For each network-namespace PU, :meth:`ProxyDatapath.add_pu` opens two listeners *inside the
PU's namespace* (outbound ``127.0.0.1:15001``, inbound ``0.0.0.0:15006``) and then installs the
``INTERCEPT`` ruleset there (see ``rules.py``). For every redirected connection:

outbound (the PU connects out)
    accept -> ``SO_ORIGINAL_DST`` -> create, mark (``SO_MARK``) and bind the upstream socket in
    the PU's namespace (its tuple is now known: ``InterceptedConnection.upstream``) ->
    ``decide(conn)`` (the daemon runs the handshake with ``upstream`` as the signed 5-tuple) ->
    reject: reset the application's socket | allow: connect, relay with ``splice`` |
    encrypt: connect, TLS 1.3 client handshake, check the peer enforcer's identity, relay.

inbound (a connection arrives for the PU)
    accept -> ``SO_ORIGINAL_DST`` -> ``decide(conn)`` (the daemon takes the pre-authorization
    for ``conn.five_tuple``; see ``authorization.py``) -> reject: reset | allow: connect a marked
    local socket to the original destination inside the namespace, relay | encrypt: TLS server
    handshake on the accepted socket, identity check, connect locally, relay.

The marked sockets bypass the PU's rules, so the upstream leaves with the PU's address and the
5-tuple the source signed is the one the destination's listener observes.

Accepting and deciding run on the asyncio loop. ``allow`` connections stay there: the
connect is non-blocking (:func:`_connect`) and the relay is a non-blocking ``splice`` pump
(``loop_relay.py``), so a plain connection costs no thread hand-off at all (each costs ~0.2 ms
on a small VM, and a thread relay needed several per connection); a plain relay moves to a
thread only once it carries bulk. ``encrypt`` connections are
connected, handshaken and relayed on a thread of a relay pool, one connection per thread for its
lifetime (see ``relay.py`` for why: OpenSSL's CPU work must not stall the loop). Threads are
reused, never started per connection: a thread start costs ~1.5 ms on a small VM. Each PU keeps
a small stock of marked sockets created in its namespace ahead of time, so no connection waits
for a namespace hop: a socket keeps its namespace, so the loop thread can bind, connect and
accept on it. Every intercepted connection ends in exactly one :class:`ConnectionReport`,
delivered on the loop.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import enum
import errno
import hashlib
import itertools
import os
import secrets
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from trustwire_enforcer.datapath.cgroups import CgroupMatch
from trustwire_enforcer.datapath.connection import (
    Action,
    ConnectionReport,
    Decider,
    Direction,
    InterceptedConnection,
    Outcome,
    Verdict,
    tcp_tuple,
)
from trustwire_enforcer.datapath.errors import DatapathError, PeerIdentityError
from trustwire_enforcer.datapath.loop_relay import Flows, LoopRelay, PipePool, drive_on_thread
from trustwire_enforcer.datapath.netns import NetnsWorker
from trustwire_enforcer.datapath.relay import Relay, RelayRegistry, pump, reset_socket
from trustwire_enforcer.datapath.rules import (
    DEFAULT_INBOUND_PORT,
    DEFAULT_MARK,
    DEFAULT_MARK_MASK,
    DEFAULT_OUTBOUND_PORT,
    DEFAULT_TABLE,
    PuRuleset,
    RulesetMode,
    apply_ruleset,
    remove_ruleset,
)
from trustwire_enforcer.datapath.tls import (
    DEFAULT_SESSION_LIFETIME,
    TlsChannel,
    TlsConfig,
    TlsSessions,
    TlsStats,
    verify_peer_identity,
)

__all__ = ["FailMode", "ProxyDatapath", "PuStatus", "original_destination"]

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h
_ACCEPT_BATCH = 64


class FailMode(enum.StrEnum):
    """What a PU's traffic does while its enforcer is not serving it. ``closed``: nothing passes
    (listeners gone -> REDIRECT hits a closed port -> reset; on orderly stop the ``CLOSED``
    ruleset is installed). ``open``: on orderly stop the rules are removed; after a crash a
    supervisor must call ``rules.remove_ruleset`` (until then the PU is effectively closed)."""

    CLOSED = "closed"
    OPEN = "open"


@dataclass(frozen=True, slots=True)
class PuStatus:
    pu_id: str
    netns: str
    fail_mode: FailMode
    outbound_port: int
    inbound_port: int
    live_relays: int


def original_destination(sock: socket.socket) -> tuple[str, int] | None:
    """The pre-REDIRECT destination kept by conntrack, or None when the socket was reached
    directly (no NAT: conntrack reports the listener's own address) or conntrack has no entry."""
    try:
        raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    except OSError:
        return None
    port, packed = struct.unpack_from("!2xH4s", raw)
    dest = (socket.inet_ntoa(packed), port)
    return None if dest == sock.getsockname() else dest


class _SocketStock:
    """Marked TCP sockets pre-created in one PU's namespace. ``take`` never blocks: it pops one
    (a deque pop is atomic, so the loop and relay threads may both take) and asks the PU's
    worker for a new batch when the stock runs low; an empty stock returns None and the caller
    makes one through the worker."""

    # Small refill batches: the worker holds the GIL while it builds socket objects, and the
    # loop, waiting for the GIL meanwhile, can stall for the whole burst (a waiter is only
    # guaranteed a turn after the 5 ms switch interval). Eight sockets is a ~0.1 ms burst; 64
    # was ~1 ms and showed up in p90/p99 setup latency (measured).
    LOW, BATCH, INITIAL = 32, 8, 64

    def __init__(self, worker: NetnsWorker, mark: int) -> None:
        self._worker = worker
        self._mark = mark
        self._stock: collections.deque[socket.socket] = collections.deque()
        self._lock = threading.Lock()
        self._refilling = False
        self._closed = False
        self._refill(self.INITIAL)

    def make(self) -> socket.socket:
        """Create one now through the worker; for an empty stock, from any other thread."""
        return self._worker.call(self.create_here)

    def create_here(self) -> socket.socket:
        """Only on the PU's worker thread (it is in the namespace). Non-blocking from birth:
        every user drives it non-blocking (the loop relay, and the TLS thread sets a timeout).
        TCP_NODELAY here rather than per connection on the loop: a relay forwards what it has
        at once, and Nagle would hold back a request's last small segment."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, self._mark)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _fill(self, count: int) -> None:
        try:
            fresh = [self.create_here() for _ in range(count)]
        finally:
            with self._lock:
                self._refilling = False
        with self._lock:
            if self._closed:
                for sock in fresh:
                    sock.close()
                return
            self._stock.extend(fresh)

    def _refill(self, count: int) -> None:
        with self._lock:
            if self._refilling or self._closed:
                return
            self._refilling = True
        self._worker.submit(lambda: self._fill(count))

    def take(self) -> socket.socket | None:
        try:
            sock: socket.socket | None = self._stock.popleft()
        except IndexError:
            sock = None
        if len(self._stock) < self.LOW:
            self._refill(self.BATCH)
        return sock

    def close(self) -> None:
        with self._lock:
            self._closed = True
            while self._stock:
                self._stock.popleft().close()


class _Pu:
    def __init__(
        self,
        pu_id: str,
        netns: str,
        worker: NetnsWorker,
        ruleset: PuRuleset,
        fail_mode: FailMode,
    ) -> None:
        self.pu_id = pu_id
        self.netns = netns
        self.worker = worker
        self.ruleset = ruleset
        self.fail_mode = fail_mode
        self.listeners: dict[Direction, socket.socket] = {}
        self.sockets = _SocketStock(worker, ruleset.mark)
        self.port_range = worker.call(_local_port_range)

    def close(self) -> None:
        self.sockets.close()
        self.worker.close()


class ProxyDatapath:
    """The enforcer's proxy-mode datapath for network-namespace PUs. Use from one event loop.

    ``decide`` is the seam for the handshake and policy: called once per intercepted connection
    (both directions) on the loop; raising or exceeding ``decide_timeout`` rejects (fail closed).
    ``on_report`` gets one :class:`ConnectionReport` per connection, on the loop.
    """

    def __init__(
        self,
        decide: Decider,
        *,
        tls: TlsConfig | None = None,
        on_report: Callable[[ConnectionReport], None] | None = None,
        mark: int = DEFAULT_MARK,
        mark_mask: int = DEFAULT_MARK_MASK,
        table: str = DEFAULT_TABLE,
        decide_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        handshake_timeout: float = 5.0,
        max_relays: int = 10_000,
        tls_session_lifetime: float = DEFAULT_SESSION_LIFETIME,
    ) -> None:
        self._decide = decide
        self._tls_session_lifetime = tls_session_lifetime
        self._tls = TlsSessions(tls, tls_session_lifetime) if tls is not None else None
        self._on_report = on_report
        self._mark = mark
        self._mark_mask = mark_mask
        self._table = table
        self._decide_timeout = decide_timeout
        self._connect_timeout = connect_timeout
        self._handshake_timeout = handshake_timeout
        self._max_relays = max_relays
        self._pus: dict[str, _Pu] = {}
        self._ids = itertools.count(1)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_relays, thread_name_prefix="relay"
        )
        self._pending: set[concurrent.futures.Future[None]] = set()
        self._on_loop: set[asyncio.Future[None]] = set()  # live loop relays (see close)
        self._pipes = PipePool()
        self._tasks: set[asyncio.Task[None]] = set()
        self.relays = RelayRegistry()
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ PUs

    async def add_pu(
        self,
        pu_id: str,
        netns: str | os.PathLike[str],
        *,
        fail_mode: FailMode = FailMode.CLOSED,
        outbound_port: int = DEFAULT_OUTBOUND_PORT,
        inbound_port: int = DEFAULT_INBOUND_PORT,
        cgroup: CgroupMatch | None = None,
    ) -> PuStatus:
        """Open the PU's listeners in ``netns`` (name under /run/netns or a path such as
        /proc/PID/ns/net), then install the intercept rules. Re-adding a known PU replaces it.
        Listeners come first so there is no moment where rules redirect to nothing (that moment
        would fail closed anyway).

        ``cgroup``: a process PU in a namespace it may share with other processes and PUs. Its
        rules match only that cgroup's sockets, live in a table of its own
        (:meth:`table_for`), and redirect to listener ports the kernel picks (the port
        arguments are ignored): fixed ports cannot be reserved in a shared namespace, and a
        connection's listener is how the datapath knows which PU it belongs to."""
        self._loop = asyncio.get_running_loop()
        if pu_id in self._pus:
            await self.remove_pu(pu_id, rules="keep")
        if cgroup is not None:
            outbound_port = inbound_port = 0
        worker = await asyncio.to_thread(NetnsWorker, netns, f"netns-{pu_id}")
        listeners: dict[Direction, socket.socket] = {}
        try:
            listeners[Direction.EGRESS] = await worker.run(
                lambda: _listener("127.0.0.1", outbound_port)
            )
            listeners[Direction.INGRESS] = await worker.run(
                lambda: _listener("0.0.0.0", inbound_port)
            )
            spec = PuRuleset(
                mode=RulesetMode.INTERCEPT,
                table=self.table_for(pu_id) if cgroup is not None else self._table,
                outbound_port=listeners[Direction.EGRESS].getsockname()[1],
                inbound_port=listeners[Direction.INGRESS].getsockname()[1],
                mark=self._mark,
                mark_mask=self._mark_mask,
                cgroup=cgroup,
            )
            pu = _Pu(pu_id, os.fspath(netns), worker, spec, fail_mode)
        except BaseException:
            for sock in listeners.values():
                sock.close()
            worker.close()
            raise
        pu.listeners = listeners
        try:
            await asyncio.to_thread(apply_ruleset, worker.netns_fd, spec)
        except BaseException:
            for sock in pu.listeners.values():
                sock.close()
            pu.close()
            raise
        for direction, sock in pu.listeners.items():
            self._loop.add_reader(sock.fileno(), self._on_acceptable, pu, direction, sock)
        self._pus[pu_id] = pu
        return self._status(pu)

    async def remove_pu(
        self, pu_id: str, *, rules: Literal["remove", "fail_mode", "keep"] = "remove"
    ) -> None:
        """Stop serving the PU: close its listeners, reset its live relays, then ``rules``:
        ``remove`` (the PU is gone or leaves enforcement), ``fail_mode`` (the PU stays but this
        enforcer stops: ``closed`` installs the CLOSED table, ``open`` removes the table), or
        ``keep`` (leave the intercept rules: new connections are refused until listeners
        return; what a crash leaves behind)."""
        pu = self._pus.pop(pu_id, None)
        if pu is None:
            return
        loop = asyncio.get_running_loop()
        for sock in pu.listeners.values():
            loop.remove_reader(sock.fileno())
            sock.close()
        self.relays.close_where(lambda r: r.connection.pu_id == pu_id, "pu_removed")
        try:
            table = pu.ruleset.table
            if rules == "remove" or (rules == "fail_mode" and pu.fail_mode is FailMode.OPEN):
                await asyncio.to_thread(remove_ruleset, pu.worker.netns_fd, table)
            elif rules == "fail_mode":
                closed = PuRuleset(
                    mode=RulesetMode.CLOSED,
                    table=table,
                    mark=self._mark,
                    mark_mask=self._mark_mask,
                    cgroup=pu.ruleset.cgroup,
                )
                await asyncio.to_thread(apply_ruleset, pu.worker.netns_fd, closed)
        finally:
            pu.close()

    async def close(
        self,
        *,
        rules: Literal["remove", "fail_mode", "keep"] = "fail_mode",
        grace: float = 5.0,
    ) -> None:
        """Stop everything (daemon shutdown). By default each PU is left in its fail mode.
        Waits (bounded) for relay threads to finish so no socket outlives the datapath."""
        for pu_id in list(self._pus):
            await self.remove_pu(pu_id, rules=rules)
        self.relays.close_where(lambda r: True, "enforcer_stopping")
        for task in list(self._tasks):
            task.cancel()
        waits: list[asyncio.Future[None]] = [asyncio.wrap_future(f) for f in self._pending]
        waits.extend(self._on_loop)
        if waits:
            await asyncio.wait(waits, timeout=grace)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pipes.close()

    async def prewarm(self, threads: int = 32) -> None:
        """Start relay threads ahead of traffic (each start costs ~1 ms or more). The pool only
        starts a thread when none is idle, so this holds ``threads`` jobs open at once."""
        barrier = threading.Barrier(threads + 1)
        futures = [self._pool.submit(barrier.wait, 5.0) for _ in range(threads)]
        await asyncio.to_thread(barrier.wait, 5.0)
        await asyncio.wait([asyncio.wrap_future(f) for f in futures], timeout=5.0)

    def status(self) -> list[PuStatus]:
        return [self._status(pu) for pu in self._pus.values()]

    def table_for(self, pu_id: str) -> str:
        """The nft table of a process PU (one per PU: several share a namespace). A digest,
        not the id itself: table names must be identifiers, and ids may hold '.' and '-'."""
        return f"{self._table}_{hashlib.sha256(pu_id.encode()).hexdigest()[:16]}"

    def _status(self, pu: _Pu) -> PuStatus:
        live = sum(1 for r in self.relays.snapshot() if r.connection.pu_id == pu.pu_id)
        return PuStatus(
            pu.pu_id,
            pu.netns,
            pu.fail_mode,
            pu.ruleset.outbound_port,
            pu.ruleset.inbound_port,
            live,
        )

    def set_tls(self, tls: TlsConfig | None) -> None:
        """New certificates or bundle (rotation) apply to new connections; live ones keep their
        session. Resumption state goes with the old configuration: no cached session is offered
        and no ticket issued before is accepted, so every peer's next connection is a full
        handshake against the new certificates and bundle."""
        self._tls = TlsSessions(tls, self._tls_session_lifetime) if tls is not None else None

    def forget_tls_sessions(self, peer_identity: str | None = None) -> None:
        """Stop resuming TLS sessions (ADR 0012). ``peer_identity``: with that enforcer only
        (its next connection from here is a full handshake). None: with everyone, both ways
        (cached sessions dropped and the ticket key retired). Call it with None when the trust
        bundle's revocations change; otherwise resumed authentication is at most
        ``tls_session_lifetime`` seconds old."""
        if self._tls is not None:
            self._tls.forget(peer_identity)

    def tls_stats(self) -> TlsStats | None:
        """Full and resumed TLS handshakes under the current configuration (for metrics)."""
        return self._tls.stats() if self._tls is not None else None

    def close_where(self, predicate: Callable[[Relay], bool], reason: str) -> int:
        """Reset established connections a new policy revision denies. See RelayRegistry."""
        return self.relays.close_where(predicate, reason)

    # ------------------------------------------------------------ accepting

    def _on_acceptable(self, pu: _Pu, direction: Direction, listener: socket.socket) -> None:
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. EMFILE: the kernel keeps the connection queued; retry next wake
            task = asyncio.get_running_loop().create_task(self._handle(pu, direction, sock, peer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _handle(
        self, pu: _Pu, direction: Direction, sock: socket.socket, peer: tuple[str, int]
    ) -> None:
        started = time.monotonic()
        cid = next(self._ids)
        upstream_sock: socket.socket | None = None
        orig = original_destination(sock)
        if orig is None:
            conn = InterceptedConnection(
                cid, pu.pu_id, direction, tcp_tuple(peer, sock.getsockname())
            )
            reset_socket(sock)
            self._report(conn, None, Outcome.NOT_REDIRECTED, "", started)
            return
        conn = InterceptedConnection(cid, pu.pu_id, direction, tcp_tuple(peer, orig))
        try:
            if direction is Direction.EGRESS:
                # Bind first: the source port is part of the tuple the handshake signs. Bound to
                # the application's source address: the PU's address towards the destination.
                fresh = pu.sockets.take()
                if fresh is None:
                    fresh = await pu.worker.run(pu.sockets.create_here)
                upstream_sock = fresh
                _bind_source(fresh, peer[0], pu.port_range)
                conn = InterceptedConnection(
                    cid,
                    pu.pu_id,
                    direction,
                    conn.five_tuple,
                    tcp_tuple(fresh.getsockname(), orig),
                )
        except OSError as exc:
            reset_socket(sock)
            self._report(conn, None, Outcome.UPSTREAM_FAILED, str(exc), started)
            return
        try:
            # asyncio.timeout, not wait_for: wait_for (3.11) wraps the coroutine in a new task,
            # one more loop iteration per connection for nothing.
            async with asyncio.timeout(self._decide_timeout):
                verdict = await self._decide(conn)
        except asyncio.CancelledError:
            # The datapath is closing: the application gets a reset now, not at GC time.
            _discard(upstream_sock)
            reset_socket(sock)
            self._report(conn, None, Outcome.ABORTED, "enforcer_stopping", started)
            raise
        except Exception as exc:  # the seam failed: fail closed, and say why
            _discard(upstream_sock)
            reset_socket(sock)
            self._report(conn, None, Outcome.DECIDE_FAILED, f"{type(exc).__name__}: {exc}", started)
            return
        if verdict.action is Action.REJECT:
            _discard(upstream_sock)
            reset_socket(sock)
            self._report(conn, verdict, Outcome.REJECTED, verdict.reason, started)
            return
        tls = self._tls
        refusal = ""
        if verdict.action is Action.ENCRYPT and tls is None:
            refusal = "encrypt requested but no TLS configuration"
        elif len(self.relays) >= self._max_relays:
            refusal = "relay limit reached"
        if refusal:
            _discard(upstream_sock)
            reset_socket(sock)
            self._report(conn, verdict, Outcome.RESET, refusal, started)
            return
        if verdict.action is Action.ALLOW:
            # Registered inside _relay_on_loop, once its abort hook is in place.
            relay = Relay(conn, verdict, started=started, wake_fd=-1)
            await self._relay_on_loop(pu, relay, sock, upstream_sock)
            return
        relay = Relay(conn, verdict, started=started)
        self.relays.add(relay)
        future = self._pool.submit(self._run_relay, pu, relay, sock, upstream_sock, tls)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    # -------------------------------------------------------------- relaying

    async def _relay_on_loop(
        self,
        pu: _Pu,
        relay: Relay,
        accepted: socket.socket,
        upstream: socket.socket | None,
    ) -> None:
        """``allow``: connect and relay on the loop (no thread). Egress connects the bound
        upstream socket; ingress connects a marked local socket to the original destination."""
        loop = asyncio.get_running_loop()
        conn = relay.connection
        host, port = str(conn.five_tuple.destination_ip), conn.five_tuple.destination_port
        task = asyncio.current_task()
        pumping: list[LoopRelay] = []

        def abort_on_loop() -> None:
            if pumping:
                pumping[0].abort(relay.abort_reason)
            elif task is not None and not task.done():
                task.cancel()  # still connecting

        def request_abort() -> None:
            # close_where may run on any thread: hop to the loop, never touch the pump from there.
            loop.call_soon_threadsafe(abort_on_loop)

        relay.on_abort = request_abort
        self.relays.add(relay)  # only now: close_where may reach it from here on
        opened = [accepted] + ([upstream] if upstream is not None else [])
        try:
            if conn.direction is Direction.EGRESS:
                assert upstream is not None
                pu_side, peer_side = accepted, upstream
                connecting = upstream
            else:
                # Local delivery: a marked socket of the PU's namespace (its rules skip it).
                local = pu.sockets.take()
                if local is None:
                    local = await pu.worker.run(pu.sockets.create_here)
                opened.append(local)
                pu_side, peer_side = local, accepted
                connecting = local
            accepted.setblocking(False)  # stock sockets are non-blocking already
            # TCP_NODELAY is already set: stock sockets get it at creation, accepted sockets
            # inherit it from the listener.
            await _connect(loop, connecting, (host, port), self._connect_timeout)
        except (OSError, DatapathError) as exc:  # TimeoutError is an OSError
            for sock in opened:
                reset_socket(sock)
            detail = str(exc) or f"{type(exc).__name__} after {self._connect_timeout}s"
            self._end_on_loop(relay, Outcome.UPSTREAM_FAILED, detail)
            return
        except asyncio.CancelledError:
            # Aborted while connecting (close_where, PU removal, shutdown): reset, report.
            for sock in opened:
                reset_socket(sock)
            self._end_on_loop(relay, Outcome.ABORTED, "")
            return
        done: asyncio.Future[None] = loop.create_future()
        self._on_loop.add(done)

        def finished(outcome: Outcome, detail: str) -> None:
            self._on_loop.discard(done)
            done.set_result(None)
            self._end_on_loop(relay, outcome, detail)

        def promote(pump: LoopRelay) -> bool:
            # A bulk flow: continue on a relay thread (see loop_relay.py for why).
            if not relay.use_wake_fd():
                return False  # an abort is on its way to the loop relay
            flows = pump.detach()
            self._on_loop.discard(done)
            done.set_result(None)
            try:
                future = self._pool.submit(
                    self._drive_promoted, relay, flows, pump.pu_side, pump.peer_side
                )
            except RuntimeError:
                # The pool is shut down (the datapath is closing): abort here. The abort is
                # already signalled on wake_fd, so this returns after one non-blocking pass.
                relay.abort("enforcer_stopping")
                self._drive_promoted(relay, flows, pump.pu_side, pump.peer_side)
                return True
            self._pending.add(future)
            future.add_done_callback(self._pending.discard)
            return True

        pump = LoopRelay(
            loop,
            pu_side,
            peer_side,
            self._pipes,
            relay.add_from_pu,
            relay.add_to_pu,
            finished,
            promote,
        )
        pumping.append(pump)
        pump.start(first=accepted)

    def _drive_promoted(
        self,
        relay: Relay,
        flows: Flows,
        pu_side: socket.socket,
        peer_side: socket.socket,
    ) -> None:
        """Runs on a relay-pool thread: the rest of a promoted plain relay, then its report."""
        try:
            outcome, detail = drive_on_thread(flows, pu_side, peer_side, relay.wake_fd)
            if outcome is Outcome.ABORTED:
                detail = relay.abort_reason
        finally:
            self.relays.discard(relay)
            relay.release()
        self._deliver(self._final_report(relay, outcome, detail))

    def _end_on_loop(self, relay: Relay, outcome: Outcome, detail: str) -> None:
        self.relays.discard(relay)
        relay.release()
        if outcome is Outcome.ABORTED:
            detail = relay.abort_reason or detail or "cancelled"
        report = self._final_report(relay, outcome, detail)
        if self._on_report is not None:
            # call_soon, not a direct call: this may run inside close_where or remove_pu, and
            # the daemon's callback should not be re-entered from its own call.
            asyncio.get_running_loop().call_soon(self._on_report, report)

    def _run_relay(
        self,
        pu: _Pu,
        relay: Relay,
        accepted: socket.socket,
        upstream: socket.socket | None,
        tls: TlsSessions | None,
    ) -> None:
        """``encrypt``, on a relay-pool thread: connect, TLS handshake and peer identity check,
        pump, report. Inbound, the local connection is made only after the peer enforcer
        proved its identity, so a refused peer never reaches the application."""
        conn, verdict = relay.connection, relay.verdict
        host, port = str(conn.five_tuple.destination_ip), conn.five_tuple.destination_port
        assert verdict.action is Action.ENCRYPT
        assert tls is not None
        outcome, detail = Outcome.CLOSED, ""
        opened: list[socket.socket] = [accepted] + ([upstream] if upstream else [])
        try:
            if conn.direction is Direction.EGRESS:
                assert upstream is not None
                upstream.settimeout(self._connect_timeout)
                upstream.connect((host, port))
                peer_side = _tls_handshake(tls, upstream, False, verdict, self._handshake_timeout)
                pu_side = accepted
            else:
                peer_side = _tls_handshake(tls, accepted, True, verdict, self._handshake_timeout)
                # Local delivery: a marked socket of the PU's namespace (its rules skip it).
                taken = pu.sockets.take()
                pu_side = taken if taken is not None else pu.sockets.make()
                opened.append(pu_side)
                pu_side.settimeout(self._connect_timeout)
                pu_side.connect((host, port))
            result = pump(pu_side, peer_side, relay.wake_fd, relay.add_from_pu, relay.add_to_pu)
            outcome, detail = result.outcome, result.detail
            if outcome is Outcome.ABORTED:
                detail = relay.abort_reason
        except (PeerIdentityError, ssl.SSLError) as exc:
            outcome, detail = Outcome.PEER_REJECTED, str(exc)
            for sock in opened:
                reset_socket(sock)
        except (OSError, DatapathError) as exc:
            outcome, detail = Outcome.UPSTREAM_FAILED, str(exc)
            for sock in opened:
                reset_socket(sock)
        finally:
            self.relays.discard(relay)
            relay.release()
        self._deliver(self._final_report(relay, outcome, detail))

    # -------------------------------------------------------------- reports

    @staticmethod
    def _final_report(relay: Relay, outcome: Outcome, detail: str) -> ConnectionReport:
        return ConnectionReport(
            relay.connection,
            relay.verdict,
            outcome,
            detail,
            relay.bytes_from_pu,
            relay.bytes_to_pu,
            relay.started,
            time.monotonic(),
        )

    def _report(
        self,
        conn: InterceptedConnection,
        verdict: Verdict | None,
        outcome: Outcome,
        detail: str,
        started: float,
    ) -> None:
        self._deliver(
            ConnectionReport(conn, verdict, outcome, detail, 0, 0, started, time.monotonic())
        )

    def _deliver(self, report: ConnectionReport) -> None:
        if self._on_report is None or self._loop is None:
            return
        # RuntimeError: the loop is closed; the daemon is gone and nobody is left to report to.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._on_report, report)


def _listener(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Inherited by every accepted socket (see _SocketStock.create_here for why).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(4096)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _local_port_range() -> tuple[int, int]:
    """The namespace's ephemeral range (run on the PU's worker: /proc/sys/net is per netns)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            low, high = (int(x) for x in fh.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


_BIND_ATTEMPTS = 16


def _bind_source(sock: socket.socket, ip: str, port_range: tuple[int, int]) -> None:
    """Bind to a random ephemeral port. Why not ``bind((ip, 0))``: the kernel then scans the
    range for a port free of TIME_WAIT entries, which took milliseconds per connection in a PU
    with ~10k recent connections (measured). A random pick succeeds in ~1/(free fraction) tries;
    after a few misses the kernel's scan is the fallback."""
    low, high = port_range
    for _ in range(_BIND_ATTEMPTS):
        try:
            sock.bind((ip, secrets.randbelow(high - low + 1) + low))
            return
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    sock.bind((ip, 0))


async def _connect(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, address: tuple[str, int], limit: float
) -> None:
    """Non-blocking connect. To a peer across a veth or in the same namespace the kernel usually
    completes the whole TCP handshake inside ``connect()`` (the packets are processed in the
    caller's softirq), so check for that before paying for a future, a writer registration and
    a timer (``loop.sock_connect``): most connects here finish without a loop iteration."""
    err = sock.connect_ex(address)
    if err not in (0, errno.EINPROGRESS):
        raise OSError(err, os.strerror(err))
    if err == errno.EINPROGRESS:
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
        try:
            sock.getpeername()  # ENOTCONN while the handshake is still in flight
            return
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:
                raise
        writable: asyncio.Future[None] = loop.create_future()

        def on_writable() -> None:
            if not writable.done():
                writable.set_result(None)

        fd = sock.fileno()
        loop.add_writer(fd, on_writable)
        try:
            async with asyncio.timeout(limit):
                await writable
        finally:
            loop.remove_writer(fd)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))


def _tls_handshake(
    tls: TlsSessions,
    sock: socket.socket,
    server_side: bool,
    verdict: Verdict,
    timeout: float,
) -> TlsChannel:
    """Handshake (resuming a session with this peer when there is one, see tls.py), then the
    peer identity check, which holds for resumed sessions too."""
    peer = verdict.peer_identity
    if server_side:
        channel = TlsChannel(tls.server(), sock, True)
    else:
        channel = TlsChannel(tls.client, sock, False, tls.client_session(peer))
    channel.handshake(timeout)
    authenticated_at = tls.now()
    resumed = channel.tls.session_reused
    tls.count(resumed)
    verify_peer_identity(channel.tls, peer)
    if not server_side and not resumed and peer is not None:
        # Only sessions of full handshakes are kept: a resumption must never extend the time
        # since the peer's certificate was last verified.
        channel.on_session = lambda session: tls.remember(peer, session, authenticated_at)
    return channel


def _discard(sock: socket.socket | None) -> None:
    if sock is not None:
        sock.close()
