"""Views: protobuf round trip, deterministic bytes, and diff/apply_delta laws."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustwire.api.policy.v1 import distribution_pb2
from trustwire.policy import Cluster
from trustwire.policy.views import EnforcerView, ViewBuilder, apply_delta, diff
from trustwire_policy.distribution.codec import (
    delta_from_proto,
    delta_to_proto,
    snapshot_parts,
    snapshot_to_proto,
    view_from_snapshot,
)

from ..policy.strategies import clusters
from .view_strategies import ENFORCERS, topologies

INITIAL = distribution_pb2.SNAPSHOT_REASON_INITIAL


def _views(cluster: Cluster, data: st.DataObject) -> dict[str, EnforcerView]:
    builder = ViewBuilder(cluster, data.draw(topologies(cluster)))
    return {e: builder.view(e) for e in ENFORCERS}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster=clusters(), data=st.data())
def test_snapshot_round_trip_and_determinism(cluster: Cluster, data: st.DataObject) -> None:
    views = _views(cluster, data)
    for enforcer, view in views.items():
        message = snapshot_to_proto(view, INITIAL)
        assert view_from_snapshot(enforcer, [message]) == view
        assert message.SerializeToString(deterministic=True) == snapshot_to_proto(
            view_from_snapshot(enforcer, [message]), INITIAL
        ).SerializeToString(deterministic=True)
        parts = snapshot_parts(view, INITIAL, max_bytes=200)
        assert [p.final_part for p in parts] == [False] * (len(parts) - 1) + [True]
        assert view_from_snapshot(enforcer, parts) == view


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=clusters(), after=clusters(), data=st.data())
def test_diff_then_apply_gives_the_new_view(
    before: Cluster, after: Cluster, data: st.DataObject
) -> None:
    old_views = _views(before, data)
    new_views = _views(after, data)
    for enforcer in ENFORCERS:
        old, new = old_views[enforcer], new_views[enforcer]
        delta = diff(old, new)
        assert apply_delta(old, delta) == new
        assert diff(new, new).is_empty
        assert delta.is_empty == (old == new)
        # Through the wire as well.
        wire = delta_from_proto(delta_to_proto(delta, base_revision=7))
        assert wire == delta
        assert apply_delta(old, wire) == new


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster=clusters(), data=st.data())
def test_two_builders_produce_identical_bytes(cluster: Cluster, data: st.DataObject) -> None:
    """Replicas build independently (fresh memo tables, workloads in another order) and must
    send identical bytes."""
    topology = data.draw(topologies(cluster))
    reordered = cluster.with_changes(workloads=tuple(reversed(cluster.workloads)))
    first, second = ViewBuilder(cluster, topology), ViewBuilder(reordered, topology)
    for enforcer in ENFORCERS:
        a = snapshot_to_proto(first.view(enforcer), INITIAL).SerializeToString(deterministic=True)
        b = snapshot_to_proto(second.view(enforcer), INITIAL).SerializeToString(deterministic=True)
        assert a == b


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster=clusters(), other=clusters(), data=st.data())
def test_builder_reusing_the_previous_revision_equals_a_fresh_one(
    cluster: Cluster, other: Cluster, data: st.DataObject
) -> None:
    """The next revision's builder reuses the PU views no policy change touched (the same
    workload objects, some access policies kept, dropped or added): its views equal those of
    a builder starting from scratch, including after a change of anything else."""
    topology = data.draw(topologies(cluster))
    kept = tuple(p for p in cluster.access_policies if data.draw(st.booleans()))
    added = tuple(p for p in other.access_policies if p.tier in {t.name for t in cluster.tiers})
    changes = [
        cluster.with_changes(access_policies=kept + added[: data.draw(st.integers(0, 3))]),
        cluster.with_changes(revision=cluster.revision + 1),
        cluster.with_changes(namespaces=other.namespaces),
        cluster.with_changes(external_networks=other.external_networks),
        cluster.with_changes(kubernetes_policies=other.kubernetes_policies),
    ]
    for after in changes:
        previous = ViewBuilder(cluster, topology)
        for enforcer in ENFORCERS[: data.draw(st.integers(1, len(ENFORCERS)))]:
            previous.view(enforcer)  # the streams of the previous revision built some views
        reused = ViewBuilder(after, topology, previous=previous)
        fresh = ViewBuilder(after, topology)
        for enforcer in ENFORCERS:
            assert reused.view(enforcer) == fresh.view(enforcer)
