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

Session tickets are disabled: every data connection is a full handshake keyed by the current
certificates, so a revoked or rotated certificate stops working for new connections at once.

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
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from trustwire_enforcer.datapath.errors import PeerIdentityError

__all__ = ["TlsChannel", "TlsConfig", "peer_uri_sans", "verify_peer_identity"]

_RAW_CHUNK = 256 * 1024  # bytes of TLS records taken from the socket per recv
_WRITE_CHUNK = 256 * 1024  # application bytes encrypted per write call


def _harden(ctx: ssl.SSLContext) -> ssl.SSLContext:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    # Half-close is a TCP FIN without close_notify (relay.py explains why); without this
    # option OpenSSL 3 treats that FIN as a fatal error and the other direction dies with it.
    ctx.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
    return ctx


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """The two contexts an enforcer needs: ``client`` for connections it originates (source
    side), ``server`` for those it accepts (destination side). Build a new one on certificate
    rotation and hand it to :meth:`ProxyDatapath.set_tls`; live connections keep theirs."""

    client: ssl.SSLContext
    server: ssl.SSLContext

    @classmethod
    def from_files(cls, cert_chain: Path, key: Path, bundle: Path) -> TlsConfig:
        client = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
        server = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
        server.num_tickets = 0
        for ctx in (client, server):
            ctx.load_cert_chain(cert_chain, key)
            ctx.load_verify_locations(cafile=bundle)
        return cls(client=client, server=server)

    @classmethod
    def from_pem(cls, cert_chain_pem: bytes, key_pem: bytes, bundle_pem: bytes) -> TlsConfig:
        """``ssl`` loads a key only from a file, so the PEMs pass through a private (0700)
        temporary directory that is removed before returning."""
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
            return cls.from_files(paths[0], paths[1], bundle)


def peer_uri_sans(tls: ssl.SSLSocket | ssl.SSLObject) -> list[str]:
    cert = tls.getpeercert()
    if not cert:
        return []
    sans = cast("tuple[tuple[str, str], ...]", cert.get("subjectAltName", ()))
    return [value for kind, value in sans if kind == "URI"]


def verify_peer_identity(tls: ssl.SSLSocket | ssl.SSLObject, expected: str | None) -> str:
    """Return the peer's first URI SAN; raise unless it is ``expected`` (when given). The chain
    was already verified against the bundle by the handshake (CERT_REQUIRED)."""
    sans = peer_uri_sans(tls)
    if expected is not None and expected not in sans:
        raise PeerIdentityError(
            f"peer enforcer presented {sans or 'no URI SAN'}, expected {expected}",
            metadata={"expected": expected, "presented": ",".join(sans)},
        )
    return sans[0] if sans else ""


class TlsChannel:
    """TLS over a connected TCP socket with OpenSSL's I/O in memory BIOs, for a relay thread.

    :meth:`handshake` blocks (socket timeout); afterwards the socket is non-blocking and
    :meth:`read_into`, :meth:`write` and :meth:`finish_write` never block: ``None`` means
    "wait for the socket" (readable for reads; writable for writes). One thread only: an
    ``SSLObject`` is not thread-safe. Half-close is a TCP FIN without ``close_notify`` (see
    the module docstring)."""

    def __init__(self, ctx: ssl.SSLContext, sock: socket.socket, server_side: bool) -> None:
        self.sock = sock
        self._in = ssl.MemoryBIO()
        self._out_bio = ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self._in, self._out_bio, server_side=server_side)
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
        # Reading can produce records to send (post-handshake messages); keep their order.
        self._queue_output()
        self.flush()
        if total:
            return total
        if self._read_closed or self._raw_eof:
            self._read_closed = True
            return 0
        return None

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
