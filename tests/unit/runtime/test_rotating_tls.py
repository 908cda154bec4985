"""A server whose certificate files are rewritten presents the new certificate to new
connections, without a restart; a half-written set keeps the previous material."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from pathlib import Path

from cryptography import x509

from tests.unit.runtime.runtime_testkit import (
    TRUST_DOMAIN,
    CertifiedKey,
    ThrowawayCA,
    echo_service,
    method,
)
from trustwire.runtime import RotatingServerTLS, build_server, create_channel

SERVER_URI = f"spiffe://{TRUST_DOMAIN}/service/echo"
ADMIN = f"spiffe://{TRUST_DOMAIN}/admin/alice"


def write(directory: Path, leaf: CertifiedKey, ca: ThrowawayCA) -> tuple[Path, Path, Path]:
    paths = (directory / "server.pem", directory / "server.key", directory / "ca.pem")
    for path, data in zip(paths, (leaf.certificate, leaf.private_key, ca.pem), strict=True):
        path.write_bytes(data)
    return paths


def presented_serial(address: str, ca: ThrowawayCA, client: CertifiedKey, tmp: Path) -> int:
    """The serial of the certificate the server presents to a new TLS connection."""
    (tmp / "client.pem").write_bytes(client.certificate)
    (tmp / "client.key").write_bytes(client.private_key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=ca.pem.decode())
    context.load_cert_chain(tmp / "client.pem", tmp / "client.key")
    context.set_alpn_protocols(["h2"])
    host, _, port = address.rpartition(":")
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def serial_of(leaf: CertifiedKey) -> int:
    return x509.load_pem_x509_certificate(leaf.certificate).serial_number


async def test_rewritten_files_are_served_to_new_connections(tmp_path: Path) -> None:
    ca = ThrowawayCA.create()
    first = ca.issue([SERVER_URI], server=True)
    paths = write(tmp_path, first, ca)
    client = ca.issue([ADMIN])
    server = build_server([echo_service()], tls=RotatingServerTLS.from_files(*paths))
    async with server as running:
        probe = tmp_path / "probe"
        probe.mkdir()
        assert await asyncio.to_thread(
            presented_serial, running.address, ca, client, probe
        ) == serial_of(first)

        second = ca.issue([SERVER_URI], server=True)
        write(tmp_path, second, ca)
        # Same size files could share an mtime tick on a coarse clock: make the change visible.
        stamp = paths[0].stat().st_mtime_ns + 1_000_000
        for path in paths:
            os.utime(path, ns=(stamp, stamp))
        assert await asyncio.to_thread(
            presented_serial, running.address, ca, client, probe
        ) == serial_of(second)

        # A set caught mid-rewrite keeps the material that worked: an empty key, then a new
        # chain next to the old key.
        paths[1].write_bytes(b"")
        assert await asyncio.to_thread(
            presented_serial, running.address, ca, client, probe
        ) == serial_of(second)
        paths[1].write_bytes(second.private_key)
        paths[0].write_bytes(ca.issue([SERVER_URI], server=True).certificate)
        assert await asyncio.to_thread(
            presented_serial, running.address, ca, client, probe
        ) == serial_of(second)

        # And gRPC calls keep working across the rotation.
        async with create_channel(running.address, ca.client_tls(ADMIN)) as channel:
            reply = await channel.unary_unary(method("Echo"), None, None)(b"ping", timeout=5)
        assert reply == b"ping"
