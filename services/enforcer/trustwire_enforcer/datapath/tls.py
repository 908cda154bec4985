"""TLS 1.3 between two enforcers for ``encrypt`` connections.

Both sides present their enforcer certificate (ECDSA P-256, URI SAN
``spiffe://<td>/enforcer/<node>``) and require the other's, chained to the trust bundle. Host
names play no part (``check_hostname`` off); instead, after the handshake, the peer's URI SAN
must equal the identity the verdict expects: the enforcer that answered the ``Authorize``
handshake, so the data connection cannot be served by a different (even if valid) enforcer.

Half-close is signalled by a TCP FIN, not ``close_notify``: Python's only way to send
``close_notify`` (``SSL_shutdown`` twice) discards application data the peer is still sending,
which would break half-closed request/response streams. The consequence: an on-path attacker who
can forge a FIN can end an encrypted stream early at a record boundary, as it could end a plain
TCP stream (it can neither read nor alter bytes). Same guarantee as TCP itself, recorded in
docs/datapath.md.

Session resumption (docs/decisions/0012-encrypt-session-reuse.md): a full mutual handshake costs
~3.5 ms of CPU here, so connections between an enforcer pair resume a TLS 1.3 session
(``psk_dhe_ke``: a fresh ECDHE per connection, no certificate signatures) established by a full
handshake at most ``lifetime`` seconds earlier. :class:`TlsSessions` holds that state for one
:class:`TlsConfig` and is replaced with it (rotation, bundle change):

* client: one session per expected peer identity, taken from a *full* handshake only (never
  from a resumed one, so a chain of resumptions cannot stretch the bound), offered only to a
  connection expecting that identity and only while younger than ``lifetime``;
* server: tickets are sealed with a key that lives in one ``SSLContext`` (OpenSSL makes one per
  context and never exports it); the server context is replaced every ``lifetime`` seconds and
  on :meth:`TlsSessions.forget`, so no ticket is accepted after that, whatever the client does;
* both: the peer identity check runs on every connection, resumed ones included (the session
  carries the certificate verified by its full handshake), and a resumed session whose peer
  certificate has expired is refused.

Relays drive OpenSSL through :class:`TlsChannel` (``ssl.SSLObject`` over memory BIOs) rather
than ``ssl.SSLSocket``: an ``SSLSocket`` returns one record (<= 16 KiB) per read, and OpenSSL
without read-ahead (Python has no knob for it) reads each record's header and body with
separate ``read`` calls. With memory BIOs one ``recv`` of 256 KiB feeds ~16 records, which are
decrypted into one buffer and leave in one ``send``; writes are encrypted 256 KiB at a time and
leave in one ``send``. Encrypted bulk went from ~200-225 to 350-410 MB/s at the same machine
load (docs/datapath.md).
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from trustwire_enforcer.datapath.errors import PeerIdentityError

__all__ = [
    "DEFAULT_SESSION_LIFETIME",
    "TlsChannel",
    "TlsConfig",
    "TlsSessions",
    "TlsStats",
    "peer_uri_sans",
    "verify_peer_identity",
]

_RAW_CHUNK = 256 * 1024  # bytes of TLS records taken from the socket per recv
_WRITE_CHUNK = 256 * 1024  # application bytes encrypted per write call
# How long a full handshake's authentication may be reused (ADR 0012): a full handshake per
# enforcer pair per minute is negligible, and a minute bounds how stale a resumed peer
# authentication can be when the daemon does not call TlsSessions.forget itself.
DEFAULT_SESSION_LIFETIME = 60.0
_OP_ALLOW_NO_DHE_KEX = 1 << 10  # SSL_OP_ALLOW_NO_DHE_KEX; Python 3.11 has no name for it


def _harden(ctx: ssl.SSLContext) -> ssl.SSLContext:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    # Half-close is a TCP FIN without close_notify (relay.py explains why); without this
    # option OpenSSL 3 treats that FIN as a fatal error and the other direction dies with it.
    ctx.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
    # Resumption must keep forward secrecy: psk_dhe_ke only, never psk_ke (off by default in
    # OpenSSL; cleared here so that no configuration can turn it on underneath us).
    ctx.options &= ~_OP_ALLOW_NO_DHE_KEX
    return ctx


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """The two contexts an enforcer needs: ``client`` for connections it originates (source
    side), ``server`` for those it accepts (destination side). Build a new one on certificate
    rotation and hand it to :meth:`ProxyDatapath.set_tls`; live connections keep theirs.

    ``new_server`` builds another server context from the same credentials: a new context has a
    new (random, never exported) ticket key, which is how :class:`TlsSessions` retires every
    ticket issued before. Without it, resumption is off."""

    client: ssl.SSLContext
    server: ssl.SSLContext
    new_server: Callable[[], ssl.SSLContext] | None = None

    @classmethod
    def from_files(cls, cert_chain: Path, key: Path, bundle: Path) -> TlsConfig:
        # Read once: a later server context (ticket key rotation) must use these same
        # credentials even if the files are replaced meanwhile.
        return cls.from_pem(cert_chain.read_bytes(), key.read_bytes(), bundle.read_bytes())

    @classmethod
    def from_pem(cls, cert_chain_pem: bytes, key_pem: bytes, bundle_pem: bytes) -> TlsConfig:
        """``ssl`` loads a key only from a file, so the PEMs pass through a private (0700)
        temporary directory that is removed before returning."""

        def contexts(*protocols: int) -> list[ssl.SSLContext]:
            with tempfile.TemporaryDirectory(prefix="tw-tls-") as tmp:
                paths = []
                for name, data in (("chain.pem", cert_chain_pem), ("key.pem", key_pem)):
                    path = Path(tmp) / name
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(data)
                    paths.append(path)
                bundle = Path(tmp) / "bundle.pem"
                bundle.write_bytes(bundle_pem)
                made = []
                for protocol in protocols:
                    ctx = _harden(ssl.SSLContext(protocol))
                    ctx.load_cert_chain(paths[0], paths[1])
                    ctx.load_verify_locations(cafile=bundle)
                    made.append(ctx)
                return made

        def new_server() -> ssl.SSLContext:
            (server,) = contexts(ssl.PROTOCOL_TLS_SERVER)
            return server

        client, server = contexts(ssl.PROTOCOL_TLS_CLIENT, ssl.PROTOCOL_TLS_SERVER)
        return cls(client=client, server=server, new_server=new_server)


@dataclass(frozen=True, slots=True)
class TlsStats:
    """Handshakes since this configuration was installed (``ProxyDatapath.tls_stats``)."""

    full: int
    resumed: int
    cached_peers: int


class TlsSessions:
    """TLS 1.3 resumption state for one :class:`TlsConfig` (see the module docstring and ADR
    0012). Thread-safe: relay threads call it during their handshakes.

    ``lifetime`` <= 0, or a config without ``new_server``, turns resumption off: the server
    issues no tickets and every connection is a full handshake."""

    def __init__(
        self,
        config: TlsConfig,
        lifetime: float = DEFAULT_SESSION_LIFETIME,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.lifetime = lifetime if config.new_server is not None else 0.0
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, tuple[float, ssl.SSLSession]] = {}
        self._full = 0
        self._resumed = 0
        self._server = self._prepare(config.server)
        self._server_since = clock()

    @property
    def client(self) -> ssl.SSLContext:
        return self.config.client

    def now(self) -> float:
        """This state's clock (``time.monotonic`` unless a test injects one)."""
        return self._clock()

    def _prepare(self, server: ssl.SSLContext) -> ssl.SSLContext:
        # One ticket: clients reuse the session of a full handshake and ignore later tickets.
        server.num_tickets = 1 if self.lifetime > 0 else 0
        return server

    def server(self) -> ssl.SSLContext:
        """The context for an accepted connection: the current ticket key's. Replaced once it
        is ``lifetime`` old, so a ticket is accepted for at most ``lifetime`` seconds after the
        key that sealed it came into use, however it was obtained (full or resumed
        handshake)."""
        if self.lifetime <= 0:
            return self._server
        with self._lock:
            if self._clock() - self._server_since >= self.lifetime:
                self._rotate_locked()
            return self._server

    def _rotate_locked(self) -> None:
        assert self.config.new_server is not None
        # Built under the lock: until it exists no connection may use the expired key.
        # Once per lifetime (a few ms), on a relay thread.
        self._server = self._prepare(self.config.new_server())
        self._server_since = self._clock()

    def client_session(self, peer: str | None) -> ssl.SSLSession | None:
        """The session to offer to ``peer`` (the identity the verdict expects), if one from a
        full handshake with that identity is younger than ``lifetime``."""
        if self.lifetime <= 0 or peer is None:
            return None
        with self._lock:
            entry = self._sessions.get(peer)
            if entry is None:
                return None
            if self._clock() - entry[0] >= self.lifetime:
                del self._sessions[peer]
                return None
            return entry[1]

    def remember(self, peer: str, session: ssl.SSLSession, authenticated_at: float) -> None:
        """Keep the session of a *full* handshake with ``peer`` (see :class:`TlsChannel`'s
        ``on_session``); ``authenticated_at`` is when its certificates were verified."""
        if self.lifetime <= 0:
            return
        with self._lock:
            current = self._sessions.get(peer)
            if current is None or current[0] < authenticated_at:
                self._sessions[peer] = (authenticated_at, session)

    def count(self, resumed: bool) -> None:
        with self._lock:
            if resumed:
                self._resumed += 1
            else:
                self._full += 1

    def forget(self, peer: str | None = None) -> None:
        """Stop resuming. ``peer``: drop the session cached for that enforcer (its next
        connection from here is a full handshake). None: drop every cached session and retire
        the ticket key, so no ticket this enforcer issued is accepted any more (every peer's
        next connection here is a full handshake too)."""
        with self._lock:
            if peer is not None:
                self._sessions.pop(peer, None)
                return
            self._sessions.clear()
            if self.lifetime > 0:
                self._rotate_locked()

    def stats(self) -> TlsStats:
        with self._lock:
            return TlsStats(self._full, self._resumed, len(self._sessions))


def peer_uri_sans(tls: ssl.SSLSocket | ssl.SSLObject) -> list[str]:
    cert = tls.getpeercert()
    if not cert:
        return []
    sans = cast("tuple[tuple[str, str], ...]", cert.get("subjectAltName", ()))
    return [value for kind, value in sans if kind == "URI"]


def verify_peer_identity(tls: ssl.SSLSocket | ssl.SSLObject, expected: str | None) -> str:
    """Return the peer's first URI SAN; raise unless it is ``expected`` (when given). The chain
    was verified against the bundle by the handshake (CERT_REQUIRED) that established the
    session; a resumed session carries that certificate, so the same check applies, plus one
    that it has not expired since (its full handshake may be up to a lifetime old)."""
    cert = tls.getpeercert()
    sans = peer_uri_sans(tls)
    if expected is not None and expected not in sans:
        raise PeerIdentityError(
            f"peer enforcer presented {sans or 'no URI SAN'}, expected {expected}",
            metadata={"expected": expected, "presented": ",".join(sans)},
        )
    if tls.session_reused:
        not_after = cast("str | None", cert.get("notAfter") if cert else None)
        if not_after is None or ssl.cert_time_to_seconds(not_after) <= time.time():
            raise PeerIdentityError(
                f"resumed session with an expired peer certificate ({not_after})",
                metadata={"expected": expected or "", "presented": ",".join(sans)},
            )
    return sans[0] if sans else ""


class TlsChannel:
    """TLS over a connected TCP socket with OpenSSL's I/O in memory BIOs, for a relay thread.

    :meth:`handshake` blocks (socket timeout); afterwards the socket is non-blocking and
    :meth:`read_into`, :meth:`write` and :meth:`finish_write` never block: ``None`` means
    "wait for the socket" (readable for reads; writable for writes). One thread only: an
    ``SSLObject`` is not thread-safe. Half-close is a TCP FIN without ``close_notify`` (see
    the module docstring)."""

    def __init__(
        self,
        ctx: ssl.SSLContext,
        sock: socket.socket,
        server_side: bool,
        session: ssl.SSLSession | None = None,
    ) -> None:
        self.sock = sock
        self._in = ssl.MemoryBIO()
        self._out_bio = ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self._in, self._out_bio, server_side=server_side, session=session)
        # Called once with the session when its ticket arrives (client side, full handshakes
        # only): a TLS 1.3 server sends the ticket after the handshake, with its first data.
        self.on_session: Callable[[ssl.SSLSession], None] | None = None
        self._raw = bytearray(_RAW_CHUNK)
        self._raw_view = memoryview(self._raw)
        self._out = b""  # encrypted bytes not yet accepted by the socket
        self._out_offset = 0
        self._raw_eof = False  # the peer's FIN was fed to OpenSSL
        self._read_closed = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def handshake(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._send_all_blocking()
                n = self.sock.recv_into(self._raw)
                if n == 0:
                    raise ConnectionResetError(
                        errno.ECONNRESET, "peer closed during the TLS handshake"
                    ) from None
                self._in.write(self._raw_view[:n])
        self._send_all_blocking()  # our last flight (the client's Finished)
        self.sock.setblocking(False)

    def _send_all_blocking(self) -> None:
        data = self._out_bio.read()
        if data:
            self.sock.sendall(data)

    def _queue_output(self) -> None:
        if self._out_bio.pending:
            pending = self._out[self._out_offset :]
            self._out, self._out_offset = pending + self._out_bio.read(), 0

    def flush(self) -> bool:
        """Send queued records; False if the socket would block with some still queued."""
        while self._out_offset < len(self._out):
            try:
                self._out_offset += self.sock.send(memoryview(self._out)[self._out_offset :])
            except BlockingIOError:
                return False
        self._out, self._out_offset = b"", 0
        return True

    def _feed(self) -> bool:
        """Move what the socket has into OpenSSL. False: nothing there (would block)."""
        try:
            n = self.sock.recv_into(self._raw)
        except BlockingIOError:
            return False
        if n == 0:
            self._in.write_eof()
            self._raw_eof = True
        else:
            self._in.write(self._raw_view[:n])
        return True

    def read_into(self, view: memoryview) -> int | None:
        """Decrypt as much as is available into ``view`` (many records per call). Returns the
        byte count, 0 at end of stream, None if nothing is available yet."""
        if self._read_closed:
            return 0
        total = 0
        while total < len(view):
            try:
                # With a buffer, read returns the count (typeshed only knows the bytes form).
                n = cast("int", self.tls.read(len(view) - total, view[total:]))
            except ssl.SSLWantReadError:
                if self._raw_eof or not self._feed():
                    break
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                self._read_closed = True
                break
            if n == 0:
                self._read_closed = True
                break
            total += n
        if self.on_session is not None:
            self._take_session()
        # Reading can produce records to send (post-handshake messages); keep their order.
        self._queue_output()
        self.flush()
        if total:
            return total
        if self._read_closed or self._raw_eof:
            self._read_closed = True
            return 0
        return None

    def _take_session(self) -> None:
        session = self.tls.session
        if session is not None and session.has_ticket and self.on_session is not None:
            on_session, self.on_session = self.on_session, None
            on_session(session)

    def write(self, view: memoryview) -> int | None:
        """Encrypt up to 256 KiB of ``view``; returns how many bytes were taken, or None if
        earlier records are still waiting for the socket (bounds the memory per relay)."""
        if not self.flush():
            return None
        n = min(len(view), _WRITE_CHUNK)
        self.tls.write(view[:n])  # into the memory BIO: always complete
        self._queue_output()
        self.flush()
        return n

    def finish_write(self) -> bool:
        """Half-close after the queued records: a TCP FIN (no close_notify, see above)."""
        if not self.flush():
            return False
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:
                raise
        return True
