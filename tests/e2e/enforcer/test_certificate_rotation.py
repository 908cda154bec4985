"""An enforcer's channel server presents its renewed certificate without a restart.

Enforcer certificates are short-lived and renewed at half life; peers dial the enforcer
channel for every new connection's ``Authorize``. A server that kept presenting the
certificate it started with would be refused by every peer once that certificate expired.
Here the identity service issues 60 s certificates and enforcer a enrols while the service's
clock is held back, so its first certificate expires within seconds of the start and is
renewed at once; the test waits until that first certificate has expired, then checks that the
channel presents the current one and that a connection needing it (b -> a) still works.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from opentelemetry.sdk.trace import TracerProvider

from tests.e2e.enforcer.harness import (
    PORT,
    ControlPlane,
    Host,
    converge,
    enforcer_settings,
    exchange,
    knows,
    start_control_plane,
    stop_all,
    stop_control_plane,
)
from tests.e2e.enforcer.test_enforcer import SHOP
from tests.integration.identity.identity_testkit import MovableClock
from tests.support.etcd import EtcdServer
from tests.support.netns import EchoServer, Topology
from tests.support.waiting import eventually
from trustwire_enforcer.daemon import Enforcer
from trustwire_enforcer.local_api import LocalApiClient

pytestmark = [pytest.mark.e2e, pytest.mark.etcd]

HELD_BACK = timedelta(seconds=50)  # 60 s certificates then expire ~10 s after enrolment


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def short_lived_plane(
    tmp_path: Path, etcd: EtcdServer, etcd_prefix: bytes, clock: MovableClock
) -> AsyncIterator[ControlPlane]:
    control = await start_control_plane(
        tmp_path, etcd.endpoint, etcd_prefix.decode(), clock=clock, certificate_ttl_seconds=60
    )
    try:
        yield control
    finally:
        await stop_control_plane(control)


def presented(address: str, plane: ControlPlane) -> x509.Certificate:
    """The certificate the enforcer channel presents to a new TLS connection (a client with
    the admin certificate: TLS admits any certificate of the trust domain; rpcs would not)."""
    tls = plane.admin_tls()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cadata=tls.ca_bundle.decode())
    directory = plane.tmp / "probe"
    directory.mkdir(exist_ok=True)
    assert tls.certificate_chain is not None
    assert tls.private_key is not None
    (directory / "c.pem").write_bytes(tls.certificate_chain)
    (directory / "k.pem").write_bytes(tls.private_key)
    context.load_cert_chain(directory / "c.pem", directory / "k.pem")
    context.set_alpn_protocols(["h2"])
    host, _, port = address.rpartition(":")
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw) as conn,
    ):
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


async def test_the_enforcer_channel_presents_its_renewed_certificate(
    short_lived_plane: ControlPlane, clock: MovableClock, topo: Topology, tmp_path: Path
) -> None:
    plane = short_lived_plane
    hosts: list[Host] = []

    async def start(key: str) -> Host:
        settings = await enforcer_settings(plane, f"node-{key}", tmp_path / f"node-{key}")
        enforcer = Enforcer(settings, tracer_provider=TracerProvider())
        await enforcer.start()
        host = Host(key, enforcer, LocalApiClient(settings.local_socket))
        hosts.append(host)
        return host

    server = None
    try:
        clock.advance(-HELD_BACK)
        a = await start("a")
        first = a.enforcer.trust.credential.node.certificate
        clock.advance(HELD_BACK)
        b = await start("b")
        a1, b1 = topo.pu("a1"), topo.pu("b1")
        web = await a.add_pu(a1.name, labels={"app": "web"})
        db = await b.add_pu(b1.name, labels={"app": "db"})
        await plane.apply(SHOP)
        await converge([a], knows(db))
        await converge([b], knows(web))
        assert first.not_valid_after_utc < datetime.now(UTC) + timedelta(seconds=15)

        shown = first

        async def renewed_after_expiry() -> bool:
            nonlocal shown
            now = datetime.now(UTC)
            shown = await asyncio.to_thread(presented, a.enforcer.address, plane)
            return now > first.not_valid_after_utc and shown.serial_number != first.serial_number

        await eventually(
            renewed_after_expiry,
            "the first certificate to expire and the channel to present a later one",
            timeout=30,
            interval=0.2,
        )
        current = a.enforcer.trust.credential.node.certificate
        assert shown.not_valid_after_utc > datetime.now(UTC)
        assert shown.serial_number == current.serial_number

        # b dials a's channel to authorize db -> web: it works with the renewed certificate.
        server = EchoServer(a1.name, a1.ip, PORT)
        assert await asyncio.to_thread(exchange, b1.name, (a1.ip, PORT), b"renewed") == (b"renewed")
    finally:
        if server is not None:
            server.close()
        await stop_all(hosts)
