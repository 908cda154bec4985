"""Cluster-wide flow queries: two real replicas (real etcd, real mutual TLS on loopback), each
storing what its own enforcers report; either one answers for both, merged and paginated.

Replicas are registered in etcd (``replicas/<id>``) and ask each other with their own server
certificate; dead or stale members are named in ``unreachable_replicas``."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.identity.identity_testkit import TRUST_DOMAIN as IDENTITY_DOMAIN
from tests.integration.identity.identity_testkit import PrefixedStore, create_token, settings_for
from tests.support.etcd import EtcdServer
from tests.unit.runtime.runtime_testkit import TRUST_DOMAIN, ThrowawayCA
from trustwire.api.common.v1 import pagination_pb2
from trustwire.api.flow.v1 import flow_service_pb2 as flow_pb
from trustwire.api.flow.v1 import flow_service_pb2_grpc as flow_grpc
from trustwire.api.identity.v1 import enrollment_pb2
from trustwire.api.policy.v1 import policy_service_pb2 as policy_pb
from trustwire.api.policy.v1 import policy_service_pb2_grpc as policy_grpc
from trustwire.errors import InvalidArgument
from trustwire.flows import (
    FlowDecision,
    FlowEndpoint,
    FlowRecord,
    Verdict,
    filter_to_proto,
    record_from_proto,
    record_to_proto,
)
from trustwire.flows import FlowFilter as DomainFilter
from trustwire.policy import Direction, Labels, Protocol
from trustwire.runtime import ClientTLS, create_channel
from trustwire.store import Put
from trustwire.store.etcd import EtcdStore
from trustwire_cli.deployment.control_plane import SERVER_NAME, enroll_service
from trustwire_cli.main import main
from trustwire_identity.admin import ClientConfig
from trustwire_identity.server import IdentityServer
from trustwire_policy.replicas import ReplicaMember
from trustwire_policy.server import PolicyReplica
from trustwire_policy.settings import (
    ClusterSettings,
    FlowSettings,
    IdentityEndpoint,
    PolicySettings,
    TlsSettings,
)

pytestmark = pytest.mark.etcd

WAIT_S = 5.0
ADMIN = f"spiffe://{TRUST_DOMAIN}/admin/alice"
VIEWER = f"spiffe://{TRUST_DOMAIN}/viewer/victor"
NODE_1 = f"spiffe://{TRUST_DOMAIN}/enforcer/node-1"
NODE_2 = f"spiffe://{TRUST_DOMAIN}/enforcer/node-2"
# Records reported to each replica: enough for several pages of PAGE, with equal window ends
# within a replica and across the two.
PER_REPLICA = 7
PAGE = 3


@pytest.fixture(scope="module")
def ca() -> ThrowawayCA:
    return ThrowawayCA.create()


@dataclass
class Cluster:
    ca: ThrowawayCA
    base: PolicySettings
    etcd: EtcdServer
    tmp: Path
    started: list[PolicyReplica]
    window_base: datetime
    channels: list[Any]

    def settings(self, replica_id: str, **cluster: Any) -> PolicySettings:
        directory = self.tmp / replica_id
        directory.mkdir(exist_ok=True)
        leaf = self.ca.issue([f"spiffe://{TRUST_DOMAIN}/service/{replica_id}"], server=True)
        (directory / "cert.pem").write_bytes(leaf.certificate)
        (directory / "key.pem").write_bytes(leaf.private_key)
        (directory / "ca.pem").write_bytes(self.ca.pem)
        return replace(
            self.base,
            tls=TlsSettings(directory / "cert.pem", directory / "key.pem", directory / "ca.pem"),
            flows=FlowSettings(path=directory / "flows.db"),
            cluster=ClusterSettings(replica_id=replica_id, **cluster),
        )

    async def start(self, replica_id: str, **cluster: Any) -> PolicyReplica:
        store = await EtcdStore.connect([self.etcd.endpoint], timeout=5.0)
        replica = PolicyReplica(self.settings(replica_id, **cluster), store, close_store=True)
        await replica.start()
        self.started.append(replica)
        return replica

    def channel(self, replica: PolicyReplica, uri: str) -> Any:
        channel = create_channel(replica.address, self.ca.client_tls(uri))
        self.channels.append(channel)
        return channel

    def flows(self, replica: PolicyReplica, uri: str = VIEWER) -> Any:
        return flow_grpc.FlowServiceStub(self.channel(replica, uri))


@pytest.fixture
async def cluster(
    ca: ThrowawayCA, settings: PolicySettings, etcd: EtcdServer, tmp_path: Path
) -> AsyncIterator[Cluster]:
    c = Cluster(ca, settings, etcd, tmp_path, [], window_base(), [])
    yield c
    for channel in c.channels:
        await channel.close()
    for replica in reversed(c.started):
        await replica.stop()


@pytest.fixture
async def pair(cluster: Cluster) -> tuple[PolicyReplica, PolicyReplica]:
    """replica-a with node-1's records, replica-b with node-2's."""
    a = await cluster.start("replica-a")
    b = await cluster.start("replica-b")
    await report(cluster, a, NODE_1, records("node-1", cluster.window_base))
    await report(cluster, b, NODE_2, records("node-2", cluster.window_base))
    return a, b


def window_base() -> datetime:
    """The newest window end of the test's records: a minute ago, aligned. Taken once per test
    (records and expectations must agree even when a 10 s boundary passes in between)."""
    now = datetime.now(UTC).replace(microsecond=0)
    return now - timedelta(seconds=now.second % 10 + 60)


def records(reporter: str, base: datetime) -> list[FlowRecord]:
    """PER_REPLICA records, identified by destination port; window ends repeat in pairs (and
    equal the other reporter's), so ties within and across replicas are exercised."""
    out = []
    for i in range(PER_REPLICA):
        end = base - timedelta(seconds=10 * (i // 2))
        labels = Labels({"app": f"app-{i}", "namespace": "shop", "trust-domain": TRUST_DOMAIN})
        out.append(
            FlowRecord(
                reporter=reporter,
                source=FlowEndpoint(
                    pu_id="web-id", labels=labels.merged({"app": "web"}), ip="10.0.0.1"
                ),
                destination=FlowEndpoint(
                    pu_id=f"{reporter}-{i}", labels=labels, ip="10.0.0.2", port=1000 + i
                ),
                protocol=Protocol.TCP,
                decision=FlowDecision(Direction.EGRESS, Verdict.ALLOW, "NAMESPACE_DEFAULT_ALLOW"),
                revision=1,
                window_start=end - timedelta(seconds=10),
                window_end=end,
                connection_count=1,
            )
        )
    return out


async def report(
    cluster: Cluster, replica: PolicyReplica, uri: str, batch: list[FlowRecord]
) -> None:
    stub = cluster.flows(replica, uri)
    response = await stub.ReportFlows(
        flow_pb.ReportFlowsRequest(batch_id="b-1", records=[record_to_proto(r) for r in batch]),
        timeout=WAIT_S,
    )
    assert response.accepted_count == len(batch)


def record_id(message: Any) -> tuple[str, int]:
    record = record_from_proto(message)
    return (record.reporter, record.port)


def expected_order(base: datetime) -> list[tuple[str, int]]:
    """Newest window end first; ties: replica id (a's node-1 before b's node-2), then newest
    stored first (a higher index was stored later)."""
    rows = [
        (r.window_end, replica, i, r.reporter, r.port)
        for replica, reporter in (("replica-a", "node-1"), ("replica-b", "node-2"))
        for i, r in enumerate(records(reporter, base))
    ]
    rows.sort(key=lambda row: (-row[0].timestamp(), row[1], -row[2]))
    return [(reporter, port) for _, _, _, reporter, port in rows]


async def all_pages(stub: Any, request: Any) -> tuple[list[Any], list[list[str]]]:
    """Every record of a paginated query, and each page's unreachable replicas."""
    got: list[Any] = []
    unreachable: list[list[str]] = []
    token = ""
    for _ in range(100):  # bounded
        request.page.CopyFrom(pagination_pb2.PageRequest(page_size=PAGE, page_token=token))
        response = await stub.QueryFlows(request, timeout=WAIT_S)
        got.extend(response.records)
        unreachable.append(list(response.unreachable_replicas))
        token = response.page.next_page_token
        if not token:
            return got, unreachable
    raise AssertionError("pagination did not end")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers: dialling it hangs until a
    deadline (a hung or partitioned replica)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


# ---------------------------------------------------------------------------------- tests


async def test_membership_key_appears_on_start_and_goes_on_orderly_stop(
    cluster: Cluster, store: EtcdStore, settings: PolicySettings
) -> None:
    replica = await cluster.start("replica-a")
    key = f"{settings.etcd.key_root}replicas/replica-a"
    entry = await store.get(key)
    assert entry is not None
    member = ReplicaMember.decode("replica-a", entry.value, entry.mod_revision)
    assert member is not None
    assert member.address == replica.address  # the bound listen address, not a wildcard
    assert abs(member.heartbeat_at - datetime.now(UTC)) < timedelta(seconds=WAIT_S)

    cluster.started.remove(replica)
    await replica.stop()
    assert await store.get(key) is None


async def test_either_replica_returns_the_union_in_order_across_pages(
    cluster: Cluster, pair: tuple[PolicyReplica, PolicyReplica]
) -> None:
    for replica in pair:
        got, unreachable = await all_pages(cluster.flows(replica), flow_pb.QueryFlowsRequest())
        assert [record_id(m) for m in got] == expected_order(
            cluster.window_base
        )  # none missing, no duplicate
        assert len(unreachable) >= 2 * PER_REPLICA // PAGE  # several pages
        assert not any(unreachable)


async def test_local_scope_returns_only_the_replicas_own_records(
    cluster: Cluster, pair: tuple[PolicyReplica, PolicyReplica]
) -> None:
    a, _ = pair
    response = await cluster.flows(a).QueryFlows(
        flow_pb.QueryFlowsRequest(scope=flow_pb.QUERY_SCOPE_LOCAL), timeout=WAIT_S
    )
    assert {record_id(m)[0] for m in response.records} == {"node-1"}
    assert len(response.records) == PER_REPLICA
    assert len(response.record_page_tokens) == PER_REPLICA


async def test_filters_apply_on_every_replica(
    cluster: Cluster, pair: tuple[PolicyReplica, PolicyReplica]
) -> None:
    wanted = DomainFilter(pu_ids=frozenset({"node-1-3", "node-2-3", "node-2-6"}))
    got, _ = await all_pages(
        cluster.flows(pair[1]), flow_pb.QueryFlowsRequest(filter=filter_to_proto(wanted))
    )
    assert [record_id(m) for m in got] == [("node-1", 1003), ("node-2", 1003), ("node-2", 1006)]


async def test_an_unreachable_replica_is_named_and_the_rest_returned(
    cluster: Cluster,
    pair: tuple[PolicyReplica, PolicyReplica],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, b = pair
    # b's server goes away while its membership still heartbeats (a hung process, a
    # partition): a answers with its own records and names b.
    await b.server.stop(0)
    got, unreachable = await all_pages(cluster.flows(a), flow_pb.QueryFlowsRequest())
    assert [record_id(m) for m in got] == [
        o for o in expected_order(cluster.window_base) if o[0] == "node-1"
    ]
    assert all(u == ["replica-b"] for u in unreachable)

    # The CLI prints the records it got and one line on stderr naming the missing replica.
    leaf = cluster.ca.issue([ADMIN])
    (tmp_path / "admin.crt").write_bytes(leaf.certificate)
    (tmp_path / "admin.key").write_bytes(leaf.private_key)
    (tmp_path / "bundle.pem").write_bytes(cluster.ca.pem)
    config = tmp_path / "config"
    config.write_text(
        yaml.safe_dump(
            {
                "trust_domain": TRUST_DOMAIN,
                "policy": {"address": a.address},
                "ca_bundle": "bundle.pem",
                "certificate": "admin.crt",
                "key": "admin.key",
            }
        )
    )
    monkeypatch.setenv("TRUSTWIRE_CONFIG", str(config))
    monkeypatch.delenv("TRUSTWIRE_SERVER", raising=False)
    status = await asyncio.to_thread(main, ["flows", "-o", "json"])
    out, err = capsys.readouterr()
    assert status == 0
    assert err.strip().splitlines() == [
        "warning: policy replicas not reached, their flows are missing: replica-b"
    ]
    assert "node-1" in out
    assert "node-2" not in out

    # Suggest, likewise: suggestions from what was reached, the missing replica named.
    stub = policy_grpc.PolicyServiceStub(cluster.channel(a, ADMIN))
    response = await stub.Suggest(policy_pb.SuggestRequest(namespace="shop"), timeout=WAIT_S)
    assert list(response.unreachable_replicas) == ["replica-b"]
    assert sum(s.flow_count for s in response.suggestions) == PER_REPLICA
    status = await asyncio.to_thread(main, ["suggest", "-n", "shop"])
    out, err = capsys.readouterr()
    assert status == 0
    assert err.strip().splitlines()[0] == (
        "warning: policy replicas not reached, suggestions ignore their flows: replica-b"
    )
    assert "kind: NetworkAccessPolicy" in out


async def test_stale_members_are_skipped_and_slow_ones_cut_at_the_deadline(
    cluster: Cluster, store: EtcdStore, settings: PolicySettings, silent_port: int
) -> None:
    a = await cluster.start("replica-a", peer_timeout=0.5)
    await report(cluster, a, NODE_1, records("node-1", cluster.window_base))
    hung = f"127.0.0.1:{silent_port}"
    root = f"{settings.etcd.key_root}replicas/"
    stale = ReplicaMember("replica-dead", hung, datetime.now(UTC) - timedelta(minutes=1))
    slow = ReplicaMember("replica-slow", hung, datetime.now(UTC))
    await store.txn([], [Put(root + m.replica_id, m.encode()) for m in (stale, slow)])

    began = time.monotonic()
    response = await cluster.flows(a).QueryFlows(flow_pb.QueryFlowsRequest(), timeout=WAIT_S)
    elapsed = time.monotonic() - began
    assert sorted(response.unreachable_replicas) == ["replica-dead", "replica-slow"]
    assert len(response.records) == PER_REPLICA
    # The stale one is not dialled; the slow one gets the peer deadline (0.5 s), not more.
    assert 0.4 < elapsed < 2.0

    # A member stale beyond forget_after is deleted by the next heartbeat (guarded).
    old = ReplicaMember("replica-gone", hung, datetime.now(UTC) - timedelta(days=1))
    await store.txn([], [Put(root + old.replica_id, old.encode())])
    assert a.membership is not None
    await a.membership.heartbeat()
    assert await store.get(root + "replica-gone") is None
    assert await store.get(root + "replica-dead") is not None  # stale, not yet forgotten


async def test_malformed_page_tokens_are_invalid_argument(
    cluster: Cluster, pair: tuple[PolicyReplica, PolicyReplica]
) -> None:
    stub = cluster.flows(pair[0])
    first = await stub.QueryFlows(
        flow_pb.QueryFlowsRequest(page=pagination_pb2.PageRequest(page_size=PAGE)), timeout=WAIT_S
    )
    token = first.page.next_page_token
    assert token
    other_filter = flow_pb.FlowFilter(pu_ids=["node-1-0"])
    forged = _forge_peer_token(token)
    for request in (
        flow_pb.QueryFlowsRequest(page=pagination_pb2.PageRequest(page_token="garbage!")),
        flow_pb.QueryFlowsRequest(page=pagination_pb2.PageRequest(page_token="W10")),  # "[]"
        flow_pb.QueryFlowsRequest(
            filter=other_filter, page=pagination_pb2.PageRequest(page_token=token)
        ),
        # The outer token is well formed but the peer's position inside is not its own.
        flow_pb.QueryFlowsRequest(page=pagination_pb2.PageRequest(page_token=forged)),
    ):
        with pytest.raises(InvalidArgument) as raised:
            await stub.QueryFlows(request, timeout=WAIT_S)
        assert raised.value.field == "page.page_token"


def _forge_peer_token(token: str) -> str:
    import base64
    import json

    raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[4] = dict.fromkeys(raw[4], "not-a-store-token")
    return base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")


async def test_suggest_reads_the_whole_cluster(
    cluster: Cluster, pair: tuple[PolicyReplica, PolicyReplica]
) -> None:
    a, _ = pair
    stub = policy_grpc.PolicyServiceStub(cluster.channel(a, ADMIN))
    response = await stub.Suggest(policy_pb.SuggestRequest(namespace="shop"), timeout=WAIT_S)
    # node-2's flows (reported to b only) are evidence at a too.
    assert sum(s.flow_count for s in response.suggestions) == 2 * PER_REPLICA
    assert not response.unreachable_replicas


async def test_enrolled_replicas_ask_each_other_with_their_own_certificates(
    settings: PolicySettings, etcd: EtcdServer, etcd_prefix: bytes, tmp_path: Path
) -> None:
    """As `trustwire up` runs them: certificates enrolled with the identity service (DNS name
    ``localhost``, dialled by IP), so the peer name comes from ``identity.server_name``."""
    inner = await EtcdStore.connect([etcd.endpoint])
    identity = await IdentityServer.start(
        settings_for(tmp_path / "identity"),
        store=PrefixedStore(inner, etcd_prefix.decode() + "identity"),
    )
    replicas: list[PolicyReplica] = []
    base = window_base()
    try:
        for name in ("replica-a", "replica-b"):
            token = await create_token(identity, name, kind=enrollment_pb2.ENROLLMENT_KIND_SERVICE)
            files = await enroll_service(
                identity.enroll_address, token.token, token.ca_sha256, tmp_path / name
            )
            replica_settings = replace(
                settings,
                trust_domain=IDENTITY_DOMAIN,
                tls=TlsSettings(files.certificate, files.key, files.bundle),
                identity=IdentityEndpoint(address=identity.address, server_name=SERVER_NAME),
                cluster=ClusterSettings(replica_id=name),
            )
            store = await EtcdStore.connect([etcd.endpoint], timeout=5.0)
            replica = PolicyReplica(replica_settings, store, close_store=True)
            await replica.start()
            replicas.append(replica)
        a, b = replicas
        await a.flow_store.ingest("node-1", "b-1", records("node-1", base))
        await b.flow_store.ingest("node-2", "b-1", records("node-2", base))
        assert identity.config_path is not None
        admin = ClientConfig.load(identity.config_path)
        tls = ClientTLS.from_files(admin.ca_bundle, admin.certificate, admin.key, SERVER_NAME)
        async with create_channel(a.address, tls) as channel:
            response = await flow_grpc.FlowServiceStub(channel).QueryFlows(
                flow_pb.QueryFlowsRequest(), timeout=WAIT_S
            )
        assert not response.unreachable_replicas
        assert sorted(record_id(m) for m in response.records) == sorted(expected_order(base))
    finally:
        for replica in reversed(replicas):
            await replica.stop()
        await identity.stop()
        await inner.close()
