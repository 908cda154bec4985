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
"""

from __future__ import annotations

import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from trustwire_enforcer.datapath.errors import PeerIdentityError

__all__ = ["TlsConfig", "peer_uri_sans", "verify_peer_identity"]


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


def peer_uri_sans(tls: ssl.SSLSocket) -> list[str]:
    cert = tls.getpeercert()
    if not cert:
        return []
    sans = cast("tuple[tuple[str, str], ...]", cert.get("subjectAltName", ()))
    return [value for kind, value in sans if kind == "URI"]


def verify_peer_identity(tls: ssl.SSLSocket, expected: str | None) -> str:
    """Return the peer's first URI SAN; raise unless it is ``expected`` (when given). The chain
    was already verified against the bundle by the handshake (CERT_REQUIRED)."""
    sans = peer_uri_sans(tls)
    if expected is not None and expected not in sans:
        raise PeerIdentityError(
            f"peer enforcer presented {sans or 'no URI SAN'}, expected {expected}",
            metadata={"expected": expected, "presented": ",".join(sans)},
        )
    return sans[0] if sans else ""
