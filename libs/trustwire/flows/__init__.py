"""Flow records: aggregation of decided connections into records, and their wire form.

Domain code: no gRPC, no storage. The enforcer aggregates and reports::

    aggregator = FlowAggregator("node-1", window=timedelta(seconds=10))
    aggregator.record(ConnectionFacts(source, destination, Protocol.TCP,
                                      FlowDecision.from_decision(side), revision,
                                      trace_id=trace_id))
    ...
    records = aggregator.flush()            # windows that have ended
    request = ReportFlowsRequest(batch_id=..., records=[record_to_proto(r) for r in records])

The policy service stores them (``trustwire_policy.flowstore``) and answers queries with
:class:`FlowFilter`. Protobuf is touched only by the private codec, re-exported here.
"""

from ._codec import (
    filter_from_proto,
    filter_to_proto,
    reason_from_proto,
    reason_to_proto,
    record_from_proto,
    record_to_proto,
    timestamp_from_proto,
    timestamp_to_proto,
)
from .aggregator import DEFAULT_WINDOW, ConnectionFacts, FlowAggregator
from .query import FlowFilter, policy_matches
from .record import FlowDecision, FlowEndpoint, FlowKey, FlowRecord, Verdict, endpoint, is_trace_id

__all__ = [
    "DEFAULT_WINDOW",
    "ConnectionFacts",
    "FlowAggregator",
    "FlowDecision",
    "FlowEndpoint",
    "FlowFilter",
    "FlowKey",
    "FlowRecord",
    "Verdict",
    "endpoint",
    "filter_from_proto",
    "filter_to_proto",
    "is_trace_id",
    "policy_matches",
    "reason_from_proto",
    "reason_to_proto",
    "record_from_proto",
    "record_to_proto",
    "timestamp_from_proto",
    "timestamp_to_proto",
]
