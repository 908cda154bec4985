"""The ``KeyValueStore`` contract, run against every backend (``memory`` and a real ``etcd``).

Each test states one clause of ``trustwire.store._interface``. Every wait is bounded by
``WAIT``; nothing sleeps to let time pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence

import pytest

from tests.contract.conftest import Backend
from tests.support.waiting import eventually
from trustwire.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from trustwire.store import (
    ABSENT,
    Compare,
    Delete,
    Entry,
    Event,
    EventType,
    KeyValueStore,
    Put,
)

WAIT = 10.0  # seconds: bound on every wait for a condition

Batch = Sequence[Event]


# -- helpers ------------------------------------------------------------------------------


async def put(store: KeyValueStore, key: str, value: bytes) -> int:
    result = await store.txn([], [Put(key, value)])
    assert result.succeeded
    return result.revision


async def delete(store: KeyValueStore, key: str) -> int:
    result = await store.txn([], [Delete(key)])
    assert result.succeeded
    return result.revision


@contextlib.asynccontextmanager
async def watching(
    store: KeyValueStore, prefix: str, start_revision: int
) -> AsyncIterator[AsyncGenerator[Batch, None]]:
    """A watch that is closed (``aclose``) on exit, as every consumer must."""
    watch = store.watch(prefix, start_revision=start_revision)
    assert isinstance(watch, AsyncGenerator)  # so that consumers can aclose() it
    try:
        yield watch
    finally:
        await watch.aclose()


async def collect(watch: AsyncIterator[Batch], until_revision: int) -> list[Batch]:
    """Batches until one at ``until_revision`` or later arrives (bounded by WAIT)."""
    batches: list[Batch] = []
    async with asyncio.timeout(WAIT):
        async for batch in watch:
            batches.append(batch)
            if batch[-1].mod_revision >= until_revision:
                return batches
    raise AssertionError(f"watch ended before revision {until_revision}: {batches}")


def shape(batches: Sequence[Batch]) -> list[tuple[int, list[tuple[str, str, bytes, bytes | None]]]]:
    return [
        (b[0].mod_revision, [(e.type.value, e.key, e.value, e.prev_value) for e in b])
        for b in batches
    ]


# -- single keys, revisions, versions -----------------------------------------------------


async def test_a_fresh_store_is_at_revision_1(fresh: Backend) -> None:
    assert await fresh.store.revision() == 1
    page = await fresh.store.list("")
    assert (page.entries, page.revision, page.more) == ((), 1, False)


async def test_put_get_update_delete_recreate(backend: Backend) -> None:
    store, key = backend.store, backend.key("k")
    assert await store.get(key) is None

    r1 = await put(store, key, b"v1")
    assert await store.get(key) == Entry(key, b"v1", r1, r1, 1)

    r2 = await put(store, key, b"v2")
    assert r2 > r1
    assert await store.get(key) == Entry(key, b"v2", r1, r2, 2)

    r3 = await delete(store, key)
    assert r3 > r2
    assert await store.get(key) is None

    # A recreated key starts over: new create_revision, version 1.
    r4 = await put(store, key, b"v3")
    assert await store.get(key) == Entry(key, b"v3", r4, r4, 1)


async def test_values_are_arbitrary_bytes(backend: Backend) -> None:
    key = backend.key("bytes")
    value = bytes(range(256)) + b""
    await put(backend.store, key, value)
    got = await backend.store.get(key)
    assert got is not None
    assert got.value == value
    await put(backend.store, key, b"")  # empty values are values, not deletions
    got = await backend.store.get(key)
    assert got is not None
    assert got.value == b""
    assert got.version == 2


async def test_one_revision_counter_is_shared_by_all_keys(backend: Backend) -> None:
    store = backend.store
    before = await store.revision()
    ra = await put(store, backend.key("a"), b"1")
    rb = await put(store, backend.key("b"), b"2")
    ra2 = await put(store, backend.key("a"), b"3")

    assert (ra, rb, ra2) == (before + 1, before + 2, before + 3)
    assert await store.revision() == ra2
    b = await store.get(backend.key("b"))
    assert b is not None
    assert b.mod_revision == rb


async def test_a_transaction_is_one_revision_for_all_its_ops(backend: Backend) -> None:
    store = backend.store
    await put(store, backend.key("gone"), b"x")
    before = await store.revision()

    result = await store.txn(
        [],
        [Put(backend.key("a"), b"1"), Put(backend.key("b"), b"2"), Delete(backend.key("gone"))],
    )

    assert result.succeeded
    assert result.revision == before + 1
    a, b = await store.get(backend.key("a")), await store.get(backend.key("b"))
    assert a is not None
    assert b is not None
    assert a.mod_revision == b.mod_revision == result.revision
    assert await store.get(backend.key("gone")) is None


async def test_deleting_a_missing_key_creates_no_revision(backend: Backend) -> None:
    before = await backend.store.revision()
    result = await backend.store.txn([], [Delete(backend.key("never"))])
    assert result.succeeded
    assert result.revision == before
    assert await backend.store.revision() == before

    empty = await backend.store.txn([], [])
    assert empty.succeeded
    assert empty.revision == before


# -- compare-and-swap ---------------------------------------------------------------------


async def test_compare_and_swap_on_mod_revision(backend: Backend) -> None:
    store, key = backend.store, backend.key("cas")
    seen = await put(store, key, b"v0")

    won = await store.txn([Compare(key, seen)], [Put(key, b"v1")])
    assert won.succeeded
    assert won.failed == ()

    stale = await store.txn([Compare(key, seen)], [Put(key, b"lost")])
    assert not stale.succeeded
    assert stale.failed == (key,)
    assert stale.revision == won.revision  # unchanged: nothing was written
    got = await store.get(key)
    assert got is not None
    assert (got.value, got.mod_revision) == (b"v1", won.revision)


async def test_absent_guard_creates_only_once(backend: Backend) -> None:
    store, key = backend.store, backend.key("once")

    first = await store.txn([Compare(key, ABSENT)], [Put(key, b"first")])
    second = await store.txn([Compare(key, ABSENT)], [Put(key, b"second")])

    assert first.succeeded
    assert not second.succeeded
    assert second.failed == (key,)
    got = await store.get(key)
    assert got is not None
    assert got.value == b"first"

    # A revision guard on a missing key fails; ABSENT holds again after a delete.
    missing = backend.key("missing")
    assert (await store.txn([Compare(missing, first.revision)], [Put(missing, b"x")])).failed == (
        missing,
    )
    await delete(store, key)
    assert (await store.txn([Compare(key, ABSENT)], [Put(key, b"again")])).succeeded


async def test_failed_guard_applies_no_op_and_names_every_failed_key(backend: Backend) -> None:
    store = backend.store
    a, b, c = backend.key("a"), backend.key("b"), backend.key("c")
    ra = await put(store, a, b"a")
    await put(store, b, b"b")
    before = await store.revision()

    result = await store.txn(
        [Compare(a, ra), Compare(b, ABSENT), Compare(c, 12345)],
        [Put(a, b"new"), Put(c, b"new"), Delete(b)],
    )

    assert not result.succeeded
    assert result.failed == (b, c)  # a's guard held
    assert result.revision == before == await store.revision()
    assert [(e.key, e.value) for e in (await store.list(backend.prefix)).entries] == [
        (a, b"a"),
        (b, b"b"),
    ]


async def test_concurrent_writers_with_the_same_guard_have_exactly_one_winner(
    backend: Backend,
) -> None:
    store, key = backend.store, backend.key("contended")
    seen = await put(store, key, b"v0")

    results = await asyncio.gather(
        *(store.txn([Compare(key, seen)], [Put(key, f"w{i}".encode())]) for i in range(10))
    )

    winners = [i for i, r in enumerate(results) if r.succeeded]
    assert len(winners) == 1
    assert all(r.failed == (key,) for r in results if not r.succeeded)
    got = await store.get(key)
    assert got is not None
    assert got.value == f"w{winners[0]}".encode()
    assert got.mod_revision == results[winners[0]].revision


async def test_read_modify_write_loop_loses_no_update(backend: Backend) -> None:
    """The CAS idiom: read, compute, write guarded by the read's mod_revision, retry on a
    failed guard. Concurrent incrementers then never lose an increment."""
    store, key = backend.store, backend.key("counter")

    async def increment() -> None:
        while True:
            current = await store.get(key)
            count = int(current.value) if current else 0
            guard = Compare(key, current.mod_revision if current else ABSENT)
            if (await store.txn([guard], [Put(key, str(count + 1).encode())])).succeeded:
                return

    await asyncio.gather(*(increment() for _ in range(20)))

    got = await store.get(key)
    assert got is not None
    assert got.value == b"20"
    assert got.version == 20


async def test_invalid_transactions_are_rejected_whole(backend: Backend) -> None:
    store, key = backend.store, backend.key("k")
    before = await store.revision()

    with pytest.raises(InvalidArgument) as twice:
        await store.txn([], [Put(backend.key("other"), b"1"), Put(key, b"1"), Put(key, b"2")])
    assert twice.value.field == "ops[2].key"
    with pytest.raises(InvalidArgument):
        await store.txn([], [Put(key, b"1"), Delete(key)])
    with pytest.raises(InvalidArgument) as empty:
        await store.txn([], [Put("", b"1")])
    assert empty.value.field == "ops[0].key"
    with pytest.raises(ResourceExhausted):
        await store.txn([], [Put(backend.key(f"n{i:03}"), b"") for i in range(129)])

    assert await store.revision() == before
    assert (await store.list(backend.prefix)).entries == ()
    # 128 operations is etcd's default limit, and allowed.
    assert (await store.txn([], [Put(backend.key(f"n{i:03}"), b"") for i in range(128)])).succeeded


# -- list ---------------------------------------------------------------------------------


async def test_list_is_in_key_order_and_prefixes_are_raw_string_prefixes(backend: Backend) -> None:
    store = backend.store
    names = ["a/b/2", "a/bc", "a/b/1", "a/b/é", "a/b/z", "a/b", "a/a", "b"]
    random.Random(7).shuffle(names)
    await store.txn([], [Put(backend.key(n), n.encode()) for n in names])

    def keys(entries: Sequence[Entry]) -> list[str]:
        return [e.key.removeprefix(backend.prefix) for e in entries]

    directory = await store.list(backend.key("a/b/"))
    assert keys(directory.entries) == ["a/b/1", "a/b/2", "a/b/z", "a/b/é"]  # not a/bc, not a/b
    raw = await store.list(backend.key("a/b"))
    assert keys(raw.entries) == ["a/b", "a/b/1", "a/b/2", "a/b/z", "a/b/é", "a/bc"]
    everything = await store.list(backend.prefix)
    assert keys(everything.entries) == sorted(names)
    assert everything.revision == await store.revision()
    assert not everything.more


async def test_list_pages_with_start_after_limit_and_more(backend: Backend) -> None:
    store = backend.store
    names = [f"k{i}" for i in range(7)]
    await store.txn([], [Put(backend.key(n), b"") for n in names])
    await put(store, backend.prefix + "\x7f-after-the-prefix-range", b"")  # not under prefix/k

    first = await store.list(backend.key("k"), limit=3)
    # Pages after the first are read at its revision: a consistent snapshot, even while
    # writes land in between.
    await put(store, backend.key("k00"), b"late")  # sorts between k0 and k1
    pages = [first]
    while pages[-1].more:
        pages.append(
            await store.list(
                backend.key("k"),
                start_after=pages[-1].entries[-1].key,
                limit=3,
                revision=first.revision,
            )
        )

    assert [[e.key for e in p.entries] for p in pages] == [
        [backend.key(n) for n in names[0:3]],
        [backend.key(n) for n in names[3:6]],
        [backend.key(n) for n in names[6:7]],
    ]
    assert [p.more for p in pages] == [True, True, False]
    assert all(p.revision == first.revision for p in pages)
    # An exactly full last page says more=False.
    assert not (await store.list(backend.key("k"), start_after=backend.key("k3"), limit=3)).more
    # start_after before the prefix starts at the prefix; after it, the page is empty.
    assert len((await store.list(backend.key("k"), start_after="/", limit=2)).entries) == 2
    assert (await store.list(backend.key("k"), start_after=backend.key("z"))).entries == ()


async def test_list_at_an_old_revision_sees_the_state_then(backend: Backend) -> None:
    store = backend.store
    a, b, c = backend.key("a"), backend.key("b"), backend.key("c")
    await store.txn([], [Put(a, b"a1"), Put(b, b"b1")])
    then = await store.revision()
    await store.txn([], [Put(a, b"a2"), Delete(b), Put(c, b"c1")])

    old = await store.list(backend.prefix, revision=then)
    now = await store.list(backend.prefix)

    assert [(e.key, e.value, e.version) for e in old.entries] == [(a, b"a1", 1), (b, b"b1", 1)]
    assert old.revision == then
    assert [(e.key, e.value, e.version) for e in now.entries] == [(a, b"a2", 2), (c, b"c1", 1)]
    assert now.revision == then + 1


async def test_list_at_a_future_revision_is_invalid(backend: Backend) -> None:
    future = await backend.store.revision() + 100
    with pytest.raises(InvalidArgument) as caught:
        await backend.store.list(backend.prefix, revision=future)
    assert caught.value.reason == "FUTURE_REVISION"


# -- watch --------------------------------------------------------------------------------


async def test_watch_replays_history_then_live_events_exactly_once(backend: Backend) -> None:
    """500 random transactions from 8 concurrent writers (each on keys of its own, so each
    knows exactly which events its transaction produced); a watch from before the first write
    is opened half-way. It must deliver every event once, in revision order, one batch per
    revision, with the right previous values: no skip, no duplicate."""
    store = backend.store
    start = await store.revision() + 1
    expected: dict[int, list[tuple[str, str, bytes, bytes | None]]] = {}
    half_written = asyncio.Event()
    written = 0

    async def writer(w: int) -> None:
        nonlocal written
        rng = random.Random(w)
        state: dict[str, bytes] = {}
        keys = [backend.key(f"w{w}/k{j}") for j in range(4)]
        for i in range(500 // 8 + (w < 500 % 8)):
            ops: list[Put | Delete] = []
            for key in rng.sample(keys, rng.randint(1, 3)):
                ops.append(Put(key, f"{w}.{i}".encode()) if rng.random() < 0.7 else Delete(key))
            events: list[tuple[str, str, bytes, bytes | None]] = []
            for op in ops:
                if isinstance(op, Put):
                    events.append(("put", op.key, op.value, state.get(op.key)))
                    state[op.key] = op.value
                elif op.key in state:
                    events.append(("delete", op.key, b"", state.pop(op.key)))
            result = await store.txn([], ops)
            assert result.succeeded
            if events:
                assert result.revision not in expected
                expected[result.revision] = events
            written += 1
            if written == 250:
                half_written.set()

    end = backend.key("end")

    async def consume() -> list[Batch]:
        await half_written.wait()
        async with watching(store, backend.prefix, start) as watch:
            batches: list[Batch] = []
            async with asyncio.timeout(WAIT):
                async for batch in watch:
                    batches.append(batch)
                    if any(e.key == end for e in batch):
                        return batches
        raise AssertionError("the watch ended")

    consumer = asyncio.create_task(consume())
    await asyncio.gather(*(writer(w) for w in range(8)))
    last = await put(store, end, b"")  # written after all others: the consumer's stop mark
    expected[last] = [("put", end, b"", None)]
    batches = await consumer

    assert shape(batches) == sorted(expected.items())


async def test_watch_from_a_past_revision_starts_exactly_there(backend: Backend) -> None:
    store = backend.store
    revisions = [await put(store, backend.key("k"), f"v{i}".encode()) for i in range(5)]

    async with watching(store, backend.prefix, revisions[2]) as watch:
        batches = await collect(watch, revisions[-1])

    assert shape(batches) == [
        (revisions[i], [("put", backend.key("k"), f"v{i}".encode(), f"v{i - 1}".encode())])
        for i in (2, 3, 4)
    ]


async def test_watch_batches_hold_one_transaction_in_op_order(backend: Backend) -> None:
    store = backend.store
    a, b, c = backend.key("a"), backend.key("b"), backend.key("c")
    r1 = await put(store, c, b"c0")
    r2 = (await store.txn([], [Put(b, b"b1"), Delete(c), Put(a, b"a1")])).revision
    r3 = await put(store, a, b"a2")

    async with watching(store, backend.prefix, r1 + 1) as watch:
        batches = await collect(watch, r3)

    assert shape(batches) == [
        (r2, [("put", b, b"b1", None), ("delete", c, b"", b"c0"), ("put", a, b"a1", None)]),
        (r3, [("put", a, b"a2", b"a1")]),
    ]
    assert all(e.type is EventType.DELETE for e in batches[0] if e.key == c)


async def test_watch_delivers_live_events_and_only_under_its_prefix(backend: Backend) -> None:
    store = backend.store
    start = await store.revision() + 1
    async with watching(store, backend.key("a/b/"), start) as watch:
        first = asyncio.ensure_future(anext(watch))  # iterating before anything is written
        await put(store, backend.key("a/bc"), b"sibling, not under a/b/")
        r = await put(store, backend.key("a/b/x"), b"mine")
        async with asyncio.timeout(WAIT):
            batch = await first
        rd = await delete(store, backend.key("a/b/x"))
        later = await collect(watch, rd)

    assert shape([batch, *later]) == [
        (r, [("put", backend.key("a/b/x"), b"mine", None)]),
        (rd, [("delete", backend.key("a/b/x"), b"", b"mine")]),
    ]


async def test_watch_needs_a_start_revision(backend: Backend) -> None:
    with pytest.raises(InvalidArgument) as caught:
        async with watching(backend.store, backend.prefix, 0) as watch:
            await anext(watch)
    assert caught.value.field == "start_revision"


async def test_closing_a_watch_releases_it(isolated: Backend) -> None:
    store = isolated.store

    def count_is(n: int) -> Callable[[], Awaitable[bool]]:
        async def probe() -> bool:
            return await isolated.open_watches() == n

        return probe

    await eventually(count_is(0), "no watch is open before the test")

    # Closed by its consumer (aclose) while it holds a batch.
    r = await put(store, isolated.key("k"), b"v")
    async with watching(store, isolated.prefix, r) as watch:
        async with asyncio.timeout(WAIT):
            await anext(watch)
        await eventually(count_is(1), "the watch is open")
    await eventually(count_is(0), "aclose released the watch")

    # Ended by cancelling the task that waits on it for new events.
    async def consume() -> None:
        async with watching(store, isolated.prefix, r + 1) as w:
            async for _ in w:
                pass

    task = asyncio.create_task(consume())
    await eventually(count_is(1), "the consumer's watch is open")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(count_is(0), "cancelling the consumer released the watch")


# -- compaction ---------------------------------------------------------------------------


async def test_compaction_forgets_history_before_the_revision(isolated: Backend) -> None:
    store, key = isolated.store, isolated.key("k")
    revisions = [await put(store, key, f"v{i}".encode()) for i in range(3)]
    kept = revisions[2]

    await store.compact(kept)

    # Reads: at the compaction revision and later fine, before it REVISION_COMPACTED.
    page = await store.list(isolated.prefix, revision=kept)
    assert [e.value for e in page.entries] == [b"v2"]
    with pytest.raises(FailedPrecondition) as listed:
        await store.list(isolated.prefix, revision=revisions[1])
    assert listed.value.reason == "REVISION_COMPACTED"
    assert listed.value.metadata["revision"] == str(revisions[1])

    # Watches: from the compaction revision fine (it still holds that revision's events),
    # from before it REVISION_COMPACTED naming the compaction revision to resync from.
    with pytest.raises(FailedPrecondition) as watched:
        async with watching(store, isolated.prefix, revisions[0]) as watch:
            await collect(watch, kept)
    assert watched.value.reason == "REVISION_COMPACTED"
    assert watched.value.metadata["compact_revision"] == str(kept)
    later = await put(store, key, b"v3")
    async with watching(store, isolated.prefix, kept) as watch:
        # The compaction revision's own events lose their previous value (etcd reads it at
        # mod_revision - 1, which is compacted); later events keep theirs.
        assert shape(await collect(watch, later)) == [
            (kept, [("put", key, b"v2", None)]),
            (later, [("put", key, b"v3", b"v2")]),
        ]

    # The current state is untouched.
    got = await store.get(key)
    assert got == Entry(key, b"v3", revisions[0], later, 4)


async def test_compaction_is_idempotent_and_never_in_the_future(isolated: Backend) -> None:
    store = isolated.store
    r = await put(store, isolated.key("k"), b"v")
    await store.compact(r)
    await store.compact(r)  # again: no-op
    await store.compact(r - 1)  # below: no-op
    with pytest.raises(InvalidArgument) as caught:
        await store.compact(r + 100)
    assert caught.value.reason == "FUTURE_REVISION"
    with pytest.raises(InvalidArgument):
        await store.compact(0)
    assert (await store.list(isolated.prefix, revision=r)).entries[0].value == b"v"


async def test_deleted_keys_vanish_from_compacted_history(isolated: Backend) -> None:
    store = isolated.store
    a, b = isolated.key("a"), isolated.key("b")
    await store.txn([], [Put(a, b"a"), Put(b, b"b")])
    await delete(store, a)
    r = await put(store, b, b"b2")
    await store.compact(r)

    assert [(e.key, e.value) for e in (await store.list(isolated.prefix, revision=r)).entries] == [
        (b, b"b2")
    ]
    r2 = await put(store, a, b"a-again")
    got = await store.get(a)
    assert got == Entry(a, b"a-again", r2, r2, 1)
