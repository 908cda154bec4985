"""The evaluator over one enforcer's view agrees with the reference evaluator on every
direction decision (and so on every connection decision) for random clusters, placements,
probes and scores: the enforcer decides from its view exactly what the whole-cluster
semantics say."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustwire.policy import Cluster, Decision, Direction, Endpoint, Protocol, Scores
from trustwire.policy.reference import ReferenceEvaluator
from trustwire.policy.views import Peer, Topology, ViewBuilder, ViewEvaluator
from trustwire.policy.views.builder import build_views

from ..policy.strategies import PORTS, PROTOCOLS, address, clusters, scores
from .view_strategies import topologies


def _peer(endpoint: Endpoint, topology: Topology) -> Peer:
    if endpoint.workload is not None:
        w = endpoint.workload
        return Peer.identity(topology.placement[w.key].pu_id, w.identity_labels(), endpoint.ip)
    assert endpoint.ip is not None
    return Peer.address(endpoint.ip)


def decide_with_views(
    evaluators: dict[str, ViewEvaluator],
    topology: Topology,
    src: Endpoint,
    dst: Endpoint,
    protocol: Protocol,
    port: int,
    src_scores: Scores,
    dst_scores: Scores,
    revision: int,
) -> Decision:
    """The connection decision the two enforcers reach, each from its own view."""
    egress = ingress = None
    if src.workload is not None:
        placement = topology.placement[src.workload.key]
        egress = evaluators[placement.enforcer_id].decide(
            placement.pu_id,
            Direction.EGRESS,
            _peer(dst, topology),
            protocol,
            port,
            peer_scores=dst_scores,
        )
        if egress is None:
            return Decision.self_traffic(revision)
    if dst.workload is not None:
        placement = topology.placement[dst.workload.key]
        ingress = evaluators[placement.enforcer_id].decide(
            placement.pu_id,
            Direction.INGRESS,
            _peer(src, topology),
            protocol,
            port,
            peer_scores=src_scores,
        )
        if ingress is not None and ingress.reason.value == "NODE_LOCAL":
            return Decision.node_local(revision)
    return Decision.combine(egress, ingress, revision)


def _specs(cluster: Cluster) -> list[str]:
    specs = [w.key for w in cluster.workloads]
    return specs + [str(address(i)) for i in (0, 5, 9, 17, 30)] + ["192.0.2.1", "10.0.3.200"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster=clusters(), data=st.data())
def test_view_evaluator_agrees_with_reference(cluster: Cluster, data: st.DataObject) -> None:
    topology = data.draw(topologies(cluster))
    builder = ViewBuilder(cluster, topology)
    evaluators = {e: ViewEvaluator(builder.view(e)) for e in builder.enforcer_ids()}
    reference = ReferenceEvaluator(cluster)
    specs = _specs(cluster)
    for _ in range(16):
        src = cluster.endpoint(data.draw(st.sampled_from(specs)))
        dst = cluster.endpoint(data.draw(st.sampled_from(specs)))
        protocol = data.draw(st.sampled_from(PROTOCOLS))
        port = data.draw(st.sampled_from((*PORTS, 442)))
        src_scores = data.draw(scores)
        dst_scores = data.draw(scores)
        expected = reference.decide(
            src, dst, protocol, port, source_scores=src_scores, destination_scores=dst_scores
        )
        got = decide_with_views(
            evaluators,
            topology,
            src,
            dst,
            protocol,
            port,
            src_scores,
            dst_scores,
            cluster.revision,
        )
        assert got == expected, (str(src), str(dst), protocol, port, src_scores, dst_scores)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster=clusters(), data=st.data())
def test_every_direction_decision_agrees(cluster: Cluster, data: st.DataObject) -> None:
    """Exhaustively over every workload, direction and peer of a small cluster."""
    topology = data.draw(topologies(cluster))
    views = build_views(cluster, topology)
    evaluators = {e: ViewEvaluator(v) for e, v in views.items()}
    reference = ReferenceEvaluator(cluster)
    protocol = data.draw(st.sampled_from(PROTOCOLS))
    port = data.draw(st.sampled_from((*PORTS, 442)))
    specs = _specs(cluster)
    for w in cluster.workloads:
        placement = topology.placement[w.key]
        own = cluster.endpoint(w.key)
        for spec in specs:
            other = cluster.endpoint(spec)
            if other.workload is not None and other.workload.key == w.key:
                continue
            for direction in (Direction.EGRESS, Direction.INGRESS):
                src, dst = (own, other) if direction is Direction.EGRESS else (other, own)
                if (
                    direction is Direction.INGRESS
                    and other.workload is None
                    and (other.ip in w.host_ips)
                ):
                    continue
                expected = reference.direction(direction, w, src, dst, protocol, port, Scores())
                got = evaluators[placement.enforcer_id].decide(
                    placement.pu_id, direction, _peer(other, topology), protocol, port
                )
                assert got == expected, (w.key, spec, direction)
