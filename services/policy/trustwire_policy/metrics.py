"""The policy replica's Prometheus metrics (``settings.metrics_address``; off when empty).

Everything is read at scrape time from tallies the servicers keep anyway (``collections.Counter``
attributes since start) and from live state (streams, the mirror's revision): recording costs
the request path one dict update, and a scrape sees one consistent moment of the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from trustwire.runtime import MetricsRegistry

from .api.flow_service import FlowServicer
from .api.service import PolicyServicer
from .distribution.stream import PolicyDistribution
from .state import StateMirror

__all__ = ["policy_metrics"]


def policy_metrics(
    servicer: PolicyServicer,
    flows: FlowServicer,
    mirror: StateMirror,
    members: Callable[[], int] | None = None,
    *,
    registry: MetricsRegistry | None = None,
) -> MetricsRegistry:
    """Adds the replica's metrics to ``registry`` (a new one when None) and returns it."""
    registry = registry if registry is not None else MetricsRegistry()
    registry.counter(
        "trustwire_policy_apply_total",
        "Apply calls since start, by mode (write or dry_run) and result (OK, or the error "
        "reason: INVALID_DOCUMENT, ABORTED on a lost compare-and-swap...).",
        labels=("mode", "result"),
        callback=lambda: {key: float(n) for key, n in servicer.applies.items()},
    )
    registry.gauge(
        "trustwire_policy_state_revision",
        "The etcd revision of the policy state this replica's mirror holds (0 before it loaded).",
        callback=lambda: float(mirror.current.revision) if mirror.ready else 0.0,
    )
    distribution = servicer.distribution
    if isinstance(distribution, PolicyDistribution):
        d = distribution
        registry.gauge(
            "trustwire_policy_watch_streams",
            "Open WatchPolicy streams (one per connected enforcer, more while one reconnects).",
            callback=lambda: float(len(d.streams)),
        )
        registry.counter(
            "trustwire_policy_watch_responses_total",
            "WatchPolicy views sent since start, by kind (snapshot or delta).",
            labels=("kind",),
            callback=lambda: _one_label(d.responses),
        )
        registry.counter(
            "trustwire_policy_watch_acks_total",
            "Enforcer acknowledgements since start, by result (ack: applied; nack: refused).",
            labels=("result",),
            callback=lambda: _one_label(d.acks),
        )
    registry.counter(
        "trustwire_policy_flow_records_total",
        "Flow records reported to this replica since start (accepted), and retried batches "
        "recognised as duplicates (duplicate_batches).",
        labels=("result",),
        callback=lambda: _one_label(flows.ingested),
    )
    if members is not None:
        registry.gauge(
            "trustwire_policy_replicas",
            "Live policy replicas this replica knows (itself included), for flow queries.",
            callback=lambda: float(members()),
        )
    return registry


def _one_label(tally: Mapping[str, int]) -> dict[tuple[str, ...], float]:
    return {(key,): float(n) for key, n in tally.items()}
