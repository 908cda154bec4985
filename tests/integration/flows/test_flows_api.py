"""Flows end to end on a real replica (real etcd, real mTLS on loopback): an enforcer's
aggregator reports, people query, watch and get suggestions, over the API and the CLI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.runtime.runtime_testkit import TRUST_DOMAIN, ThrowawayCA
from trustwire.api.common.v1 import decision_pb2
from trustwire.api.flow.v1 import flow_service_pb2 as flow_pb
from trustwire.api.flow.v1 import flow_service_pb2_grpc as flow_grpc
from trustwire.api.policy.v1 import policy_service_pb2 as policy_pb
from trustwire.api.policy.v1 import policy_service_pb2_grpc as policy_grpc
from trustwire.errors import PermissionDenied
from trustwire.flows import (
    ConnectionFacts,
    FlowAggregator,
    FlowDecision,
    FlowEndpoint,
    FlowRecord,
    Verdict,
    record_from_proto,
    record_to_proto,
)
from trustwire.policy import Direction, Labels, Protocol
from trustwire.runtime import create_channel
from trustwire_cli.main import main
from trustwire_policy.server import PolicyReplica

from .conftest import ADMIN, NODE_1, NODE_2, VIEWER

pytestmark = pytest.mark.etcd

DEADLINE_S = 10.0
TRACE = "0af7651916cd43dd8448eb211c80319c"


def _endpoint(name: str, app: str, ip: str, port: int = 0) -> FlowEndpoint:
    labels = Labels(
        {"app": app, "namespace": "shop", "pu-type": "pod", "trust-domain": TRUST_DOMAIN}
    )
    return FlowEndpoint(
        pu_id=f"{name}-id", labels=labels, trust_domain=TRUST_DOMAIN, ip=ip, port=port
    )


def _observed_records(reporter: str = "node-1") -> list[FlowRecord]:
    """What node-1's enforcer aggregates: web->db allowed twice (traced), web->cache rejected."""
    agg = FlowAggregator(reporter, window=timedelta(seconds=10))
    web = _endpoint("web", "web", "10.0.0.1")
    allowed = FlowDecision(
        direction=Direction.EGRESS,
        verdict=Verdict.ALLOW,
        reason="NAMESPACE_DEFAULT_ALLOW",
    )
    denied = FlowDecision(
        direction=Direction.EGRESS,
        verdict=Verdict.REJECT,
        reason="POLICY_REJECT",
        tier="security",
        policy="shop/no-cache",
        rule=0,
    )
    db = _endpoint("db", "db", "10.0.0.2", 5432)
    cache = _endpoint("cache", "cache", "10.0.0.3", 6379)
    for _ in range(2):
        agg.record(ConnectionFacts(web, db, Protocol.TCP, allowed, 5, 100, 50, TRACE))
    agg.record(ConnectionFacts(web, cache, Protocol.TCP, denied, 5))
    return agg.flush(final=True)


def _report(records: list[FlowRecord], batch_id: str) -> Any:
    return flow_pb.ReportFlowsRequest(
        batch_id=batch_id, records=[record_to_proto(r) for r in records]
    )


@pytest.fixture
async def channels(replica: PolicyReplica, ca: ThrowawayCA) -> AsyncIterator[dict[str, Any]]:
    out: dict[str, Any] = {}
    for name, uri in (("admin", ADMIN), ("viewer", VIEWER), ("node1", NODE_1), ("node2", NODE_2)):
        out[name] = create_channel(replica.address, ca.client_tls(uri))
    yield out
    for channel in out.values():
        await channel.close()


async def test_report_query_and_idempotency(channels: dict[str, Any]) -> None:
    enforcer = flow_grpc.FlowServiceStub(channels["node1"])
    records = _observed_records()
    # Unset reporter: the server attributes the records to the caller.
    anonymous = [r.__class__(**{**_fields(r), "reporter": ""}) for r in records]
    response = await enforcer.ReportFlows(_report(anonymous, "batch-1"))
    assert (response.accepted_count, response.duplicate) == (2, False)
    retried = await enforcer.ReportFlows(_report(anonymous, "batch-1"))
    assert (retried.accepted_count, retried.duplicate) == (0, True)

    viewer = flow_grpc.FlowServiceStub(channels["viewer"])
    result = await viewer.QueryFlows(flow_pb.QueryFlowsRequest())
    got = sorted((record_from_proto(m) for m in result.records), key=lambda r: r.port)
    assert [r.port for r in got] == [5432, 6379]
    assert {r.reporter for r in got} == {"node-1"}
    assert got[0].connection_count == 2
    assert got[0].trace_id == TRACE
    assert got[0].bytes_sent == 200
    denied = await viewer.QueryFlows(
        flow_pb.QueryFlowsRequest(filter=flow_pb.FlowFilter(verdicts=[decision_pb2.VERDICT_REJECT]))
    )
    assert [m.destination.port for m in denied.records] == [6379]


def _fields(r: FlowRecord) -> dict[str, Any]:
    return {name: getattr(r, name) for name in r.__dataclass_fields__}


async def test_an_enforcer_reports_only_its_own_node(channels: dict[str, Any]) -> None:
    node2 = flow_grpc.FlowServiceStub(channels["node2"])
    with pytest.raises(PermissionDenied) as raised:
        await node2.ReportFlows(_report(_observed_records("node-1"), "forged"))
    assert raised.value.reason == "ENFORCER_MISMATCH"
    viewer = flow_grpc.FlowServiceStub(channels["viewer"])
    with pytest.raises(PermissionDenied) as raised:
        await viewer.ReportFlows(_report(_observed_records("node-1"), "v"))
    assert raised.value.reason == "ROLE_NOT_ALLOWED"
    enforcer = flow_grpc.FlowServiceStub(channels["node1"])
    with pytest.raises(PermissionDenied):
        await enforcer.QueryFlows(flow_pb.QueryFlowsRequest())
    assert not (
        await flow_grpc.FlowServiceStub(channels["admin"]).QueryFlows(flow_pb.QueryFlowsRequest())
    ).records


async def test_watch_delivers_new_records(channels: dict[str, Any]) -> None:
    enforcer = flow_grpc.FlowServiceStub(channels["node1"])
    records = _observed_records()
    await enforcer.ReportFlows(_report(records[:1], "before"))
    admin = flow_grpc.FlowServiceStub(channels["admin"])
    stream = admin.WatchFlows(
        flow_pb.WatchFlowsRequest(filter=flow_pb.FlowFilter(pu_ids=["cache-id", "db-id"]))
    )
    try:
        first = await asyncio.wait_for(stream.read(), DEADLINE_S)
        # The latest first: the record stored before the watch began.
        assert [m.destination.port for m in first.records] == [5432]
        await enforcer.ReportFlows(_report(records[1:], "after"))
        live = await asyncio.wait_for(stream.read(), DEADLINE_S)
        assert [m.destination.port for m in live.records] == [6379]
        assert live.dropped_count == 0
    finally:
        stream.cancel()


async def test_suggest_over_the_api_applies(channels: dict[str, Any]) -> None:
    enforcer = flow_grpc.FlowServiceStub(channels["node1"])
    await enforcer.ReportFlows(_report(_observed_records(), "b"))
    policy = policy_grpc.PolicyServiceStub(channels["admin"])
    response = await policy.Suggest(policy_pb.SuggestRequest(namespace="shop"))
    (suggestion,) = response.suggestions  # the rejected flow is no evidence
    assert suggestion.policy.metadata.name == "allow-web-to-db"
    assert suggestion.connection_count == 2
    documents = list(yaml.safe_load_all(response.yaml))
    assert documents[0]["spec"]["object"]["matchLabels"]["app"] == "db"
    applied = await policy.Apply(
        policy_pb.ApplyRequest(yaml=policy_pb.YamlDocuments(text=response.yaml))
    )
    assert applied.changes[0].ref.name == "allow-web-to-db"


# ------------------------------------------------------------------------------- CLI


@pytest.fixture
def admin_config(
    ca: ThrowawayCA, tmp_path: Path, replica: PolicyReplica, monkeypatch: pytest.MonkeyPatch
) -> Path:
    leaf = ca.issue([ADMIN])
    (tmp_path / "admin.crt").write_bytes(leaf.certificate)
    (tmp_path / "admin.key").write_bytes(leaf.private_key)
    (tmp_path / "bundle.pem").write_bytes(ca.pem)
    config = tmp_path / "config"
    config.write_text(
        yaml.safe_dump(
            {
                "trust_domain": TRUST_DOMAIN,
                "policy": {"address": replica.address},
                "ca_bundle": "bundle.pem",
                "certificate": "admin.crt",
                "key": "admin.key",
            }
        )
    )
    monkeypatch.setenv("TRUSTWIRE_CONFIG", str(config))
    monkeypatch.delenv("TRUSTWIRE_SERVER", raising=False)
    return config


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    # The server runs on this event loop; the CLI runs its own in a thread.
    status = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return status, out, err


async def test_cli_flows_and_suggest(
    channels: dict[str, Any], admin_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enforcer = flow_grpc.FlowServiceStub(channels["node1"])
    await enforcer.ReportFlows(_report(_observed_records(), "cli"))

    status, out, err = await cli(capsys, "flows")
    assert status == 0, err
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["TIME", "SOURCE", "DESTINATION", "PORT"]
    assert len(rows) == 2
    assert any("shop/web" in r and "shop/db" in r and TRACE in r for r in rows)

    status, out, err = await cli(capsys, "flows", "--denied", "-o", "json")
    assert status == 0, err
    (denied,) = json.loads(out)
    assert denied["decision"]["reason"] == "REASON_CODE_POLICY_REJECT"

    status, out, _ = await cli(capsys, "flows", "--policy", "no-cache", "--pu", "web-id")
    assert len(out.splitlines()) == 2
    assert "shop/no-cache" in out

    status, out, err = await cli(capsys, "suggest", "--since", "1h", "-n", "shop")
    assert status == 0, err
    assert "name: allow-web-to-db" in out
    path = admin_config.parent / "suggested.yaml"
    await asyncio.to_thread(path.write_text, out)
    status, out, err = await cli(capsys, "apply", "-f", str(path))
    assert status == 0, err
    assert "networkaccesspolicy/shop/allow-web-to-db created" in out
