"""A real Trustwire deployment in one test: etcd (the session's, under the test's own key
prefix), the identity service, a policy replica with distribution (mutual TLS with a
certificate the identity service issued it), and enforcers, each a real ``Enforcer`` (or a
``python -m trustwire_enforcer`` process) serving PUs in network namespaces of a topology the
test builds.

Enforcers run in the host's root network namespace and reach each other and the control
plane on loopback; their PUs live in the topology's namespaces, where the datapath intercepts
(the sockets it needs are created inside them). Data between PUs of different hosts crosses
the topology's wire (``link0`` between host a and host b), where tests capture.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from tests.integration.identity.identity_testkit import (
    TRUST_DOMAIN,
    PrefixedStore,
    admin_call,
    admin_tls,
    create_token,
    settings_for,
)
from tests.support.netns import Sniffer, Topology, connect_in
from trustwire.api.enforcer.v1 import enforcer_local_service_pb2 as local_pb
from trustwire.api.flow.v1 import flow_service_pb2, flow_service_pb2_grpc
from trustwire.api.identity.v1 import enrollment_pb2, identity_service_pb2
from trustwire.api.policy.v1 import policy_service_pb2, policy_service_pb2_grpc
from trustwire.api.policy.v1 import processing_unit_pb2 as pu_pb
from trustwire.flows import FlowRecord, record_from_proto
from trustwire.policy.views import EnforcerView
from trustwire.runtime import ClientTLS, create_channel
from trustwire.store.etcd import EtcdStore
from trustwire_enforcer.daemon import Enforcer
from trustwire_enforcer.local_api import LocalApiClient
from trustwire_enforcer.settings import (
    EnforcerSettings,
    FlowReportSettings,
    IdentityEndpoint,
    PolicyEndpoint,
)
from trustwire_identity.ca import certificates_to_pem, key_to_pem
from trustwire_identity.client import enroll
from trustwire_identity.server import IdentityServer
from trustwire_policy.distribution import distribution_factory
from trustwire_policy.server import PolicyReplica
from trustwire_policy.settings import EtcdSettings, PolicySettings, TlsSettings

WAIT = 10.0  # bound on every wait for a condition
PORT = 7000
REPO = Path(__file__).resolve().parents[3]


@dataclass
class ControlPlane:
    tmp: Path
    etcd_endpoint: str
    prefix: str
    raw_store: EtcdStore
    store: PrefixedStore
    identity: IdentityServer
    policy_settings: PolicySettings
    replica: PolicyReplica | None = None

    @property
    def policy_address(self) -> str:
        assert self.replica is not None
        return self.replica.address

    async def start_policy(self, address: str = "127.0.0.1:0") -> None:
        settings = replace(self.policy_settings, listen_address=address)
        store = await EtcdStore.connect([self.etcd_endpoint], timeout=5.0)
        self.replica = PolicyReplica(
            settings, store, distribution=distribution_factory(), close_store=True
        )
        await self.replica.start()
        await self.replica.mirror.wait_ready()

    async def stop_policy(self) -> None:
        if self.replica is not None:
            replica, self.replica = self.replica, None
            distribution = getattr(replica.servicer, "distribution", None)
            await replica.stop(grace=0)
            close = getattr(distribution, "close", None)
            if close is not None:
                await close()

    def admin_tls(self) -> ClientTLS:
        tls = admin_tls(self.identity)
        return ClientTLS(tls.ca_bundle, tls.certificate_chain, tls.private_key, "localhost")

    async def apply(self, yaml_text: str) -> int:
        async with create_channel(self.policy_address, self.admin_tls()) as channel:
            stub = policy_service_pb2_grpc.PolicyServiceStub(channel)
            response = await stub.Apply(
                policy_service_pb2.ApplyRequest(
                    yaml=policy_service_pb2.YamlDocuments(text=yaml_text, source_name="test")
                ),
                timeout=WAIT,
            )
        return int(response.revision)

    async def flows(self) -> list[FlowRecord]:
        async with create_channel(self.policy_address, self.admin_tls()) as channel:
            stub = flow_service_pb2_grpc.FlowServiceStub(channel)
            response = await stub.QueryFlows(flow_service_pb2.QueryFlowsRequest(), timeout=WAIT)
        return [record_from_proto(r) for r in response.records]

    async def token(self, node: str) -> identity_service_pb2.CreateJoinTokenResponse:
        return await create_token(self.identity, node)

    async def revoke(self, node: str) -> int:
        await admin_call(
            self.identity,
            "RevokeEnforcer",
            identity_service_pb2.RevokeEnforcerRequest(enforcer_id=node, reason="test"),
        )
        bundle = await admin_call(
            self.identity, "GetTrustBundle", identity_service_pb2.GetTrustBundleRequest()
        )
        return int(bundle.revocations.sequence_number)


async def start_control_plane(
    tmp: Path,
    etcd_endpoint: str,
    prefix: str,
    *,
    clock: Callable[[], datetime] | None = None,
    **identity_settings: Any,
) -> ControlPlane:
    """``clock`` and ``identity_settings`` (e.g. ``certificate_ttl_seconds``) configure the
    identity service, for tests of certificate lifetimes."""
    inner = await EtcdStore.connect([etcd_endpoint])
    store = PrefixedStore(inner, prefix + "identity")
    identity = await IdentityServer.start(
        settings_for(tmp / "identity", **identity_settings),
        store=store,
        clock=clock or (lambda: datetime.now(UTC)),
    )
    # The policy replica enrols like any Trustwire service and serves mutual TLS with the
    # identity service's certificate, so enforcers are authorized by their real identity.
    token = await create_token(identity, "policy", kind=enrollment_pb2.ENROLLMENT_KIND_SERVICE)
    node = await enroll(
        identity.enroll_address,
        token.token,
        ca_sha256=token.ca_sha256,
        dns_names=("localhost",),
    )
    files = tmp / "policy-tls"
    files.mkdir(parents=True)
    (files / "cert.pem").write_bytes(certificates_to_pem(node.chain))
    key = files / "key.pem"
    key.write_bytes(key_to_pem(node.key))
    key.chmod(0o600)
    (files / "bundle.pem").write_bytes(certificates_to_pem(node.bundle))
    settings = PolicySettings(
        listen_address="127.0.0.1:0",
        trust_domain=TRUST_DOMAIN,
        tls=TlsSettings(files / "cert.pem", key, files / "bundle.pem"),
        etcd=EtcdSettings(endpoints=(etcd_endpoint,), key_root=prefix + "policy/trustwire/v1/"),
        reconnect_initial_backoff=0.02,
        reconnect_max_backoff=0.5,
    )
    plane = ControlPlane(tmp, etcd_endpoint, prefix, inner, store, identity, settings)
    await plane.start_policy()
    return plane


async def stop_control_plane(plane: ControlPlane) -> None:
    await plane.stop_policy()
    await plane.identity.stop()
    await plane.raw_store.close()


# ------------------------------------------------------------------------------ enforcers


async def enforcer_settings(
    plane: ControlPlane, node: str, state_dir: Path, **overrides: Any
) -> EnforcerSettings:
    token = await plane.token(node)
    values: dict[str, Any] = {
        "node_name": node,
        "state_dir": state_dir,
        "join_token": token.token,
        "identity": IdentityEndpoint(
            address=plane.identity.address,
            enroll_address=plane.identity.enroll_address,
            ca_sha256=token.ca_sha256,
            server_name="localhost",
        ),
        "policy": PolicyEndpoint(addresses=(plane.policy_address,), server_name="localhost"),
        "listen_address": "127.0.0.1:0",
        "local_socket": state_dir / "enforcer.sock",
        "preauthorization_ttl": 5.0,
        "authorize_timeout": 2.0,
        # Tests flush flows explicitly (FlowReporter.flush(final=True)); no timer races.
        "flows": FlowReportSettings(window=60.0, interval=3600.0),
    }
    values.update(overrides)
    return EnforcerSettings(**values)


@dataclass
class Host:
    key: str  # topology host key ("a", "b")
    enforcer: Enforcer
    local: LocalApiClient

    async def add_pu(
        self,
        netns: str,
        *,
        namespace: str = "shop",
        labels: dict[str, str],
        ports: Iterable[tuple[str, int]] = (),
        fail_mode: str = "closed",
    ) -> str:
        request = local_pb.AddPuRequest(
            netns_path=f"/run/netns/{netns}",
            namespace=namespace,
            labels=labels,
            fail_mode=pu_pb.FAIL_MODE_OPEN if fail_mode == "open" else pu_pb.FAIL_MODE_CLOSED,
        )
        from trustwire.api.common.v1 import network_pb2

        for name, number in ports:
            request.ports.add(name=name, protocol=network_pb2.PROTOCOL_TCP, number=number)
        body = await self.local.call("AddPu", request.SerializeToString())
        return str(local_pb.AddPuResponse.FromString(body).pu.id)


def view_has(predicate: Callable[[EnforcerView], bool]) -> Callable[[Enforcer], bool]:
    return lambda e: e.policy is not None and predicate(e.policy.view)


def names_policy(name: str) -> Callable[[EnforcerView], bool]:
    """Some PU's compiled rules come from policy ``name``."""

    def check(view: EnforcerView) -> bool:
        for pu in view.pus:
            for rules in (pu.ingress, pu.egress):
                for rule in (*rules.rules, *rules.kubernetes_rules):
                    if rule.policy.name == name:
                        return True
        return False

    return check


def serves(*pu_ids: str) -> Callable[[EnforcerView], bool]:
    return lambda view: all(pu_id in view.pus_by_id for pu_id in pu_ids)


def knows(*pu_ids: str) -> Callable[[EnforcerView], bool]:
    return lambda view: all(pu_id in view.peers_by_id for pu_id in pu_ids)


async def converge(
    hosts: Iterable[Host],
    predicate: Callable[[EnforcerView], bool],
    timeout: float = WAIT,  # noqa: ASYNC109 - a bound, not cancellation
) -> None:
    await asyncio.gather(*(h.enforcer.wait_for(view_has(predicate), timeout) for h in hosts))


# ------------------------------------------------------------------------------ traffic


def exchange(netns: str, address: tuple[str, int], payload: bytes, timeout: float = 3.0) -> bytes:
    """Connect, send, half-close, read until the server's FIN."""
    sock = connect_in(netns, address, timeout)
    try:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        sock.close()


def attempt(netns: str, address: tuple[str, int], timeout: float = 3.0) -> tuple[int, float]:
    """Connect and try one request: (errno, seconds until failure); 0 when it was echoed."""
    started = time.monotonic()
    try:
        sock = connect_in(netns, address, timeout)
    except OSError as exc:
        return exc.errno or -1, time.monotonic() - started
    try:
        try:
            sock.sendall(b"hello")
            data = sock.recv(100)
        except OSError as exc:
            return exc.errno or -1, time.monotonic() - started
        return (0 if data else -2), time.monotonic() - started
    finally:
        sock.close()


async def flush_flows(*hosts: Host) -> None:
    """Once every connection was reported on every host, send all flows now."""
    for host in hosts:
        await host.enforcer.settle(WAIT)
    for host in hosts:
        await host.enforcer.flows.flush(final=True)


def flows_between(
    records: Iterable[FlowRecord], source_pu: str, destination_pu: str
) -> dict[str, FlowRecord]:
    """Records of one PU pair by reporter side: {"egress": ..., "ingress": ...}."""
    out: dict[str, FlowRecord] = {}
    for record in records:
        if record.source.pu_id == source_pu and record.destination.pu_id == destination_pu:
            out[record.decision.direction.value.lower()] = record
    return out


class WireCapture(Sniffer):
    """The topology's sniffer, but ``stop`` also drains what the kernel already queued: under
    load the capture thread lags, and frames that crossed the wire must not be missed."""

    def stop(self) -> bytes:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.setblocking(False)
        buf = bytearray(256 * 1024)
        while True:
            try:
                n = self._sock.recv_into(buf)
            except OSError:  # BlockingIOError: drained
                break
            self._data += buf[:n]
        self._sock.close()
        return bytes(self._data)


# ------------------------------------------------------------------------------ processes


@dataclass
class EnforcerProcess:
    """``python -m trustwire_enforcer`` as a separate process (killable for real)."""

    settings: EnforcerSettings
    process: subprocess.Popen[str] | None = None
    address: str = ""
    log: Path = field(default_factory=lambda: Path(os.devnull))

    def environment(self) -> dict[str, str]:
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTWIRE_ENFORCER_")}
        env.update(
            {
                "TRUSTWIRE_ENFORCER_NODE_NAME": s.node_name,
                "TRUSTWIRE_ENFORCER_STATE_DIR": str(s.state_dir),
                "TRUSTWIRE_ENFORCER_JOIN_TOKEN": s.join_token,
                "TRUSTWIRE_ENFORCER_IDENTITY__ADDRESS": s.identity.address,
                "TRUSTWIRE_ENFORCER_IDENTITY__ENROLL_ADDRESS": s.identity.enroll_address,
                "TRUSTWIRE_ENFORCER_IDENTITY__CA_SHA256": s.identity.ca_sha256,
                "TRUSTWIRE_ENFORCER_IDENTITY__SERVER_NAME": s.identity.server_name,
                "TRUSTWIRE_ENFORCER_POLICY__ADDRESSES": ",".join(s.policy.addresses),
                "TRUSTWIRE_ENFORCER_POLICY__SERVER_NAME": s.policy.server_name,
                "TRUSTWIRE_ENFORCER_LISTEN_ADDRESS": s.listen_address,
                "TRUSTWIRE_ENFORCER_LOCAL_SOCKET": str(s.local_socket),
                "TRUSTWIRE_ENFORCER_AUTHORIZE_TIMEOUT": str(s.authorize_timeout),
                "TRUSTWIRE_ENFORCER_FLOWS__INTERVAL": "0.5",
                "TRUSTWIRE_ENFORCER_FLOWS__WINDOW": "1",
            }
        )
        return env

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.to_thread(
                subprocess.Popen,
                [sys.executable, "-m", "trustwire_enforcer"],
                env=self.environment(),
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=REPO,
            )
        process = self.process
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 30.0)
        if not line.startswith("trustwire-enforcer ready"):
            raise RuntimeError(f"enforcer did not start: {line!r} (log: {self.log})")
        self.address = line.split()[-1]

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


async def stop_all(hosts: Iterable[Host]) -> None:
    for host in hosts:
        with contextlib.suppress(Exception):
            await host.enforcer.stop(rules="remove")


def new_tracer_provider() -> TracerProvider:
    return TracerProvider()


def utc_in(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def topology_pu(topo: Topology, key: str) -> tuple[str, str]:
    pu = topo.pu(key)
    return pu.name, pu.ip
