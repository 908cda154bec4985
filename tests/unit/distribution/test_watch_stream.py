"""WatchPolicy server behaviour, driven directly (no network): snapshot, deltas, one unacked
response at a time with coalescing, acks and nacks, resume, compaction, authorization."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest

from trustwire.api.common.v1 import error_pb2
from trustwire.api.policy.v1 import distribution_pb2, policy_service_pb2
from trustwire.errors import PermissionDenied
from trustwire.policy.views import ViewBuilder, apply_delta
from trustwire.runtime import Caller, Role
from trustwire_policy.distribution.codec import delta_from_proto, view_from_snapshot
from trustwire_policy.distribution.hub import ViewHub
from trustwire_policy.distribution.seam import DistributionState
from trustwire_policy.distribution.stream import PolicyDistribution

from .fakes import FakeRecorder, FakeState, allow, state, workload

Response = policy_service_pb2.WatchPolicyResponse
WEB = workload("web", "web", "10.0.0.1")
DB = workload("db", "db", "10.0.0.2")
CACHE = workload("cache", "cache", "10.0.0.3")
PLACED = [(WEB, "node-a"), (DB, "node-b"), (CACHE, "node-b")]


class Session:
    def __init__(
        self,
        distribution: PolicyDistribution,
        enforcer: str,
        resume: int = 0,
        caller: Caller | None = None,
    ) -> None:
        self.requests: asyncio.Queue[policy_service_pb2.WatchPolicyRequest | None] = asyncio.Queue()
        self.requests.put_nowait(
            policy_service_pb2.WatchPolicyRequest(
                subscription=distribution_pb2.PolicySubscription(
                    enforcer_id=enforcer, resume_revision=resume
                )
            )
        )
        # A pump drives the response generator as gRPC would (always awaiting the next one).
        self.received: asyncio.Queue[Response | BaseException] = asyncio.Queue()
        self.pump = asyncio.ensure_future(self._pump(distribution.watch(self._requests(), caller)))
        self.enforcer = enforcer

    async def _pump(self, responses: AsyncIterator[Response]) -> None:
        try:
            async for response in responses:
                self.received.put_nowait(response)
        except Exception as error:
            self.received.put_nowait(error)

    async def _requests(self) -> AsyncIterator[policy_service_pb2.WatchPolicyRequest]:
        while (request := await self.requests.get()) is not None:
            yield request

    async def next(self, timeout: float = 5.0) -> Response:  # noqa: ASYNC109
        item = await asyncio.wait_for(self.received.get(), timeout)
        if isinstance(item, BaseException):
            raise item
        return item

    async def nothing(self) -> None:
        """No response is pending once every ready task has run."""
        await settle()
        assert self.received.empty()

    def ack(self, response: Response) -> None:
        self.requests.put_nowait(
            policy_service_pb2.WatchPolicyRequest(
                ack=distribution_pb2.PolicyAck(
                    response_nonce=response.nonce, applied_revision=response.revision
                )
            )
        )

    def nack(self, response: Response, applied: int, reason: str = "APPLY_FAILED") -> None:
        self.requests.put_nowait(
            policy_service_pb2.WatchPolicyRequest(
                ack=distribution_pb2.PolicyAck(
                    response_nonce=response.nonce,
                    applied_revision=applied,
                    error_detail=error_pb2.ErrorDetail(reason=reason, message="boom"),
                )
            )
        )


@asynccontextmanager
async def served(
    source: FakeState, **kwargs: object
) -> AsyncIterator[tuple[PolicyDistribution, FakeRecorder]]:
    hub = ViewHub(source)
    hub.start()
    recorder = FakeRecorder()
    distribution = PolicyDistribution(hub, recorder, **kwargs)  # type: ignore[arg-type]
    try:
        yield distribution, recorder
    finally:
        await hub.stop()


def view_of(s: DistributionState, enforcer: str):  # type: ignore[no-untyped-def]
    return ViewBuilder(s.cluster, s.topology).view(enforcer)


async def settle() -> None:
    """Let every ready task run to quiescence (bounded: no wall-clock sleeping)."""
    for _ in range(200):
        await asyncio.sleep(0)


async def test_snapshot_then_delta_per_change_with_acks_recorded() -> None:
    source = FakeState()
    s1 = state(1, PLACED, [allow("web-db", "web", "db")])
    source.publish(s1)
    async with served(source) as (distribution, recorder):
        session = Session(distribution, "node-a")
        first = await session.next()
        assert first.WhichOneof("update") == "snapshot"
        assert first.snapshot.reason == distribution_pb2.SNAPSHOT_REASON_INITIAL
        assert first.revision == 1
        assert first.nonce
        view = view_from_snapshot("node-a", [first.snapshot])
        assert view == view_of(s1, "node-a")
        session.ack(first)

        s2 = state(
            2,
            PLACED,
            [allow("web-db", "web", "db", port=5432)],
            traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
        )
        source.publish(s2)
        second = await session.next()
        assert second.WhichOneof("update") == "delta"
        assert (second.revision, second.delta.base_revision) == (2, 1)
        assert second.traceparent == s2.traceparent  # exactly one write since the basis
        assert apply_delta(view, delta_from_proto(second.delta)) == view_of(s2, "node-a")
        assert second.nonce != first.nonce
        session.ack(second)
        await settle()
        assert recorder.acks == [("node-a", 1, None), ("node-a", 2, None)]


async def test_unchanged_view_sends_nothing_but_counts_as_in_sync() -> None:
    source = FakeState()
    source.publish(state(1, PLACED, [allow("web-db", "web", "db")]))
    async with served(source) as (distribution, _):
        session = Session(distribution, "node-a")
        first = await session.next()
        session.ack(first)
        # A change that only concerns node-b's PUs (cache) leaves node-a's view unchanged.
        source.publish(
            state(2, PLACED, [allow("web-db", "web", "db"), allow("c", "cache", "cache")])
        )
        await settle()
        [status] = distribution.status("node-a")
        assert (status.acked_revision, status.in_sync_revision) == (1, 2)
        await session.nothing()


async def test_unacked_response_coalesces_newer_states_latest_wins() -> None:
    source = FakeState()
    source.publish(state(1, PLACED, []))
    async with served(source) as (distribution, _):
        session = Session(distribution, "node-a")
        first = await session.next()
        # Ten writes while the snapshot is unacked: nothing is sent, nothing queues.
        for revision in range(2, 12):
            source.publish(state(revision, PLACED, [allow("web-db", "web", "db", port=revision)]))
            await settle()
        session.ack(first)
        delta = await session.next()
        assert (delta.delta.base_revision, delta.revision) == (1, 11)
        assert delta.traceparent == ""  # coalesced over many writes
        view = apply_delta(
            view_from_snapshot("node-a", [first.snapshot]), delta_from_proto(delta.delta)
        )
        assert view == view_of(source.history[11], "node-a")


async def test_nack_keeps_basis_and_next_change_is_delta_from_last_acked() -> None:
    source = FakeState()
    s1 = state(1, PLACED, [])
    source.publish(s1)
    async with served(source) as (distribution, recorder):
        session = Session(distribution, "node-a")
        first = await session.next()
        session.ack(first)
        source.publish(state(2, PLACED, [allow("a", "web", "db", port=1)]))
        bad = await session.next()
        session.nack(bad, applied=1)
        source.publish(state(3, PLACED, [allow("a", "web", "db", port=3)]))
        retry = await session.next()
        assert (retry.delta.base_revision, retry.revision) == (1, 3)
        view = apply_delta(view_of(s1, "node-a"), delta_from_proto(retry.delta))
        assert view == view_of(source.history[3], "node-a")
        await settle()
        assert recorder.acks[1][0:2] == ("node-a", 1)
        error = recorder.acks[1][2]
        assert error is not None
        assert error.reason == "APPLY_FAILED"


async def test_base_mismatch_nack_gets_a_resync_snapshot() -> None:
    source = FakeState()
    source.publish(state(1, PLACED, []))
    async with served(source) as (distribution, _):
        session = Session(distribution, "node-a")
        session.ack(await session.next())
        source.publish(state(2, PLACED, [allow("a", "web", "db")]))
        delta = await session.next()
        session.nack(delta, applied=0, reason="BASE_REVISION_MISMATCH")
        resync = await session.next()
        assert resync.snapshot.reason == distribution_pb2.SNAPSHOT_REASON_RESYNC
        assert resync.revision == 2


async def test_ack_of_unknown_nonce_is_ignored() -> None:
    source = FakeState()
    source.publish(state(1, PLACED, []))
    async with served(source) as (distribution, recorder):
        session = Session(distribution, "node-a")
        first = await session.next()
        session.ack(Response(nonce="forged", revision=1))
        await settle()
        assert recorder.acks == []
        session.ack(first)
        await settle()
        assert recorder.acks == [("node-a", 1, None)]


async def test_resume_sends_delta_from_the_resumed_revision() -> None:
    source = FakeState()
    s1 = state(1, PLACED, [])
    source.publish(s1)
    source.publish(state(2, PLACED, [allow("a", "web", "db")]))
    source.publish(state(3, PLACED, [allow("a", "web", "db"), allow("b", "db", "web")]))
    async with served(source) as (distribution, _):
        session = Session(distribution, "node-a", resume=1)
        first = await session.next()
        assert (first.delta.base_revision, first.revision) == (1, 3)
        view = apply_delta(view_of(s1, "node-a"), delta_from_proto(first.delta))
        assert view == view_of(source.history[3], "node-a")
        # Already current: an empty delta confirms it.
        current = Session(distribution, "node-a", resume=3)
        confirm = await current.next()
        assert confirm.WhichOneof("update") == "delta"
        assert confirm.delta == distribution_pb2.PolicyDelta(base_revision=3)


async def test_compacted_resume_gets_a_snapshot_with_that_reason() -> None:
    source = FakeState()
    source.publish(state(1, PLACED, []))
    source.publish(state(5, PLACED, [allow("a", "web", "db")]))
    source.compacted_below = 4
    async with served(source) as (distribution, _):
        session = Session(distribution, "node-a", resume=1)
        first = await session.next()
        assert first.snapshot.reason == distribution_pb2.SNAPSHOT_REASON_REVISION_COMPACTED
        assert first.revision == 5


async def test_resume_ahead_of_this_replica_waits_for_it_to_catch_up() -> None:
    source = FakeState()
    source.publish(state(1, PLACED, []))
    async with served(source) as (distribution, _):
        session = Session(distribution, "node-a", resume=2)
        await session.nothing()
        source.publish(state(2, PLACED, [allow("a", "web", "db")]))
        first = await session.next()
        assert first.WhichOneof("update") == "delta"
        assert (first.delta.base_revision, first.revision) == (2, 2)


async def test_snapshot_parts_are_acked_once() -> None:
    source = FakeState()
    source.publish(state(1, PLACED, [allow("a", "web", "db"), allow("b", "db", "cache")]))
    async with served(source, max_snapshot_part_bytes=50) as (distribution, recorder):
        session = Session(distribution, "node-b")
        first, second = await session.next(), await session.next()
        assert (first.snapshot.final_part, second.snapshot.final_part) == (False, True)
        assert view_from_snapshot("node-b", [first.snapshot, second.snapshot]) == view_of(
            source.history[1], "node-b"
        )
        session.ack(second)
        await settle()
        assert recorder.acks == [("node-b", 1, None)]


async def test_subscribing_as_another_enforcer_is_denied() -> None:
    source = FakeState()
    source.publish(state(1, PLACED, []))
    async with served(source) as (distribution, _):
        node_b = Caller("td", Role.ENFORCER, "node-b")
        with pytest.raises(PermissionDenied):
            await Session(distribution, "node-a", caller=node_b).next()
        with pytest.raises(PermissionDenied):
            await Session(distribution, "node-a", caller=Caller("td", Role.ADMIN, "node-a")).next()
        first = await Session(distribution, "node-b", caller=node_b).next()
        assert first.WhichOneof("update") == "snapshot"


def _tp(n: int) -> str:
    return f"00-{n:032x}-{n:016x}-01"


async def test_coalesced_delta_lists_every_write_it_covers() -> None:
    source = FakeState()
    source.publish(state(1, PLACED, []))
    async with served(source) as (distribution, _):
        session = Session(distribution, "node-a")
        first = await session.next()
        traces: tuple[tuple[int, str], ...] = ()
        for revision in range(2, 5):  # three writes while the snapshot is unacked
            traces += ((revision, _tp(revision)),)
            s = state(
                revision, PLACED, [allow("web-db", "web", "db", port=revision)], _tp(revision)
            )
            source.publish(replace(s, traces=traces))
            await settle()
        session.ack(first)
        delta = await session.next()
        assert (delta.delta.base_revision, delta.revision) == (1, 4)
        assert list(delta.write_traceparents) == [_tp(2), _tp(3), _tp(4)]
        assert delta.traceparent == ""  # not a single write
        session.ack(delta)
        s5 = state(5, PLACED, [allow("web-db", "web", "db", port=5)], _tp(5))
        source.publish(replace(s5, traces=(*traces, (5, _tp(5)))))
        single = await session.next()
        assert (single.traceparent, list(single.write_traceparents)) == (_tp(5), [_tp(5)])


async def test_in_sync_revision_and_connection_are_recorded() -> None:
    source = FakeState()
    source.publish(state(1, PLACED, [allow("web-db", "web", "db")]))
    async with served(source) as (distribution, recorder):
        session = Session(distribution, "node-a")
        session.ack(await session.next())
        # node-a's view does not change at 2: recorded as converged there, without a response.
        source.publish(
            state(2, PLACED, [allow("web-db", "web", "db"), allow("c", "cache", "cache")])
        )
        await settle()
        await session.nothing()
        assert recorder.acks == [("node-a", 1, None), ("node-a", 2, None)]
        assert recorder.connections == [("node-a", True)]
        session.requests.put_nowait(None)  # the enforcer ends its stream
        await asyncio.wait_for(distribution.wait_disconnected("node-a"), 5.0)
        assert recorder.connections == [("node-a", True), ("node-a", False)]
