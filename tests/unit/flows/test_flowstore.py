"""FlowStore on a temporary SQLite file: idempotency, bounds, retention, pagination, filters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from trustwire.errors import InvalidArgument
from trustwire.flows import FlowFilter, Verdict
from trustwire_policy.flowstore import FlowStore, StoredFlow

from .factory import T0, FakeClock, pu, record, reject


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0 + timedelta(minutes=1))


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[FlowStore]:
    s = FlowStore(tmp_path / "flows.db", retention=timedelta(hours=1), max_rows=50, clock=clock)
    yield s
    await s.close()


async def test_a_retried_batch_is_stored_once(store: FlowStore) -> None:
    batch = [record(), record(port=443)]
    first = await store.ingest("node-1", "b1", batch)
    assert (first.accepted, first.duplicate, len(first.stored)) == (2, False, 2)
    again = await store.ingest("node-1", "b1", batch)
    assert (again.accepted, again.duplicate) == (0, True)
    other_node = await store.ingest("node-2", "b1", batch)  # batch ids are per reporter
    assert not other_node.duplicate
    assert await store.count() == 4


async def test_persists_across_reopen(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "flows.db"
    s = FlowStore(path, clock=clock)
    await s.ingest("node-1", "b1", [record()])
    await s.close()
    s = FlowStore(path, clock=clock)
    try:
        assert await s.count() == 1
        assert (await s.ingest("node-1", "b1", [record()])).duplicate
        page = await s.query(FlowFilter())
        assert page.flows[0].record == record()
    finally:
        await s.close()


async def test_max_rows_evicts_the_oldest_stored(store: FlowStore) -> None:
    for i in range(6):
        await store.ingest("node-1", f"b{i}", [record(port=1000 + i * 10 + j) for j in range(10)])
    assert await store.count() == 50
    page = await store.query(FlowFilter(), page_size=1000)
    ports = {f.record.port for f in page.flows}
    assert min(ports) == 1010  # batch 0 is gone
    assert len(ports) == 50


async def test_retention_deletes_old_windows(store: FlowStore, clock: FakeClock) -> None:
    await store.ingest("node-1", "old", [record(start=T0)])
    clock.advance(2 * 3600)
    await store.ingest("node-1", "new", [record(start=clock.now - timedelta(seconds=10))])
    assert await store.count() == 1
    clock.advance(2 * 3600)
    assert await store.prune() == 1
    assert await store.count() == 0


async def test_pages_cover_everything_newest_first_without_repeats(store: FlowStore) -> None:
    records = [record(start=T0 + timedelta(seconds=i), port=2000 + i) for i in range(25)]
    await store.ingest("node-1", "b", records)
    seen: list[int] = []
    token = ""
    while True:
        page = await store.query(FlowFilter(), page_size=7, page_token=token)
        seen += [f.record.port for f in page.flows]
        token = page.next_token
        if not token:
            break
    assert seen == [2000 + i for i in reversed(range(25))]


async def test_page_token_is_bound_to_its_filter(store: FlowStore) -> None:
    await store.ingest("node-1", "b", [record(port=p) for p in range(1, 5)])
    page = await store.query(FlowFilter(), page_size=2)
    assert page.next_token
    with pytest.raises(InvalidArgument, match="another filter"):
        await store.query(FlowFilter(namespace="shop"), page_size=2, page_token=page.next_token)
    with pytest.raises(InvalidArgument, match="page_token"):
        await store.query(FlowFilter(), page_token="garbage!")


async def test_filters(store: FlowStore, clock: FakeClock) -> None:
    await store.ingest(
        "node-1",
        "b",
        [
            record(),
            record(decision=reject()),
            record(source=pu("api", "api"), destination=pu("cache", "cache"), port=6379),
            record(start=T0 - timedelta(hours=3)),  # outside the default last hour
        ],
    )

    async def ports(f: FlowFilter, **kwargs: object) -> list[int]:
        page = await store.query(f, **kwargs)  # type: ignore[arg-type]
        return sorted(x.record.port for x in page.flows)

    assert await ports(FlowFilter()) == [5432, 5432, 6379]
    assert await ports(FlowFilter(verdicts=frozenset({Verdict.REJECT}))) == [5432]
    assert await ports(FlowFilter(pu_ids=frozenset({"cache-id"}))) == [6379]
    assert await ports(FlowFilter(pu_ids=frozenset({"web-id"}))) == [5432, 5432]
    assert await ports(FlowFilter(policy="deny-db")) == [5432]
    assert await ports(FlowFilter(policy="shop/deny-db")) == [5432]
    assert await ports(FlowFilter(policy="shop/nothing")) == []
    assert await ports(FlowFilter(), start=T0 - timedelta(hours=4)) == [5432, 5432, 5432, 6379]
    assert await ports(FlowFilter(), end=T0 - timedelta(hours=2)) == [5432]


async def test_selector_only_queries_scan_boundedly(store: FlowStore) -> None:
    # Selectors are evaluated in Python: a page may be short while more follow.
    from trustwire.policy import Labels, LabelSelector

    misses = [record(port=3000 + i) for i in range(40)]
    hit = record(source=pu("api", "api"), start=T0 - timedelta(seconds=30))
    await store.ingest("node-1", "b", [hit, *misses])
    f = FlowFilter(source_selector=LabelSelector(Labels({"app": "api"})))
    found: list[StoredFlow] = []
    token = ""
    calls = 0
    while True:
        calls += 1
        page = await store.query(f, page_size=1, page_token=token)
        found += page.flows
        token = page.next_token
        if not token:
            break
    assert [x.record.source.pu_id for x in found] == ["api-id"]
    assert calls > 1
