"""What only the memory backend has: its history bound and how it ends watches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from trustwire.errors import FailedPrecondition, Unavailable
from trustwire.store import KeyValueStore, Put
from trustwire.store.memory import MemoryStore

WAIT = 5.0


def test_it_implements_the_contract() -> None:
    assert isinstance(MemoryStore(), KeyValueStore)


async def test_history_is_bounded_and_a_watcher_it_overtakes_gets_revision_compacted() -> None:
    store = MemoryStore(history_limit=10)
    slow = store.watch("/", start_revision=2)
    assert isinstance(slow, AsyncGenerator)
    await store.txn([], [Put("/k", b"0")])
    async with asyncio.timeout(WAIT):
        first = await anext(slow)  # then the consumer stalls while 100 writes land
    assert [e.value for e in first] == [b"0"]

    for i in range(1, 101):
        await store.txn([], [Put("/k", str(i).encode())])

    current = await store.revision()
    # At least history_limit revisions stay readable, and not many more (amortized steps).
    oldest = current - 10 + 1
    assert (await store.list("/", revision=oldest)).entries[0].value == b"91"
    with pytest.raises(FailedPrecondition) as too_old:
        await store.list("/", revision=oldest - 2)
    assert too_old.value.reason == "REVISION_COMPACTED"
    assert sum(len(v) for v in store._versions.values()) <= 10 + 1  # bounded, not 101

    # The slow watcher's next revision was compacted away: it is told so, not fed a queue.
    with pytest.raises(FailedPrecondition) as overtaken:
        async with asyncio.timeout(WAIT):
            await anext(slow)
    assert overtaken.value.reason == "REVISION_COMPACTED"
    assert int(overtaken.value.metadata["compact_revision"]) > 3
    assert store.active_watches == 0


async def test_close_ends_watches_and_refuses_later_calls() -> None:
    store = MemoryStore()
    delivered = asyncio.Event()

    async def consume() -> list[list[str]]:
        keys = []
        async for batch in store.watch("/", start_revision=2):
            keys.append([e.key for e in batch])
            delivered.set()
        return keys

    consumer = asyncio.create_task(consume())
    await store.txn([], [Put("/k", b"v")])
    async with asyncio.timeout(WAIT):
        await delivered.wait()
        await store.close()
        assert await consumer == [["/k"]]  # the iteration ended, without an error
    assert store.active_watches == 0
    with pytest.raises(Unavailable):
        await store.get("/k")
