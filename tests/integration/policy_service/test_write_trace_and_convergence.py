"""A policy write is one trace to every enforcer's apply; convergence without a delta.

Real etcd, a real replica with distribution, real ``PolicyClient``s over gRPC on loopback, and
(for tracing) real OTLP/gRPC exporters pointing at an in-test collector.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc.aio
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.integration.test_runtime_tracing import Collector, flush_and_shutdown
from trustwire.api.policy.v1 import enforcer_pb2
from trustwire.api.policy.v1 import policy_service_pb2 as pb
from trustwire.api.policy.v1 import policy_service_pb2_grpc as service_grpc
from trustwire.runtime import configure_telemetry, create_channel
from trustwire.store.etcd import EtcdStore
from trustwire_cli.main import main
from trustwire_policy.distribution import PolicyClient
from trustwire_policy.distribution.stream import PolicyDistribution
from trustwire_policy.server import PolicyReplica
from trustwire_policy.settings import PolicySettings

from .fixtures import pu

pytestmark = pytest.mark.etcd

WAIT = 10.0
KIND = trace_pb2.Span.SpanKind


def policy(name: str, subject: str, obj: str, port: int) -> str:
    return (
        "apiVersion: trustwire.io/v1\nkind: NetworkAccessPolicy\n"
        f"metadata: {{name: {name}, namespace: shop}}\n"
        f"spec:\n  subject: {{matchLabels: {{app: {subject}}}}}\n"
        f"  object: {{matchLabels: {{app: {obj}}}}}\n"
        f"  ports: [{{protocol: TCP, port: {port}}}]\n  action: allow\n"
    )


@pytest.fixture
async def collector() -> AsyncIterator[tuple[Collector, str]]:
    recorder = Collector()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(recorder, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield recorder, f"127.0.0.1:{port}"
    await server.stop(None)


async def test_enforcer_apply_spans_link_to_each_write_span(
    settings: PolicySettings, collector: tuple[Collector, str]
) -> None:
    recorder, endpoint = collector

    def telemetry(name: str):  # type: ignore[no-untyped-def]
        exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True)
        return configure_telemetry(name, exporter, set_global=False)

    client_t, policy_t, enforcer_t = telemetry("cli"), telemetry("policy"), telemetry("enforcer")
    store = await EtcdStore.connect(list(settings.etcd.endpoints), timeout=5.0)
    replica = PolicyReplica(
        settings, store, tracer_provider=policy_t.tracer_provider, close_store=True
    )
    await replica.start()
    gate = asyncio.Event()
    gate.set()
    received: list[int] = []

    async def on_apply(view: object, revision: int) -> None:
        received.append(revision)
        await gate.wait()

    enforcer = PolicyClient(
        "node-1", [replica.address], on_apply=on_apply, tracer_provider=enforcer_t.tracer_provider
    )

    async def apply(stub: service_grpc.PolicyServiceStub, port: int) -> int:
        text = policy("w", "web", "db", port)
        response = await stub.Apply(pb.ApplyRequest(yaml=pb.YamlDocuments(text=text)), timeout=WAIT)
        return int(response.revision)

    try:
        await replica.mirror.wait_ready()
        await replica.repository.register_pu(pu("web", "web", "10.0.0.1", "node-1"))
        await replica.repository.register_pu(pu("db", "db", "10.0.0.2", "node-2"))
        enforcer.start()
        await enforcer.wait_for(lambda c: c.view is not None, WAIT)
        tracer = client_t.tracer_provider.get_tracer("test")
        async with create_channel(
            replica.address, tracer_provider=client_t.tracer_provider
        ) as channel:
            stub = service_grpc.PolicyServiceStub(channel)
            with tracer.start_as_current_span("client-apply") as client_span:
                single = await apply(stub, 1)
            await enforcer.wait_for(lambda c: c.revision >= single, WAIT)
            # Writes B and C while the enforcer is still applying A: one delta covers both.
            gate.clear()
            a = await apply(stub, 2)
            await enforcer.wait_for(lambda c: bool(received) and received[-1] >= a, WAIT)
            await apply(stub, 3)
            c = await apply(stub, 4)
            gate.set()
            await enforcer.wait_for(lambda client: client.revision >= c, WAIT)
    finally:
        await enforcer.stop()
        await replica.stop(grace=0)
    await flush_and_shutdown(client_t, policy_t, enforcer_t)

    spans = [r for r in recorder.spans]
    applies = [s.span for s in spans if s.service == "policy" and s.span.name.endswith("/Apply")]
    assert len(applies) == 4
    assert all(a.kind == KIND.SPAN_KIND_SERVER for a in applies)
    write = applies[0]
    assert write.trace_id == client_span.get_span_context().trace_id.to_bytes(16, "big")

    def applied_at(revision: int) -> list[trace_pb2.Span]:
        return [
            s.span
            for s in spans
            if s.service == "enforcer"
            and s.span.name == "policy.apply"
            and any(
                a.key == "trustwire.revision" and a.value.int_value == revision
                for a in s.span.attributes
            )
        ]

    def links(span: trace_pb2.Span) -> set[tuple[bytes, bytes]]:
        return {(link.trace_id, link.span_id) for link in span.links}

    [first] = applied_at(single)
    assert links(first) == {(write.trace_id, write.span_id)}
    # Every write is linked from the apply that covered it; B and C from the same one when
    # the replica had seen C before A's ack (the usual case: Apply returns after that).
    later = [s for s in spans if s.service == "enforcer" and s.span.name == "policy.apply"]
    linked = set().union(*(links(s.span) for s in later))
    assert {(w.trace_id, w.span_id) for w in applies} <= linked
    merged = applied_at(c)
    assert len(merged) == 1
    assert (applies[3].trace_id, applies[3].span_id) in links(merged[0])


async def cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def test_apply_wait_returns_for_a_write_that_changes_no_view(
    settings: PolicySettings, store: EtcdStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRUSTWIRE_CONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("TRUSTWIRE_SERVER", raising=False)
    async with PolicyReplica(settings, store) as replica:
        await replica.mirror.wait_ready()
        distribution = replica.servicer.distribution
        assert isinstance(distribution, PolicyDistribution)
        repository = replica.repository
        for node in ("node-1", "node-2"):
            await repository.register_enforcer(enforcer_pb2.Enforcer(id=node))
        registered = await repository.register_pu(pu("web", "web", "10.0.0.1", "node-1"))
        clients = [PolicyClient(n, [replica.address]) for n in ("node-1", "node-2")]
        for client in clients:
            client.start()
        try:
            # Until every view includes the registration: a client may connect before the
            # state mirror has applied it, get a snapshot without it, then a delta.
            for client in clients:
                await client.wait_for(lambda c: c.view is not None, WAIT)
            await clients[0].wait_for(
                lambda c: c.view is not None and registered.id in {p.id for p in c.view.pus}, WAIT
            )
            await distribution.flush()
            async with create_channel(replica.address) as channel:
                stub = service_grpc.PolicyServiceStub(channel)
                listed = await stub.ListEnforcers(pb.ListEnforcersRequest(), timeout=WAIT)
                assert {e.id: e.status.connected for e in listed.enforcers} == {
                    "node-1": True,
                    "node-2": True,
                }

                # A policy that selects no PU: no enforcer's view changes, nothing is sent,
                # yet every enforcer is converged at the new revision.
                path = tmp_path / "nobody.yaml"
                path.write_text(policy("nobody", "nobody", "nothing", 7))
                responses = [c.log[-1].nonce for c in clients]
                status = await cli(
                    "apply", "-f", str(path), "--wait", "--timeout", str(WAIT),
                    "--server", replica.address,
                )  # fmt: skip
                assert status == 0
                assert [c.log[-1].nonce for c in clients] == responses  # nothing was sent
                listed = await stub.ListEnforcers(pb.ListEnforcersRequest(), timeout=WAIT)
                assert listed.current_revision > clients[0].revision
                assert [e.status.lag_revisions for e in listed.enforcers] == [0, 0]
                assert [e.status.acked_revision for e in listed.enforcers] == [
                    listed.current_revision
                ] * 2

                for client in clients:
                    await client.stop()
                async with asyncio.timeout(WAIT):
                    for node in ("node-1", "node-2"):
                        await distribution.wait_disconnected(node)
                await distribution.flush()
                listed = await stub.ListEnforcers(pb.ListEnforcersRequest(), timeout=WAIT)
                assert [e.status.connected for e in listed.enforcers] == [False, False]
        finally:
            for client in clients:
                await client.stop()
