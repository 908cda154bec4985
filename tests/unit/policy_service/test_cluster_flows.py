"""ClusterFlows merging: several in-memory stores behind a fake peer transport. Random data and
filters (the namespace criterion is evaluated after SQL, so stores return short and even empty
pages while more follow): every page size gives exactly the records of all stores, in the
cluster order, once."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from tests.unit.flows.factory import T0, FakeClock, pu, record
from trustwire.errors import InvalidArgument, Unavailable
from trustwire.flows import FlowFilter, FlowRecord
from trustwire.store.memory import MemoryStore
from trustwire_policy.cluster_flows import ClusterFlows, ReplicaPage
from trustwire_policy.flowstore import FlowStore
from trustwire_policy.replicas import ReplicaMember, ReplicaMembership, advertised_address
from trustwire_policy.settings import ClusterSettings

IDS = ("r-a", "r-b", "r-c")


class StorePeers:
    """Peers answering from their stores directly, as ``QUERY_SCOPE_LOCAL`` does."""

    def __init__(self, stores: dict[str, FlowStore]) -> None:
        self.stores = stores
        self.down: set[str] = set()

    async def query(
        self,
        member: ReplicaMember,
        flow_filter: FlowFilter,
        *,
        start: datetime,
        end: datetime,
        page_size: int,
        page_token: str,
        time_limit: float,
    ) -> ReplicaPage:
        if member.replica_id in self.down:
            raise Unavailable("connection refused")
        page = await self.stores[member.address].query(
            flow_filter, start=start, end=end, page_size=page_size, page_token=page_token
        )
        return ReplicaPage(tuple(f.record for f in page.flows), page.resume_tokens, page.next_token)


@pytest.fixture
async def stores() -> AsyncIterator[dict[str, FlowStore]]:
    clock = FakeClock(T0 + timedelta(minutes=30))
    out = {rid: FlowStore(None, clock=clock) for rid in IDS}
    yield out
    for store in out.values():
        await store.close()


async def cluster_of(stores: dict[str, FlowStore], peers: StorePeers) -> ClusterFlows:
    kv = MemoryStore()
    clock = FakeClock(T0 + timedelta(minutes=30))
    for rid in IDS[1:]:  # the others register themselves (address: the store to read)
        other = ReplicaMembership(kv, "/t/", replica_id=rid, address=rid, clock=clock)
        await other.heartbeat()
    me = ReplicaMembership(kv, "/t/", replica_id=IDS[0], address=IDS[0], clock=clock)
    return ClusterFlows(stores[IDS[0]], replica_id=IDS[0], membership=me, peers=peers, clock=clock)


async def fill(stores: dict[str, FlowStore], rng: random.Random) -> list[tuple[str, FlowRecord]]:
    """Random records per store; returns (replica, record) in the expected cluster order."""
    rows: list[tuple[int, str, int, FlowRecord]] = []
    for rid, store in stores.items():
        batch = []
        for i in range(rng.randint(0, 25)):
            namespace = rng.choice(("shop", "shop", "shop", "shop", "other"))
            batch.append(
                record(
                    start=T0 + timedelta(seconds=10 * rng.randint(0, 30)),
                    reporter=f"node-{rid}",
                    port=i,
                    destination=pu("db", "db", namespace=namespace, ip="10.0.0.2"),
                )
            )
        await store.ingest(f"node-{rid}", "b1", batch)
        rows += [(-int(r.window_end.timestamp()), rid, -i, r) for i, r in enumerate(batch)]
    rows.sort(key=lambda row: row[:3])
    return [(rid, r) for _, rid, _, r in rows]


async def listing(
    cluster: ClusterFlows, flow_filter: FlowFilter, page_size: int
) -> tuple[list[FlowRecord], set[str]]:
    out: list[FlowRecord] = []
    unreachable: set[str] = set()
    token = ""
    for _ in range(1000):
        page = await cluster.query(flow_filter, page_size=page_size, page_token=token)
        out += page.records
        unreachable.update(page.unreachable)
        token = page.next_token
        if not token:
            return out, unreachable
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize("seed", range(6))
async def test_pages_hold_every_record_once_in_cluster_order(
    stores: dict[str, FlowStore], seed: int
) -> None:
    rng = random.Random(seed)
    expected = await fill(stores, rng)
    cluster = await cluster_of(stores, StorePeers(stores))
    for flow_filter in (FlowFilter(), FlowFilter(namespace="other")):
        wanted = [r for _, r in expected if flow_filter.matches(r)]
        for page_size in (1, 2, 5, 100):
            got, unreachable = await listing(cluster, flow_filter, page_size)
            assert got == wanted, (flow_filter, page_size)
            assert not unreachable


async def test_a_replica_lost_mid_listing_is_named_on_every_later_page(
    stores: dict[str, FlowStore],
) -> None:
    expected = await fill(stores, random.Random(42))
    peers = StorePeers(stores)
    cluster = await cluster_of(stores, peers)
    first = await cluster.query(FlowFilter(), page_size=3)
    peers.down.add("r-b")
    rest, unreachable = await listing_from(cluster, first.next_token)
    assert unreachable == [("r-b",)] * len(unreachable)
    got = [*first.records, *rest]
    # Nothing out of order and nothing twice; only r-b's later records are missing.
    assert len({(r.reporter, r.port) for r in got}) == len(got)
    kept = [r for rid, r in expected if rid != "r-b" or r in first.records]
    assert got == kept


async def listing_from(
    cluster: ClusterFlows, token: str
) -> tuple[list[FlowRecord], list[tuple[str, ...]]]:
    out: list[FlowRecord] = []
    unreachable: list[tuple[str, ...]] = []
    while token:
        page = await cluster.query(FlowFilter(), page_size=3, page_token=token)
        out += page.records
        unreachable.append(page.unreachable)
        token = page.next_token
    return out, unreachable


async def test_tokens_are_bound_to_their_query(stores: dict[str, FlowStore]) -> None:
    await fill(stores, random.Random(7))
    cluster = await cluster_of(stores, StorePeers(stores))
    first = await cluster.query(FlowFilter(), page_size=1)
    assert first.next_token
    for flow_filter, token in (
        (FlowFilter(), "%%%"),
        (FlowFilter(), first.next_token[:-4]),
        (FlowFilter(namespace="shop"), first.next_token),
    ):
        with pytest.raises(InvalidArgument) as raised:
            await cluster.query(flow_filter, page_token=token)
        assert raised.value.field == "page.page_token"


@pytest.mark.parametrize(
    ("configured", "bound", "expected"),
    [
        ("", "127.0.0.1:8445", "127.0.0.1:8445"),
        ("policy-1.example:8445", "0.0.0.0:8445", "policy-1.example:8445"),
        ("", "0.0.0.0:8445", None),
        ("", "[::]:8445", None),
        ("no-port", "127.0.0.1:1", None),
    ],
)
def test_the_advertised_address_is_never_a_wildcard(
    configured: str, bound: str, expected: str | None
) -> None:
    if expected is None:
        with pytest.raises(InvalidArgument) as raised:
            advertised_address(configured, bound)
        assert raised.value.field == "cluster.advertise_address"
    else:
        assert advertised_address(configured, bound) == expected


@pytest.mark.parametrize(
    "fields",
    [
        {"replica_id": "a/b"},
        {"heartbeat_interval": 15.0, "stale_after": 15.0},
        {"stale_after": 700.0},
        {"peer_timeout": 0.0},
    ],
)
def test_cluster_settings_are_checked_at_load(fields: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        ClusterSettings(**fields)  # type: ignore[arg-type]
