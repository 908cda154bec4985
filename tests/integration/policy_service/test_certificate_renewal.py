"""A replica renews its own certificate with a real identity service and serves the renewed one
to new connections, past the original certificate's expiry.

The identity service refuses certificate lifetimes under 60 s and backdates ``notBefore`` by
30 s, so a certificate that expires within seconds is made by enrolling while the identity
service's clock is held back: it expires a few real seconds from now and is past half its life
already, so the replica renews it at once (as a replica restarted late in its certificate's
life does). Renewals get a full lifetime (the clock is put back first).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from tests.integration.identity.identity_testkit import (
    TRUST_DOMAIN,
    MovableClock,
    PrefixedStore,
    create_token,
    settings_for,
)
from tests.support.etcd import EtcdServer
from tests.support.waiting import eventually
from trustwire.api.identity.v1 import enrollment_pb2
from trustwire.api.policy.v1 import policy_service_pb2 as pb
from trustwire.api.policy.v1 import policy_service_pb2_grpc as service_grpc
from trustwire.errors import FailedPrecondition
from trustwire.runtime import ClientTLS, create_channel
from trustwire.store.etcd import EtcdStore
from trustwire_cli.deployment.control_plane import SERVER_NAME, ServiceCredential, enroll_service
from trustwire_identity.admin import ClientConfig
from trustwire_identity.server import IdentityServer
from trustwire_policy.server import PolicyReplica
from trustwire_policy.settings import IdentityEndpoint, PolicySettings, TlsSettings

pytestmark = pytest.mark.etcd

TTL_S = 60  # the identity service's minimum certificate lifetime
EXPIRES_IN_S = 4  # the enrolled certificate's real remaining life: enough to start and renew
WAIT_S = 10.0  # bound of every wait


@dataclass
class Cluster:
    identity: IdentityServer
    clock: MovableClock
    admin: ClientConfig
    settings: PolicySettings  # of a replica without TLS yet
    store: EtcdStore  # the replicas'
    tmp: Path

    async def enrol(self, name: str, *, expires_in: float | None = None) -> ServiceCredential:
        """Enrol a replica the way `trustwire up` does; with ``expires_in``, its certificate
        expires that many real seconds from now."""
        held_back = timedelta(seconds=TTL_S - expires_in) if expires_in is not None else None
        if held_back is not None:
            self.clock.advance(-held_back)
        try:
            token = await create_token(
                self.identity, name, kind=enrollment_pb2.ENROLLMENT_KIND_SERVICE
            )
            return await enroll_service(
                self.identity.enroll_address, token.token, token.ca_sha256, self.tmp / name
            )
        finally:
            if held_back is not None:
                self.clock.advance(held_back)

    def replica_settings(
        self, files: ServiceCredential, identity_address: str | None = None
    ) -> PolicySettings:
        return replace(
            self.settings,
            tls=TlsSettings(files.certificate, files.key, files.bundle),
            identity=IdentityEndpoint(
                address=identity_address or self.identity.address, server_name=SERVER_NAME
            ),
        )

    @property
    def admin_tls(self) -> ClientTLS:
        return ClientTLS.from_files(
            self.admin.ca_bundle, self.admin.certificate, self.admin.key, SERVER_NAME
        )


@pytest.fixture
async def cluster(
    etcd: EtcdServer,
    etcd_prefix: bytes,
    settings: PolicySettings,
    store: EtcdStore,
    tmp_path: Path,
) -> AsyncIterator[Cluster]:
    inner = await EtcdStore.connect([etcd.endpoint])
    clock = MovableClock()
    identity = await IdentityServer.start(
        settings_for(tmp_path / "identity", certificate_ttl_seconds=TTL_S),
        store=PrefixedStore(inner, etcd_prefix.decode() + "identity"),
        clock=clock,
    )
    try:
        assert identity.config_path is not None
        yield Cluster(
            identity,
            clock,
            ClientConfig.load(identity.config_path),
            replace(settings, trust_domain=TRUST_DOMAIN),
            store,
            tmp_path,
        )
    finally:
        await identity.stop()
        await inner.close()


def served_certificate(address: str, admin: ClientConfig) -> x509.Certificate:
    """The certificate the server presents to a new TLS connection (a plain ``ssl`` client
    presenting the admin certificate, as the server requires a client certificate)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=admin.ca_bundle)
    context.load_cert_chain(admin.certificate, admin.key)
    context.set_alpn_protocols(["h2"])
    host, _, port = address.rpartition(":")
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=SERVER_NAME) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


async def list_enforcers(address: str, tls: ClientTLS) -> pb.ListEnforcersResponse:
    # A new channel, so a new handshake: the certificate served now is what gets checked.
    async with create_channel(address, tls) as channel:
        stub = service_grpc.PolicyServiceStub(channel)
        response: pb.ListEnforcersResponse = await stub.ListEnforcers(
            pb.ListEnforcersRequest(), timeout=5
        )
    return response


async def test_replica_serves_its_renewed_certificate_past_the_original_expiry(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trustwire.policy.credential")
    files = await cluster.enrol("policy-1", expires_in=EXPIRES_IN_S)
    original = x509.load_pem_x509_certificate(files.certificate.read_bytes())
    assert original.not_valid_after_utc < datetime.now(UTC) + timedelta(seconds=EXPIRES_IN_S + 1)

    async with PolicyReplica(cluster.replica_settings(files), cluster.store) as replica:

        async def renewed() -> bool:
            served = await asyncio.to_thread(served_certificate, replica.address, cluster.admin)
            return served.serial_number != original.serial_number

        await eventually(renewed, "the replica to serve a renewed certificate", timeout=WAIT_S)
        served = await asyncio.to_thread(served_certificate, replica.address, cluster.admin)
        assert served.not_valid_after_utc > original.not_valid_after_utc
        assert replica.renewal is not None
        assert replica.renewal.credential.certificate.serial_number == served.serial_number

        # The files hold the renewed credential: a restart would serve it too.
        on_disk = x509.load_pem_x509_certificate(files.certificate.read_bytes())
        assert on_disk.serial_number == served.serial_number
        assert stat.S_IMODE(os.stat(files.key).st_mode) == 0o600
        renewals = [r for r in caplog.records if r.getMessage().startswith("certificate renewed")]
        assert [getattr(r, "not_after", None) for r in renewals] == [
            served.not_valid_after_utc.isoformat()
        ]

        async def original_expired() -> bool:
            return datetime.now(UTC) > original.not_valid_after_utc

        await eventually(original_expired, "the original certificate to expire", timeout=WAIT_S)
        await list_enforcers(replica.address, cluster.admin_tls)


async def test_failed_renewals_are_logged_and_the_replica_keeps_serving(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    files = await cluster.enrol("policy-2", expires_in=EXPIRES_IN_S)
    original = files.certificate.read_bytes()
    with socket.socket() as unused:  # a port nothing listens on: every renewal fails
        unused.bind(("127.0.0.1", 0))
        nowhere = f"127.0.0.1:{unused.getsockname()[1]}"
    settings = cluster.replica_settings(files, identity_address=nowhere)
    async with PolicyReplica(settings, cluster.store) as replica:

        async def failure_logged() -> bool:
            return any(
                r.getMessage().startswith("certificate renewal failed")
                and getattr(r, "reason", "") == "UNAVAILABLE"
                for r in caplog.records
            )

        await eventually(failure_logged, "a failed renewal to be logged", timeout=WAIT_S)
        await list_enforcers(replica.address, cluster.admin_tls)
    assert files.certificate.read_bytes() == original


async def test_a_key_not_matching_the_certificate_is_refused_at_start(cluster: Cluster) -> None:
    files = await cluster.enrol("policy-3")
    other = await cluster.enrol("policy-4")
    files.key.write_bytes(other.key.read_bytes())
    replica = PolicyReplica(cluster.replica_settings(files), cluster.store)
    with pytest.raises(FailedPrecondition, match="does not belong to the certificate") as caught:
        await replica.start()
    assert caught.value.reason == "TLS_KEY_MISMATCH"
    assert caught.value.metadata == {"field": "tls.key", "path": str(files.key)}
    await replica.stop()
