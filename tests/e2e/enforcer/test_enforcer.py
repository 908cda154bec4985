"""The enforcer end to end: real namespaces and nftables, real etcd, the real identity service
and policy replica, two enforcers; policies by labels decide real TCP connections.

Clients run on threads (``asyncio.to_thread``): the enforcers under test run on this test's
event loop.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.e2e.enforcer.conftest import HostFactory
from tests.e2e.enforcer.harness import (
    PORT,
    WAIT,
    ControlPlane,
    WireCapture,
    attempt,
    converge,
    exchange,
    flows_between,
    flush_flows,
    knows,
    names_policy,
    serves,
)
from tests.integration.identity.identity_testkit import PrefixedStore, create_token, settings_for
from tests.support.netns import LINK_IF, EchoServer, Topology, connect_in
from trustwire.api.common.v1 import decision_pb2, envelope_pb2
from trustwire.api.enforcer.v1 import authorization_service_pb2, authorization_service_pb2_grpc
from trustwire.errors import TrustwireError
from trustwire.identity import Credential, FiveTuple, ProfileSigner
from trustwire.policy.views import EnforcerView
from trustwire.runtime import ClientTLS, configure_telemetry, create_channel
from trustwire_identity.client import NodeCredential, enroll
from trustwire_identity.server import IdentityServer

pytestmark = [pytest.mark.e2e, pytest.mark.etcd]


@dataclass(frozen=True)
class ReceivedSpan:
    host: str
    span: trace_pb2.Span


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver recording every span with its resource's ``host.name``."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []

    async def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(ReceivedSpan(attributes.get("host.name", ""), span))
        return trace_service_pb2.ExportTraceServiceResponse()


SHOP = """
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  annotations: {trustwire.io/default-action: reject}
---
apiVersion: trustwire.io/v1
kind: NetworkAccessPolicy
metadata: {name: web-to-db, namespace: shop}
spec:
  subject: {matchLabels: {app: web}}
  object: {matchLabels: {app: db}}
  ports: [{protocol: TCP, port: 7000}]
  action: allow
---
apiVersion: trustwire.io/v1
kind: NetworkAccessPolicy
metadata: {name: db-to-web, namespace: shop}
spec:
  subject: {matchLabels: {app: db}}
  object: {matchLabels: {app: web}}
  ports: [{protocol: TCP, port: 7000}]
  action: allow
---
apiVersion: trustwire.io/v1
kind: NetworkAccessPolicy
metadata: {name: batch-never-db, namespace: shop}
spec:
  tier: security
  subject: {matchLabels: {app: batch}}
  object: {matchLabels: {app: db}}
  action: reject
"""


async def test_labels_decide_across_hosts_both_ways_and_rejections_are_fast_and_recorded(
    plane: ControlPlane, hosts: HostFactory, topo: Topology
) -> None:
    a, b = await hosts("a"), await hosts("b")
    a1, a2, b1 = topo.pu("a1"), topo.pu("a2"), topo.pu("b1")
    web = await a.add_pu(a1.name, labels={"app": "web"})
    batch = await a.add_pu(a2.name, labels={"app": "batch"})
    db = await b.add_pu(b1.name, labels={"app": "db"})
    await plane.apply(SHOP)
    await converge([a], lambda v: serves(web, batch)(v) and knows(db)(v))
    await converge([b], lambda v: serves(db)(v) and knows(web, batch)(v))
    await converge([a, b], names_policy("batch-never-db"))

    server_b = EchoServer(b1.name, b1.ip, PORT)
    server_a = EchoServer(a1.name, a1.ip, PORT)
    try:
        payload = os.urandom(256 * 1024 + 3)
        assert await asyncio.to_thread(exchange, a1.name, (b1.ip, PORT), payload) == payload
        back = os.urandom(10_001)
        assert await asyncio.to_thread(exchange, b1.name, (a1.ip, PORT), back) == back
        # First contact was ECDSA-signed and opened a channel session; later connections'
        # profiles (requests and answers) are sealed under it: no public-key operation.
        await a.enforcer.handshake.settle_sessions()
        sealed_before = b.enforcer.trust.verifier.stats.sealed_verified
        assert await asyncio.to_thread(exchange, a1.name, (b1.ip, PORT), b"again") == b"again"
        assert b.enforcer.trust.verifier.stats.sealed_verified == sealed_before + 1
        assert a.enforcer.trust.verifier.stats.sealed_verified >= 1

        code, elapsed = await asyncio.to_thread(attempt, a2.name, (b1.ip, PORT))
        assert code in (errno.ECONNRESET, errno.ECONNREFUSED, errno.EPIPE, -2), code
        assert elapsed < 1.0
        assert server_b.peers
        assert all(peer[0] != a2.ip for peer in server_b.peers[1:])
    finally:
        server_a.close()
        server_b.close()

    await flush_flows(a, b)
    records = await plane.flows()
    allowed = flows_between(records, web, db)
    assert set(allowed) == {"egress", "ingress"}
    assert allowed["egress"].reporter == "node-a"
    assert allowed["ingress"].reporter == "node-b"
    for record in allowed.values():
        assert record.decision.verdict.value == "allow"
        assert record.decision.policy == "shop/web-to-db"
        assert record.bytes_sent == len(payload) + len(b"again")
        assert record.connection_count == 2
        assert record.trace_id
    assert allowed["egress"].trace_id == allowed["ingress"].trace_id
    rejected = flows_between(records, batch, db)
    assert set(rejected) == {"egress", "ingress"}
    for record in rejected.values():
        assert record.decision.verdict.value == "reject"
        assert record.decision.reason == "POLICY_REJECT"
        assert record.decision.policy == "shop/batch-never-db"
        assert record.bytes_sent == 0


ENCRYPT = """
apiVersion: trustwire.io/v1
kind: NetworkAccessPolicy
metadata: {name: web-to-db-encrypted, namespace: shop}
spec:
  subject: {matchLabels: {app: web}}
  object: {matchLabels: {app: db}}
  ports: [{protocol: TCP, port: 7000}]
  action: encrypt
---
apiVersion: trustwire.io/v1
kind: NetworkAccessPolicy
metadata: {name: web-to-db-plain, namespace: shop}
spec:
  subject: {matchLabels: {app: web}}
  object: {matchLabels: {app: db}}
  ports: [{protocol: TCP, port: 7001}]
  action: allow
"""

MARKER = b"TRUSTWIRE-PLAINTEXT-MARKER-" * 64


async def test_encrypt_hides_the_payload_on_the_wire_and_allow_does_not(
    plane: ControlPlane, hosts: HostFactory, topo: Topology
) -> None:
    a, b = await hosts("a"), await hosts("b")
    a1, b1 = topo.pu("a1"), topo.pu("b1")
    web = await a.add_pu(a1.name, labels={"app": "web"})
    db = await b.add_pu(b1.name, labels={"app": "db"})
    await plane.apply(ENCRYPT)
    await converge([a, b], names_policy("web-to-db-plain"))
    await converge([a], knows(db))
    servers = [EchoServer(b1.name, b1.ip, port) for port in (PORT, PORT + 1)]
    wire = topo.hosts["a"].name
    try:
        sniffer = WireCapture(wire, LINK_IF)
        try:
            echoed = await asyncio.to_thread(exchange, a1.name, (b1.ip, PORT), MARKER)
        finally:
            encrypted_capture = sniffer.stop()
        assert echoed == MARKER
        assert MARKER[:40] not in encrypted_capture
        assert len(encrypted_capture) > len(MARKER)  # the bytes did cross this link

        sniffer = WireCapture(wire, LINK_IF)
        try:
            echoed = await asyncio.to_thread(exchange, a1.name, (b1.ip, PORT + 1), MARKER)
        finally:
            plain_capture = sniffer.stop()
        assert echoed == MARKER
        assert MARKER[:40] in plain_capture
    finally:
        for server in servers:
            server.close()
    await flush_flows(a, b)
    records = [r for r in await plane.flows() if r.port == PORT]
    pair = flows_between(records, web, db)
    assert set(pair) == {"egress", "ingress"}
    assert all(
        r.decision.encrypted and r.decision.reason == "POLICY_ENCRYPT" for r in pair.values()
    )


K8S = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress]
  ingress:
    - from: [{podSelector: {matchLabels: {app: api}}}]
      ports: [{protocol: TCP, port: postgres}]
---
# Trustwire overlays: encrypt what Kubernetes allows; an allow that Kubernetes overrides.
apiVersion: trustwire.io/v1
kind: NetworkAccessPolicy
metadata: {name: api-to-db-encrypted, namespace: shop}
spec:
  subject: {matchLabels: {app: api}}
  object: {matchLabels: {app: db}}
  ports: [{protocol: TCP, port: 7000}]
  action: encrypt
---
apiVersion: trustwire.io/v1
kind: NetworkAccessPolicy
metadata: {name: frontend-to-db, namespace: shop}
spec:
  subject: {matchLabels: {app: frontend}}
  object: {matchLabels: {app: db}}
  action: allow
"""


async def test_imported_kubernetes_networkpolicy_is_final_for_namespace_pus(
    plane: ControlPlane, hosts: HostFactory, topo: Topology
) -> None:
    a, b = await hosts("a"), await hosts("b")
    a1, a2, b1 = topo.pu("a1"), topo.pu("a2"), topo.pu("b1")
    api = await a.add_pu(a1.name, labels={"app": "api"})
    frontend = await a.add_pu(a2.name, labels={"app": "frontend"})
    db = await b.add_pu(b1.name, labels={"app": "db"}, ports=[("postgres", PORT)])
    await plane.apply(K8S)
    await converge([b], names_policy("db-ingress"))
    await converge([a], knows(db))
    server = EchoServer(b1.name, b1.ip, PORT)
    try:
        assert await asyncio.to_thread(exchange, a1.name, (b1.ip, PORT), b"select 1") == (
            b"select 1"
        )
        code, elapsed = await asyncio.to_thread(attempt, a2.name, (b1.ip, PORT))
        assert code != 0
        assert elapsed < 1.0
    finally:
        server.close()
    await flush_flows(a, b)
    records = await plane.flows()
    allowed = flows_between(records, api, db)
    assert allowed["ingress"].decision.reason == "K8S_ALLOWED"
    assert allowed["ingress"].decision.tier == "kubernetes"
    assert allowed["ingress"].decision.encrypted  # the overlay, on top of the k8s verdict
    denied = flows_between(records, frontend, db)
    assert set(denied) == {"egress", "ingress"}
    for record in denied.values():
        assert record.decision.verdict.value == "reject"
        assert record.decision.reason == "K8S_ISOLATED_NO_MATCH"


async def test_kubernetes_networkpolicy_alone_admits_its_peer(
    plane: ControlPlane, hosts: HostFactory, topo: Topology
) -> None:
    a, b = await hosts("a"), await hosts("b")
    a1, b1 = topo.pu("a1"), topo.pu("b1")
    api = await a.add_pu(a1.name, labels={"app": "api"})
    db = await b.add_pu(b1.name, labels={"app": "db"}, ports=[("postgres", PORT)])
    await plane.apply(K8S.split("---")[0])
    await converge([b], names_policy("db-ingress"))
    await converge([a], knows(db), timeout=2.0)
    # The connection goes through the handshake: both sides record the identity decision.
    server = EchoServer(b1.name, b1.ip, PORT)
    try:
        assert await asyncio.to_thread(exchange, a1.name, (b1.ip, PORT), b"q") == b"q"
    finally:
        server.close()
    await flush_flows(a, b)
    pair = flows_between(await plane.flows(), api, db)
    assert set(pair) == {"egress", "ingress"}
    assert pair["ingress"].decision.reason == "K8S_ALLOWED"
    assert pair["egress"].destination.pu_id == db


ALLOW_WEB_DB = SHOP.split("---")[1]


async def test_replayed_foreign_and_revoked_enforcers_are_refused(
    plane: ControlPlane, hosts: HostFactory, topo: Topology, tmp_path: Path
) -> None:
    a, b = await hosts("a"), await hosts("b")
    a1, b1 = topo.pu("a1"), topo.pu("b1")
    web = await a.add_pu(a1.name, labels={"app": "web"})
    db = await b.add_pu(b1.name, labels={"app": "db"})
    await plane.apply(ALLOW_WEB_DB)
    await converge([a], knows(db))
    await converge([b], knows(web))
    server = EchoServer(b1.name, b1.ip, PORT)
    try:
        assert await asyncio.to_thread(exchange, a1.name, (b1.ip, PORT), b"ok") == b"ok"

        # Replay: the exact Authorize that just succeeded, again, on node-a's own channel.
        replayed = a.enforcer.handshake.last_request
        assert replayed
        genuine = a.enforcer.credential.client_tls("node-b")
        answer = await authorize(b.enforcer.address, genuine, replayed)
        assert answer.verdict == decision_pb2.VERDICT_REJECT
        assert decision_pb2.ReasonCode.Name(answer.reason) == "REASON_CODE_REPLAYED"
        assert not answer.HasField("profile")

        # Foreign CA: an enforcer "node-a" certified by another CA (same trust domain name).
        foreign = await foreign_enforcer(plane, tmp_path, "node-a")
        with pytest.raises(TrustwireError):
            await authorize(b.enforcer.address, foreign.client_tls("node-b"), replayed)
        # ... and its profile relayed over node-a's genuine channel.
        signer = ProfileSigner(Credential.from_chain(foreign.key, foreign.chain), inline_chain=True)
        document = a.enforcer.pus.document(web)
        assert document is not None
        forged = signer.sign(document, FiveTuple.of("TCP", a1.ip, 41000, b1.ip, PORT))
        answer = await authorize(b.enforcer.address, genuine, forged.envelope)
        assert answer.verdict == decision_pb2.VERDICT_REJECT
        reason = decision_pb2.ReasonCode.Name(answer.reason).removeprefix("REASON_CODE_")
        assert reason in {"UNKNOWN_CA", "CERTIFICATE_INVALID"}

        # Revocation: once node-b applied the list, node-a's connections are refused.
        sequence = await plane.revoke("node-a")
        await b.enforcer.trust.wait_for_revocations(sequence, WAIT)
        code, elapsed = await asyncio.to_thread(attempt, a1.name, (b1.ip, PORT))
        assert code != 0
        assert elapsed < 1.0
    finally:
        server.close()
    await flush_flows(a, b)
    records = await plane.flows()
    reasons = {(r.reporter, r.decision.reason) for r in records}
    assert ("node-b", "REPLAYED") in reasons
    assert ("node-b", "REVOKED") in reasons
    assert ("node-a", "REVOKED") in reasons


async def authorize(address: str, tls: ClientTLS, envelope: bytes) -> Any:
    async with create_channel(address, tls) as channel:
        stub = authorization_service_pb2_grpc.AuthorizationServiceStub(channel)
        return await stub.Authorize(
            authorization_service_pb2.AuthorizeRequest(
                profile=envelope_pb2.SignedEnvelope.FromString(envelope)
            ),
            timeout=WAIT,
        )


async def foreign_enforcer(plane: ControlPlane, tmp_path: Path, node: str) -> NodeCredential:
    """A credential for ``node`` from another identity service (its own CA)."""
    store = PrefixedStore(plane.raw_store, plane.prefix + "foreign")
    other = await IdentityServer.start(settings_for(tmp_path / "foreign"), store=store)
    try:
        token = await create_token(other, node)
        return await enroll(
            other.enroll_address, token.token, ca_sha256=token.ca_sha256, dns_names=(node,)
        )
    finally:
        await other.stop()


REJECT_WEB_DB = ALLOW_WEB_DB.replace("action: allow", "action: reject")


async def test_a_policy_change_closes_a_now_denied_established_connection(
    plane: ControlPlane, hosts: HostFactory, topo: Topology
) -> None:
    a, b = await hosts("a"), await hosts("b")
    a1, b1 = topo.pu("a1"), topo.pu("b1")
    web = await a.add_pu(a1.name, labels={"app": "web"})
    db = await b.add_pu(b1.name, labels={"app": "db"})
    await plane.apply(ALLOW_WEB_DB)
    await converge([a], knows(db))
    await converge([b], knows(web))
    server = EchoServer(b1.name, b1.ip, PORT)
    client = await asyncio.to_thread(connect_in, a1.name, (b1.ip, PORT), WAIT)
    try:
        client.sendall(b"before")
        assert await asyncio.to_thread(client.recv, 100) == b"before"

        await plane.apply(REJECT_WEB_DB)
        await converge([a, b], lambda view: rule_action(view, "web-to-db") == "reject")

        def read_after_change() -> bytes | int:
            try:
                client.sendall(b"after")
                return client.recv(100)
            except OSError as exc:
                return exc.errno or -1

        outcome = await asyncio.to_thread(read_after_change)
        assert outcome in (b"", errno.ECONNRESET, errno.EPIPE), outcome
        code, elapsed = await asyncio.to_thread(attempt, a1.name, (b1.ip, PORT))
        assert code != 0
        assert elapsed < 1.0
    finally:
        client.close()
        server.close()


def rule_action(view: EnforcerView, name: str) -> str:
    for pu in view.pus:
        for rule in (*pu.ingress.rules, *pu.egress.rules):
            if rule.policy.name == name:
                return str(rule.action.value)
    return ""


EXTERNAL = """
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  annotations: {trustwire.io/default-action: reject}
---
apiVersion: trustwire.io/v1
kind: ExternalNetwork
metadata: {name: partner, labels: {role: partner}}
spec: {cidrs: [10.231.22.0/24]}
---
apiVersion: trustwire.io/v1
kind: NetworkAccessPolicy
metadata: {name: web-to-partner, namespace: shop}
spec:
  subject: {matchLabels: {app: web}}
  object: {matchLabels: {role: partner}}
  ports: [{protocol: TCP, port: 7000}]
  action: allow
---
apiVersion: trustwire.io/v1
kind: NetworkAccessPolicy
metadata: {name: partner-to-web, namespace: shop}
spec:
  subject: {matchLabels: {role: partner}}
  object: {matchLabels: {app: web}}
  ports: [{protocol: TCP, port: 7000}]
  action: allow
"""


async def test_external_networks_are_allowed_and_denied_by_cidr(
    plane: ControlPlane, hosts: HostFactory, topo: Topology
) -> None:
    """b2 has no enforcer: it is the partner network, 10.231.22.0/24."""
    a = await hosts("a")
    a1, a2, b2 = topo.pu("a1"), topo.pu("a2"), topo.pu("b2")
    web = await a.add_pu(a1.name, labels={"app": "web"})
    await a.add_pu(a2.name, labels={"app": "batch"})
    await plane.apply(EXTERNAL)
    await converge([a], names_policy("partner-to-web"))
    servers = [EchoServer(b2.name, b2.ip, PORT), EchoServer(a1.name, a1.ip, PORT)]
    servers.append(EchoServer(a2.name, a2.ip, PORT))
    try:
        assert await asyncio.to_thread(exchange, a1.name, (b2.ip, PORT), b"out") == b"out"
        code, elapsed = await asyncio.to_thread(attempt, a2.name, (b2.ip, PORT))
        assert code != 0
        assert elapsed < 1.0
        # Inbound from a source without an enforcer: ingress by its address alone.
        assert await asyncio.to_thread(exchange, b2.name, (a1.ip, PORT), b"in") == b"in"
        code, elapsed = await asyncio.to_thread(attempt, b2.name, (a2.ip, PORT))
        assert code != 0
        assert elapsed < 1.0
    finally:
        for server in servers:
            server.close()
    await flush_flows(a)
    records = await plane.flows()
    out = next(r for r in records if r.source.pu_id == web and r.destination.ip == b2.ip)
    assert out.destination.external_network == "partner"
    assert out.decision.policy == "shop/web-to-partner"
    inbound = next(r for r in records if r.destination.pu_id == web and r.source.ip == b2.ip)
    assert inbound.source.external_network == "partner"
    assert inbound.decision.verdict.value == "allow"
    denied = [r for r in records if r.decision.verdict.value == "reject"]
    assert {r.decision.reason for r in denied} == {"NAMESPACE_DEFAULT_REJECT"}
    assert len(denied) == 2


@pytest.fixture
async def collector() -> AsyncIterator[tuple[Collector, str]]:
    recorder = Collector()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(recorder, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield recorder, f"http://127.0.0.1:{port}"
    await server.stop(None)


async def test_one_connection_is_one_trace_across_both_enforcers(
    plane: ControlPlane,
    hosts: HostFactory,
    topo: Topology,
    collector: tuple[Collector, str],
) -> None:
    recorder, endpoint = collector
    telemetry = {
        key: configure_telemetry(
            "enforcer",
            endpoint=endpoint,
            resource_attributes={"host.name": f"node-{key}"},
            set_global=False,
        )
        for key in ("a", "b")
    }
    a = await hosts("a", tracer_provider=telemetry["a"].tracer_provider)
    b = await hosts("b", tracer_provider=telemetry["b"].tracer_provider)
    a1, b1 = topo.pu("a1"), topo.pu("b1")
    web = await a.add_pu(a1.name, labels={"app": "web"})
    db = await b.add_pu(b1.name, labels={"app": "db"})
    await plane.apply(ALLOW_WEB_DB)
    await converge([a], knows(db))
    await converge([b], knows(web))
    server = EchoServer(b1.name, b1.ip, PORT)
    try:
        assert await asyncio.to_thread(exchange, a1.name, (b1.ip, PORT), b"traced") == b"traced"
    finally:
        server.close()
    await flush_flows(a, b)
    records = flows_between(await plane.flows(), web, db)
    trace_id = records["egress"].trace_id
    assert trace_id
    assert records["ingress"].trace_id == trace_id
    for key in ("a", "b"):
        await asyncio.to_thread(telemetry[key].force_flush, 10_000)
    spans = [s for s in recorder.spans if s.span.trace_id.hex() == trace_id]
    by_host: dict[str, set[str]] = {}
    for received in spans:
        by_host.setdefault(received.host, set()).add(received.span.name)
    assert {"intercept", "authorize", "decide", "relay"} <= by_host["node-a"]
    assert {"authorize", "decide", "intercept"} <= by_host["node-b"]
    for key in ("a", "b"):
        telemetry[key].shutdown()
