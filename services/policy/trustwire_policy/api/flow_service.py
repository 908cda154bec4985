"""``FlowService`` servicer (ingest, query, watch) and the transport side of ``Suggest``.

Handlers raise ``trustwire.errors``; the runtime maps them to status codes.
``current_caller()`` is ``None`` only without mutual TLS (development and tests).

Attribution: over mutual TLS an enforcer reports only what it observed itself. Every record is
attributed to the caller (``spiffe://<td>/enforcer/<node>`` reports as ``<node>``); a record
that names another reporter is refused as a whole batch (``PERMISSION_DENIED``, reason
``ENFORCER_MISMATCH``) so nothing is partially stored.

Watching: each ``WatchFlows`` stream has a bounded queue. When a reader falls behind, the oldest
queued records are dropped and counted; the next message carries the count in
``dropped_count``. A slow reader therefore never grows memory and never slows ingestion.
The first message of a stream holds the latest matching records (possibly none): receiving it
means the stream is live. A watch sees only what is reported to this replica (docs/flows.md).

Querying: ``QueryFlows`` answers for the whole cluster by default (``cluster_flows.py``: this
replica's store and every live peer's, merged); ``QUERY_SCOPE_LOCAL`` answers from this
replica's store alone, which is how replicas ask each other. ``Suggest`` reads cluster-wide.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from trustwire.api.common.v1 import pagination_pb2 as pagination_pb
from trustwire.api.flow.v1 import flow_service_pb2 as flow_pb
from trustwire.api.flow.v1 import flow_service_pb2_grpc as flow_grpc
from trustwire.api.policy.v1 import policy_service_pb2 as policy_pb
from trustwire.errors import InvalidArgument, PermissionDenied
from trustwire.flows import (
    FlowFilter,
    filter_from_proto,
    record_from_proto,
    record_to_proto,
    timestamp_from_proto,
)
from trustwire.policy.model import Action
from trustwire.runtime import Role, current_caller

from .. import codec
from ..cluster_flows import ClusterFlows
from ..flowstore import CollectedFlows, FlowStore, StoredFlow
from ..settings import LimitSettings
from ..suggest import SuggestOptions, suggest, suggestions_yaml

__all__ = ["FlowCollector", "FlowServicer", "FlowWatchers", "suggest_response"]

_log = logging.getLogger("trustwire.policy.flows")

MAX_BATCH_RECORDS = 10_000
_MAX_BATCH_ID = 256
# Records in the first message of a WatchFlows stream.
_WATCH_BACKLOG = 100
# Records per WatchFlows message.
_WATCH_MESSAGE = 500
# Records Suggest reads at most: bounds its memory and time on a busy cluster.
_SUGGEST_MAX_RECORDS = 200_000


class _Subscription:
    """One watcher's bounded queue of matching records and its count of dropped ones."""

    def __init__(self, flow_filter: FlowFilter, capacity: int) -> None:
        self.filter = flow_filter
        self.queue: collections.deque[StoredFlow] = collections.deque(maxlen=capacity)
        self.dropped = 0
        self.ready = asyncio.Event()

    def offer(self, flow: StoredFlow) -> None:
        if not self.filter.matches(flow.record):
            return
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1  # the deque drops the oldest on append
        self.queue.append(flow)
        self.ready.set()

    def take(self, limit: int) -> tuple[list[StoredFlow], int]:
        out = [self.queue.popleft() for _ in range(min(limit, len(self.queue)))]
        dropped, self.dropped = self.dropped, 0
        if not self.queue:
            self.ready.clear()
        return out, dropped


class FlowWatchers:
    """Fan-out of newly stored records to the live ``WatchFlows`` streams (this replica's)."""

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = max(1, capacity)
        self._subscriptions: set[_Subscription] = set()

    def __len__(self) -> int:
        return len(self._subscriptions)

    def subscribe(self, flow_filter: FlowFilter) -> _Subscription:
        subscription = _Subscription(flow_filter, self.capacity)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: _Subscription) -> None:
        self._subscriptions.discard(subscription)

    def publish(self, flows: Sequence[StoredFlow]) -> None:
        """Never blocks: each subscription takes what it can hold."""
        for subscription in list(self._subscriptions):
            for flow in flows:
                subscription.offer(flow)


class FlowServicer(flow_grpc.FlowServiceServicer):  # type: ignore[misc]
    """``cluster``: how cluster-wide queries are answered; without it, a lone replica's (the
    local store, same tokens and order)."""

    def __init__(
        self,
        store: FlowStore,
        *,
        watchers: FlowWatchers | None = None,
        limits: LimitSettings | None = None,
        cluster: ClusterFlows | None = None,
    ) -> None:
        self.store = store
        self.watchers = watchers or FlowWatchers()
        self.limits = limits or LimitSettings()
        self.cluster = cluster or ClusterFlows(store, replica_id="local")
        # Since start, for metrics: records accepted, duplicate (retried) batches.
        self.ingested: collections.Counter[str] = collections.Counter()

    async def ReportFlows(self, request: Any, context: Any) -> Any:
        batch_id = request.batch_id
        if not batch_id or len(batch_id) > _MAX_BATCH_ID:
            raise InvalidArgument(
                f"batch_id: required, at most {_MAX_BATCH_ID} characters", field="batch_id"
            )
        if len(request.records) > MAX_BATCH_RECORDS:
            raise InvalidArgument(
                f"records: {len(request.records)} exceed the limit of {MAX_BATCH_RECORDS} per "
                "batch",
                field="records",
                reason="REQUEST_TOO_LARGE",
            )
        reporter = _reporter(request.records)
        records = [
            replace(record_from_proto(message, path=f"records[{i}]"), reporter=reporter)
            for i, message in enumerate(request.records)
        ]
        result = await self.store.ingest(reporter, batch_id, records)
        self.ingested["accepted"] += result.accepted
        if result.duplicate:
            self.ingested["duplicate_batches"] += 1
        if result.stored:
            self.watchers.publish(result.stored)
        return flow_pb.ReportFlowsResponse(
            accepted_count=result.accepted, duplicate=result.duplicate
        )

    async def QueryFlows(self, request: Any, context: Any) -> Any:
        flow_filter = filter_from_proto(request.filter)
        start, end = _time_range(request)
        size = int(request.page.page_size) or self.limits.default_page_size
        page_size = max(1, min(size, self.limits.max_page_size))
        if request.scope == flow_pb.QUERY_SCOPE_LOCAL:
            local = await self.store.query(
                flow_filter,
                start=start,
                end=end,
                page_size=page_size,
                page_token=request.page.page_token,
            )
            return flow_pb.QueryFlowsResponse(
                records=[record_to_proto(f.record) for f in local.flows],
                page=pagination_pb.PageResponse(next_page_token=local.next_token),
                record_page_tokens=local.resume_tokens,
            )
        if request.scope != flow_pb.QUERY_SCOPE_UNSPECIFIED:
            raise InvalidArgument(f"scope: unknown value {request.scope}", field="scope")
        page = await self.cluster.query(
            flow_filter,
            start=start,
            end=end,
            page_size=page_size,
            page_token=request.page.page_token,
            # The caller's deadline bounds the fan-out (None: no deadline set).
            deadline=context.time_remaining() if context is not None else None,
        )
        return flow_pb.QueryFlowsResponse(
            records=[record_to_proto(r) for r in page.records],
            page=pagination_pb.PageResponse(next_page_token=page.next_token),
            unreachable_replicas=page.unreachable,
        )

    async def WatchFlows(self, request: Any, context: Any) -> AsyncIterator[Any]:
        flow_filter = filter_from_proto(request.filter)
        # Subscribe before reading the backlog so that nothing stored in between is lost;
        # records seen in the backlog are skipped when they also arrive live.
        subscription = self.watchers.subscribe(flow_filter)
        try:
            backlog = await self.store.latest(flow_filter, _WATCH_BACKLOG)
            seen = max((f.id for f in backlog), default=0)
            yield flow_pb.WatchFlowsResponse(records=[record_to_proto(f.record) for f in backlog])
            while True:
                await subscription.ready.wait()
                flows, dropped = subscription.take(_WATCH_MESSAGE)
                fresh = [f for f in flows if f.id > seen]
                if not fresh and not dropped:
                    continue
                yield flow_pb.WatchFlowsResponse(
                    records=[record_to_proto(f.record) for f in fresh], dropped_count=dropped
                )
        finally:
            self.watchers.unsubscribe(subscription)


def _reporter(messages: Sequence[Any]) -> str:
    """The enforcer the batch is attributed to: the caller over mutual TLS; without it (local
    development), the records' own reporter, which must then be set and the same for all."""
    caller = current_caller()
    if caller is not None:
        if caller.role is not Role.ENFORCER:
            raise PermissionDenied(
                f"{caller} is not an enforcer; only enforcers report flows",
                reason="ROLE_NOT_ALLOWED",
            )
        for i, message in enumerate(messages):
            claimed = message.reporter_enforcer_id
            if claimed and claimed != caller.name:
                raise PermissionDenied(
                    f"records[{i}].reporter_enforcer_id: enforcer {caller.name} may report only "
                    f"flows it observed, not those of {claimed}",
                    reason="ENFORCER_MISMATCH",
                    metadata={"enforcer_id": claimed, "caller": caller.spiffe_id},
                )
        return caller.name
    reporters = {m.reporter_enforcer_id for m in messages}
    if len(reporters) > 1 or "" in reporters:
        raise InvalidArgument(
            "records[].reporter_enforcer_id: without mutual TLS every record must name the "
            "same reporting enforcer",
            field="records",
        )
    return reporters.pop() if reporters else "unknown"


def _time_range(request: Any) -> tuple[datetime | None, datetime | None]:
    start = timestamp_from_proto(request.start_time) if request.HasField("start_time") else None
    end = timestamp_from_proto(request.end_time) if request.HasField("end_time") else None
    if start is not None and end is not None and end <= start:
        raise InvalidArgument("end_time: must be after start_time", field="end_time")
    return start, end


# ---------------------------------------------------------------------------- Suggest


class FlowCollector(Protocol):
    """What Suggest reads flows from: ``ClusterFlows`` (cluster-wide) or a ``FlowStore``."""

    async def collect(
        self, flow_filter: FlowFilter, *, start: datetime, end: datetime, limit: int
    ) -> CollectedFlows: ...


async def suggest_response(request: Any, store: FlowCollector) -> Any:
    """``PolicyService.Suggest`` over the flows ``store`` holds (the cluster's, as served)."""
    end = (
        timestamp_from_proto(request.end_time)
        if request.HasField("end_time")
        else datetime.now(UTC)
    )
    start = (
        timestamp_from_proto(request.start_time)
        if request.HasField("start_time")
        else end - timedelta(hours=1)
    )
    if end <= start:
        raise InvalidArgument("end_time: must be after start_time", field="end_time")
    action = Action.ALLOW
    if request.action:
        name = codec.action_name(request.action)
        if name not in (Action.ALLOW.value, Action.OBSERVE.value):
            raise InvalidArgument("action: ALLOW or OBSERVE", field="action")
        action = Action(name)
    object_selector = (
        codec.selector_from_proto(request.object_selector, field="object_selector")
        if request.HasField("object_selector")
        else None
    )
    options = SuggestOptions(
        namespace=request.namespace,
        object_selector=object_selector,
        label_keys=tuple(request.label_keys) or ("app",),
        # The built-in tier for ordinary application rules (the proto's "default" tier does
        # not exist; see docs/flows.md).
        tier=request.tier or "application",
        action=action,
    )
    collected = await store.collect(
        FlowFilter(namespace=request.namespace), start=start, end=end, limit=_SUGGEST_MAX_RECORDS
    )
    result = suggest(collected.records, options)
    if result.skipped:
        _log.info("suggest skipped records", extra={"skipped": result.skipped})
    return policy_pb.SuggestResponse(
        suggestions=[
            policy_pb.Suggestion(
                policy=codec.resource_from_domain(s.policy).network_access_policy,
                flow_count=s.flow_count,
                connection_count=s.connection_count,
                already_allowed=s.already_allowed,
            )
            for s in result.suggestions
        ],
        yaml=suggestions_yaml(result.suggestions),
        unreachable_replicas=collected.unreachable,
    )
